/**
 * `npm run example:persistence` (needs Redis; QUARK_REDIS_URL, default 127.0.0.1:6379):
 *
 * - a bank account whose balance is a version-checked state record in Redis survives a
 *   silo restart;
 * - an event-sourced ledger's history replays after the restart (from its latest
 *   snapshot plus the events after it);
 * - a stale write is refused with `StateConflict`.
 *
 * The run writes under a key prefix of its own and deletes its keys at the end; without a
 * Redis at QUARK_REDIS_URL it says so and how to start one.
 */
import { Console, Effect, Layer, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorState, EventSourced, JournalConflict, Silo, StateConflict, StoreError, Stores } from "quark"
import { RedisStore } from "quark/persistence/redis"
import { connect, deleteKeys, explainUnreachable, redisUrl } from "./support/Redis.ts"

// --- An account: one state record -------------------------------------------------------

const Deposit = Rpc.make("Deposit", {
  payload: { amount: Schema.Number },
  success: Schema.Number,
  error: Schema.Union([StateConflict, StoreError])
})
const Balance = Rpc.make("Balance", { success: Schema.Number })
const Account = Actor.make("Account", [Deposit, Balance])

const AccountLive = Account.toLayer(
  Effect.gen(function*() {
    const balance = yield* ActorState.make("balance", {
      schema: Schema.Struct({ amount: Schema.Number }),
      initial: () => ({ amount: 0 }),
      store: "redis"
    })
    return Account.of({
      Deposit: ({ amount }) =>
        balance.update((b) => ({ amount: b.amount + amount })).pipe(
          Effect.tap(() => balance.write), // explicit, version-checked
          Effect.map((b) => b.amount)
        ),
      Balance: () => Effect.map(balance.get, (b) => b.amount)
    })
  })
)

// --- A ledger: event sourced --------------------------------------------------------------

const Entry = Schema.Union([
  Schema.TaggedStruct("Credited", { amount: Schema.Number }),
  Schema.TaggedStruct("Debited", { amount: Schema.Number })
])
const Post = Rpc.make("Post", {
  payload: { entry: Entry },
  success: Schema.Number,
  error: Schema.Union([JournalConflict, StoreError])
})
const History = Rpc.make("History", { success: Schema.Struct({ balance: Schema.Number, events: Schema.Number }) })
const Ledger = Actor.make("Ledger", [Post, History])

let replayed = 0
const LedgerLive = Ledger.toLayer(
  Effect.gen(function*() {
    const ledger = yield* EventSourced.make("entries", {
      event: Entry,
      state: Schema.Struct({ balance: Schema.Number, events: Schema.Number }),
      initial: { balance: 0, events: 0 },
      reduce: (state, entry) => {
        replayed++
        return {
          balance: state.balance + (entry._tag === "Credited" ? entry.amount : -entry.amount),
          events: state.events + 1
        }
      },
      snapshotEvery: 5,
      store: "redis"
    })
    return Ledger.of({
      Post: ({ entry }) => Effect.map(ledger.append(entry), (state) => state.balance),
      History: () => ledger.state
    })
  })
)

// --- Two silo lifetimes, one Redis ------------------------------------------------------

const url = redisUrl
const run = `demo-${Date.now().toString(36)}`
const keyPrefix = `quark-example-${run}`
const SiloWithRedis = Layer.mergeAll(AccountLive, LedgerLive).pipe(
  Layer.provideMerge(Silo.layer()),
  Layer.provide(Stores.layer(RedisStore.make("redis", { url, keyPrefix })))
)

const firstLife = Effect.gen(function*() {
  const account = yield* Account.ref(run)
  yield* account.Deposit({ amount: 100 })
  yield* Console.log(`  deposited twice: balance ${yield* account.Deposit({ amount: 25 })}`)
  const ledger = yield* Ledger.ref(run)
  for (const amount of [10, 20, 30, 40, 50, 60, 70]) yield* ledger.Post({ entry: { _tag: "Credited", amount } })
  yield* ledger.Post({ entry: { _tag: "Debited", amount: 80 } })
  yield* Console.log(`  ledger after 8 events: ${JSON.stringify(yield* ledger.History())}`)
})

const secondLife = Effect.gen(function*() {
  const account = yield* Account.ref(run)
  yield* Console.log(`  the account reactivated from Redis: balance ${yield* account.Balance()}`)
  replayed = 0
  const ledger = yield* Ledger.ref(run)
  const history = yield* ledger.History()
  yield* Console.log(`  the ledger recovered ${JSON.stringify(history)}, replaying ${replayed} event(s) after its snapshot`)

  // Someone else writes the account's record behind this activation's back.
  yield* Effect.scoped(Effect.gen(function*() {
    const other = yield* RedisStore.make("other", { url, keyPrefix })
    const key = { type: "Account", id: run, record: "balance" }
    const stored = yield* other.state.read(key)
    yield* other.state.write(key, `{"amount":0}`, stored!.version)
  }))
  const refused = yield* Effect.flip(account.Deposit({ amount: 1 }))
  yield* Console.log(`  a deposit over a stale version is refused: ${refused._tag}`)
})

/** Deletes every key this run wrote (they all start with its prefix); none if Redis was not there. */
const deleteRunKeys = Effect.scoped(Effect.flatMap(connect(url), (redis) => deleteKeys(redis, [`${keyPrefix}:*`]))).pipe(
  Effect.catchTag("RedisUnreachable", () => Effect.succeed(0))
)

const program = Effect.gen(function*() {
  yield* Console.log("silo #1")
  yield* Effect.provide(firstLife, SiloWithRedis)
  yield* Console.log("silo #1 shut down; silo #2 starts")
  yield* Effect.provide(secondLife, SiloWithRedis)
  yield* Console.log("done")
}).pipe(
  Effect.ensuring(Effect.flatMap(deleteRunKeys, (n) => n > 0 ? Console.log(`deleted the run's ${n} Redis keys`) : Effect.void)),
  Effect.catchTag("StoreError", (error) =>
    error.operation === "connect"
      ? explainUnreachable(url, error.reason)
      : Effect.fail(error))
)

Effect.runPromise(program).catch((error) => {
  console.error(error)
  process.exitCode = 1
})

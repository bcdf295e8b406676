/**
 * The actor of the rolling-upgrade test, in two versions of one contract (type
 * `UpAccount`): an account whose balance is a state record in Redis, written before a
 * deposit is acknowledged. Deposits carry an id and the ids applied are part of the state,
 * so a deposit is applied once.
 *
 * Version 2 adds an optional field to `Deposit`'s payload (`memo`) and a message (`Memos`);
 * its handler keeps the memo when one comes. The change is wire-compatible both ways: a v1
 * silo decodes a v2 payload and ignores the memo (unknown keys are dropped), a v2 silo
 * decodes a v1 payload as one without a memo. Likewise the state: v2's extra field is
 * optional, and v1 ignores it.
 */
import { Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, type ActorContextShape, ActorSchema, ActorState, StateConflict, StoreError } from "../../../src/index.ts"
import { Cluster } from "../../../src/Cluster/index.ts"

/** The name of the state store the account binds to (the silo provides it on Redis). */
export const storeName = "redis"

const depositErrors = Schema.Union([StateConflict, StoreError])

export const DepositV1 = Rpc.make("Deposit", {
  payload: { depositId: Schema.String, amount: Schema.Int },
  success: Schema.Int,
  error: depositErrors
})
export const DepositV2 = Rpc.make("Deposit", {
  payload: { depositId: Schema.String, amount: Schema.Int, memo: Schema.optional(Schema.String) },
  success: Schema.Int,
  error: depositErrors
})
export const Balance = Rpc.make("Balance", { success: Schema.Int }).annotate(ActorSchema.ReadOnly, true)
export const WhereAmI = Rpc.make("WhereAmI", { success: Schema.String }).annotate(ActorSchema.ReadOnly, true)
/** v2 only: the memos kept, oldest first. */
export const Memos = Rpc.make("Memos", { success: Schema.Array(Schema.String) }).annotate(ActorSchema.ReadOnly, true)

export const AccountV1 = Actor.make("UpAccount", [DepositV1, Balance, WhereAmI], { version: 1 })
export const AccountV2 = Actor.make("UpAccount", [DepositV2, Balance, WhereAmI, Memos], { version: 2 })

const StateV1 = Schema.Struct({ balance: Schema.Int, applied: Schema.Array(Schema.String) })
const StateV2 = Schema.Struct({
  balance: Schema.Int,
  applied: Schema.Array(Schema.String),
  memos: Schema.optional(Schema.Array(Schema.String))
})

/** The most memos kept per account. */
const maxMemos = 20

const deposit = <S extends { readonly balance: number; readonly applied: ReadonlyArray<string> }>(
  ctx: ActorContextShape,
  state: ActorState.ActorState<S>,
  depositId: string,
  amount: number,
  change: (next: S) => S
) =>
  Effect.gen(function*() {
    const current = yield* state.get
    if (current.applied.includes(depositId)) return current.balance
    const next = change({ ...current, balance: current.balance + amount, applied: [...current.applied, depositId] })
    yield* state.set(next)
    // A failed write may or may not have landed: start over from what is stored.
    yield* Effect.tapError(state.write, () => Effect.andThen(state.set(current), ctx.deactivateOnIdle))
    return next.balance
  })

export const AccountV1Live = AccountV1.toLayer(
  Effect.gen(function*() {
    const ctx = yield* ActorContext
    const silo = (yield* Cluster).self!.id
    const state = yield* ActorState.make("account", { schema: StateV1, initial: () => ({ balance: 0, applied: [] }), store: storeName })
    return AccountV1.of({
      Deposit: ({ amount, depositId }) => deposit(ctx, state, depositId, amount, (next) => next),
      Balance: () => Effect.map(state.get, (s) => s.balance),
      WhereAmI: () => Effect.succeed(silo)
    })
  }),
  { idleTimeout: "never" }
)

export const AccountV2Live = AccountV2.toLayer(
  Effect.gen(function*() {
    const ctx = yield* ActorContext
    const silo = (yield* Cluster).self!.id
    const state = yield* ActorState.make("account", { schema: StateV2, initial: () => ({ balance: 0, applied: [] }), store: storeName })
    return AccountV2.of({
      // The new field, used when present.
      Deposit: ({ amount, depositId, memo }) =>
        deposit(ctx, state, depositId, amount, (next) =>
          memo === undefined ? next : { ...next, memos: [...(next.memos ?? []), `${depositId}:${memo}`].slice(-maxMemos) }),
      Balance: () => Effect.map(state.get, (s) => s.balance),
      WhereAmI: () => Effect.succeed(silo),
      Memos: () => Effect.map(state.get, (s) => s.memos ?? [])
    })
  }),
  { idleTimeout: "never" }
)

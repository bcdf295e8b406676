/**
 * One silo of `npm run example:cluster`, as its own process:
 *
 *   node examples/cluster/silo.ts <cluster>
 *
 * A `ClusterSilo` on 127.0.0.1 (any free port), a member of `<cluster>` through Redis
 * membership (default timings: dead 3 s after its last heartbeat), hosting `Account`, whose
 * balance is a state record in Redis (QUARK_REDIS_URL, default 127.0.0.1:6379).
 *
 * stdout: `ready <silo id>` once it has joined and serves. Logs go to stderr.
 * It stops gracefully (leaves the membership, deactivates its actors, closes its
 * connections) on SIGTERM / SIGINT or when its stdin closes (so it never outlives the
 * process that started it), and exits 0. Declared dead, it stops serving and exits 3.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Logger, Schema } from "effect"
import { ActorState, Stores } from "quark"
import { Cluster, ClusterSilo } from "quark/cluster"
import { RedisDirectory, RedisMembership } from "quark/cluster/redis"
import { RedisStore } from "quark/persistence/redis"
import { Account, storePrefix } from "./Account.ts"

const cluster = process.argv[2]
if (cluster === undefined) {
  process.stderr.write("usage: node examples/cluster/silo.ts <cluster>\n")
  process.exit(2)
}
const url = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"

// --- The actor ---------------------------------------------------------------------------

const AccountLive = Account.toLayer(
  Effect.gen(function*() {
    const self = (yield* Cluster).self!.id
    // Loaded from Redis before the first turn: a new activation on another silo after a
    // crash starts from the last acknowledged deposit.
    const balance = yield* ActorState.make("balance", {
      schema: Schema.Struct({ amount: Schema.Number }),
      initial: () => ({ amount: 0 }),
      store: "redis"
    })
    return Account.of({
      Deposit: ({ amount }) =>
        balance.update((b) => ({ amount: b.amount + amount })).pipe(
          Effect.tap(() => balance.write), // written before the reply
          Effect.map((b) => b.amount)
        ),
      Balance: () => Effect.map(balance.get, (b) => b.amount),
      WhereAmI: () => Effect.succeed(self)
    })
  })
)

// --- The silo ----------------------------------------------------------------------------

const SiloLive = AccountLive.pipe(
  Layer.provideMerge(ClusterSilo.layer({ port: 0 })),
  Layer.provide(Layer.mergeAll(
    RedisMembership.layer({ url, cluster }),
    RedisDirectory.layer({ url, cluster }),
    Stores.layer(RedisStore.make("redis", { url, keyPrefix: storePrefix(cluster) }))
  ))
)

/** A stop that hangs must not leave the process behind. */
const exitSoon = () => void setTimeout(() => process.exit(4), 12_000).unref()
process.once("SIGTERM", exitSoon)
process.once("SIGINT", exitSoon)

/** Completes when stdin closes: the parent closed it, or died. */
const stdinClosed = Effect.callback<void>((resume) => {
  const done = () => {
    exitSoon()
    resume(Effect.void)
  }
  process.stdin.once("end", done)
  process.stdin.once("close", done)
  process.stdin.resume()
})

const main = Effect.gen(function*() {
  const { declaredDead, self } = yield* Cluster
  process.stdout.write(`ready ${self!.id}\n`)
  return yield* Effect.raceFirst(
    Effect.flatMap(declaredDead, (dead) => Effect.as(Effect.logError(`declared dead (${dead.reason}): exiting`), 3)),
    Effect.as(stdinClosed, 0)
  )
}).pipe(
  Effect.provide(SiloLive), // closing it is the graceful stop
  Effect.provideService(Logger.LogToStderr, true)
)

// runMain interrupts `main` on SIGTERM / SIGINT, which closes the silo's layers.
NodeRuntime.runMain(main, {
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? exit.value as number : Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
})

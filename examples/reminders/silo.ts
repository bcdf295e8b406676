/**
 * One silo of `npm run example:reminders`, as its own process:
 *
 *   node examples/reminders/silo.ts <cluster>
 *
 * A `ClusterSilo` on 127.0.0.1 (any free port), a member of `<cluster>` through Redis
 * membership (default timings: dead 3 s after its last heartbeat), hosting `Subscription`
 * (its statement is a state record in Redis) and firing the reminder buckets the ring gives
 * it, from a `RedisReminderStore` (QUARK_REDIS_URL, default 127.0.0.1:6379).
 *
 * stdout, one line each:
 * - `ready <silo id>` once it has joined and serves;
 * - `renewal <account> <due> <renewals> <charged at>` for each renewal charged (times in
 *   epoch ms), after the statement is saved;
 * - `duplicate <account> <due> <at>` for a tick delivered again (at least once) and not
 *   charged twice.
 * Logs go to stderr. It stops gracefully on SIGTERM / SIGINT or when its stdin closes (so it
 * never outlives the process that started it), and exits 0. Declared dead, it exits 3.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Logger } from "effect"
import { ActorContext, ActorState, Reminders, Stores } from "quark"
import { Cluster, ClusterSilo } from "quark/cluster"
import { RedisDirectory, RedisMembership } from "quark/cluster/redis"
import { RedisReminderStore, RedisStore } from "quark/persistence/redis"
import { Statement, storePrefix, Subscription } from "./Subscription.ts"

const cluster = process.argv[2]
if (cluster === undefined) {
  process.stderr.write("usage: node examples/reminders/silo.ts <cluster>\n")
  process.exit(2)
}
const url = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
const report = (line: string) => Effect.sync(() => void process.stdout.write(`${line}\n`))

// --- The actor ---------------------------------------------------------------------------

const SubscriptionLive = Subscription.toLayer(
  Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    // Loaded from Redis before the first turn: an activation on another silo after a crash
    // goes on from the last renewal saved.
    const statement = yield* ActorState.make("statement", {
      schema: Statement,
      initial: () => ({ renewals: 0, chargedCents: 0, lastDue: 0 }),
      store: "redis"
    })
    return Subscription.of({
      Renew: ({ cents }) =>
        Effect.gen(function*() {
          // Ticks are delivered at least once: a tick whose silo died before recording it
          // comes again from the next owner. The due time makes the charge idempotent.
          const due = (yield* Reminders.currentTick)?.due ?? Date.now() // a replayed dead letter has no tick
          const current = yield* statement.get
          if (due <= current.lastDue) return yield* report(`duplicate ${id} ${due} ${Date.now()}`)
          const next = { renewals: current.renewals + 1, chargedCents: current.chargedCents + cents, lastDue: due }
          yield* statement.set(next)
          // Saved before the reply; if the save fails, the copy goes back and the tick is retried.
          yield* statement.write.pipe(Effect.tapError(() => statement.set(current)))
          yield* report(`renewal ${id} ${due} ${next.renewals} ${Date.now()}`)
        }),
      GetStatement: () => statement.get
    })
  })
)

// --- The silo ----------------------------------------------------------------------------

const SiloLive = Layer.mergeAll(
  SubscriptionLive,
  // Every silo has the same reminder store (and bucket count, here the default 64) and fires
  // the buckets the ring gives it.
  Reminders.layer({ store: RedisReminderStore.make("reminders", { url, keyPrefix: storePrefix(cluster) }) })
).pipe(
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
  yield* report(`ready ${self!.id}`)
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

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
import { Effect, Layer } from "effect"
import { ActorContext, ActorState, Reminders } from "quark"
import { RedisReminderStore } from "quark/persistence/redis"
import { clusterSilo, runSilo } from "../support/SiloMain.ts"
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

const SiloLive = clusterSilo(
  Layer.mergeAll(
    SubscriptionLive,
    // Every silo has the same reminder store (and bucket count, here the default 64) and fires
    // the buckets the ring gives it.
    Reminders.layer({ store: RedisReminderStore.make("reminders", { url, keyPrefix: storePrefix(cluster) }) })
  ),
  { url, cluster, storePrefix: storePrefix(cluster) }
)

runSilo(SiloLive)

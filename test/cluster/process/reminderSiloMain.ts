/**
 * One silo of the multi-process reminders test, as its own process:
 *
 *   node test/cluster/process/reminderSiloMain.ts <keyPrefix> <cluster> <short|default>
 *
 * A `ClusterSilo` on 127.0.0.1 (any free port) with Redis membership (the timings of
 * `test/chaos/timings.ts` the last argument names), hosting `Beat` and firing reminders from a
 * `RedisReminderStore`; every key it writes starts with `keyPrefix`. Each delivered tick is
 * appended to the run's Redis list (`Beat.ts`).
 *
 * It serves `Beat` as soon as it has joined, but starts its reminders (`Reminders.layer`:
 * the buckets and their keeper) only when the line `go` arrives on stdin, so the test can
 * start them once every silo sees the same ring: buckets then activate on their final
 * owners, with no hand-off while the first ticks fire.
 *
 * stdout carries the protocol only, one line each:
 * - `ready <silo id>` once the silo has joined and serves;
 * - `members <id>,<id>,...` whenever its ring changes;
 * - `reminders` once its reminders run (after `go`);
 * - `stopping` when it begins a graceful stop.
 * Logs go to stderr. SIGTERM, or stdin closing (so it never outlives the test), stops it
 * gracefully (leaves, deactivates its actors and reminder buckets) and it exits 0; a stop
 * that hangs exits 4. It exits 3 at once if it is declared dead.
 */
import { Effect, Layer } from "effect"
import { Reminders } from "../../../src/index.ts"
import { Cluster, ClusterSilo } from "../../../src/Cluster/index.ts"
import { RedisMembership } from "../../../src/Cluster/redis.ts"
import { RedisReminderStore } from "../../../src/Persistence/redis.ts"
import { timingsOf } from "../../chaos/timings.ts"
import { redisUrl as url } from "../../persistence/services.ts"
import { BeatLive, encodeTick, TickLog, ticksKey } from "./Beat.ts"
import { connectRedis, exitIfStopHangs, reportMembers, runSilo, stopRequests, usage, write } from "./siloProcess.ts"

// First thing, since SIGTERM stops it too. stdin: the line `go`, then its end.
let onGo: (() => void) | undefined
let goReceived = false
const stopRequested = stopRequests((line) => {
  if (line.trim() !== "go") return
  goReceived = true
  onGo?.()
})

const [keyPrefix, clusterName, timingsName] = process.argv.slice(2)
if (keyPrefix === undefined || clusterName === undefined || (timingsName !== "short" && timingsName !== "default")) {
  usage("reminderSiloMain.ts <keyPrefix> <cluster> <short|default>")
}

const TickLogLive = Layer.effect(
  TickLog,
  Effect.gen(function*() {
    const redis = yield* connectRedis(url, `quark-test-ticks:${clusterName}`, "the tick log's Redis")
    const key = ticksKey(keyPrefix)
    return TickLog.of({
      append: (record) => Effect.asVoid(Effect.orDie(Effect.tryPromise(() => redis.rpush(key, encodeTick(record)))))
    })
  })
)

const SiloLive = BeatLive.pipe(
  Layer.provideMerge(ClusterSilo.layer({ host: "127.0.0.1", port: 0 })),
  Layer.provide(RedisMembership.layer({ url, keyPrefix, cluster: clusterName, ...timingsOf(timingsName) })),
  Layer.provide(TickLogLive)
)

const RemindersLive = Reminders.layer({ store: RedisReminderStore.make("reminders", { url, keyPrefix }) })

/** Completes when the test says `go`. */
const go = Effect.callback<void>((resume) => {
  if (goReceived) return resume(Effect.void)
  onGo = () => resume(Effect.void)
})

/**
 * The silo serves `Beat` at once; its reminders start on `go` (its own scope, inside the
 * silo's: on a stop the keeper stops first, then the silo leaves and deactivates the
 * buckets).
 */
const main = Effect.gen(function*() {
  const cluster = yield* Cluster
  yield* write(`ready ${cluster.self!.id}`)
  yield* Effect.forkScoped(reportMembers(cluster))
  const outcome = yield* Effect.raceFirst(
    Effect.map(cluster.declaredDead, (dead) => ({ _tag: "dead" as const, reason: dead.reason })),
    Effect.raceFirst(
      Effect.map(stopRequested, (why) => ({ _tag: "stop" as const, why })),
      // Runs until the stop interrupts it, which closes its scope.
      Effect.andThen(go, Effect.scoped(Effect.andThen(Layer.build(RemindersLive), Effect.andThen(write("reminders"), Effect.never))))
    )
  )
  if (outcome._tag === "dead") {
    yield* Effect.logError(`declared dead (${outcome.reason}): exiting`)
    process.exit(3)
  }
  yield* write("stopping")
  yield* Effect.logInfo(`${outcome.why}: stopping gracefully`)
  exitIfStopHangs(15_000)
}).pipe(
  Effect.scoped,
  Effect.annotateLogs({ pid: process.pid }),
  Effect.provide(SiloLive)
)

runSilo(main)

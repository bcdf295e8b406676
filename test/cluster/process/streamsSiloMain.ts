/**
 * One silo of the multi-process streams test, as its own process:
 *
 *   node test/cluster/process/streamsSiloMain.ts <keyPrefix> <cluster> <short|default> <partitions>
 *
 * A `ClusterSilo` on 127.0.0.1 (any free port) with Redis membership (the timings of
 * `test/chaos/timings.ts` the third argument names), hosting `Device` (`streamsFixtures.ts`),
 * which logs every delivery to a Redis list of the run through a connection of its own.
 * Every key it writes starts with `keyPrefix`.
 *
 * It serves `Device` as soon as it has joined, but starts its streams (`Streams.layer` on a
 * `RedisStreamProvider` with `partitions` partitions and the implicit subscription of
 * `Device` to "readings": the partition agents and their keeper) only when the line `go`
 * arrives on stdin, so the test can start them once every silo sees the same ring: the
 * agents then activate on their final owners, with no hand-off before the kill.
 *
 * stdout carries the protocol only, one line each:
 * - `ready <silo id>` once the silo has joined and serves;
 * - `members <id>,<id>,...` whenever its ring changes;
 * - `streams` once its streams run (after `go`);
 * - `lag <json>` in answer to the line `lag` (once its streams run): the lanes of the
 *   partitions it delivers, summed by partition (for a failure's message);
 * - `stopping` when it begins a graceful stop.
 * Logs go to stderr. SIGTERM, or stdin closing (so it never outlives the test), stops it
 * gracefully and it exits 0; a stop that hangs exits 4. It exits 3 at once if it is
 * declared dead.
 */
import { Effect, Layer } from "effect"
import { type Silo, Streams } from "../../../src/index.ts"
import { Cluster, ClusterSilo } from "../../../src/Cluster/index.ts"
import { RedisMembership } from "../../../src/Cluster/redis.ts"
import { partitionOf } from "../../../src/Streams/internal/StreamsRuntime.ts"
import * as RedisStreamProvider from "../../../src/Streams/RedisStreamProvider.ts"
import { timingsOf } from "../../chaos/timings.ts"
import { redisUrl as url } from "../../persistence/services.ts"
import { connectRedis, exitIfStopHangs, reportMembers, runSilo, stopRequests, usage, write } from "./siloProcess.ts"
import { DeliveryLog, DeviceLive, DeviceReadings, logKey, streamsPrefix } from "./streamsFixtures.ts"

// First thing, since SIGTERM stops it too. stdin: the line `go`, `lag` lines, then its end.
let onGo: (() => void) | undefined
let onLag: (() => void) | undefined
let goReceived = false
const stopRequested = stopRequests((line) => {
  const command = line.trim()
  if (command === "lag") return onLag?.()
  if (command !== "go") return
  goReceived = true
  onGo?.()
})

const [keyPrefix, clusterName, timingsName, partitionsArgument] = process.argv.slice(2)
const partitions = Number(partitionsArgument)
if (
  keyPrefix === undefined || clusterName === undefined || (timingsName !== "short" && timingsName !== "default") ||
  !Number.isSafeInteger(partitions) || partitions < 1
) {
  usage("streamsSiloMain.ts <keyPrefix> <cluster> <short|default> <partitions>")
}

const DeliveryLogLive = Layer.effect(
  DeliveryLog,
  Effect.gen(function*() {
    const redis = yield* connectRedis(url, `quark-test-streams-log:${clusterName}`, "the delivery log's Redis")
    return DeliveryLog.of({
      append: (key, record) => Effect.asVoid(Effect.orDie(Effect.tryPromise(() => redis.rpush(logKey(keyPrefix, key), record))))
    })
  })
)

const SiloLive = DeviceLive.pipe(
  Layer.provideMerge(ClusterSilo.layer({ host: "127.0.0.1", port: 0 })),
  Layer.provide(RedisMembership.layer({ url, keyPrefix, cluster: clusterName, ...timingsOf(timingsName) })),
  Layer.provide(DeliveryLogLive)
)

const StreamsLive = Streams.layer({
  provider: RedisStreamProvider.make({
    url,
    keyPrefix: streamsPrefix(keyPrefix),
    partitions,
    connectionName: `quark-test-streams:${process.pid}`
  }),
  implicit: [DeviceReadings]
})

/** The lanes of this silo's partitions, summed by partition. */
const lagReport = Effect.flatMap(Streams.lag, (lanes) => {
  const byPartition: Record<number, { lanes: number; buffered: number; delivered: number; failed: number; maxLagMillis: number }> = {}
  for (const lane of lanes) {
    const p = partitionOf(lane.stream.namespace, lane.stream.key, partitions)
    const sum = byPartition[p] ??= { lanes: 0, buffered: 0, delivered: 0, failed: 0, maxLagMillis: 0 }
    sum.lanes++
    sum.buffered += lane.buffered
    sum.delivered += lane.delivered
    sum.failed += lane.failed
    sum.maxLagMillis = Math.max(sum.maxLagMillis, lane.lagMillis)
  }
  return write(`lag ${JSON.stringify(byPartition)}`)
})

/** Completes when the test says `go`. */
const go = Effect.callback<void>((resume) => {
  if (goReceived) return resume(Effect.void)
  onGo = () => resume(Effect.void)
})

/**
 * The silo serves `Device` at once; its streams start on `go` (their own scope, inside the
 * silo's: on a stop the agents stop first, then the silo leaves).
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
      Effect.andThen(
        go,
        Effect.scoped(Effect.gen(function*() {
          yield* Layer.build(StreamsLive)
          const context = yield* Effect.context<Silo.Silo>()
          onLag = () => void Effect.runForkWith(context)(lagReport)
          yield* write("streams")
          return yield* Effect.never
        }))
      )
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

/**
 * One silo of `npm run example:streams`, as its own process:
 *
 *   node examples/streams/silo.ts <cluster>
 *
 * A `ClusterSilo` on 127.0.0.1 (any free port), a member of `<cluster>` through Redis
 * membership (default timings: dead 3 s after its last heartbeat), hosting `Device` and
 * `Fleet` (their state records in Redis), with streams on a `RedisStreamProvider`
 * (QUARK_REDIS_URL, default 127.0.0.1:6379): it delivers the partitions the ring gives it
 * (their agents are the system actors `$streams/<n>`).
 *
 * stdout, one line each:
 * - `ready <silo id>` once it has joined and serves;
 * - `device <sensor> <seq> <attempt> <at>` for a reading a device counted, after its
 *   statistics are saved (`at`: epoch ms; `attempt`: 1 for the agent's first delivery);
 * - `device-duplicate <sensor> <seq> <attempt> <at>` for a reading delivered again (at
 *   least once) and not counted twice;
 * - `fleet <sensor> <seq> <attempt> <at>` and `fleet-duplicate ...`: the same for the fleet.
 * Logs go to stderr. It stops gracefully on SIGTERM / SIGINT or when its stdin closes (so it
 * never outlives the process that started it), and exits 0. Declared dead, it exits 3.
 */
import { Effect, Layer } from "effect"
import { ActorContext, ActorState, Streams, StreamToken } from "quark"
import { RedisStreamProvider } from "quark/persistence/redis"
import { clusterSilo, runSilo } from "../support/SiloMain.ts"
import {
  Device,
  DeviceReadings,
  DeviceStats,
  Fleet,
  FleetTotals,
  partitions,
  type Reading,
  storePrefix,
  streamsPrefix
} from "./Sensors.ts"

const cluster = process.argv[2]
if (cluster === undefined) {
  process.stderr.write("usage: node examples/streams/silo.ts <cluster>\n")
  process.exit(2)
}
const url = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
const report = (line: string) => Effect.sync(() => void process.stdout.write(`${line}\n`))

/** The token and attempt of the delivery this turn is (a stream delivery always has one). */
const delivery = Effect.flatMap(Streams.currentEvent, (event) =>
  event === undefined
    ? Effect.die(new Error("a reading must arrive as a stream event"))
    : Effect.succeed(event))

const lower = (a: number | null, b: number) => (a === null ? b : Math.min(a, b))
const higher = (a: number | null, b: number) => (a === null ? b : Math.max(a, b))

// --- The actors --------------------------------------------------------------------------

const DeviceLive = Device.toLayer(
  Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    // Loaded from Redis before the first turn: an activation on another silo after a kill
    // goes on from the last reading saved, and knows its token.
    const stats = yield* ActorState.make("stats", {
      schema: DeviceStats,
      initial: () => ({ count: 0, min: null, max: null, last: null, lastSeq: 0, outOfOrder: 0, lastToken: null }),
      store: "redis"
    })
    return Device.of({
      Record: (reading: Reading) =>
        Effect.gen(function*() {
          const { attempt, token } = yield* delivery
          const current = yield* stats.get
          // At least once: an event counted just before its partition's silo died comes
          // again from the next owner. Tokens only increase along a stream.
          if (!StreamToken.isAfter(token, current.lastToken ?? undefined)) {
            return yield* report(`device-duplicate ${id} ${reading.seq} ${attempt} ${Date.now()}`)
          }
          yield* stats.set({
            count: current.count + 1,
            min: lower(current.min, reading.celsius),
            max: higher(current.max, reading.celsius),
            last: reading.celsius,
            lastSeq: reading.seq,
            outOfOrder: current.outOfOrder + (reading.seq === current.lastSeq + 1 ? 0 : 1),
            lastToken: token
          })
          // Saved (with the token) before the turn returns, so before the event is
          // acknowledged; if the save fails, the copy goes back and the delivery is retried.
          yield* stats.write.pipe(Effect.tapError(() => stats.set(current)))
          yield* report(`device ${id} ${reading.seq} ${attempt} ${Date.now()}`)
        })
    })
  })
)

const FleetLive = Fleet.toLayer(
  Effect.gen(function*() {
    const totals = yield* ActorState.make("totals", {
      schema: FleetTotals,
      initial: () => ({ readings: 0, min: null, max: null, bySensor: {} }),
      store: "redis"
    })
    return Fleet.of({
      Tally: (reading: Reading) =>
        Effect.gen(function*() {
          const { attempt, stream, token } = yield* delivery
          const current = yield* totals.get
          // One subscription per sensor's stream: de-duplicated per stream, by its last token.
          const tally = Object.hasOwn(current.bySensor, stream.key) ? current.bySensor[stream.key] : undefined
          if (!StreamToken.isAfter(token, tally?.lastToken)) {
            return yield* report(`fleet-duplicate ${stream.key} ${reading.seq} ${attempt} ${Date.now()}`)
          }
          const lastSeq = tally?.lastSeq ?? 0
          yield* totals.set({
            readings: current.readings + 1,
            min: lower(current.min, reading.celsius),
            max: higher(current.max, reading.celsius),
            bySensor: {
              ...current.bySensor,
              [stream.key]: {
                count: (tally?.count ?? 0) + 1,
                lastSeq: reading.seq,
                outOfOrder: (tally?.outOfOrder ?? 0) + (reading.seq === lastSeq + 1 ? 0 : 1),
                lastToken: token
              }
            }
          })
          yield* totals.write.pipe(Effect.tapError(() => totals.set(current)))
          yield* report(`fleet ${stream.key} ${reading.seq} ${attempt} ${Date.now()}`)
        })
    })
  })
)

// --- The silo ----------------------------------------------------------------------------

const SiloLive = clusterSilo(
  Layer.mergeAll(
    DeviceLive,
    FleetLive,
    // Every silo has the same provider (same Redis keys, same partition count) and the same
    // implicit subscriptions, and delivers the partitions the ring gives it.
    Streams.layer({
      provider: RedisStreamProvider.make({ url, keyPrefix: streamsPrefix(cluster), partitions }),
      implicit: [DeviceReadings]
    })
  ),
  { url, cluster, storePrefix: storePrefix(cluster) }
)

runSilo(SiloLive)

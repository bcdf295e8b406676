/**
 * `npm run example:streams` (needs Redis; QUARK_REDIS_URL, default 127.0.0.1:6379): sensor
 * readings on Redis Streams, none lost and none counted twice through a `kill -9`.
 *
 * - three silo processes (`streams/silo.ts`) join one cluster through Redis membership and
 *   share one `RedisStreamProvider`: 8 partitions (Redis streams), each delivered by an
 *   agent, a system actor (`$streams/<n>`) that the ring places on one silo;
 * - each of twenty sensors publishes to a stream of its own, ("readings", `sensor-NN`). The
 *   `Device` of the same id receives it through an implicit subscription (every silo
 *   declares it; nobody subscribes a device) and keeps running statistics in Redis;
 * - a client (`ClusterClient` with `Streams.layerClient`, hosting nothing) subscribes the
 *   `Fleet` actor durably to all twenty streams, then publishes a reading per sensor every
 *   100 ms for 6 s;
 * - halfway, the silo that owns the most partitions is killed with SIGKILL. Its partitions'
 *   agents are activated on the survivors once the membership declares it dead (3 s without
 *   a heartbeat) and a keeper touches them (every second); each first claims the entries the
 *   dead one read and did not acknowledge and delivers them again, in order, then reads on.
 *   The devices (and the fleet) it hosted come back on the survivors from what Redis holds;
 * - delivery is at least once: a reading delivered again is recognised by its token, which
 *   each actor saves with what it counted (`StreamToken.isAfter`), and skipped;
 * - once every reading has reached its device and the fleet, the survivors stop gracefully,
 *   the devices' statistics and the fleet's totals are read back from Redis and checked
 *   against what was published (the exit code is 1 if a check fails), and the run deletes
 *   every Redis key it wrote.
 *
 * Each run uses its own cluster name and key prefix, so runs never see each other.
 */
import { NodeRuntime } from "@effect/platform-node"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Console, Effect, Layer, Schedule, Schema } from "effect"
import type { Redis } from "ioredis"
import { Streams } from "quark"
import { Cluster, ClusterClient } from "quark/cluster"
import { RedisMembership } from "quark/cluster/redis"
import { RedisStore, RedisStreamProvider } from "quark/persistence/redis"
import {
  DeviceStats,
  Fleet,
  fleetId,
  FleetTotals,
  partitions,
  type Reading,
  Readings,
  storePrefix,
  streamsPrefix
} from "./streams/Sensors.ts"
import { connect, deleteKeys, explainUnreachable, redisUrl } from "./support/Redis.ts"
import { isRunning, siloProcesses, type SiloProcess } from "./support/SiloProcesses.ts"

const url = redisUrl
const cluster = `example-${Date.now().toString(36)}-${randomUUID().slice(0, 4)}`
const siloScript = fileURLToPath(new URL("./streams/silo.ts", import.meta.url))
const sensors = Array.from({ length: 20 }, (_, i) => `sensor-${String(i + 1).padStart(2, "0")}`)
const tickMillis = 100
const ticks = 60
const killAfterTick = 30
/** How long the deliveries may take after the last publish. */
const deliveryBoundSeconds = 15

const clock = (epochMillis: number) => new Date(epochMillis).toISOString().slice(11, 23)
const seconds = (millis: number) => `${(millis / 1000).toFixed(1)} s`

// --- What the client published -----------------------------------------------------------

/** A sensor's temperature at a tick: a slow wave around its own mean, to 0.1 °C. */
const celsiusOf = (sensor: number, tick: number) =>
  Math.round((17 + sensor * 0.4 + 4 * Math.sin((tick + sensor * 3) / 6)) * 10) / 10

interface Published {
  count: number
  min: number
  max: number
  last: number
}

const published = new Map<string, Published>(sensors.map((s) => [s, { count: 0, min: Infinity, max: -Infinity, last: NaN }]))
/** When each reading was published, by `<sensor> <seq>`. */
const publishedAt = new Map<string, number>()
const publishedTotal = () => [...published.values()].reduce((n, p) => n + p.count, 0)

// --- What the silos report -------------------------------------------------------------------

interface Handled {
  readonly who: "device" | "fleet"
  readonly sensor: string
  readonly seq: number
  readonly duplicate: boolean
  readonly at: number
  readonly silo: string
}

const handled: Array<Handled> = []
/** Per `<who> <sensor>`: the sequences handled (counted, or recognised as counted before). */
const covered = new Map<string, Set<number>>()

const onSiloLine = (label: string, line: string) => {
  const [kind, sensor, seq, , at] = line.split(" ") // the attempt is for whoever reads the raw lines
  const match = /^(device|fleet)(-duplicate)?$/.exec(kind ?? "")
  if (match === null || sensor === undefined) return console.error(`    [silo ${label}] ${line}`) // a log line that did not go to stderr
  const entry: Handled = {
    who: match[1] as "device" | "fleet",
    sensor,
    seq: Number(seq),
    duplicate: match[2] !== undefined,
    at: Number(at),
    silo: label
  }
  handled.push(entry)
  const key = `${entry.who} ${sensor}`
  const set = covered.get(key) ?? new Set()
  set.add(entry.seq)
  covered.set(key, set)
}

/** Whether every reading published has reached its device and the fleet. */
const allDelivered = () =>
  sensors.every((s) =>
    (covered.get(`device ${s}`)?.size ?? 0) === published.get(s)!.count &&
    (covered.get(`fleet ${s}`)?.size ?? 0) === published.get(s)!.count
  )

/** Waits (bounded, checking every 100 ms) until `condition` holds; whether it did. */
const waitFor = (bound: number, condition: () => boolean) =>
  Effect.sync(condition).pipe(Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("100 millis"), times: bound * 10 }))

// --- Redis: the run's keys ---------------------------------------------------------------------

/** Every key this run wrote: its cluster's membership and directory, the actors' state and the streams. */
const deleteRunKeys = (redis: Redis) =>
  deleteKeys(redis, [`quark:{membership:${cluster}}:*`, `quark:{directory:${cluster}}:*`, `${storePrefix(cluster)}:*`])

/**
 * The partition of each sensor's stream, read from Redis (one stream per partition, whose
 * entries carry their stream's key: see `RedisStreamProvider`'s key layout).
 */
const partitionsOfSensors = (redis: Redis) =>
  Effect.promise(async () => {
    const keys = RedisStreamProvider.redisKeys(streamsPrefix(cluster))
    const found = new Map<string, number>()
    for (let n = 0; n < partitions; n++) {
      for (const [, fields] of await redis.xrange(keys.partition(n), "-", "+", "COUNT", 1_000)) {
        const at = fields.indexOf("k")
        const key = at < 0 ? undefined : fields[at + 1]
        if (key !== undefined && !found.has(key)) found.set(key, n)
      }
    }
    return found
  })

// --- Silo processes --------------------------------------------------------------------------

const { start: startSilo, stop: stopSilo } = siloProcesses({ script: siloScript, args: [cluster], onLine: onSiloLine })

// --- The client ------------------------------------------------------------------------------

// Publish and subscribe from a program that hosts no actors; the silos deliver.
const ClientLive = Streams.layerClient({
  provider: RedisStreamProvider.make({ url, keyPrefix: streamsPrefix(cluster), partitions })
}).pipe(
  Layer.provideMerge(ClusterClient.layer()),
  Layer.provide(RedisMembership.layer({ url, cluster }))
)

/** The silo that ran the last turn of `who` (a device's or the fleet's) at or before `until`. */
const hostOf = (who: "device" | "fleet", sensor: string | undefined, until: number) =>
  handled.findLast((h) => h.who === who && (sensor === undefined || h.sensor === sensor) && h.at <= until)?.silo ?? "-"

interface Outcome {
  readonly killedAt: number
  readonly victim: string
  readonly lastPublishAt: number
  readonly delivered: boolean
  readonly partitionOf: ReadonlyMap<string, number>
  /** The silo owning each partition (its agent's place on the ring), before and after the kill. */
  readonly ownersBefore: ReadonlyArray<string>
  readonly ownersAfter: ReadonlyArray<string>
}

/** Subscribes the fleet, publishes, kills the silo owning the most partitions, publishes on, waits for delivery. */
const demo = (silos: ReadonlyArray<SiloProcess>, redis: Redis) =>
  Effect.gen(function*() {
    const { ownerOf } = yield* Cluster
    const labelOf = (id: string | undefined) => silos.find((silo) => silo.id === id)?.label ?? "-"
    const partitionOwners = Effect.forEach(Array.from({ length: partitions }, (_, n) => n), (n) =>
      Effect.map(ownerOf({ type: "$streams", id: String(n) }), labelOf))

    // Durable: stored with the stream's partition, it survives the fleet's deactivation and
    // any silo's death. Subscribed before the first reading, so the fleet gets them all.
    for (const sensor of sensors) {
      yield* Streams.subscribe(Readings, sensor, { actor: Fleet, id: fleetId, message: "Tally" })
    }
    yield* Console.log(`subscribed Fleet/${fleetId} to the streams of the ${sensors.length} sensors (durable, from the client)`)
    const ownersBefore = yield* partitionOwners
    const partitionsOf = (label: string) => ownersBefore.flatMap((owner, n) => owner === label ? [n] : [])
    yield* Console.log(
      `stream partitions per silo: ${silos.map((s) => `${s.label} ${partitionsOf(s.label).length}`).join(", ")} ` +
        `(${partitions} in all, agents $streams/0..${partitions - 1})`
    )
    yield* Console.log(
      `publishing a reading per sensor every ${tickMillis} ms for ${seconds(ticks * tickMillis)}: ` +
        `${sensors.length * ticks} readings, ${sensors.length * 1000 / tickMillis} a second`
    )

    const publishTick = (tick: number) =>
      Effect.forEach(sensors, (sensor, i) => {
        const reading: Reading = { sensor, seq: tick, celsius: celsiusOf(i, tick), at: Date.now() }
        return Effect.map(Streams.publish(Readings, sensor, reading), () => {
          const p = published.get(sensor)!
          p.count++
          p.min = Math.min(p.min, reading.celsius)
          p.max = Math.max(p.max, reading.celsius)
          p.last = reading.celsius
          publishedAt.set(`${sensor} ${tick}`, reading.at)
        })
      }, { concurrency: "unbounded", discard: true })

    let killedAt = 0
    let victim: SiloProcess | undefined
    let partitionOf: ReadonlyMap<string, number> = new Map()
    const start = Date.now()
    for (let tick = 1; tick <= ticks; tick++) {
      const wait = start + (tick - 1) * tickMillis - Date.now()
      if (wait > 0) yield* Effect.sleep(wait)
      yield* publishTick(tick)
      if (tick !== killAfterTick) continue

      partitionOf = yield* partitionsOfSensors(redis)
      victim = silos.toSorted((a, b) => partitionsOf(b.label).length - partitionsOf(a.label).length)[0]!
      const owned = partitionsOf(victim.label)
      const streams = sensors.filter((s) => owned.includes(partitionOf.get(s)!))
      const devices = sensors.filter((s) => hostOf("device", s, Date.now()) === victim!.label)
      const fleetHere = hostOf("fleet", undefined, Date.now()) === victim.label
      killedAt = Date.now()
      victim.child.kill("SIGKILL")
      yield* Console.log(
        `${clock(killedAt)} kill -9 silo ${victim.label} (pid ${victim.child.pid}) after ${publishedTotal()} readings: ` +
          `owner of partitions ${owned.join(", ") || "none"} (the streams of ${streams.length} sensors), ` +
          `host of ${devices.length} devices${fleetHere ? " and of the fleet" : ""}; publishing goes on`
      )
    }
    const lastPublishAt = Date.now()
    yield* Console.log(
      `${clock(lastPublishAt)} published ${publishedTotal()} readings in ${seconds(lastPublishAt - start)}; ` +
        `waiting for each to reach its device and the fleet (at most ${deliveryBoundSeconds} s)`
    )
    const delivered = yield* waitFor(deliveryBoundSeconds, allDelivered)
    const ownersAfter = yield* partitionOwners
    if (delivered) {
      const moved = partitionsOf(victim!.label).map((n) => `${n} → ${ownersAfter[n]}`)
      yield* Console.log(
        `${clock(Date.now())} all delivered, ${seconds(Date.now() - lastPublishAt)} after the last publish; ` +
          `silo ${victim!.label}'s partitions now on the survivors: ${moved.join(", ")}`
      )
    } else {
      yield* Console.log(`not all delivered ${deliveryBoundSeconds} s after the last publish`)
    }
    return { killedAt, victim: victim!.label, lastPublishAt, delivered, partitionOf, ownersBefore, ownersAfter } satisfies Outcome
  })

// --- The results -----------------------------------------------------------------------------

interface Results {
  readonly devices: ReadonlyMap<string, DeviceStats | undefined>
  readonly fleet: FleetTotals | undefined
}

/** The devices' statistics and the fleet's totals, as saved in Redis (read after the silos stopped). */
const readResults = Effect.gen(function*() {
  const store = yield* RedisStore.make("check", { url, keyPrefix: storePrefix(cluster) })
  const read = <S extends Schema.Top & { readonly DecodingServices: never }>(schema: S, type: string, id: string, record: string) =>
    Effect.map(store.state.read({ type, id, record }), (stored) =>
      stored === undefined ? undefined : Schema.decodeUnknownSync(Schema.fromJsonString(Schema.toCodecJson(schema)))(stored.data) as S["Type"])
  const devices = new Map<string, DeviceStats | undefined>()
  for (const sensor of sensors) devices.set(sensor, yield* read(DeviceStats, "Device", sensor, "stats"))
  const fleet = yield* read(FleetTotals, "Fleet", fleetId, "totals")
  return { devices, fleet } satisfies Results
})

const fixed = (value: number | null | undefined) => (value === null || value === undefined ? "-" : value.toFixed(1)).padStart(6)
const pad = (value: string | number, width: number) => String(value).padStart(width)

/** The table, the fleet, the checks; whether they all passed. */
const report = ({ delivered, killedAt, lastPublishAt, ownersAfter, ownersBefore, partitionOf, victim }: Outcome, results: Results) =>
  Effect.gen(function*() {
    const turnsOf = (who: "device" | "fleet", sensor?: string) =>
      handled.filter((h) => h.who === who && (sensor === undefined || h.sensor === sensor))
    yield* Console.log("per sensor: its stream's partition with the partition's owner, and the silo its device ran on, before → after")
    yield* Console.log("the kill; readings published, counted by the device (in Redis), its turns, redeliveries it skipped, the fleet's count")
    yield* Console.log("sensor     partition  device on  published  counted  turns  skipped  min °C  max °C  last °C  fleet")
    let devicesRight = 0
    let fleetRight = 0
    /** What went wrong per sensor, shown when a check fails. */
    const problems: Array<string> = []
    for (const sensor of sensors) {
      const p = published.get(sensor)!
      const stats = results.devices.get(sensor)
      const tally = results.fleet !== undefined && Object.hasOwn(results.fleet.bySensor, sensor) ? results.fleet.bySensor[sensor] : undefined
      const turns = turnsOf("device", sensor)
      const n = partitionOf.get(sensor)
      const part = n === undefined ? "-" : `${n} ${ownersBefore[n]} → ${ownersAfter[n]}`
      const deviceRight = stats !== undefined && stats.count === p.count && stats.lastSeq === p.count &&
        stats.outOfOrder === 0 && stats.min === p.min && stats.max === p.max && stats.last === p.last
      const fleetRightHere = tally !== undefined && tally.count === p.count && tally.lastSeq === p.count && tally.outOfOrder === 0
      if (deviceRight) devicesRight++
      if (fleetRightHere) fleetRight++
      if (!deviceRight || !fleetRightHere) {
        const never = (who: "device" | "fleet") => p.count - (covered.get(`${who} ${sensor}`)?.size ?? 0)
        problems.push(
          `${sensor} (partition ${n ?? "?"}): device counted ${stats?.count ?? 0}/${p.count} (${stats?.outOfOrder ?? 0} out of order, ` +
            `${never("device")} never delivered), fleet ${tally?.count ?? 0}/${p.count} (${tally?.outOfOrder ?? 0} out of order, ` +
            `${never("fleet")} never delivered)`
        )
      }
      yield* Console.log(
        `${sensor}  ${part.padEnd(9)}  ${hostOf("device", sensor, killedAt)} → ${hostOf("device", sensor, Infinity)}  ` +
          `${pad(p.count, 9)}  ${pad(stats?.count ?? "-", 7)}  ${pad(turns.length, 5)}  ${pad(turns.filter((t) => t.duplicate).length, 7)}  ` +
          `${fixed(stats?.min)}  ${fixed(stats?.max)}  ${pad(fixed(stats?.last), 7)}  ${pad(tally?.count ?? "-", 5)}`
      )
    }

    const total = publishedTotal()
    const fleetTurns = turnsOf("fleet")
    const deviceSkipped = turnsOf("device").filter((t) => t.duplicate).length
    const fleetSkipped = fleetTurns.filter((t) => t.duplicate).length
    const fleet = results.fleet
    const allMin = Math.min(...[...published.values()].map((p) => p.min))
    const allMax = Math.max(...[...published.values()].map((p) => p.max))
    yield* Console.log(
      `fleet (Fleet/${fleetId} on ${hostOf("fleet", undefined, killedAt)} → ${hostOf("fleet", undefined, Infinity)}): ` +
        `${fleet?.readings ?? 0} readings counted in ${fleetTurns.length} turns, ${fleetSkipped} redelivered and skipped; ` +
        `min ${fixed(fleet?.min).trim()} °C, max ${fixed(fleet?.max).trim()} °C`
    )

    // How late readings came: the ones published while the victim's partitions had no agent.
    let latest = { delay: 0, what: "-" }
    for (const h of handled) {
      const at = publishedAt.get(`${h.sensor} ${h.seq}`)
      if (at !== undefined && !h.duplicate && h.at - at > latest.delay) {
        latest = { delay: h.at - at, what: `${h.sensor} #${h.seq} to its ${h.who === "device" ? "device" : "fleet"}` }
      }
    }
    yield* Console.log(
      `longest from publish to count: ${seconds(latest.delay)} (${latest.what}); silo ${victim} was killed at ` +
        `${clock(killedAt)}, the last reading published at ${clock(lastPublishAt)}`
    )

    const checks: Array<readonly [ok: boolean, what: string]> = [
      [delivered, `every reading reached its device and the fleet within ${deliveryBoundSeconds} s of the last publish`],
      [
        devicesRight === sensors.length,
        `devices in Redis: ${devicesRight}/${sensors.length} counted each of their readings once, in order, with the right min/max/last`
      ],
      [
        fleet !== undefined && fleet.readings === total && fleet.min === allMin && fleet.max === allMax,
        `fleet total ${fleet?.readings ?? 0} == ${total} published (min and max right)`
      ],
      [fleetRight === sensors.length, `fleet per sensor: ${fleetRight}/${sensors.length} streams counted once each, in order`]
    ]
    for (const [ok, what] of checks) yield* Console.log(`  ${ok ? "ok" : "FAILED"}  ${what}`)
    const passed = checks.every(([ok]) => ok)
    if (!passed) {
      for (const problem of problems) yield* Console.log(`    ${problem}`)
      if (problems.length > 0) {
        // A reading that comes after a later one of its stream looks like a redelivery (its
        // token is not after the last counted): it is skipped, so out of order means lost.
        yield* Console.log("    (per stream, events must arrive in order: one that comes after a later one is skipped as a redelivery)")
      }
    }
    yield* Console.log(
      passed
        ? `all checks passed: ${total} readings published, none lost, none counted twice ` +
          `(${deviceSkipped + fleetSkipped} redeliveries recognised by their token and skipped: ${deviceSkipped} by devices, ${fleetSkipped} by the fleet)`
        : "some checks FAILED"
    )
    return passed
  })

// --- The run ---------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const redis = yield* connect(url)
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(deleteRunKeys(redis), (n) => Console.log(`deleted the run's ${n} Redis keys`)))
  yield* Console.log(`cluster "${cluster}" on ${url}: starting 3 silos`)

  const started = performance.now()
  const silos = yield* Effect.forEach(["A", "B", "C"], startSilo, { concurrency: "unbounded" })
  yield* Console.log(`3 silo processes ready in ${Math.round(performance.now() - started)} ms`)

  const outcome = yield* demo(silos, redis).pipe(Effect.provide(ClientLive))

  const alive = silos.filter(isRunning)
  // One after the other: a stopping silo hands its activations to one that is not stopping.
  const ended = yield* Effect.forEach(alive, stopSilo)
  yield* Console.log(`stopped ${alive.map((silo, i) => `${silo.label} (${ended[i]})`).join(", ")} with SIGTERM, one after the other`)
  const results = yield* Effect.scoped(readResults)
  const passed = yield* report(outcome, results)
  if (!passed) process.exitCode = 1
}).pipe(
  Effect.scoped, // silos stop (if still running) before the keys are deleted
  Effect.catchTag("RedisUnreachable", (error) => explainUnreachable(url, error.reason))
)

NodeRuntime.runMain(main)

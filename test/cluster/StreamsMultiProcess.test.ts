/**
 * Streams on a cluster of real processes: three silos (`process/streamsSiloMain.ts`), each
 * its own Node process on 127.0.0.1, with Redis membership and a `RedisStreamProvider`
 * (same key prefix, unique to the run); this test process is a `ClusterClient` with
 * `Streams.layerClient` on the same provider that publishes 100,000 events over 100 streams
 * ("readings", `dev-0`..`dev-99`, each event carrying its sequence number in its stream).
 * An implicit subscription makes every event a turn of the actor `Device/<key>`, which logs
 * the delivery to a Redis list of its stream before the turn returns
 * (`process/streamsFixtures.ts`), so the test sees every delivery that returned, a killed
 * silo's included.
 *
 * Once 40 % of the events are published, with deliveries under way, the silo owning the
 * most partitions meets a fault (see `Fault`): killed (SIGKILL; 100,000 events) or stopped
 * gracefully (SIGTERM, a drain; 30,000), or paused (SIGSTOP until declared dead, then
 * SIGCONT; 30,000). Publishing goes on across it. Then, once every
 * event is published and delivered and the partitions have nothing pending:
 * - at least once: every event `publish` acknowledged is in its stream's log;
 * - in order, nothing else: each stream's log, de-duplicated by token (the first occurrence
 *   kept), is exactly the acknowledged events in publish order (sequence numbers strictly
 *   increasing, no gap, no extra); an event whose publish failed (and was tried again) may
 *   have been appended by the failed attempt too, and that copy alone is allowed;
 * - the figures (console.log): duplicates, the time from the fault to the first delivery of
 *   a partition the silo owned by its next owner, the whole run's duration.
 *
 * Flow control: each producer (one fiber per stream) publishes while fewer than `window`
 * of its stream's acknowledged events are not yet in the log, so the kill comes with a
 * backlog (deliveries in flight and events read but not acknowledged) rather than after a
 * burst, and the streams of the dead silo's partitions stall while the others keep going.
 *
 * Timings (real time, so every wait is a bounded poll of a condition): membership with the
 * production defaults (`timingsOf("default")` of `test/chaos/timings.ts`: heartbeat 500 ms,
 * dead after 3 s, full read every 500 ms), as in `RemindersMultiProcess.test.ts` and for the
 * same reason: with the short timings of the other multi-process tests (dead after 1.2 s,
 * each heartbeat timing out after 200 ms) a silo under this load (thousands of turns and
 * Redis commands a second per process, four processes and Redis on 2 cores) fenced itself
 * in about half the runs here (4 of 8), before or after the kill; the other runs passed.
 * A partition of the dead silo is delivered again once a survivor declares
 * the silo dead (`dead + refresh` after the kill at most) and the survivor's keeper touches
 * the agent (at once on a ring change). An unreachable Redis fails the test (never skips).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Cause, Context, Effect, Fiber, Latch, Layer } from "effect"
import type { Redis } from "ioredis"
import { type Silo, Streams } from "../../src/index.ts"
import { Cluster, ClusterClient } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { agentType } from "../../src/Streams/internal/PartitionAgent.ts"
import { partitionOf } from "../../src/Streams/internal/StreamsRuntime.ts"
import * as RedisStreamProvider from "../../src/Streams/RedisStreamProvider.ts"
import { timingMillisOf, timingsOf, type TimingsName } from "../chaos/timings.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { pollUntil, signalAndWait, type SiloChild, siloLogs, spawnSiloChild, waitFor as poll } from "../support/processes.ts"
import { cleanupRun, newRunId } from "../support/redisKeys.ts"
import { decodeDelivery, type Delivery, logKey, Readings, streamsPrefix } from "./process/streamsFixtures.ts"

const siloMain = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "process", "streamsSiloMain.ts")

const timingsName: TimingsName = "default"
const { dead, refresh } = timingMillisOf(timingsName)
/** Scheduling noise on top of a documented time: four processes and Redis on a loaded 2-core machine. */
const slack = 1_000
const partitions = 8
const streamCount = 100
/** The kill comes once this share of the events is published. */
const killAtShare = 0.4
/** A producer waits while this many of its stream's acknowledged events are not yet logged. */
const window = 100
/** The bound on each wait after the kill: every event published, then every one delivered and acknowledged. */
const drainBound = 60_000
const clusterName = "str"

const run = newRunId()
const runPrefix = "quark-str-mp-"

const streamKeys: ReadonlyArray<string> = Array.from({ length: streamCount }, (_, i) => `dev-${i}`)

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

interface SiloProcess extends SiloChild {
  readonly index: number
  /** It printed `streams`: its partition agents and keeper run. */
  streams: boolean
  /** Its answers to `lag`. */
  readonly lags: Array<string>
  /** The test killed it on purpose. */
  expectedExit: boolean
}

const spawnSilo = (index: number, keyPrefix: string, logDirectory: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawnSiloChild<SiloProcess>(
        siloMain,
        [keyPrefix, clusterName, timingsName, String(partitions)],
        { index, streams: false, lags: [], expectedExit: false },
        {
          env: { QUARK_REDIS_URL: redisUrl },
          stderrFile: Path.join(logDirectory, `silo-${index}.stderr.log`),
          onLine: (line, silo) => {
            if (line === "streams") silo.streams = true
            else if (line.startsWith("lag ")) silo.lags.push(line.slice(4))
          }
        }
      )
    ),
    (silo) => signal(silo, "SIGKILL")
  )

/** Sends `sig` unless it has exited; waits for the exit. */
const signal = (silo: SiloProcess, sig: NodeJS.Signals) =>
  Effect.suspend(() => {
    silo.expectedExit = true
    return signalAndWait(silo.child, sig)
  })

const describeSilos = (silos: ReadonlyArray<SiloProcess>) => siloLogs(silos, (s) => `silo #${s.index}`)

/**
 * Polls `condition` every `every` ms; dies past `maxMillis` or if a silo exits unexpectedly,
 * with the silos' logs and `state` (what the test knows of the streams).
 */
const waitFor = (
  silos: ReadonlyArray<SiloProcess>,
  what: string,
  maxMillis: number,
  condition: Effect.Effect<boolean>,
  options: { readonly every?: number; readonly state?: () => string } = {}
) =>
  poll(what, maxMillis, condition, {
    every: options.every ?? 100,
    abort: () => {
      const unexpected = silos.find((s) => s.exit !== undefined && !s.expectedExit)
      return unexpected === undefined ? undefined : `silo #${unexpected.index} exited`
    },
    describe: () => `${options.state?.() ?? ""}\n${describeSilos(silos)}`
  })

const sameSet = (a: ReadonlyArray<string> | undefined, b: ReadonlyArray<string>) =>
  a !== undefined && a.length === b.length && b.every((id) => a.includes(id))

/**
 * Starts three silos, waits until each of them sees all of them, then starts their streams
 * (`go`): every partition agent activates on the owner the final ring names.
 */
const startSilos = (keyPrefix: string, logDirectory: string) =>
  Effect.gen(function*() {
    const silos: Array<SiloProcess> = []
    for (let i = 0; i < 3; i++) silos.push(yield* spawnSilo(i, keyPrefix, logDirectory))
    // Startup: Node, module loading and the Redis connections of three processes at once.
    const startupMs = yield* waitFor(silos, "the silos start", 20_000, Effect.sync(() => silos.every((s) => s.id !== undefined)))
    const ids = silos.map((s) => s.id!)
    yield* waitFor(silos, "every silo sees the others", dead + refresh + slack, Effect.sync(() => silos.every((s) => sameSet(s.members, ids))))
    for (const s of silos) s.child.stdin!.write("go\n")
    yield* waitFor(silos, "the silos start their streams", 10_000, Effect.sync(() => silos.every((s) => s.streams)))
    return { silos, ids, startupMs }
  })

// ---------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------

const buildClient = (keyPrefix: string) =>
  Effect.gen(function*() {
    const context: Context.Context<Silo.Silo | Cluster | Streams.Streams> = yield* Layer.build(
      Streams.layerClient({ provider: RedisStreamProvider.make({ url: redisUrl, keyPrefix: streamsPrefix(keyPrefix), partitions }) }).pipe(
        Layer.provideMerge(ClusterClient.layer({ requestTimeout: "5 seconds" })),
        Layer.provide(RedisMembership.layer({ url: redisUrl, keyPrefix, cluster: clusterName, ...timingsOf(timingsName) }))
      )
    ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)), Effect.orDie)
    return {
      cluster: Context.get(context, Cluster),
      run: <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster | Streams.Streams>) => Effect.provideContext(effect, context)
    }
  })

// ---------------------------------------------------------------------------------------
// One stream: what was published, what was delivered
// ---------------------------------------------------------------------------------------

interface StreamLedger {
  readonly key: string
  readonly partition: number
  /** The events `publish` acknowledged, in publish order. */
  readonly acked: Array<{ readonly seq: number; readonly token: string }>
  /** The sequence numbers a publish of which failed (it may have appended the event anyway). */
  readonly ambiguous: Set<number>
  /** Every delivery logged, in log order. */
  readonly log: Array<Delivery>
  /** The distinct tokens logged. */
  readonly tokens: Set<string>
  /** Open while the producer may publish (see `window`). */
  readonly gate: Latch.Latch
}

/** The backlog of a stream: acknowledged events not logged yet (a failed attempt's copy may make it negative). */
const backlogOf = (s: StreamLedger) => s.acked.length - s.tokens.size

/**
 * Reads what the logs gained since the last read (one pipelined `LRANGE` per stream, from
 * the length read so far) and opens or closes each producer's gate. Reads never overlap
 * (they are chained on one promise, whatever becomes of the fiber that asked): two at once
 * would both append the same lines, and the next would start past lines never read.
 */
const logReader = (redis: Redis, keyPrefix: string, ledgers: ReadonlyArray<StreamLedger>) => {
  const readOnce = async () => {
    const pipeline = redis.pipeline()
    for (const s of ledgers) pipeline.lrange(logKey(keyPrefix, s.key), s.log.length, -1)
    const replies = (await pipeline.exec()) ?? []
    ledgers.forEach((s, i) => {
      const [error, lines] = replies[i]!
      if (error !== null) throw error
      for (const line of lines as Array<string>) {
        const delivery = decodeDelivery(line)
        s.log.push(delivery)
        s.tokens.add(delivery.token)
      }
      if (backlogOf(s) < window) s.gate.openUnsafe()
      else s.gate.closeUnsafe()
    })
  }
  let last: Promise<void> = Promise.resolve()
  return Effect.promise(() => (last = last.then(readOnce, readOnce)))
}

/** Pending entries (read, not acknowledged) of each partition's consumer group, and each group's consumers. */
const groupsOf = (redis: Redis, keyPrefix: string) =>
  Effect.promise(async () => {
    const keys = RedisStreamProvider.redisKeys(streamsPrefix(keyPrefix))
    const pipeline = redis.pipeline()
    for (let p = 0; p < partitions; p++) {
      pipeline.xpending(keys.partition(p), "quark")
      pipeline.call("XINFO", "CONSUMERS", keys.partition(p), "quark")
    }
    const replies = (await pipeline.exec()) ?? []
    const pending: Array<number> = []
    const consumers: Array<Array<string>> = []
    for (let p = 0; p < partitions; p++) {
      const [pendingError, summary] = replies[2 * p]!
      const [consumersError, list] = replies[2 * p + 1]!
      if (pendingError !== null) throw pendingError
      if (consumersError !== null) throw consumersError
      pending.push(Number((summary as Array<unknown>)[0]))
      consumers.push((list as Array<Array<unknown>>).map((fields) => String(fields[fields.indexOf("name") + 1])))
    }
    return { pending, consumers }
  })

/**
 * For a failure's message, what the silos and Redis say of the streams: each live silo's
 * lanes by partition (its answer to `lag`), each partition's consumer group and consumers,
 * and the provider's connections (named after their silo's pid).
 */
const diagnose = (redis: Redis, keyPrefix: string, silos: ReadonlyArray<SiloProcess>) =>
  Effect.gen(function*() {
    const live = silos.filter((s) => s.exit === undefined)
    const asked = live.map((s) => s.lags.length)
    for (const s of live) s.child.stdin!.write("lag\n")
    yield* pollUntil(3_000, Effect.sync(() => live.every((s, i) => s.exit !== undefined || s.lags.length > asked[i]!)), { every: 50 })
    const lines = live.map((s, i) => `silo #${s.index} (pid ${s.child.pid}) lanes: ${s.lags[asked[i]!] ?? "no answer"}`)
    const fromRedis = yield* Effect.promise(async () => {
      const keys = RedisStreamProvider.redisKeys(streamsPrefix(keyPrefix))
      const out: Array<string> = []
      for (let p = 0; p < partitions; p++) {
        const key = keys.partition(p)
        const describe = (reply: unknown) => JSON.stringify(reply)
        const groups = await redis.call("XINFO", "GROUPS", key).then(describe, String)
        const consumers = await redis.call("XINFO", "CONSUMERS", key, "quark").then(describe, String)
        out.push(`partition ${p}: length ${await redis.xlen(key)}; groups ${groups}; consumers ${consumers}`)
      }
      const fields = /^(?:name|age|idle|flags|cmd)=/
      const clients = (await redis.client("LIST") as string).split("\n").filter((l) => l.includes("name=quark-test-streams"))
        .map((l) => l.split(" ").filter((field) => fields.test(field)).join(" "))
      out.push(`provider connections:\n  ${clients.join("\n  ")}`)
      return out
    })
    return [...lines, ...fromRedis].join("\n")
  })

/** The death tombstones of the membership: silo id → when it was declared dead (Redis time, ms). */
const deaths = (redis: Redis, keyPrefix: string) =>
  Effect.map(
    Effect.promise(() => redis.zrange(RedisMembership.keys(keyPrefix, clusterName).gone, "0", "-1", "WITHSCORES")),
    (gone) => {
      const out = new Map<string, number>()
      for (let i = 0; i + 1 < gone.length; i += 2) {
        if (gone[i]!.startsWith("timeout:")) out.set(gone[i]!.slice("timeout:".length), Number(gone[i + 1]))
      }
      return out
    }
  )

/**
 * What is wrong with one stream's log, `[]` if nothing: an acknowledged event missing; once
 * de-duplicated by token (first occurrence kept), anything but the acknowledged events in
 * publish order (a copy appended by a failed publish attempt aside).
 */
const problemsOf = (s: StreamLedger): Array<string> => {
  const problems: Array<string> = []
  const missing = s.acked.filter((e) => !s.tokens.has(e.token))
  if (missing.length > 0) {
    problems.push(`${s.key}: ${missing.length} acknowledged events never delivered (seq ${missing.slice(0, 5).map((e) => e.seq).join(", ")}...)`)
  }
  const ackedTokens = new Set(s.acked.map((e) => e.token))
  const seen = new Set<string>()
  const firsts: Array<Delivery> = []
  for (const d of s.log) {
    if (seen.has(d.token)) continue
    seen.add(d.token)
    if (!ackedTokens.has(d.token) && s.ambiguous.has(d.seq)) continue
    firsts.push(d)
  }
  const length = Math.max(firsts.length, s.acked.length)
  for (let i = 0; i < length; i++) {
    const got = firsts[i]
    const want = s.acked[i]
    if (got?.token !== want?.token || got?.seq !== want?.seq) {
      problems.push(
        `${s.key}: delivery #${i} (de-duplicated) is ${got === undefined ? "missing" : `seq ${got.seq} (${got.token})`}, ` +
          `expected ${want === undefined ? "nothing" : `seq ${want.seq} (${want.token})`}; ` +
          `around it: ${firsts.slice(Math.max(0, i - 3), i + 3).map((d) => d.seq).join(", ")}`
      )
      break
    }
  }
  return problems
}

const quantile = (values: ReadonlyArray<number>, q: number): number => {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]!
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

/**
 * What happens to the silo owning the most partitions mid-stream: `kill` is SIGKILL;
 * `pause` is SIGSTOP until the others declare it dead, then SIGCONT (it comes back outside
 * its lease, and its agents must neither read nor deliver any more); `graceful` is SIGTERM
 * (a drain: its agents stop and acknowledge, the ring moves its partitions).
 */
type Fault = "kill" | "pause" | "graceful"

const runFault = (fault: Fault, perStream: number) =>
    Effect.gen(function*() {
      const total = streamCount * perStream
      const testStart = Date.now()
      const keyPrefix = `${runPrefix}${run}`
      const redis = yield* Effect.orDie(rawRedis)
      yield* cleanupRun(redis, runPrefix, keyPrefix)
      // The silos' logs: removed when the test passes, kept (and named) when it fails.
      const logDirectory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-streams-mp-"))
      const { ids, silos, startupMs } = yield* startSilos(keyPrefix, logDirectory)
      const client = yield* buildClient(keyPrefix)
      yield* waitFor(silos, "the client sees the three silos", dead + refresh + slack, Effect.map(client.cluster.members, (m) => sameSet(m, ids)))

      // The victim: the silo owning the most partitions (as the client's ring says; the silos agree).
      const owners = yield* Effect.forEach(
        Array.from({ length: partitions }, (_, p) => p),
        (p) => client.cluster.ownerOf({ type: agentType, id: String(p) })
      )
      const owned = ids.map((id) => owners.filter((owner) => owner === id).length)
      const victimIndex = owned.indexOf(Math.max(...owned))
      const victim = silos[victimIndex]!
      const victimId = ids[victimIndex]!
      const victimPartitions = new Set(owners.flatMap((owner, p) => (owner === victimId ? [p] : [])))

      const ledgers: ReadonlyArray<StreamLedger> = streamKeys.map((key) => ({
        key,
        partition: partitionOf(Readings.namespace, key, partitions),
        acked: [],
        ambiguous: new Set(),
        log: [],
        tokens: new Set(),
        gate: Latch.makeUnsafe(true)
      }))
      const onVictim = (s: StreamLedger) => victimPartitions.has(s.partition)
      const sum = (f: (s: StreamLedger) => number, which: (s: StreamLedger) => boolean = () => true) =>
        ledgers.reduce((n, s) => (which(s) ? n + f(s) : n), 0)
      const acked = () => sum((s) => s.acked.length)
      const logged = () => sum((s) => s.log.length)
      const distinct = () => sum((s) => s.tokens.size)
      let pendingSeen: ReadonlyArray<number> = []
      /** What the test knows of the streams, for a failure's message. */
      const state = () =>
        JSON.stringify({
          acked: acked(),
          logged: logged(),
          distinct: distinct(),
          victim: victimId,
          victimPartitions: [...victimPartitions],
          pending: pendingSeen,
          behind: ledgers.filter((s) => s.acked.some((e) => !s.tokens.has(e.token))).map((s) => ({
            key: s.key,
            partition: s.partition,
            acked: s.acked.length,
            logged: s.tokens.size,
            firstMissing: s.acked.find((e) => !s.tokens.has(e.token)),
            tail: s.log.slice(-12).map((d) => `${d.seq}@${d.token}@${d.at}`)
          })).slice(0, 10)
        }) + `\nlogs in ${logDirectory}`

      /** A wait that fails adds `diagnose` to its message. */
      const diagnosed = <A>(wait: Effect.Effect<A>) =>
        Effect.catchCause(wait, (cause) =>
          Effect.flatMap(diagnose(redis, keyPrefix, silos), (diagnosis) =>
            Effect.die(new Error(`${Cause.pretty(cause)}\n--- diagnosis ---\n${diagnosis}`))))

      // The log reader: it also paces the producers (their gates).
      const read = logReader(redis, keyPrefix, ledgers)
      const reader = yield* Effect.forkChild(Effect.forever(Effect.andThen(read, Effect.sleep("50 millis"))))

      // The producers: one per stream, its events in order; a failed publish is tried again.
      const publishFailures: Array<string> = []
      const produce = (s: StreamLedger) =>
        Effect.gen(function*() {
          for (let seq = 0; seq < perStream; seq++) {
            yield* s.gate.await
            for (let attempt = 1;; attempt++) {
              const result = yield* Effect.result(client.run(Streams.publish(Readings, s.key, { seq })))
              if (result._tag === "Success") {
                s.acked.push({ seq, token: result.success })
                break
              }
              s.ambiguous.add(seq)
              publishFailures.push(`${s.key}#${seq} attempt ${attempt}: ${result.failure.message}`)
              if (attempt >= 20) return yield* Effect.die(new Error(`publishing ${s.key}#${seq}: ${result.failure.message}`))
              yield* Effect.sleep("100 millis")
            }
          }
        })
      const publishStart = Date.now()
      const producers = yield* Effect.forkChild(Effect.forEach(ledgers, produce, { concurrency: "unbounded", discard: true }))

      // The kill: once a third to a half of the events are published, with a backlog on the
      // victim's partitions (deliveries in flight, events read and not acknowledged).
      yield* diagnosed(waitFor(
        silos,
        `${killAtShare * 100}% of the events published, deliveries under way`,
        45_000,
        Effect.sync(() => acked() >= killAtShare * total && distinct() > 0 && sum(backlogOf, onVictim) > 0),
        { state }
      ))
      const before = yield* groupsOf(redis, keyPrefix)
      for (const p of victimPartitions) {
        assert.include(before.consumers[p]!, victimId, `partition ${p} was consumed by the victim ${victimId}\n${describeSilos(silos)}`)
      }
      const atKill = { acked: acked(), distinct: distinct(), victimBacklog: sum(backlogOf, onVictim), pending: before.pending }
      let killedAt: number
      if (fault === "kill") {
        yield* signal(victim, "SIGKILL")
        killedAt = victim.exit!.at
        assert.strictEqual(victim.exit?.signal, "SIGKILL")
      } else if (fault === "pause") {
        victim.expectedExit = true // it may fence itself and exit once it runs again
        killedAt = Date.now()
        victim.child.kill("SIGSTOP")
        yield* diagnosed(waitFor(silos, "the paused silo is declared dead", dead + refresh + 3 * slack, Effect.map(deaths(redis, keyPrefix), (gone) => gone.has(victimId)), { state }))
        // Let the survivors claim its partitions and deliver a while before it runs again.
        yield* Effect.sleep("1 second")
        victim.child.kill("SIGCONT")
      } else {
        killedAt = Date.now()
        yield* signal(victim, "SIGTERM")
        assert.strictEqual(victim.exit?.code, 0, `the drained silo exits cleanly\n${describeSilos(silos)}`)
      }

      // Publishing goes on across the kill; then every event is delivered and acknowledged.
      yield* diagnosed(waitFor(silos, "every event published", drainBound, Effect.sync(() => acked() >= total || producers.pollUnsafe() !== undefined), {
        state
      }))
      const producersExit = yield* Fiber.await(producers)
      if (producersExit._tag === "Failure") return yield* Effect.die(new Error(`the producers failed: ${Cause.pretty(producersExit.cause)}`))
      const publishedAt = Date.now()
      let lastLogged = -1
      yield* diagnosed(waitFor(
        silos,
        "every acknowledged event logged, nothing pending, the logs no longer growing",
        drainBound,
        Effect.gen(function*() {
          yield* read
          const { pending } = yield* groupsOf(redis, keyPrefix)
          pendingSeen = pending
          const still = logged() === lastLogged
          lastLogged = logged()
          return still && pending.every((n) => n === 0) && ledgers.every((s) => s.acked.every((e) => s.tokens.has(e.token)))
        }),
        { every: 250, state }
      ))
      yield* Fiber.interrupt(reader)
      const endedAt = Date.now()
      const after = yield* groupsOf(redis, keyPrefix)
      const diedAt = (yield* deaths(redis, keyPrefix)).get(victimId)

      // --- Checks and figures -----------------------------------------------------------
      const problems = ledgers.flatMap(problemsOf)
      const duplicates = logged() - distinct()
      const duplicatesOnVictim = sum((s) => s.log.length - s.tokens.size, onVictim)
      const victimDeliveries = ledgers.filter(onVictim).flatMap((s) => s.log)
      // The dead silo's agents stop with it; a turn they had sent may still finish on a
      // survivor just after the kill. Their next owner starts once the death is declared.
      const afterKill = victimDeliveries.filter((d) => d.at > killedAt).map((d) => d.at)
      const afterDeath = diedAt === undefined ? [] : victimDeliveries.filter((d) => d.at >= diedAt).map((d) => d.at)
      const firstAfterDeath = afterDeath.length === 0 ? undefined : Math.min(...afterDeath)
      const lastBeforeDeath = diedAt === undefined ? [] : afterKill.filter((at) => at < diedAt)
      // The time a victim stream went without a delivery over the kill.
      const stalls = ledgers.filter(onVictim).map((s) => {
        const before = s.log.filter((d) => d.at <= killedAt).at(-1)?.at ?? killedAt
        const next = s.log.find((d) => diedAt !== undefined && d.at >= diedAt)?.at
        return next === undefined ? NaN : next - before
      }).filter((n) => !Number.isNaN(n))

      console.log(JSON.stringify({
        [`streams_${fault}`]: {
          events: total,
          streams: streamCount,
          partitions,
          window,
          startupMs,
          victimPartitions: [...victimPartitions],
          partitionsPerSilo: owned,
          streamsOnVictim: ledgers.filter(onVictim).length,
          atKill: { ...atKill, msSincePublishStart: killedAt - publishStart },
          declaredDeadAfterKillMs: diedAt === undefined ? null : diedAt - killedAt,
          recoveryMs: firstAfterDeath === undefined ? null : firstAfterDeath - killedAt,
          turnsFinishedAfterKillBeforeDeath: lastBeforeDeath.length,
          victimStreamStallMs: { median: quantile(stalls, 0.5), max: Math.max(...stalls) },
          duplicates,
          duplicatesOnVictimPartitions: duplicatesOnVictim,
          deliveries: logged(),
          publishFailures: publishFailures.length,
          publishMs: publishedAt - publishStart,
          drainAfterPublishMs: endedAt - publishedAt,
          throughputPerSec: Math.round((distinct() * 1000) / (endedAt - publishStart)),
          consumersAfter: after.consumers,
          totalMs: endedAt - testStart
        }
      }))
      if (publishFailures.length > 0) console.log(`publish failures (tried again):\n${publishFailures.slice(0, 20).join("\n")}`)

      assert.strictEqual(acked(), total, "every event was published")
      assert.deepStrictEqual(
        problems.slice(0, 20),
        [],
        `every acknowledged event delivered; de-duplicated, each log is exactly the acknowledged events in order (logs in ${logDirectory})`
      )
      if (fault === "graceful") {
        assert.isUndefined(diedAt, "a drained silo leaves; nobody declares it dead")
        assert.isTrue(victimDeliveries.some((d) => d.at > killedAt), "a survivor delivered the drained silo's partitions")
      } else {
        assert.isDefined(diedAt, "the silo was declared dead (timeout)")
        assert.isDefined(firstAfterDeath, "a survivor delivered the dead silo's partitions")
      }
      for (const p of victimPartitions) {
        assert.isTrue(after.consumers[p]!.some((c) => c !== victimId), `partition ${p} was taken over by a survivor`)
      }
      Fs.rmSync(logDirectory, { recursive: true, force: true })
    }).pipe(Effect.scoped)

describe("streams on a multi-process cluster", () => {
  it.live("kill -9 of the silo owning the most partitions mid-stream (100,000 events): every acknowledged event delivered, in order, duplicates only", () =>
    runFault("kill", 1_000), 180_000)

  // Before the fence (see `RedisStreamProvider`, "Consuming"), about one run in six failed
  // here: a read the pause delayed past a survivor's claim took entries that then stayed
  // pending under the paused silo's consumer.
  it.live("SIGSTOP of the silo owning the most partitions until it is declared dead, then SIGCONT (30,000 events): every acknowledged event delivered, in order, duplicates only", () =>
    runFault("pause", 300), 180_000)

  it.live("a graceful stop (SIGTERM) of the silo owning the most partitions: every acknowledged event delivered, in order, duplicates only", () =>
    runFault("graceful", 300), 180_000)
})

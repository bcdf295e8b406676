/**
 * Stream benchmarks (src/Streams), each with a baseline in the same process. Every round is
 * a fresh silo with a fresh provider (memory, or Redis under a key prefix of the round's own,
 * deleted after it), set up before the clock starts: the partition agents active, the
 * subscribers activated and, for the fan-out, subscribed. The clock runs from the first
 * publish to the start of the last handler turn.
 *
 * - `stream.publish.memory`: 100 streams, one producer fiber each calling `Streams.publish`
 *   event by event, delivered to one implicit subscriber per stream (the actor the stream's
 *   key names), in one process, memory provider (8 partitions). `opsPerSec` is events
 *   published and delivered per second; p50/p99/p99.9 the latency (µs) from just before
 *   `publish` to the start of the handler (every 8th event of each stream).
 * - `stream.publish.memory.baseline-tell`: the same events from the same 100 producers as
 *   `ref.tell.Record(event)` to the same 100 actors: what a delivery costs without streams.
 * - `stream.publish.redis`: `stream.publish.memory` through `RedisStreamProvider` on the
 *   real Redis (`QUARK_REDIS_URL`, default `redis://127.0.0.1:6379`). Each producer waits
 *   for its `publish` (Redis's answer), so at most 100 appends are under way at once.
 * - `stream.publish.redis.baseline-xadd-xreadgroup`: the same events with ioredis and no
 *   actors: `XADD` (fields `n`, `k`, `d` as the provider writes them, auto-pipelined on one
 *   connection) to the same 8 partition streams, each read by a consumer of its own
 *   (`XREADGROUP … COUNT 512 BLOCK 1000` on a connection of its own, then `XACK`).
 * - `stream.fanout`: one stream, 1,000 actors each subscribed with `Streams.subscribe`
 *   (explicit, durable), one producer, memory provider. `opsPerSec` is deliveries per
 *   second (events × 1,000), latency per delivery (every 8th).
 * - `stream.fanout.baseline-tell`: for each event, 1,000 tells (one to each actor).
 *
 * Extras: `cpuUsPerOp`, the process's CPU time (all threads; not Redis's) per delivery
 * while the clock runs, median over rounds (steadier than the rates on a shared machine),
 * and for the two publish benchmarks `goal`, whether the median rate meets the target.
 *
 * **In flight.** A producer pauses while `inFlight` deliveries are published and not yet
 * handled, as a producer pacing itself on its consumers would, and goes on when half of them
 * are. Without that, producers run ahead until the provider's backlog stops them (100,000
 * entries a partition in memory), and the latency measured would be the time to drain that
 * backlog. Even so, latency at full speed is mostly queueing: about `inFlight / rate`. The
 * baselines pace themselves the same way.
 *
 * **Providers** are opened before the silo and closed after it, as an application owning
 * its provider would. (Given to `Streams.layer` as an effect, a Redis provider's connection
 * was closed before the partition agents stopped, so their last acknowledgements failed and
 * the silo's shutdown ran into its timeout.)
 *
 * Each round checks that every subscriber got exactly its events, in stream order. A round
 * not finished by its deadline fails the run, saying how far it got (and, for streams, what
 * the lanes hold); so does a silo that does not close.
 */
import { Effect, Exit, Fiber, Layer, ManagedRuntime, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import { Redis } from "ioredis"
import { Actor, ActorContext, MemoryStreamProvider, Silo, StreamContract, Streams } from "../src/index.ts"
import { Agent } from "../src/Streams/internal/PartitionAgent.ts"
import { partitionOf } from "../src/Streams/internal/StreamsRuntime.ts"
import * as RedisStreamProvider from "../src/Streams/RedisStreamProvider.ts"
import type { StreamProvider, StreamProviderError } from "../src/Streams/StreamProvider.ts"
import { nowNs, type RoundResult, type Variant } from "./Harness.ts"

const Event = Schema.Struct({ seq: Schema.Number })
const Events = StreamContract.make("bench-events", Event)
const Record = Rpc.make("Record", { payload: Event })
const Ping = Rpc.make("Ping")
/** Subscriber `<letter><n>` (`s<n>` is stream n's implicit subscriber, `f<n>` a fan-out subscriber). */
const Sink = Actor.make("BenchStreamSink", [Record, Ping])

/** Latency of one delivery in `sampleEvery` (two clock reads would be a tenth of a delivery's cost). */
const sampleEvery = 8
const streamCount = 100
const fanoutSubscribers = 1_000
/** The provider's partitions (both providers' default), and the raw baseline's streams. */
const partitions = 8

const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"

// --- What a round counts --------------------------------------------------------------------

/**
 * The deliveries of one round: per subscriber, the count and the last event (each must get
 * its events in order, each once); the latency samples; and the producers' pacing.
 */
class Tally {
  handled = 0
  /** Deliveries published (an event published to the fan-out stream is 1,000). */
  published = 0
  endNs = 0
  outOfOrder = 0
  misrouted = 0
  readonly counts: Int32Array
  readonly last: Float64Array
  readonly publishedAt: Float64Array
  readonly latenciesUs: Array<number> = []
  readonly done: Promise<void>
  private resolve!: () => void
  private waiters: Array<() => void> = []

  readonly total: number
  readonly events: number
  readonly subscribers: number
  readonly inFlight: number
  /** Fan-out: every subscriber gets every event. Otherwise subscriber i gets the events with seq ≡ i (mod subscribers). */
  readonly fanout: boolean

  constructor(total: number, events: number, subscribers: number, inFlight: number, fanout: boolean) {
    this.total = total
    this.events = events
    this.subscribers = subscribers
    this.inFlight = inFlight
    this.fanout = fanout
    this.counts = new Int32Array(subscribers)
    this.last = new Float64Array(subscribers).fill(-1)
    this.publishedAt = new Float64Array(events)
    this.done = new Promise((resolve) => (this.resolve = resolve))
  }

  /** Whether event `seq` is timed at publish (every event of the fan-out, every 8th of each stream otherwise). */
  timedAtPublish(seq: number): boolean {
    return this.fanout || ((seq / this.subscribers) | 0) % sampleEvery === 0
  }

  /** Called first thing in the handler (or the raw consumer) for each delivery. */
  record(index: number, seq: number): void {
    const sampled = this.fanout ? (seq + index) % sampleEvery === 0 : ((seq / this.subscribers) | 0) % sampleEvery === 0
    if (sampled) this.latenciesUs.push((nowNs() - this.publishedAt[seq]!) / 1000)
    if (!this.fanout && seq % this.subscribers !== index) this.misrouted++
    if (seq <= this.last[index]!) this.outOfOrder++
    this.last[index] = seq
    this.counts[index]!++
    const handled = ++this.handled
    if (this.waiters.length > 0 && this.published - handled <= this.inFlight >> 1) this.wake()
    if (handled === this.total) {
      this.endNs = nowNs()
      this.resolve()
    }
  }

  /** Before publishing `deliveries`: waits while the producers are `inFlight` ahead. */
  admit(deliveries: number): Effect.Effect<void> {
    if (this.published - this.handled < this.inFlight) {
      this.published += deliveries
      return Effect.void
    }
    return Effect.flatMap(this.room, () => this.admit(deliveries))
  }

  private readonly room = Effect.callback<void>((resume) => {
    if (this.published - this.handled < this.inFlight) return resume(Effect.void)
    this.waiters.push(() => resume(Effect.void))
  })

  /** `admit` for a plain async producer. */
  async admitAsync(deliveries: number): Promise<void> {
    while (this.published - this.handled >= this.inFlight) await new Promise<void>((resolve) => this.waiters.push(resolve))
    this.published += deliveries
  }

  private wake(): void {
    const waiters = this.waiters
    this.waiters = []
    for (const wake of waiters) wake()
  }

  progress(): string {
    return `${this.handled.toLocaleString("en-US")} of ${this.total.toLocaleString("en-US")} deliveries handled, ${this.published.toLocaleString("en-US")} published`
  }

  /** Throws unless every subscriber got exactly its events, in order. */
  check(id: string): void {
    if (this.misrouted > 0) throw new Error(`${id}: ${this.misrouted} events reached the wrong subscriber`)
    if (this.outOfOrder > 0) throw new Error(`${id}: ${this.outOfOrder} deliveries out of order or repeated`)
    for (let i = 0; i < this.subscribers; i++) {
      const want = this.fanout ? this.events : Math.floor(this.events / this.subscribers) + (i < this.events % this.subscribers ? 1 : 0)
      if (this.counts[i] !== want) throw new Error(`${id}: subscriber ${i} got ${this.counts[i]} events, expected ${want}`)
    }
  }
}

/** The tally of the round under way: the sink's handler counts into it. */
let current: Tally | undefined

const SinkLive = Sink.toLayer(
  Effect.gen(function*() {
    const index = Number((yield* ActorContext).address.id.slice(1))
    return Sink.of({
      Record: ({ seq }) => Effect.sync(() => current!.record(index, seq)),
      Ping: () => Effect.void
    })
  }),
  { idleTimeout: "never", mailboxCapacity: 10_000, whenFull: "suspend" }
)

// --- Rounds -----------------------------------------------------------------------------------

/** `promise`, or a rejection naming `what()` once `ms` have passed. */
const within = async <A>(promise: Promise<A>, ms: number, what: () => string): Promise<A> => {
  let timer: ReturnType<typeof setTimeout> | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`${what()}: not done after ${ms} ms`)), ms)
      })
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** How long a round may take: 15 s plus its deliveries at `floorPerSec` (a tenth of what is expected, or less). */
const deadlineOf = (deliveries: number, floorPerSec: number) => 15_000 + Math.ceil((deliveries / floorPerSec) * 1000)

const disposeMs = 15_000

type SiloRuntime = ManagedRuntime.ManagedRuntime<Silo.Silo, StreamProviderError>

const siloLayer = Silo.layer({ passivationInterval: "1 hour", shutdownTimeout: "2 seconds" })

const streamsSilo = (provider: StreamProvider, implicit: boolean): SiloRuntime =>
  ManagedRuntime.make(
    Layer.mergeAll(
      SinkLive,
      Streams.layer({
        provider,
        implicit: implicit ? [Streams.implicit(Events, Sink, "Record")] : [],
        drainTimeout: "1 second"
      })
    ).pipe(Layer.provideMerge(siloLayer))
  )

const plainSilo = (): SiloRuntime => ManagedRuntime.make(SinkLive.pipe(Layer.provideMerge(siloLayer)))

/** Activates every partition agent (its consumer group exists then) and the subscribers `<letter>0..n-1`. */
const warm = (letter: string, subscribers: number, agents: boolean) =>
  Effect.gen(function*() {
    if (agents) yield* Effect.forEach(Array.from({ length: partitions }, (_, p) => String(p)), (p) => Effect.flatMap(Agent.refOrDie(p), (agent) => agent.Touch()), { discard: true })
    yield* Effect.forEach(Array.from({ length: subscribers }, (_, i) => `${letter}${i}`), (id) => Effect.flatMap(Sink.refOrDie(id), (ref) => ref.Ping()), {
      concurrency: 16,
      discard: true
    })
  })

/** What the silo's lanes hold (for the message of a round that did not finish). */
const lanesOf = (runtime: SiloRuntime): Promise<string> =>
  within(runtime.runPromise(Streams.lag), 5_000, () => "Streams.lag").then(
    (lanes) => {
      const sum = (f: (lane: Streams.SubscriptionLag) => number) => lanes.reduce((n, lane) => n + f(lane), 0)
      return `${lanes.length} lanes, ${sum((l) => l.buffered)} events buffered, ${sum((l) => l.delivered)} delivered, ${sum((l) => l.dropped)} dropped, ${sum((l) => l.failed)} failed`
    },
    (error) => `unknown (${error})`
  )

/**
 * One round on a fresh silo: `setup` before the clock, then `produce` (forked) until the
 * tally is complete; the producers are stopped and the silo closed whatever happened.
 */
const siloRound = async (
  id: string,
  runtime: SiloRuntime,
  tally: Tally,
  setup: Effect.Effect<void, unknown, Silo.Silo>,
  produce: Effect.Effect<void, unknown, Silo.Silo>,
  deadlineMs: number,
  streams: boolean
): Promise<Measured> => {
  let fiber: Fiber.Fiber<void, unknown> | undefined
  let failed = false
  try {
    await within(runtime.runPromise(setup), 60_000, () => `${id}: setting up the round`)
    current = tally
    const cpu0 = process.cpuUsage()
    const t0 = nowNs()
    fiber = runtime.runFork(produce)
    const producing = runtime.runPromise(Fiber.join(fiber))
    try {
      await within(Promise.all([producing, tally.done]), deadlineMs, () => `${id}: ${tally.progress()}`)
    } catch (error) {
      if (streams && error instanceof Error) error.message += `; lanes: ${await lanesOf(runtime)}`
      throw error
    }
    const cpu = process.cpuUsage(cpu0)
    tally.check(id)
    return { ops: tally.total, elapsedNs: tally.endNs - t0, latenciesUs: tally.latenciesUs, cpuUs: cpu.user + cpu.system }
  } catch (error) {
    failed = true
    throw error
  } finally {
    current = undefined
    try {
      if (fiber !== undefined) await within(Effect.runPromise(Fiber.interrupt(fiber)), disposeMs, () => `${id}: stopping the producers`)
      await within(runtime.dispose(), disposeMs, () => `${id}: closing the silo`)
    } catch (error) {
      if (!failed) throw error
      console.error(`${id}, after the round failed: ${String(error)}`) // the round's own error goes on
    }
  }
}

/** 100 producers, one per stream, each sending its stream's events in order through `send`. */
const producers = (tally: Tally, send: (stream: number, seq: number) => Effect.Effect<unknown, unknown, Silo.Silo>) =>
  Effect.forEach(
    Array.from({ length: streamCount }, (_, s) => s),
    (s) =>
      Effect.gen(function*() {
        for (let seq = s; seq < tally.events; seq += streamCount) {
          yield* tally.admit(1)
          if (tally.timedAtPublish(seq)) tally.publishedAt[seq] = nowNs()
          yield* send(s, seq)
        }
      }),
    { concurrency: "unbounded", discard: true }
  )

const keys = Array.from({ length: streamCount }, (_, s) => `s${s}`)

/** A round's result, with the process's CPU time (all threads) from the first publish to the last delivery. */
interface Measured extends RoundResult {
  readonly cpuUs: number
}

const median = (values: ReadonlyArray<number>): number => {
  const sorted = [...values].sort((a, b) => a - b)
  const n = sorted.length
  return n === 0 ? 0 : n % 2 === 1 ? sorted[n >> 1]! : (sorted[(n >> 1) - 1]! + sorted[n >> 1]!) / 2
}

/**
 * A variant with one warm-up round, whose extras add `cpuUsPerOp` (the median over measured
 * rounds of the process's CPU time per delivery: on this shared machine a steadier figure
 * than the rate) and, with a goal, whether the median rate (as the harness computes
 * `opsPerSec`) meets it.
 */
const measured = (
  id: string,
  round: () => Promise<Measured>,
  extra: () => Record<string, number | string>,
  goal?: { readonly perSec: number; readonly unit: string }
): Variant => {
  const rates: Array<number> = []
  const cpuPerOp: Array<number> = []
  let rounds = 0
  return {
    id,
    warmup: 1,
    round: async () => {
      const result = await round()
      if (rounds++ >= 1) { // the first is the warm-up round
        rates.push(result.ops / (result.elapsedNs / 1e9))
        cpuPerOp.push(result.cpuUs / result.ops)
      }
      return result
    },
    extra: () => {
      const fields: Record<string, number | string> = { ...extra(), cpuUsPerOp: Number(median(cpuPerOp).toFixed(2)) }
      if (goal !== undefined) {
        const share = median(rates) / goal.perSec
        fields.goal = `≥ ${goal.perSec.toLocaleString("en-US")} ${goal.unit}/s: ${share >= 1 ? "met" : "not met"} (${share.toFixed(2)}×)`
      }
      return fields
    }
  }
}

// --- Publish: memory and Redis ------------------------------------------------------------------

export interface PublishOptions {
  readonly events: number
  readonly inFlight: number
}

/** Deletes every key under `prefix:` (the server outlives the run). */
const deleteRedisKeys = async (prefix: string): Promise<void> => {
  const client = new Redis(redisUrl, { maxRetriesPerRequest: 2 })
  client.on("error", () => {}) // reported by the commands that fail
  try {
    let cursor = "0"
    do {
      const [next, found] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 5000)
      if (found.length > 0) await client.unlink(...found)
      cursor = next
    } while (cursor !== "0")
  } finally {
    await client.quit()
  }
}

/** The provider of one round: a fresh one in memory, or Redis under a prefix of the round's own (and deleting it). */
/**
 * The provider of one round, opened before the silo and closed after it (as an application
 * that owns its provider would): a fresh one in memory, or Redis under a key prefix of the
 * round's own, whose keys `close` deletes.
 */
interface RoundProvider {
  readonly provider: StreamProvider
  readonly close: () => Promise<void>
}

const memoryProvider = async (): Promise<RoundProvider> => ({
  provider: MemoryStreamProvider.make({ partitions }),
  close: async () => {}
})

const redisProvider = async (tag: string): Promise<RoundProvider> => {
  const keyPrefix = `quark-bench-streams-${process.pid}-${tag}`
  const scope = Effect.runSync(Scope.make())
  const close = async () => {
    try {
      await within(Effect.runPromise(Scope.close(scope, Exit.void)), disposeMs, () => "closing the Redis stream provider")
    } finally {
      await deleteRedisKeys(keyPrefix)
    }
  }
  try {
    const provider = await within(
      Effect.runPromise(Scope.provide(RedisStreamProvider.make({ url: redisUrl, keyPrefix, partitions }), scope)),
      30_000,
      () => `opening the Redis stream provider at ${redisUrl}`
    )
    return { provider, close }
  } catch (error) {
    await close().catch((closing) => console.error(`after opening the Redis stream provider failed: ${String(closing)}`))
    throw error
  }
}

/** `events` published event by event to 100 streams, each delivered to its stream's implicit subscriber. */
export const publish = (
  id: string,
  open: (tag: string) => Promise<RoundProvider>,
  options: PublishOptions & { readonly goalPerSec: number; readonly floorPerSec: number }
): Variant => {
  let rounds = 0
  return measured(
    id,
    async () => {
      const { close, provider } = await open(`r${++rounds}`)
      let failed = false
      try {
        const tally = new Tally(options.events, options.events, streamCount, options.inFlight, false)
        return await siloRound(
          id,
          streamsSilo(provider, true),
          tally,
          warm("s", streamCount, true),
          producers(tally, (s, seq) => Streams.publish(Events, keys[s]!, { seq })),
          deadlineOf(options.events, options.floorPerSec),
          true
        )
      } catch (error) {
        failed = true
        throw error
      } finally {
        await close().catch((error) => {
          if (!failed) throw error
          console.error(`${id}, after the round failed: ${String(error)}`)
        })
      }
    },
    () => ({ streams: streamCount, events: options.events, inFlight: options.inFlight }),
    { perSec: options.goalPerSec, unit: "events" }
  )
}

export const publishMemory = (options: PublishOptions): Variant =>
  publish("stream.publish.memory", memoryProvider, { ...options, goalPerSec: 1_000_000, floorPerSec: 50_000 })

export const publishRedis = (options: PublishOptions): Variant =>
  publish("stream.publish.redis", redisProvider, { ...options, goalPerSec: 100_000, floorPerSec: 5_000 })

/** Baseline of `publishMemory`: the same events from the same producers as tells to the same 100 actors. */
export const publishTell = (options: PublishOptions): Variant => {
  const id = "stream.publish.memory.baseline-tell"
  return measured(
    id,
    () => {
      const tally = new Tally(options.events, options.events, streamCount, options.inFlight, false)
      const refs = new Array<Effect.Success<ReturnType<typeof Sink.ref>>>(streamCount)
      return siloRound(
        id,
        plainSilo(),
        tally,
        Effect.andThen(warm("s", streamCount, false), Effect.forEach(keys, (key, s) => Effect.map(Sink.refOrDie(key), (ref) => (refs[s] = ref)), { discard: true })),
        producers(tally, (s, seq) => refs[s]!.tell.Record({ seq })),
        deadlineOf(options.events, 50_000),
        false
      )
    },
    () => ({ streams: streamCount, events: options.events, inFlight: options.inFlight })
  )
}

/**
 * Baseline of `publishRedis`, no actors: the same events `XADD`ed (auto-pipelined, one
 * connection) to 8 streams (the partitions the provider would pick), read by a consumer
 * per stream with `XREADGROUP` (a connection each) and acknowledged with `XACK`.
 */
export const redisRaw = (options: PublishOptions): Variant => {
  const id = "stream.publish.redis.baseline-xadd-xreadgroup"
  const group = "bench"
  let rounds = 0
  return measured(
    id,
    async () => {
      const prefix = `quark-bench-streams-${process.pid}-raw${++rounds}`
      const streamKeys = Array.from({ length: partitions }, (_, p) => `${prefix}:p:${p}`)
      const keyOf = keys.map((key) => streamKeys[partitionOf(Events.namespace, key, partitions)]!)
      const tally = new Tally(options.events, options.events, streamCount, options.inFlight, false)
      const connect = (autoPipelining: boolean) => {
        const client = new Redis(redisUrl, { enableAutoPipelining: autoPipelining, maxRetriesPerRequest: 2 })
        client.on("error", () => {}) // reported by the commands that fail
        return client
      }
      const producer = connect(true)
      const consumers = streamKeys.map(() => connect(false))
      const acks: Array<Promise<unknown>> = []
      let stopped = false
      let roundFailed = false
      let fail!: (error: unknown) => void
      const failed = new Promise<never>((_, reject) => (fail = reject))
      failed.catch(() => {}) // awaited in the race below, or not at all when setting up failed
      try {
        await within(
          Promise.all([...streamKeys.map((key) => producer.xgroup("CREATE", key, group, "$", "MKSTREAM")), ...consumers.map((c) => c.ping())]),
          30_000,
          () => `${id}: connecting to ${redisUrl}`
        )
        const consume = async (c: Redis, key: string) => {
          while (!stopped) {
            const reply = await c.call("XREADGROUP", "GROUP", group, "c", "COUNT", 512, "BLOCK", 1000, "STREAMS", key, ">")
            if (!Array.isArray(reply)) continue
            // [key, items], or [[key, items]] (the reply's shape depends on the protocol)
            const items = (Array.isArray(reply[0]) ? reply[0][1] : reply[1]) as Array<[string, Array<string>]>
            const ids = new Array<string>(items.length)
            for (let i = 0; i < items.length; i++) {
              const [entryId, fields] = items[i]!
              ids[i] = entryId
              // fields: n, <namespace>, k, <key>, d, <data>
              tally.record(Number(fields[3]!.slice(1)), (JSON.parse(fields[5]!) as { seq: number }).seq)
            }
            if (ids.length > 0) acks.push(c.xack(key, group, ...ids))
          }
        }
        consumers.forEach((c, p) => consume(c, streamKeys[p]!).catch((error) => stopped || fail(error)))
        const cpu0 = process.cpuUsage()
        const t0 = nowNs()
        const produce = async () => {
          for (let seq = 0; seq < tally.events; seq++) {
            const s = seq % streamCount
            if (tally.published - tally.handled >= tally.inFlight) await tally.admitAsync(1)
            else tally.published++
            if (tally.timedAtPublish(seq)) tally.publishedAt[seq] = nowNs()
            producer.xadd(keyOf[s]!, "*", "n", Events.namespace, "k", keys[s]!, "d", JSON.stringify({ seq })).catch(fail)
          }
        }
        await within(Promise.race([Promise.all([produce(), tally.done]), failed]), deadlineOf(options.events, 5_000), () => `${id}: ${tally.progress()}`)
        const cpu = process.cpuUsage(cpu0)
        tally.check(id)
        return { ops: tally.total, elapsedNs: tally.endNs - t0, latenciesUs: tally.latenciesUs, cpuUs: cpu.user + cpu.system }
      } catch (error) {
        roundFailed = true
        throw error
      } finally {
        stopped = true
        await within(Promise.allSettled(acks), disposeMs, () => `${id}: acknowledging`).catch((error) => console.error(String(error)))
        for (const c of consumers) c.disconnect()
        await producer.quit().catch(() => producer.disconnect())
        await deleteRedisKeys(prefix).catch((error) => {
          if (!roundFailed) throw error
          console.error(`${id}, after the round failed: ${String(error)}`)
        })
      }
    },
    () => ({ streams: streamCount, partitions, events: options.events, inFlight: options.inFlight })
  )
}

// --- Fan-out --------------------------------------------------------------------------------------

export interface FanoutOptions {
  /** Events per round; each is 1,000 deliveries. */
  readonly events: number
  /** Deliveries in flight (a multiple of 1,000: whole events). */
  readonly inFlight: number
}

const fanoutKey = "fan"

/** One producer: each event waits for room for its 1,000 deliveries, then `send`s it. */
const fanoutProducer = (tally: Tally, send: (seq: number) => Effect.Effect<unknown, unknown, Silo.Silo>) =>
  Effect.gen(function*() {
    for (let seq = 0; seq < tally.events; seq++) {
      yield* tally.admit(fanoutSubscribers)
      tally.publishedAt[seq] = nowNs()
      yield* send(seq)
    }
  })

/** One stream, 1,000 durable subscribers (memory provider); deliveries per second. */
export const fanout = (options: FanoutOptions): Variant => {
  const id = "stream.fanout"
  const total = options.events * fanoutSubscribers
  return measured(
    id,
    () => {
      const tally = new Tally(total, options.events, fanoutSubscribers, options.inFlight, true)
      const subscribe = Effect.forEach(
        Array.from({ length: fanoutSubscribers }, (_, i) => i),
        (i) => Streams.subscribe(Events, fanoutKey, { actor: Sink, id: `f${i}`, message: "Record" }),
        { discard: true }
      )
      return siloRound(
        id,
        streamsSilo(MemoryStreamProvider.make({ partitions }), false),
        tally,
        Effect.andThen(warm("f", fanoutSubscribers, true), subscribe),
        fanoutProducer(tally, (seq) => Streams.publish(Events, fanoutKey, { seq })),
        deadlineOf(total, 50_000),
        true
      )
    },
    () => ({ subscribers: fanoutSubscribers, events: options.events, inFlight: options.inFlight })
  )
}

/** Baseline of `fanout`: per event, a tell to each of the 1,000 actors. */
export const fanoutTell = (options: FanoutOptions): Variant => {
  const id = "stream.fanout.baseline-tell"
  const total = options.events * fanoutSubscribers
  return measured(
    id,
    () => {
      const tally = new Tally(total, options.events, fanoutSubscribers, options.inFlight, true)
      const refs = new Array<Effect.Success<ReturnType<typeof Sink.ref>>>(fanoutSubscribers)
      const resolve = Effect.forEach(refs.keys(), (i) => Effect.map(Sink.refOrDie(`f${i}`), (ref) => (refs[i] = ref)), { discard: true })
      return siloRound(
        id,
        plainSilo(),
        tally,
        Effect.andThen(warm("f", fanoutSubscribers, false), resolve),
        fanoutProducer(tally, (seq) =>
          Effect.suspend(() => {
            const event = { seq }
            return Effect.forEach(refs, (ref) => ref.tell.Record(event), { discard: true })
          })),
        deadlineOf(total, 50_000),
        false
      )
    },
    () => ({ subscribers: fanoutSubscribers, events: options.events, inFlight: options.inFlight })
  )
}

/**
 * Reminder benchmarks (issue 12), each with a baseline in the same process:
 *
 * - `reminders.lag.<store>`: `reminders` active reminders on one silo (10 per actor), each
 *   firing every `periodMs`, their start times spread evenly over the period, so
 *   `reminders / periodMs` ticks fire per millisecond (100,000 at 10 s: 10,000 a second).
 *   Each round is a fresh silo on the real clock and a fresh store: it registers them all
 *   (`registerMs`) before the first is due, lets one whole period fire as a warm-up, then
 *   measures `periods` periods (`periods × periodMs` of due times). `opsPerSec` is
 *   the ticks delivered per second, p50/p99/p99.9 the lag (µs) from a tick's due time to
 *   the start of its turn, read in the handler. A tick due in the measured window that
 *   arrives twice fails the round; one that has not arrived two periods after the window is
 *   counted in `lateTicks` (and in the percentiles with that much lag, a lower bound).
 *   `cpuUsPerTick`: the process's CPU time over the window per tick due in it.
 * - `reminders.lag.set-timeout` and `reminders.lag.effect-sleep`, the baselines: the same
 *   count of timers at the same rate and due times, each a `setTimeout` (the event loop's
 *   floor) or a fiber looping on `Effect.sleep` (Effect's runtime on top), lag read in the
 *   callback. Absolute lag drifts with this noisy machine's load; the ratios
 *   (`p99VsSetTimeout`, ...) are the figures to compare across runs.
 * - `reminders.register.<store>`: `Reminders.register` calls per second from a program with
 *   the silo and the store, 64 in flight; baseline `reminders.register.<store>.store-put`:
 *   the store's own `put` of the same records (built beforehand), 64 in flight.
 * - `reminders.idle`: heap per idle reminder on the owning silo after GC, `count` reminders
 *   with a period of a day (nothing fires): `bytesPerReminder` with the store on Redis
 *   (the silo's own schedule), `bytesPerReminderMemoryStore` with the memory store (its copy
 *   is in the same heap). `opsPerSec` is the registration rate on the memory store.
 *
 * Every store is under a name of this run's own (Redis key prefix, PostgreSQL tables), removed
 * after its round or run.
 */
import { PgClient } from "@effect/sql-pg"
import { Duration, Effect, Exit, Fiber, Layer, ManagedRuntime, Redacted, Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import { Rpc } from "effect/rpc"
import { Redis } from "ioredis"
import { Actor, ActorContext, MemoryReminderStore, Reminders, type ReminderStore, Silo } from "../src/index.ts"
import type { StoreError } from "../src/Persistence/PersistenceError.ts"
import { PgReminderStore } from "../src/Persistence/pg.ts"
import { RedisReminderStore } from "../src/Persistence/redis.ts"
import { bucketOf, encodeRecord } from "../src/Reminders/internal/ReminderRecord.ts"
import type { ReminderWrite } from "../src/Reminders/ReminderStore.ts"
import { nowNs, percentile, type RoundResult, type Variant } from "./Harness.ts"

type Disposable = Variant & { readonly dispose: () => Promise<void> }

const Tick = Rpc.make("Tick")
/** The actor the reminders tick; only the lag benchmarks implement it (nothing fires in the others). */
const Target = Actor.make("BenchReminderTarget", [Tick])

/** Reminders per actor: one actor's reminders share a bucket, as an actor's several schedules would. */
const perActor = 10
/** Registrations in flight, as many callers would have. */
const concurrency = 64
const bucketCount = 64 // Reminders.layer's default; the store-put baseline computes buckets with it

const gc = (): void => (globalThis as { gc?: () => void }).gc?.()

// --- Stores -------------------------------------------------------------------------------

/** Opens a reminder store under `tag` (apart from every other run's and round's); `cleanup` removes what it holds. */
export interface BenchReminderStore {
  readonly open: (tag: string) => {
    readonly store: Effect.Effect<ReminderStore, StoreError, Scope.Scope>
    readonly cleanup?: () => Promise<void>
  }
}

export const memory: BenchReminderStore = { open: () => ({ store: Effect.sync(() => MemoryReminderStore.make("bench")) }) }

const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"

/** Deletes every key under `prefix:` (the server outlives the run). */
const deleteRedisKeys = async (prefix: string): Promise<void> => {
  const client = new Redis(redisUrl)
  try {
    let cursor = "0"
    do {
      const [next, keys] = await client.scan(cursor, "MATCH", `${prefix}:*`, "COUNT", 5000)
      if (keys.length > 0) await client.unlink(...keys)
      cursor = next
    } while (cursor !== "0")
  } finally {
    await client.quit()
  }
}

export const redis: BenchReminderStore = {
  open: (tag) => {
    const keyPrefix = `quark-bench-reminders-${process.pid}-${tag}`
    return { store: RedisReminderStore.make("redis", { url: redisUrl, keyPrefix }), cleanup: () => deleteRedisKeys(keyPrefix) }
  }
}

const pgUrl = process.env.QUARK_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"

export const pg: BenchReminderStore = {
  open: (tag) => {
    const table = `quark_bench_rem_${process.pid}_${tag}`.toLowerCase().replace(/[^a-z0-9_]/g, "_")
    return {
      store: PgReminderStore.make("pg", { url: pgUrl, table }),
      cleanup: () =>
        Effect.runPromise(Effect.scoped(Effect.gen(function*() {
          // A plain client of its own: the store's pool is closed by now.
          const sql = yield* PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
            Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
          )
          yield* sql.unsafe(`DROP TABLE IF EXISTS ${table}_history, ${table}_dead_letters, ${table}`)
        })))
    }
  }
}

/**
 * A store of `target` under `tag`, opened in a scope of its own: `close` closes it and
 * removes what it holds.
 */
const openStore = async (target: BenchReminderStore, tag: string) => {
  const opened = target.open(tag)
  const scope = Effect.runSync(Scope.make())
  const store = await Effect.runPromise(Scope.provide(opened.store, scope))
  return {
    store,
    close: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await opened.cleanup?.()
    }
  }
}

/**
 * A silo with reminders on a store of `target`, and `actors` (the target's implementation,
 * or nothing). The store is opened before the silo and closed after it, as the store-put
 * baseline opens it, so both time the same connection setup.
 */
const makeSilo = async (target: BenchReminderStore, tag: string, actors: Layer.Layer<never, never, Silo.Silo>) => {
  const { close, store } = await openStore(target, tag)
  const runtime = ManagedRuntime.make(
    Reminders.layer({ store, bucketCount }).pipe(
      Layer.provideMerge(actors.pipe(Layer.provideMerge(Silo.layer({ passivationInterval: "1 hour", shutdownTimeout: "2 seconds" }))))
    )
  )
  try {
    await runtime.context()
  } catch (error) {
    await close()
    throw error
  }
  return {
    runtime,
    dispose: async () => {
      await runtime.dispose()
      await close()
    }
  }
}

/** The i-th reminder of a set of `count`: `perActor` per actor, actor ids `<prefix><n>`, names `r<m>`. */
const addressOf = (prefix: string, count: number, i: number) => {
  const actors = Math.ceil(count / perActor)
  return { id: `${prefix}${i % actors}`, name: `r${Math.floor(i / actors)}` }
}

const registerAll = (
  prefix: string,
  count: number,
  options: (i: number) => { readonly every: Duration.Input; readonly startAt?: number },
  latenciesUs?: Array<number>
) =>
  Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) => {
      const { id, name } = addressOf(prefix, count, i)
      const register = Reminders.register(Target, id, name, { message: "Tick", ...options(i) })
      if (latenciesUs === undefined) return Effect.asVoid(register)
      return Effect.suspend(() => {
        const start = nowNs()
        return Effect.map(register, () => {
          latenciesUs.push((nowNs() - start) / 1000)
        })
      })
    },
    { concurrency, discard: true }
  )

// --- Lag ----------------------------------------------------------------------------------

/**
 * `Date.now()` at sub-millisecond resolution: `performance.now()` plus its offset from
 * `Date.now()`, measured at a millisecond edge (the largest of a few tries, since a late
 * read only makes it smaller). Measured per round rather than taken from
 * `performance.timeOrigin`: the wall clock, which due times are on, may be slewed meanwhile.
 */
const wallClock = (): (() => number) => {
  let offset = -Infinity
  for (let i = 0; i < 5; i++) {
    const start = Date.now()
    let now = start
    while (now === start) now = Date.now()
    offset = Math.max(offset, now - performance.now())
  }
  return () => offset + performance.now()
}

/**
 * The measured window of a lag round: the ticks due in `[from, until)`, `periods` per
 * reminder, each recorded once with its lag; `done` resolves when all have arrived. Also
 * the process's CPU time (all threads: GC helpers too) from `from` to `until`.
 */
class LagWindow {
  from = Infinity
  until = Infinity
  readonly clock = wallClock()
  readonly lagsUs: Float64Array
  readonly periods: number
  count = 0
  duplicates = 0
  private closed = false
  private cpuFrom: NodeJS.CpuUsage | undefined
  private cpuUs = Number.NaN
  private readonly timers: Array<ReturnType<typeof setTimeout>> = []
  private readonly perReminder: Uint8Array
  private resolve!: () => void
  readonly done = new Promise<void>((resolve) => {
    this.resolve = resolve
  })

  constructor(reminders: number, periods: number) {
    this.periods = periods
    this.lagsUs = new Float64Array(reminders * periods)
    this.perReminder = new Uint8Array(reminders)
  }

  open(from: number, length: number): void {
    this.from = from
    this.until = from + length
    this.timers.push(
      setTimeout(() => (this.cpuFrom = process.cpuUsage()), from - Date.now()),
      setTimeout(() => {
        const used = process.cpuUsage(this.cpuFrom)
        this.cpuUs = used.user + used.system
      }, this.until - Date.now())
    )
  }

  /** A tick of reminder `index`, due at `due`, started (its turn, its callback) at `startMs`. */
  record(index: number, due: number, startMs: number): void {
    if (due < this.from || due >= this.until || this.closed) return
    if (++this.perReminder[index]! > this.periods) {
      this.duplicates++
      return
    }
    this.lagsUs[this.count++] = (startMs - due) * 1000
    if (this.count === this.lagsUs.length) this.resolve()
  }

  /**
   * Waits for every tick of the window, at most until `deadline` (epoch ms). A tick that has
   * not arrived by then is `late`: its lag is at least `deadline - until`, which is what it
   * counts as (so the percentiles stay lower bounds), and it is not counted as delivered.
   * A tick that arrives twice fails the round (one silo: not even at-least-once may repeat).
   */
  async result(id: string, deadline: number): Promise<RoundResult & { readonly late: number; readonly cpuUsPerTick: number }> {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([
      this.done,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, Math.max(0, deadline - Date.now()))
      })
    ])
    clearTimeout(timer)
    for (const pending of this.timers) clearTimeout(pending)
    if (Number.isNaN(this.cpuUs) && this.cpuFrom !== undefined) {
      // The last tick came in before the timer at `until` ran: read it now (as good as).
      const used = process.cpuUsage(this.cpuFrom)
      this.cpuUs = used.user + used.system
    }
    this.closed = true
    if (this.duplicates > 0) throw new Error(`${id}: ${this.duplicates} ticks arrived twice`)
    const delivered = this.count
    const late = this.lagsUs.length - delivered
    this.lagsUs.fill((deadline - this.until) * 1000, delivered)
    return {
      ops: delivered,
      elapsedNs: (this.until - this.from) * 1e6,
      latenciesUs: Array.from(this.lagsUs),
      late,
      cpuUsPerTick: this.cpuUs / this.lagsUs.length
    }
  }
}

/** What the lag variants of one process measured, pooled over rounds: the extras compare them. */
const pooledLags = new Map<string, Array<number>>()
const lagIds = { setTimeout: "reminders.lag.set-timeout", effectSleep: "reminders.lag.effect-sleep" } as const

export interface LagOptions {
  readonly reminders: number
  readonly periodMs: number
  /** Measured periods per round (after one of warm-up). */
  readonly periods: number
  readonly rounds: number
}

/** The first due times begin this long after the round's timers or registrations are set up. */
const leadMs = 1_000

/** The due time of timer/reminder `i` in its first period: spread evenly, whole milliseconds as a registration's are. */
const firstDue = (firstAt: number, options: LagOptions, i: number) => firstAt + Math.floor((i * options.periodMs) / options.reminders)

const median = (values: ReadonlyArray<number>) => [...values].sort((a, b) => a - b)[values.length >> 1] ?? 0

const lagVariant = (
  id: string,
  options: LagOptions,
  run: (window: LagWindow) => Promise<{ readonly deadline: number; readonly after?: () => Promise<void> }>,
  extra?: () => Record<string, number | string>
): Variant => {
  const pooled: Array<number> = []
  pooledLags.set(id, pooled)
  let lateTicks = 0
  const cpuUsPerTick: Array<number> = []
  return {
    id,
    rounds: options.rounds,
    warmup: 0, // each round warms itself up for a period
    round: async () => {
      const window = new LagWindow(options.reminders, options.periods)
      const { after, deadline } = await run(window)
      try {
        const result = await window.result(id, deadline)
        for (const lag of result.latenciesUs!) pooled.push(lag)
        lateTicks += result.late
        cpuUsPerTick.push(result.cpuUsPerTick)
        if (result.late > 0) console.error(`${id}: ${result.late} ticks had not arrived ${deadline - window.until} ms after the window`)
        return result
      } finally {
        await after?.()
      }
    },
    extra: () => ({
      reminders: options.reminders,
      periodMs: options.periodMs,
      lateTicks,
      cpuUsPerTick: Number(median(cpuUsPerTick).toFixed(1)),
      ...extra?.()
    })
  }
}

/** Two periods after the window: a tick later than that counts as late (see `LagWindow.result`). */
const deadlineOf = (window: LagWindow, options: LagOptions) => window.until + 2 * options.periodMs

/** p50 and p99 ratios of `id`'s pooled lag to each baseline's (when both ran here). */
const lagRatios = (id: string): Record<string, number | string> => {
  const sorted = (lags: Array<number> | undefined) => lags === undefined ? undefined : Float64Array.from(lags).sort()
  const own = sorted(pooledLags.get(id))
  const ratio = (base: Float64Array | undefined, p: number) =>
    own === undefined || base === undefined || base.length === 0 ? "n/a" : Number((percentile(own, p) / percentile(base, p)).toFixed(2))
  const timers = sorted(pooledLags.get(lagIds.setTimeout))
  const sleeps = sorted(pooledLags.get(lagIds.effectSleep))
  return {
    p50VsSetTimeout: ratio(timers, 50),
    p99VsSetTimeout: ratio(timers, 99),
    p99VsEffectSleep: ratio(sleeps, 99)
  }
}

/**
 * `options.reminders` periodic reminders on one silo with `target` as its store (see the
 * module doc). The handler reads the clock first thing in the turn.
 */
export const lag = (id: string, target: BenchReminderStore, options: LagOptions): Variant => {
  const registerMs: Array<number> = []
  const actors = Math.ceil(options.reminders / perActor)
  let rounds = 0
  return lagVariant(id, options, async (window) => {
    const targetLive = Target.toLayer(
      Effect.gen(function*() {
        const actor = Number((yield* ActorContext).address.id.slice(1))
        return Target.of({
          Tick: () => {
            const start = window.clock()
            return Effect.map(Reminders.currentTick, (tick) => {
              if (tick !== undefined) window.record(Number(tick.reminder.slice(1)) * actors + actor, tick.due, start)
            })
          }
        })
      }),
      { idleTimeout: "never" }
    )
    const { dispose: after, runtime } = await makeSilo(target, `lag${++rounds}`, targetLive)
    try {
      // Registering must not race the first ticks: on a silo that cannot keep up, it crawls
      // (100,000 took minutes on Redis). So a few reminders of a day's period (never due)
      // time the registration rate first, and the first ticks are due after the rest would
      // be registered at two thirds of that rate.
      const probe = Math.min(2_000, Math.ceil(options.reminders / 20))
      const p0 = Date.now()
      await runtime.runPromise(registerAll("w", probe, () => ({ every: "1 day", startAt: p0 + dayMillis })))
      const perReminderMs = Math.max(1, Date.now() - p0) / probe
      const t0 = Date.now()
      const firstAt = t0 + leadMs + Math.ceil(1.5 * perReminderMs * options.reminders)
      await runtime.runPromise(registerAll("a", options.reminders, (i) => ({
        every: Duration.millis(options.periodMs),
        startAt: firstDue(firstAt, options, i)
      })))
      const registered = Date.now()
      registerMs.push(registered - t0)
      // One whole period fires as a warm-up, after the registrations too.
      window.open(Math.max(firstAt, registered) + options.periodMs, options.periods * options.periodMs)
      return { deadline: deadlineOf(window, options), after }
    } catch (error) {
      await after()
      throw error
    }
  }, () => ({ registerMs: median(registerMs), ...lagRatios(id) }))
}

/** Baseline: one `setTimeout` per reminder, set again for its next due time from its callback. */
export const lagSetTimeout = (options: LagOptions): Variant =>
  lagVariant(lagIds.setTimeout, options, async (window) => {
    const firstAt = Date.now() + leadMs
    window.open(firstAt + options.periodMs, options.periods * options.periodMs)
    const end = window.until
    for (let i = 0; i < options.reminders; i++) {
      let due = firstDue(firstAt, options, i)
      const fire = () => {
        window.record(i, due, window.clock())
        due += options.periodMs
        if (due < end) setTimeout(fire, Math.max(0, due - Date.now()))
      }
      setTimeout(fire, Math.max(0, due - Date.now()))
    }
    return { deadline: deadlineOf(window, options) }
  })

/** Baseline: one fiber per reminder, looping on `Effect.sleep` until its next due time. */
export const lagEffectSleep = (options: LagOptions): Variant =>
  lagVariant(lagIds.effectSleep, options, async (window) => {
    const firstAt = Date.now() + leadMs
    window.open(firstAt + options.periodMs, options.periods * options.periodMs)
    const end = window.until
    const fiber = Effect.runFork(Effect.forEach(
      Array.from({ length: options.reminders }, (_, i) => i),
      (i) =>
        Effect.gen(function*() {
          for (let due = firstDue(firstAt, options, i); due < end; due += options.periodMs) {
            yield* Effect.sleep(Duration.millis(Math.max(0, due - Date.now())))
            window.record(i, due, window.clock())
          }
        }),
      { concurrency: "unbounded", discard: true }
    ))
    return { deadline: deadlineOf(window, options), after: () => Effect.runPromise(Fiber.interrupt(fiber)) }
  })

// --- Registrations ------------------------------------------------------------------------

const dayMillis = 86_400_000

/** Checks that every actor of a registered set of `count` lists its `perActor` reminders (a sample of actors). */
const checkRegistered = <R>(id: string, list: (actor: string) => Effect.Effect<number, unknown, R>, prefix: string, count: number) =>
  Effect.gen(function*() {
    const actors = Math.ceil(count / perActor)
    for (const n of [0, actors >> 1, actors - 1]) {
      const want = Math.floor(count / actors) + (n < count % actors ? 1 : 0)
      const got = yield* list(`${prefix}${n}`)
      if (got !== want) throw new Error(`${id}: actor ${prefix}${n} has ${got} reminders, expected ${want}`)
    }
  })

/**
 * `Reminders.register` from a program with the silo and the store: `opsPerRound` new
 * reminders (a day's period, nothing fires), 64 in flight; each round registers its own.
 */
export const register = async (id: string, target: BenchReminderStore, opsPerRound: number): Promise<Disposable> => {
  const { dispose, runtime } = await makeSilo(target, "register", Layer.empty)
  let rounds = 0
  return {
    id,
    round: () =>
      runtime.runPromise(Effect.gen(function*() {
        const prefix = `g${++rounds}-`
        const latenciesUs: Array<number> = []
        const startAt = Date.now() + dayMillis
        const t0 = nowNs()
        yield* registerAll(prefix, opsPerRound, () => ({ every: "1 day", startAt }), latenciesUs)
        const elapsedNs = nowNs() - t0
        yield* checkRegistered(id, (actor) => Effect.map(Reminders.list({ type: Target.type, id: actor }), (l) => l.length), prefix, opsPerRound)
        return { ops: opsPerRound, elapsedNs, latenciesUs }
      })),
    dispose
  }
}

/**
 * Baseline of `register`: the store's `put` of the same records (as `Reminders.register`
 * writes them: same keys, bucket, record), built before the clock starts, 64 in flight.
 */
export const storePut = async (id: string, target: BenchReminderStore, opsPerRound: number): Promise<Disposable> => {
  const { close, store } = await openStore(target, "put")
  let rounds = 0
  return {
    id,
    round: () =>
      Effect.runPromise(Effect.gen(function*() {
        const prefix = `p${++rounds}-`
        const now = Date.now()
        const timing = {
          timing: { _tag: "Every", periodMillis: dayMillis, startAt: now + dayMillis },
          missed: { _tag: "FireOnce" },
          jitterMillis: 0
        } as const
        const writes = Array.from({ length: opsPerRound }, (_, i): ReminderWrite => {
          const key = { type: Target.type, ...addressOf(prefix, opsPerRound, i) }
          const data = encodeRecord({ message: "Tick", timing, ticks: 0, registeredAt: now })
          return { key, bucket: bucketOf(key, bucketCount), nextDue: now + dayMillis, data }
        })
        const latenciesUs: Array<number> = []
        const t0 = nowNs()
        yield* Effect.forEach(writes, (write) =>
          Effect.suspend(() => {
            const start = nowNs()
            return Effect.map(store.put(write, 0), () => latenciesUs.push((nowNs() - start) / 1000))
          }), { concurrency, discard: true })
        const elapsedNs = nowNs() - t0
        yield* checkRegistered(id, (actor) => Effect.map(store.list(Target.type, actor), (l) => l.length), prefix, opsPerRound)
        return { ops: opsPerRound, elapsedNs, latenciesUs }
      })),
    dispose: close
  }
}

// --- Memory per idle reminder -------------------------------------------------------------

/**
 * Heap growth after GC per idle reminder on the owning silo: `count` reminders with a day's
 * period registered into a running silo whose buckets are all active and whose code is warm
 * (2,000 reminders registered first), once with the store on Redis and once in memory. A
 * single round, like `local.activate.million`.
 */
export const idle = (count: number): Variant => {
  const id = "reminders.idle"
  let extra: Record<string, number> = {}
  const measure = async (target: BenchReminderStore, tag: string) => {
    const { dispose, runtime } = await makeSilo(target, tag, Layer.empty)
    try {
      const startAt = Date.now() + dayMillis
      await runtime.runPromise(registerAll("w", 2_000, () => ({ every: "1 day", startAt })))
      gc()
      const before = process.memoryUsage().heapUsed
      const t0 = nowNs()
      await runtime.runPromise(registerAll("i", count, () => ({ every: "1 day", startAt })))
      const elapsedNs = nowNs() - t0
      gc()
      const bytes = Math.round((process.memoryUsage().heapUsed - before) / count)
      const heapUsedMB = Math.round(process.memoryUsage().heapUsed / 2 ** 20)
      await runtime.runPromise(checkRegistered(id, (actor) => Effect.map(Reminders.list({ type: Target.type, id: actor }), (l) => l.length), "i", count))
      return { bytes, elapsedNs, heapUsedMB }
    } finally {
      await dispose()
    }
  }
  return {
    id,
    rounds: 1,
    warmup: 0,
    round: async () => {
      const onRedis = await measure(redis, "idle")
      const inMemory = await measure(memory, "idle")
      extra = {
        reminders: count,
        bytesPerReminder: onRedis.bytes,
        bytesPerReminderMemoryStore: inMemory.bytes,
        heapUsedMB: inMemory.heapUsedMB
      }
      return { ops: count, elapsedNs: inMemory.elapsedNs }
    },
    extra: () => extra
  }
}

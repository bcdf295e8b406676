/**
 * The profiler: where a silo's turns go, over a rolling window. Per actor type and message:
 * turns, failures, latency p50/p99/max and turns per second; the activations with the most
 * turns and with the most turn time; the event loop's lag and the heap. `snapshot()` answers
 * in the `ProfileSnapshot` schema (the diagnostics endpoint, dashboard and CLI decode it);
 * the lag and heap are also gauges of the metric catalog.
 *
 * Feed it every turn that ends, through `Telemetry.layer`'s `onTurn`:
 *
 * ```ts
 * const profiler = new Profiler()
 * const Main = App.pipe(Layer.provide(Telemetry.layer({ onTurn: profiler.record })))
 * // and run `profiler.start()` in a scope, or use `Profiler.layer()` and read `ProfilerService`
 * ```
 *
 * **Window.** 6 slices of 10 s (both configurable); each turn is counted in the current
 * slice, and moving to the next one empties it, so a snapshot covers the last 50 to 60 s
 * (`coveredSeconds` says which). `record` reads no clock (a read costs 45 ns, most of what
 * the rest of it costs): the slice moves when a timer started by `start()` sees the
 * clock pass a slice's end (it looks every tenth of a slice), every 4096 turns, and on
 * `snapshot()`. While the timer runs, a turn is filed at most a tenth of a slice late.
 *
 * **Latency.** Per (type, message) per slice, a histogram of 480 buckets, 16 per octave from
 * 0.24 µs to 262 s, indexed by the top 16 bits of the duration's float (about 1 ns;
 * `Math.log` takes 11). A percentile is the exact nearest-rank one (rank ⌈q·n⌉) up to its bucket:
 * reported at the bucket's harmonic midpoint, it is within 3.03 % of the exact value, and
 * never above the exact max (kept aside). Below 0.24 µs the error is under 0.24 µs; above
 * 262 s the max caps it. A row costs 12 KB (6 slices × 480 × 4 bytes); types and messages
 * are a bounded set, as in the metric catalog.
 *
 * **Hottest activations.** Per slice, a table of at most `maxTracked` (1000) activations
 * with their turns and time, counted exactly once in. When it fills, it keeps the 250 (a
 * quarter) with the most turns and the 250 with the most time, and forgets the rest (a
 * quickselect, O(1) amortized over the 500 new activations at least before the next). When
 * it prunes after N turns, the 250th-largest count is at most N/250 (the counts sum to at
 * most N), so an activation holding more than 0.4 % of the slice's turns (or time) is never
 * dropped from then on. Once a slice's table has filled, a new activation gets in by sample
 * and hold (Estan and Varghese): with probability max(1/8, t/u), t its turn's time and u
 * eight times the least time a kept activation had (a turn of u or more always gets in).
 * Light activations then mostly stay out (a table that churns costs a map insert and
 * its share of a prune per turn), and a heavy one gets in after 8 turns on average. Figures
 * are lower bounds: exact for an activation in the table all along, short otherwise by what
 * it had before getting in (8 turns or u of time on average) and each time it was dropped
 * (at most 0.4 % of the slice's turns so far, each time). Below `maxTracked` activations a
 * slice, all are exact. The snapshot sums the slices' tables and ranks them (top 10).
 * Lookups per turn: the row by message name, then by type along a chain (a name shared by
 * many types walks it), and the activation by key, then by type likewise: two map lookups.
 *
 * **Event loop and heap.** `perf_hooks.monitorEventLoopDelay` (10 ms resolution) runs while
 * the profiler is started; each slice keeps its count, p50, p99 and max and resets it. The
 * window's max is exact, its p99 is the largest slice p99 (an upper bound: no slice has more
 * than 1 % of its samples above it, so neither has the window), its p50 the slices' p50s
 * weighted by their samples. Lag is the delay beyond the resolution (the monitor reports the
 * whole interval between its timer's runs). Heap: `process.memoryUsage()` at snapshot.
 * The gauges `quark_event_loop_lag_seconds{quantile="0.5"|"0.99"|"max"}` and
 * `quark_heap_used_bytes` are registered when a profiler first starts and read the latest
 * started one at scrape time (the lag reads 0 while none runs).
 *
 * Costs (`bench/profiler.ts`: 10 M records, median of 5 rounds, 3 runs, Node 24 on a shared
 * 2-core VM): 55 to 70 ns a turn with 200 activations, 85 to 100 ns when every turn is an
 * activation among a million (the table full, sampling), against 6 to 8 ns for an empty
 * call in the same loop (10 to 15 times). At a million turns a second, 6 to 10 % of a core.
 *
 * Rejected: space-saving (inherit the evicted minimum) needs a heap ordered by count, a
 * sift per turn, and twice over for two rankings; one table per ranking doubles the per-turn
 * lookups; a composite `type + key` string as the table key allocates and hashes a string
 * per turn (the key alone, a string the activation keeps, has its hash cached); effect's
 * `Metric` histograms (a registry lookup per update, and no rolling window); a slice
 * histogram of the monitor merged with `RecordableHistogram.add` (Node refuses an
 * `IntervalHistogram` there).
 *
 * @since 0.2.0
 */
import { monitorEventLoopDelay } from "node:perf_hooks"
import { Context, Effect, Layer, Schedule, type Scope } from "effect"
import * as ProcessMetrics from "./internal/ProcessMetrics.ts"
import { ProfileWindow } from "./internal/ProfileWindow.ts"
import * as Catalog from "./MetricCatalog.ts"
import type { EventLoopLag, MessageProfile, ProfileSnapshot } from "./Diagnostics.ts"
import { TurnListeners } from "./internal/TurnListeners.ts"

// ---------------------------------------------------------------------------------------
// The profiler
// ---------------------------------------------------------------------------------------

/**
 * What `monitorEventLoopDelay` returns, as far as the profiler uses it (values in ns).
 *
 * @since 0.2.0
 */
export interface DelayMonitor {
  enable(): unknown
  disable(): unknown
  reset(): void
  percentile(percentile: number): number
  readonly max: number
  readonly count: number
}

/**
 * @since 0.2.0
 */
export interface ProfilerOptions {
  /** Slices in the window. Default 6. */
  readonly slices?: number | undefined
  /** One slice's length. Default 10 000 ms. */
  readonly sliceMillis?: number | undefined
  /** Activations tracked per slice. Default 1000. */
  readonly maxTracked?: number | undefined
  /** The clock, in milliseconds. Default `performance.now` (tests move their own). */
  readonly now?: (() => number) | undefined
  /** The event-loop monitor's sampling interval. Default 10 ms. */
  readonly eventLoopResolutionMillis?: number | undefined
  /** Makes the event-loop monitor (tests give a fake). Default `monitorEventLoopDelay`. */
  readonly eventLoopMonitor?: ((resolutionMillis: number) => DelayMonitor) | undefined
}

/** Turns between clock looks on the hot path (a look costs 45 ns: 0.01 ns a turn). */
const TICK_EVERY = 4096

/**
 * A rolling-window profiler. Usable alone: `record` (bound, pass it as `onTurn`),
 * `start()` in a scope for the event-loop monitor, the timer and the gauges, `snapshot()`.
 *
 * @since 0.2.0
 */
export class Profiler {
  readonly windowMillis: number
  readonly sliceMillis: number
  private readonly window: ProfileWindow
  private readonly now: () => number
  private readonly createdAt: number
  private sliceStart: number
  private untilTick = TICK_EVERY
  private readonly resolution: number
  private readonly makeMonitor: (resolutionMillis: number) => DelayMonitor
  private monitor: DelayMonitor | undefined = undefined
  /** Per slice: the monitor's sample count, p50, p99 and max lag (ms), kept at rotation. */
  private readonly lagCount: Float64Array
  private readonly lagP50: Float64Array
  private readonly lagP99: Float64Array
  private readonly lagMax: Float64Array

  constructor(options: ProfilerOptions = {}) {
    const slices = Math.max(1, Math.floor(options.slices ?? 6))
    this.sliceMillis = Math.max(1, options.sliceMillis ?? 10_000)
    this.windowMillis = slices * this.sliceMillis
    this.window = new ProfileWindow(slices, options.maxTracked ?? 1000)
    this.now = options.now ?? (() => performance.now())
    this.createdAt = this.now()
    this.sliceStart = this.createdAt
    this.resolution = Math.max(1, options.eventLoopResolutionMillis ?? 10)
    this.makeMonitor = options.eventLoopMonitor ?? ((resolution) => monitorEventLoopDelay({ resolution }))
    this.lagCount = new Float64Array(slices)
    this.lagP50 = new Float64Array(slices)
    this.lagP99 = new Float64Array(slices)
    this.lagMax = new Float64Array(slices)
  }

  /**
   * Counts one turn that ended: `Telemetry.layer`'s `onTurn`. A bound function, to be
   * passed as it is.
   */
  readonly record = (type: string, message: string, key: string, millis: number, failed: boolean): void => {
    this.window.record(type, message, key, millis, failed)
    if (--this.untilTick === 0) this.tick()
  }

  /**
   * Moves the window to the clock: every slice that ended is closed, and as many of the
   * oldest emptied. `start()`'s timer, `record` (every 4096 turns) and `snapshot` call it.
   */
  tick(): void {
    this.untilTick = TICK_EVERY
    const elapsed = this.now() - this.sliceStart
    if (!(elapsed >= this.sliceMillis)) return
    const steps = Math.floor(elapsed / this.sliceMillis)
    this.closeLagSlice()
    const slices = this.window.slices
    for (let i = 0; i < Math.min(steps, slices); i++) {
      this.window.rotate()
      const s = this.window.current
      this.lagCount[s] = 0
      this.lagP50[s] = 0
      this.lagP99[s] = 0
      this.lagMax[s] = 0
    }
    this.sliceStart += steps * this.sliceMillis
  }

  /** The window's figures; `topN` activations per ranking (default 10). */
  snapshot(topN = 10): ProfileSnapshot {
    this.tick()
    const now = this.now()
    const oldest = Math.max(this.createdAt, this.sliceStart - (this.window.slices - 1) * this.sliceMillis)
    const covered = Math.max(0, now - oldest)
    const perSecond = covered > 0 ? 1000 / covered : 0
    const messages = this.window.messages()
      .sort((a, b) => b.totalMillis - a.totalMillis || b.count - a.count)
      .map((m): MessageProfile => ({
        type: m.type,
        message: m.message,
        count: m.count,
        failures: m.failures,
        p50Millis: m.p50Millis,
        p99Millis: m.p99Millis,
        maxMillis: m.maxMillis,
        meanMillis: m.totalMillis / m.count,
        totalMillis: m.totalMillis,
        turnsPerSecond: m.count * perSecond
      }))
    const activations = this.window.activationTotals()
    const n = Math.max(0, Math.floor(topN))
    const hottestByTurns = activations.slice()
      .sort((a, b) => b.turns - a.turns || b.millis - a.millis)
      .slice(0, n)
    const hottestByTime = activations
      .sort((a, b) => b.millis - a.millis || b.turns - a.turns)
      .slice(0, n)
    const memory = process.memoryUsage()
    return {
      windowSeconds: this.windowMillis / 1000,
      coveredSeconds: covered / 1000,
      messages,
      hottestByTurns,
      hottestByTime,
      eventLoop: this.eventLoop(),
      heap: { usedBytes: memory.heapUsed, totalBytes: memory.heapTotal, rssBytes: memory.rss }
    }
  }

  /** Event-loop lag over the window (zeros until started, or before its first sample). */
  eventLoop(): EventLoopLag {
    let count = 0
    let p50 = 0
    let p99 = 0
    let max = 0
    const current = this.window.current
    for (let s = 0; s < this.window.slices; s++) {
      const c = this.lagCount[s]!
      if (s === current || c === 0) continue
      count += c
      p50 += this.lagP50[s]! * c
      p99 = Math.max(p99, this.lagP99[s]!)
      max = Math.max(max, this.lagMax[s]!)
    }
    const monitor = this.monitor
    if (monitor !== undefined && monitor.count > 0) {
      const c = monitor.count
      count += c
      p50 += this.lag(monitor.percentile(50)) * c
      p99 = Math.max(p99, this.lag(monitor.percentile(99)))
      max = Math.max(max, this.lag(monitor.max))
    }
    return count === 0 ? { p50Millis: 0, p99Millis: 0, maxMillis: 0 } : { p50Millis: p50 / count, p99Millis: p99, maxMillis: max }
  }

  /**
   * Runs the event-loop monitor and the rotation timer until the scope closes, and registers
   * the lag and heap gauges. Starting a started profiler does nothing.
   */
  start(): Effect.Effect<void, never, Scope.Scope> {
    return Effect.suspend(() => {
      if (this.monitor !== undefined) return Effect.void
      const run = Effect.acquireRelease(
        Effect.sync(() => {
          const monitor = this.makeMonitor(this.resolution)
          monitor.enable()
          this.monitor = monitor
          running.push(this)
          registerGauges()
        }),
        () =>
          Effect.sync(() => {
            this.monitor?.disable()
            this.monitor = undefined
            running.splice(running.indexOf(this), 1)
          })
      )
      const timer = Effect.sync(() => this.tick()).pipe(
        Effect.repeat(Schedule.spaced(Math.max(1, this.sliceMillis / 10))),
        Effect.forkScoped
      )
      return Effect.andThen(run, timer).pipe(Effect.asVoid)
    })
  }

  /** Keeps the monitor's figures in the current slice and starts it afresh. */
  private closeLagSlice(): void {
    const monitor = this.monitor
    const s = this.window.current
    if (monitor === undefined || monitor.count === 0) {
      this.lagCount[s] = 0
      return
    }
    this.lagCount[s] = monitor.count
    this.lagP50[s] = this.lag(monitor.percentile(50))
    this.lagP99[s] = this.lag(monitor.percentile(99))
    this.lagMax[s] = this.lag(monitor.max)
    monitor.reset()
  }

  /** A monitor figure (ns, the whole interval) as lag beyond the resolution (ms). */
  private lag(nanos: number): number {
    return Math.max(0, nanos / 1e6 - this.resolution)
  }
}

// ---------------------------------------------------------------------------------------
// Gauges, service, layer
// ---------------------------------------------------------------------------------------

/** Started profilers; the gauges read the latest (the lag is the process's, whoever measures it). */
const running: Array<Profiler> = []
let gaugesRegistered = false

const lagGauge = (pick: (lag: EventLoopLag) => number) => (): number => {
  const profiler = running[running.length - 1]
  return profiler === undefined ? 0 : pick(profiler.eventLoop()) * Catalog.eventLoopLag.scale
}

/**
 * `quark_event_loop_lag_seconds{quantile="0.5"|"0.99"|"max"}` and `quark_heap_used_bytes`,
 * process-wide cells read at scrape time, exported while `Telemetry.layer` has metrics on.
 * Registered when a profiler first starts; the lag reads 0 while none runs.
 */
const registerGauges = (): void => {
  if (gaugesRegistered) return
  gaugesRegistered = true
  ProcessMetrics.gauge(Catalog.eventLoopLag, { quantile: "0.5" }, lagGauge((lag) => lag.p50Millis))
  ProcessMetrics.gauge(Catalog.eventLoopLag, { quantile: "0.99" }, lagGauge((lag) => lag.p99Millis))
  ProcessMetrics.gauge(Catalog.eventLoopLag, { quantile: "max" }, lagGauge((lag) => lag.maxMillis))
  ProcessMetrics.gauge(Catalog.heapUsed, {}, () => process.memoryUsage().heapUsed)
}

/**
 * The silo's profiler, for the diagnostics endpoint.
 *
 * @since 0.2.0
 */
export class ProfilerService extends Context.Service<ProfilerService, Profiler>()("quark/Profiler") {}

/**
 * A started profiler as `ProfilerService`, stopped with the layer, fed by the silos of a
 * `Telemetry.layer` built above it:
 * `Telemetry.layer(config).pipe(Layer.provideMerge(Profiler.layer()))`.
 *
 * @since 0.2.0
 */
export const layer = (options?: ProfilerOptions): Layer.Layer<ProfilerService> =>
  Layer.effectContext(
    Effect.gen(function*() {
      const profiler = new Profiler(options)
      yield* profiler.start()
      const listeners = yield* TurnListeners
      return Context.make(ProfilerService, profiler).pipe(Context.add(TurnListeners, [...listeners, profiler.record]))
    })
  )

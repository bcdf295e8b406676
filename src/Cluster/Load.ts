/**
 * Load: what each silo reports about how busy it is, and how healthy that makes it.
 *
 * **Reports.** Every `loadReportInterval` (`ClusterSiloConfig`, default 5 s; `0` or `"off"`
 * disables it) a cluster silo publishes in its membership metadata, under keys reserved
 * for Quark ({@link metadataKeys}): its activation count, the part of it that live
 * migration can move (directory placements), its CPU share over the interval (process CPU
 * time / wall time: 1 is one core busy all the time, threads can take it above 1), the 99th
 * percentile of its event-loop delay over the interval (beyond the monitor's 10 ms
 * resolution), its resident memory and the limit it runs under (the cgroup's, else the
 * machine's), its V8 heap use as a share of the heap limit, and the report's number (so a
 * reader can tell that a report is newer than the one it saw). A report is one
 * `Registration.updateMetadata`, announced to every view at once (a round trip), so every
 * silo and client sees every silo's load at most one interval (plus a round trip) old.
 * Reports never change the rings: only `quark.types` and `quark.version` route.
 *
 * **Reading them.** {@link fromMetadata} reads a member's metadata into a {@link Load};
 * a figure that is missing or does not parse (an older silo, reports turned off, a
 * hand-written record) is `undefined`, never an error.
 *
 * **The score** ({@link defaultScore}): a number in [0, 1], 1 for a healthy silo. Each
 * resource scores 1 up to a knee and falls linearly to 0 at saturation, and the score is
 * the lowest of them (an unknown figure scores 1: no evidence of trouble):
 * - CPU share: 1 up to 0.5, 0 at 1 (one core: the event loop runs on one);
 * - event-loop delay p99: 1 up to 20 ms, 0 at 500 ms;
 * - memory: the larger of resident/limit and heap/heap limit: 1 up to 0.7, 0 at 0.95.
 * So a silo at 75 % CPU scores 0.5, one whose p99 delay is 260 ms scores 0.5, and a silo
 * below every knee scores 1 however many activations it has: the score says whether a silo
 * is in trouble, the activation count how much it holds (`Placement.leastLoaded` weighs
 * the two). A custom {@link Score} replaces it wherever a score is used (placement, the
 * rebalancer, eviction); its answer is clamped to [0, 1], and one that throws or is not a
 * number counts as 1 (a broken scoring function must not drain silos).
 *
 * **Rejected.** A weighted mean of the resources: one saturated resource hides behind two
 * idle ones, and a silo whose event loop stalls for half a second is not half healthy.
 * Scoring from the activation count too: activations differ by orders of magnitude in cost,
 * and the count is already what placement balances. Per-call load figures (queue lengths on
 * every reply): a cost on the hot path for a signal that the periodic report gives within
 * seconds.
 *
 * @since 0.2.0
 */
import { Effect, type Scope } from "effect"

/**
 * One silo's load as its last report says; `undefined` for a figure it did not report.
 *
 * @since 0.2.0
 */
export interface Load {
  /** Activations on the silo, of every type. */
  readonly activations: number | undefined
  /** Of those, the activations of directory placements: what live migration can move. */
  readonly migratable: number | undefined
  /** CPU time over wall time in the last interval (1: one core all the time). */
  readonly cpu: number | undefined
  /** Event-loop delay, 99th percentile over the last interval, in milliseconds beyond the monitor's resolution. */
  readonly eventLoopDelayMillis: number | undefined
  /** Resident memory, in bytes. */
  readonly memoryBytes: number | undefined
  /** The memory the process may use (its cgroup's limit, else the machine's), in bytes. */
  readonly memoryLimitBytes: number | undefined
  /** V8 heap in use as a share of its limit, in [0, 1]. */
  readonly heap: number | undefined
  /**
   * The report's number: 1 for a silo's first, one more with each (whatever changed), so a
   * reader can tell a new report from an old one with the same figures.
   */
  readonly sequence: number | undefined
  /** The silo said it is draining (`quark.status=draining`): it takes no new activation. */
  readonly draining: boolean
}

/**
 * A load with nothing known.
 *
 * @since 0.2.0
 */
export const unknown: Load = {
  activations: undefined,
  migratable: undefined,
  cpu: undefined,
  eventLoopDelayMillis: undefined,
  memoryBytes: undefined,
  memoryLimitBytes: undefined,
  heap: undefined,
  sequence: undefined,
  draining: false
}

/**
 * The membership metadata keys of a load report (the `quark.` prefix is reserved), and of
 * a silo's status.
 *
 * @since 0.2.0
 */
export const metadataKeys = {
  activations: "quark.load.activations",
  migratable: "quark.load.migratable",
  cpu: "quark.load.cpu",
  eventLoopDelayMillis: "quark.load.lag",
  memoryBytes: "quark.load.rss",
  memoryLimitBytes: "quark.load.memoryLimit",
  heap: "quark.load.heap",
  sequence: "quark.load.seq",
  status: "quark.status"
} as const

type Figure = Exclude<keyof Load, "draining">
const figures: ReadonlyArray<Figure> = [
  "activations",
  "migratable",
  "cpu",
  "eventLoopDelayMillis",
  "memoryBytes",
  "memoryLimitBytes",
  "heap",
  "sequence"
]

/** A non-negative decimal, without exponent or sign: what `toMetadata` writes. */
const decimal = /^[0-9]{1,20}(\.[0-9]{1,12})?$/

const parse = (text: string | undefined): number | undefined => {
  if (text === undefined || !decimal.test(text)) return undefined
  const n = Number(text)
  return Number.isFinite(n) ? n : undefined
}

/**
 * Reads a member's load from its metadata. Never throws: a missing or malformed figure is
 * `undefined`.
 *
 * @since 0.2.0
 */
export const fromMetadata = (metadata: Readonly<Record<string, string>>): Load => {
  const load: { -readonly [K in keyof Load]: Load[K] } = { ...unknown }
  for (const figure of figures) load[figure] = parse(metadata[metadataKeys[figure]])
  load.draining = metadata[metadataKeys.status] === "draining"
  return load
}

const format = (figure: Figure, value: number): string => {
  switch (figure) {
    case "cpu":
    case "heap":
      return value.toFixed(3)
    case "eventLoopDelayMillis":
      return value.toFixed(1)
    default:
      return String(Math.round(value))
  }
}

/**
 * The metadata of a report: each known, finite, non-negative figure under its key (the
 * others absent), as {@link fromMetadata} reads it back.
 *
 * @since 0.2.0
 */
export const toMetadata = (load: Partial<Omit<Load, "draining">>): Record<string, string> => {
  const metadata: Record<string, string> = {}
  for (const figure of figures) {
    const value = load[figure]
    if (value !== undefined && Number.isFinite(value) && value >= 0) metadata[metadataKeys[figure]] = format(figure, value)
  }
  return metadata
}

/**
 * A scoring function: how healthy a silo with this load is, from 0 (in trouble) to 1
 * (healthy). See {@link defaultScore}.
 *
 * @since 0.2.0
 */
export type Score = (load: Load) => number

/** 1 up to `knee`, 0 from `zero` on, linear between; 1 when unknown. */
const ramp = (value: number | undefined, knee: number, zero: number): number =>
  value === undefined ? 1 : value <= knee ? 1 : value >= zero ? 0 : (zero - value) / (zero - knee)

/**
 * The default score: the lowest of the CPU, event-loop delay and memory scores (see the
 * module doc for the numbers); 1 when nothing is known.
 *
 * @since 0.2.0
 */
export const defaultScore: Score = (load) => {
  const rss = load.memoryBytes !== undefined && load.memoryLimitBytes !== undefined && load.memoryLimitBytes > 0 ?
    load.memoryBytes / load.memoryLimitBytes :
    undefined
  const memory = rss === undefined ? load.heap : load.heap === undefined ? rss : Math.max(rss, load.heap)
  return Math.min(ramp(load.cpu, 0.5, 1), ramp(load.eventLoopDelayMillis, 20, 500), ramp(memory, 0.7, 0.95))
}

/**
 * `score(load)` clamped to [0, 1]; 1 when it throws or is not a number.
 *
 * @since 0.2.0
 */
export const scoreOf = (score: Score, load: Load): number => {
  let value: number
  try {
    value = score(load)
  } catch {
    return 1
  }
  return typeof value !== "number" || Number.isNaN(value) ? 1 : Math.min(1, Math.max(0, value))
}

// ---------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------

/**
 * What a load source measures; a figure it cannot tell is left out. The activation counts
 * come from the silo itself.
 *
 * @since 0.2.0
 */
export type LoadSample = Partial<Pick<Load, "cpu" | "eventLoopDelayMillis" | "memoryBytes" | "memoryLimitBytes" | "heap">>

/**
 * Where a silo's load figures come from (`ClusterSiloConfig.loadSource`): `start` begins
 * measuring for the life of the scope and gives the effect that takes one sample, run once
 * per report (each sample covers the time since the previous one).
 *
 * @since 0.2.0
 */
export interface LoadSource {
  readonly start: Effect.Effect<Effect.Effect<LoadSample>, never, Scope.Scope>
}

/** The monitor's resolution, in milliseconds: what it reports beyond this is delay. */
const resolutionMillis = 10

/** The cgroup's limit when there is one, else the machine's memory. */
const memoryLimit = (totalmem: number): number => {
  const constrained = typeof process.constrainedMemory === "function" ? process.constrainedMemory() : 0
  return constrained > 0 && constrained < totalmem ? constrained : totalmem
}

/**
 * The process's own figures: `process.cpuUsage`, `perf_hooks.monitorEventLoopDelay` (10 ms
 * resolution), `process.memoryUsage.rss`, `v8.getHeapStatistics`. The first sample has no
 * CPU share or delay yet (they need an interval). The Node modules are loaded when it
 * starts, not when `quark/cluster` is imported (a client never needs them).
 *
 * @since 0.2.0
 */
export const processSource: LoadSource = {
  start: Effect.gen(function*() {
    const [perfHooks, os, v8] = yield* Effect.promise(() =>
      Promise.all([import("node:perf_hooks"), import("node:os"), import("node:v8")])
    )
    const monitor = perfHooks.monitorEventLoopDelay({ resolution: resolutionMillis })
    monitor.enable()
    yield* Effect.addFinalizer(() => Effect.sync(() => monitor.disable()))
    let lastCpu = process.cpuUsage()
    let lastAt = performance.now()
    const limit = memoryLimit(os.totalmem())
    return Effect.sync((): LoadSample => {
      const now = performance.now()
      const used = process.cpuUsage(lastCpu)
      const wall = now - lastAt
      lastCpu = process.cpuUsage()
      lastAt = now
      const delay = monitor.count > 0 ? Math.max(0, monitor.percentile(99) / 1e6 - resolutionMillis) : undefined
      monitor.reset()
      const heap = v8.getHeapStatistics()
      return {
        // Under 100 ms the share is mostly noise.
        cpu: wall >= 100 ? (used.user + used.system) / 1000 / wall : undefined,
        eventLoopDelayMillis: delay,
        memoryBytes: process.memoryUsage.rss(),
        memoryLimitBytes: limit,
        heap: heap.heap_size_limit > 0 ? heap.used_heap_size / heap.heap_size_limit : undefined
      }
    })
  })
}

/**
 * A source that reports whatever `sample` returns when asked: figures measured elsewhere
 * (a sidecar, the container runtime), or a test's.
 *
 * @since 0.2.0
 */
export const sourceOf = (sample: () => LoadSample): LoadSource => ({ start: Effect.succeed(Effect.sync(sample)) })

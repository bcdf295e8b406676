/**
 * Telemetry for a silo: metrics (the `MetricCatalog`, as effect `Metric`s), spans per turn,
 * activation and supervision decision (through whatever effect `Tracer` the program
 * provides: `OtlpTracer`, or `@effect/opentelemetry`'s bridge to an OpenTelemetry SDK),
 * and turn-annotated logs.
 *
 * Provide `Telemetry.layer(...)` beneath the silo, at the outside of the program, so the
 * silo and the actors' layers all see it:
 *
 * ```ts
 * const Main = Layer.mergeAll(CounterLive).pipe(
 *   Layer.provideMerge(Silo.layer()),
 *   Layer.provide(Telemetry.layer({ tracing: { sampleRatio: 0.01 } }))
 * )
 * ```
 *
 * Costs, measured by `npm run bench -- --only=local.ask.sequential` (docs/observability.md
 * has the figures): without this layer a silo has no observer and pays one `undefined`
 * check per place it would report (0.94× to 1.04× of the code before telemetry, by
 * `bench/against.ts`); with metrics on, a turn costs a few adds on plain fields, which
 * effect's registry reads when an exporter asks, and one turn in eight two clock reads
 * (0.90× to 1.00×); with tracing on, a root turn costs one random draw and a sampled one a
 * span (0.86× to 0.94× at 1 %).
 *
 * Rejected: effect's `Metric.update` per turn (a registry lookup by key per update, several
 * times a turn's own cost); a span per turn sampled afterwards (the span is the cost);
 * annotating every turn's log context up front (a context copy per turn, for lines most
 * turns never write).
 *
 * @since 0.2.0
 */
import { Effect, Layer, Logger } from "effect"
import type { LocalRouter } from "../Actor/internal/LocalRouter.ts"
import { SiloObserver } from "../Actor/internal/TurnObserver.ts"
import { type OnTurn, TurnListeners } from "./internal/TurnListeners.ts"
import { Registrations } from "./internal/Cells.ts"
import * as ProcessMetrics from "./internal/ProcessMetrics.ts"
import * as SiloInstruments from "./internal/SiloInstruments.ts"
import * as TurnLogs from "./TurnLogs.ts"

/**
 * What a silo's telemetry records. Every field is optional.
 *
 * @since 0.2.0
 */
export interface TelemetryConfig {
  /**
   * The metric catalog, kept and registered in effect's metric registry. Default true.
   * `timeOneTurnIn`: turn durations and mailbox waits are measured on one turn in this many
   * (default 8; 1 times every turn), since a clock read costs about a tenth of a turn that
   * does nothing; the turn counters count every turn.
   */
  readonly metrics?: boolean | { readonly timeOneTurnIn?: number | undefined } | undefined
  /**
   * Spans. Off unless given. `sampleRatio` (0 to 1, default 1) is the share of root turns
   * traced; a turn called from a traced span is traced, one called from an untraced turn is
   * not (parent-based sampling). Supervision decisions are always traced while tracing is on.
   */
  readonly tracing?: { readonly sampleRatio?: number | undefined } | undefined
  /**
   * Logs: turn annotations on the loggers in place (default on), or `format: "json"` to
   * log one JSON object per line instead; `maxLinesPerActorPerSecond` samples hot actors.
   */
  readonly logs?:
    | false
    | (TurnLogs.TurnLogOptions & { readonly format?: "keep" | "json" | "logfmt" | "pretty" | undefined })
    | undefined
  /**
   * Told of every turn that ends, with its run time (every turn is then timed). A
   * `Profiler.layer()` provided beneath this layer is fed the same way without this.
   */
  readonly onTurn?: OnTurn | undefined
  /** The sampler's random source, for tests. Default `Math.random`. */
  readonly random?: (() => number) | undefined
}

/**
 * Telemetry for every silo built beneath it (and turn annotations for every log line
 * written beneath it).
 *
 * @since 0.2.0
 */
export const layer = (config: TelemetryConfig = {}): Layer.Layer<never> => {
  const metrics = config.metrics !== false
  const timeOneTurnIn = typeof config.metrics === "object" ? config.metrics.timeOneTurnIn ?? 8 : 8
  const ratio = config.tracing === undefined ? undefined : clampRatio(config.tracing.sampleRatio ?? 1)
  const observer = Layer.effect(
    SiloObserver,
    Effect.gen(function*() {
      // A profiler beneath this layer (`Profiler.layer`) hears of every turn too.
      const listeners = [...(yield* TurnListeners), ...(config.onTurn === undefined ? [] : [config.onTurn])]
      const onTurn: OnTurn | undefined = listeners.length === 0 ? undefined : listeners.length === 1 ? listeners[0] :
        (type, message, key, millis, failed) => {
          for (const listener of listeners) listener(type, message, key, millis, failed)
        }
      const options: SiloInstruments.InstrumentOptions = {
        metrics,
        timeOneTurnIn,
        sampleRatio: ratio,
        onTurn,
        random: config.random ?? Math.random
      }
      return (router: LocalRouter) => SiloInstruments.make(router, options)
    })
  )
  const processMetrics = metrics ?
    Layer.effectDiscard(Effect.gen(function*() {
      const registrations = new Registrations(yield* Effect.context<never>())
      const stop = ProcessMetrics.registerAll(registrations)
      yield* Effect.addFinalizer(() =>
        Effect.sync(() => {
          stop()
          registrations.removeAll()
        })
      )
    })) :
    Layer.empty
  return Layer.mergeAll(observer, processMetrics, loggers(config.logs))
}

const clampRatio = (ratio: number): number => Number.isFinite(ratio) ? Math.min(1, Math.max(0, ratio)) : 0

/** The loggers in place, annotated; or a JSON, logfmt or pretty console logger, annotated. */
const loggers = (logs: TelemetryConfig["logs"]): Layer.Layer<never> => {
  if (logs === false) return Layer.empty
  const options = logs ?? {}
  const format = options.format ?? "keep"
  if (format !== "keep") {
    const base = format === "json" ? Logger.consoleJson : format === "logfmt" ? Logger.consoleLogFmt : Logger.consolePretty()
    return Logger.layer([TurnLogs.annotate(base, options)])
  }
  return Layer.effect(
    Logger.CurrentLoggers,
    Effect.gen(function*() {
      const annotated = new Set<Logger.Logger<unknown, any>>()
      for (const logger of yield* Logger.CurrentLoggers) annotated.add(TurnLogs.annotate(logger, options))
      return annotated as ReadonlySet<Logger.Logger<unknown, any>>
    })
  )
}

/**
 * The process-wide part of the metric catalog (transport, stores, membership, reminders):
 * cells the code updates whether or not telemetry is on (an add on a field, beside I/O that
 * costs microseconds), which `Telemetry.layer` registers in effect's metric registry while
 * it has metrics on. Cells made later (a store kind first used after the layer started)
 * are registered as they appear.
 *
 * @internal
 */
import { type Cause, Context, Effect, type Exit, Tracer } from "effect"
import * as Attributes from "../Attributes.ts"
import * as Catalog from "../MetricCatalog.ts"
import { type MetricDefinition } from "../MetricCatalog.ts"
import { CounterCell, HistogramCell, type Registrations } from "./Cells.ts"

type Entry =
  | { readonly kind: "counter"; readonly definition: MetricDefinition; readonly attributes: Record<string, string>; readonly read: () => number }
  | { readonly kind: "gauge"; readonly definition: MetricDefinition; readonly attributes: Record<string, string>; readonly read: () => number }
  | { readonly kind: "histogram"; readonly definition: MetricDefinition; readonly attributes: Record<string, string>; readonly cell: HistogramCell }

const entries: Array<Entry> = []
const byKey = new Map<string, CounterCell | HistogramCell>()
const listeners = new Set<Registrations>()

const keyOf = (definition: MetricDefinition, attributes: Record<string, string>): string =>
  `${definition.name}${JSON.stringify(attributes)}`

const add = (entry: Entry): void => {
  entries.push(entry)
  for (const registrations of listeners) register(registrations, entry)
}

const register = (registrations: Registrations, entry: Entry): void => {
  if (entry.kind === "histogram") registrations.histogram(entry.definition, entry.attributes, entry.cell)
  else if (entry.kind === "counter") registrations.counter(entry.definition, entry.attributes, entry.read)
  else registrations.gauge(entry.definition, entry.attributes, entry.read)
}

/** The process-wide counter of `definition` with `attributes`, made on first use. @internal */
export const counter = (definition: MetricDefinition, attributes: Record<string, string> = {}): CounterCell => {
  const key = keyOf(definition, attributes)
  let cell = byKey.get(key) as CounterCell | undefined
  if (cell === undefined) {
    const made = new CounterCell()
    byKey.set(key, made)
    add({ kind: "counter", definition, attributes, read: () => made.value })
    cell = made
  }
  return cell
}

/** The process-wide histogram of `definition` with `attributes` (milliseconds), made on first use. @internal */
export const histogram = (definition: MetricDefinition, attributes: Record<string, string> = {}): HistogramCell => {
  const key = keyOf(definition, attributes)
  let cell = byKey.get(key) as HistogramCell | undefined
  if (cell === undefined) {
    cell = new HistogramCell(Catalog.durationBoundsMillis)
    byKey.set(key, cell)
    add({ kind: "histogram", definition, attributes, cell })
  }
  return cell
}

/** A gauge read at export time. Registering the same definition and attributes twice keeps the first. @internal */
export const gauge = (definition: MetricDefinition, attributes: Record<string, string>, read: () => number): void => {
  const key = keyOf(definition, attributes)
  if (byKey.has(key)) return
  byKey.set(key, new CounterCell())
  add({ kind: "gauge", definition, attributes, read })
}

/** Registers every process-wide cell, now and as they appear, until the returned function is called. @internal */
export const registerAll = (registrations: Registrations): () => void => {
  for (const entry of entries) register(registrations, entry)
  listeners.add(registrations)
  return () => listeners.delete(registrations)
}

// ---------------------------------------------------------------------------
// The cells other modules update

/** @internal */
export const framesIn = counter(Catalog.transportFramesTotal, { direction: "in" })
/** @internal */
export const framesOut = counter(Catalog.transportFramesTotal, { direction: "out" })
/** @internal */
export const bytesIn = counter(Catalog.transportBytesTotal, { direction: "in" })
/** @internal */
export const bytesOut = counter(Catalog.transportBytesTotal, { direction: "out" })
/** @internal */
export const callsInFlight = new CounterCell()
gauge(Catalog.transportCallsInFlight, {}, () => callsInFlight.value)
/** @internal */
export const connectionsOutbound = new CounterCell()
gauge(Catalog.transportConnections, { direction: "outbound" }, () => connectionsOutbound.value)
/** @internal */
export const connectionsInbound = new CounterCell()
gauge(Catalog.transportConnections, { direction: "inbound" }, () => connectionsInbound.value)
/** @internal */
export const failovers = counter(Catalog.clusterFailoversTotal)
/** @internal */
export const reminderTicksOk = counter(Catalog.reminderTicksTotal, { outcome: "ok" })
/** @internal */
export const reminderTicksRetry = counter(Catalog.reminderTicksTotal, { outcome: "retry" })
/** @internal */
export const reminderTicksDeadLetter = counter(Catalog.reminderTicksTotal, { outcome: "dead_letter" })
/** @internal */
export const streamEventsPublished = counter(Catalog.streamEventsTotal, { outcome: "published" })
/** @internal */
export const streamEventsDelivered = counter(Catalog.streamEventsTotal, { outcome: "delivered" })
/** @internal */
export const streamEventsDropped = counter(Catalog.streamEventsTotal, { outcome: "dropped" })
/** @internal */
export const streamEventsFailed = counter(Catalog.streamEventsTotal, { outcome: "failed" })
/** Milliseconds from a tick's due time to its first attempt. @internal */
export const reminderTickLag = histogram(Catalog.reminderTickLag)

/**
 * Times a store's operation into `quark_store_operation_duration_seconds` and, when the
 * caller's trace is sampled, runs it inside a span `quark.store <operation>` (an unsampled
 * or absent trace costs no span). The cells are looked up once: a store wraps every call of
 * one operation with the function returned (the lookup by key costs more than the timing).
 * `isError` says which failures count in `quark_store_operation_errors_total` (a store's
 * version conflict is an answer, not a failure of the store); default: every failure.
 *
 * @internal
 */
export const storeOperationTimer = (
  store: string,
  operation: string,
  isError: (cause: Cause.Cause<unknown>) => boolean = anyFailure
): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> => {
  const cell = histogram(Catalog.storeOperationDuration, { store, operation })
  const errors = counter(Catalog.storeOperationErrorsTotal, { store, operation })
  return (effect) => timed(cell, errors, store, operation, effect, isError)
}

/**
 * {@link storeOperationTimer} for an operation that completes in one synchronous step (the
 * memory store's): `body` runs inside the fiber and is timed with two clock reads, without
 * the continuation an effect's end needs (which costs more than such an operation). Under a
 * sampled trace it takes the general path, span included.
 *
 * @internal
 */
export const syncStoreOperationTimer = (
  store: string,
  operation: string,
  isError: (cause: Cause.Cause<unknown>) => boolean = anyFailure
): <A, E>(body: () => Exit.Exit<A, E>) => Effect.Effect<A, E> => {
  const cell = histogram(Catalog.storeOperationDuration, { store, operation })
  const errors = counter(Catalog.storeOperationErrorsTotal, { store, operation })
  return <A, E>(body: () => Exit.Exit<A, E>): Effect.Effect<A, E> =>
    Effect.withFiber((fiber) => {
      const parent = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
      if (parent !== undefined && parent.sampled) return timed(cell, errors, store, operation, Effect.suspend(body), isError)
      const startedAt = performance.now()
      const exit = body()
      cell.observe(performance.now() - startedAt)
      if (exit._tag === "Failure" && isError(exit.cause)) errors.value++
      return exit
    })
}

const anyFailure = (_cause: Cause.Cause<unknown>): boolean => true

const timed = <A, E, R>(
  cell: HistogramCell,
  errors: CounterCell,
  store: string,
  operation: string,
  effect: Effect.Effect<A, E, R>,
  isError: (cause: Cause.Cause<unknown>) => boolean
): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const startedAt = performance.now()
    const parent = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    const run = parent !== undefined && parent.sampled ?
      Effect.withSpan(effect, `quark.store ${operation}`, {
        captureStackTrace: false,
        attributes: { [Attributes.store]: store, [Attributes.storeOperation]: operation }
      }) :
      effect
    return Effect.onExit(run, (exit) => {
      cell.observe(performance.now() - startedAt)
      if (exit._tag === "Failure" && isError(exit.cause)) errors.value++
      return Effect.void
    })
  })

/**
 * Times every operation of the built-in stores into
 * `quark_store_operation_duration_seconds{store,operation}` (see `MetricCatalog`): each
 * provider wraps what it returns, so the time is the caller's, batching included (a
 * PostgreSQL write waits for its batch). The operation names are a fixed set, listed in
 * {@link StoreOperation}; the store label is the provider's kind, never the store's name
 * (names are the application's, kinds are bounded).
 *
 * A version conflict is the answer of a compare-and-set, not a failure of the store, and an
 * interrupted caller is not one either: neither counts in
 * `quark_store_operation_errors_total`.
 *
 * @internal
 */
import type { Cause, Effect, Exit } from "effect"
import * as ProcessMetrics from "../../Telemetry/internal/ProcessMetrics.ts"
import type { Journal } from "../Journal.ts"
import type { StateStore } from "../StateStore.ts"

/** @internal */
export type StoreKind = "memory" | "redis" | "postgres"

/** Every operation label the stores use. @internal */
export type StoreOperation =
  | "state.read"
  | "state.write"
  | "state.clear"
  | "journal.append"
  | "journal.read"
  | "journal.last_sequence"
  | "snapshot.save"
  | "snapshot.load"
  | "reminder.get"
  | "reminder.put"
  | "reminder.remove"
  | "reminder.list"
  | "reminder.due"
  | "reminder.history_append"
  | "reminder.history"
  | "dead_letter.add"
  | "dead_letter.list"
  | "dead_letter.remove"

const conflicts = new Set(["StateConflict", "JournalConflict"])

/** A failure of the store: a defect, or an error other than a version conflict. */
const storeFailed = (cause: Cause.Cause<unknown>): boolean => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Die") return true
    if (reason._tag === "Fail" && !conflicts.has((reason.error as { readonly _tag?: unknown } | null)?._tag as string)) return true
  }
  return false
}

/** The timer of one operation of one store kind (its cells looked up now, once). @internal */
export const timer = (
  store: StoreKind,
  operation: StoreOperation
): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> =>
  ProcessMetrics.storeOperationTimer(store, operation, storeFailed)

/** The timer of one operation that completes in one synchronous step (the memory store's). @internal */
export const syncTimer = (
  store: StoreKind,
  operation: StoreOperation
): <A, E>(body: () => Exit.Exit<A, E>) => Effect.Effect<A, E> =>
  ProcessMetrics.syncStoreOperationTimer(store, operation, storeFailed)

/** `state` with every operation timed. @internal */
export const instrumentState = (store: StoreKind, state: StateStore): StateStore => {
  const read = timer(store, "state.read")
  const write = timer(store, "state.write")
  const clear = timer(store, "state.clear")
  return {
    name: state.name,
    read: (key) => read(state.read(key)),
    write: (key, data, expectedVersion) => write(state.write(key, data, expectedVersion)),
    clear: (key, expectedVersion) => clear(state.clear(key, expectedVersion))
  }
}

/** `journal` with every operation timed. @internal */
export const instrumentJournal = (store: StoreKind, journal: Journal): Journal => {
  const append = timer(store, "journal.append")
  const read = timer(store, "journal.read")
  const lastSequence = timer(store, "journal.last_sequence")
  const saveSnapshot = timer(store, "snapshot.save")
  const loadSnapshot = timer(store, "snapshot.load")
  return {
    name: journal.name,
    append: (key, expectedSequence, events) => append(journal.append(key, expectedSequence, events)),
    read: (key, from, to) => read(journal.read(key, from, to)),
    lastSequence: (key) => lastSequence(journal.lastSequence(key)),
    saveSnapshot: (key, snapshot) => saveSnapshot(journal.saveSnapshot(key, snapshot)),
    loadSnapshot: (key) => loadSnapshot(journal.loadSnapshot(key))
  }
}

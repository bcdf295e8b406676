/**
 * Event-sourced actor state, as Akka Persistence: the state is a pure fold of events; a
 * handler appends events atomically at the expected sequence number; every `snapshotEvery`
 * events a snapshot is stored, and activation is the latest snapshot plus the events after
 * it.
 *
 * ```ts
 * const ledger = yield* EventSourced.make("ledger", {
 *   event: Entry, // a Schema (a union of tagged events, say)
 *   state: Balance,
 *   initial: { balance: 0 },
 *   reduce: (state, entry) => ({ balance: state.balance + entry.amount }),
 *   snapshotEvery: 100
 * })
 * // in a handler:
 * const next = yield* ledger.append(entry) // JournalConflict if another writer appended
 * ```
 *
 * An append that conflicts appends nothing and leaves the in-memory state as it was: this
 * activation is stale (another activation wrote), and its supervisor's restart replays.
 * A stored event or snapshot that does not decode fails the activation with
 * `StateDecodeError`. A failed snapshot write is logged and skipped: snapshots only speed
 * up activation.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { ActorContext } from "../Actor/ActorContext.ts"
import { type JournalConflict, StateDecodeError, type StoreError, type UnknownStore } from "./PersistenceError.ts"
import { formatKey, type StateKey } from "./StateStore.ts"
import { Stores } from "./Stores.ts"

type JsonSchema = Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }

/**
 * @since 0.1.0
 */
export interface Options<E extends JsonSchema, S extends JsonSchema> {
  readonly event: E
  readonly state: S
  readonly initial: S["Type"]
  /** Pure: the state after one more event. */
  readonly reduce: (state: S["Type"], event: E["Type"]) => S["Type"]
  /** Store a snapshot every this many events. Default 100; 0 disables snapshots. */
  readonly snapshotEvery?: number | undefined
  /** The store's name. Default "default". */
  readonly store?: string | undefined
}

/**
 * One event-sourced journal of one activation.
 *
 * @since 0.1.0
 */
export interface EventSourced<E, S> {
  readonly state: Effect.Effect<S>
  /** The sequence number of the last event applied (0: none). */
  readonly sequence: Effect.Effect<number>
  /** Appends the events atomically after the last one this activation saw; returns the new state. */
  readonly append: (...events: ReadonlyArray<E>) => Effect.Effect<S, JournalConflict | StoreError>
}

/**
 * Declares a journal of the current activation and recovers its state: the latest
 * snapshot, then the events after it.
 *
 * @since 0.1.0
 */
export const make = <E extends JsonSchema, S extends JsonSchema>(
  name: string,
  options: Options<E, S>
): Effect.Effect<
  EventSourced<E["Type"], S["Type"]>,
  StateDecodeError | StoreError | UnknownStore,
  ActorContext
> =>
  Effect.gen(function*() {
    const context = yield* ActorContext
    const { journal } = yield* Effect.flatMap(Stores, (stores) => stores.get(options.store ?? "default"))
    const key: StateKey = { type: context.address.type, id: context.address.id, record: name }
    const eventCodec = Schema.fromJsonString(Schema.toCodecJson(options.event))
    const stateCodec = Schema.fromJsonString(Schema.toCodecJson(options.state))
    const decodeFailed = (what: string) => (error: Schema.SchemaError) =>
      new StateDecodeError({ key: `${formatKey(key)}${what}`, reason: error.message })
    const snapshotEvery = options.snapshotEvery ?? 100

    let state: S["Type"] = options.initial
    let sequence = 0
    const snapshot = yield* journal.loadSnapshot(key)
    if (snapshot !== undefined) {
      state = yield* Effect.mapError(Schema.decodeEffect(stateCodec)(snapshot.data), decodeFailed("@snapshot"))
      sequence = snapshot.sequence
    }
    for (const entry of yield* journal.read(key, sequence + 1)) {
      const event = yield* Effect.mapError(
        Schema.decodeEffect(eventCodec)(entry.data),
        decodeFailed(`#${entry.sequence}`)
      )
      state = options.reduce(state, event)
      sequence = entry.sequence
    }

    const encodeEvent = Schema.encodeEffect(eventCodec)
    const encodeState = Schema.encodeEffect(stateCodec)
    const saveSnapshot = (at: number, value: S["Type"]) =>
      Effect.flatMap(Effect.orDie(encodeState(value)), (data) => journal.saveSnapshot(key, { sequence: at, data: data as string })).pipe(
        Effect.catch((error) => Effect.logWarning(`snapshot of ${formatKey(key)} at ${at} skipped`, error))
      )

    const append = (...events: ReadonlyArray<E["Type"]>) =>
      Effect.gen(function*() {
        if (events.length === 0) return state
        const encoded = yield* Effect.orDie(Effect.forEach(events, (event) => encodeEvent(event)))
        const before = sequence
        const next = events.reduce(options.reduce, state)
        const last = yield* journal.append(key, before, encoded as ReadonlyArray<string>)
        state = next
        sequence = last
        if (snapshotEvery > 0 && Math.floor(last / snapshotEvery) > Math.floor(before / snapshotEvery)) {
          yield* saveSnapshot(last, next)
        }
        return next
      })

    return {
      state: Effect.sync(() => state),
      sequence: Effect.sync(() => sequence),
      append
    }
  })

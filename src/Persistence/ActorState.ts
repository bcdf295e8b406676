/**
 * Typed, version-checked actor state, as Orleans' `IPersistentState`. An implementation
 * declares its records in its activation effect; each loads there, before the first turn:
 *
 * ```ts
 * const balance = yield* ActorState.make("balance", {
 *   schema: Schema.Struct({ amount: Schema.Number }),
 *   initial: () => ({ amount: 0 }),
 *   store: "redis" // default "default"
 * })
 * // in a handler:
 * yield* balance.update((b) => ({ amount: b.amount + 10 }))
 * yield* balance.write // StateConflict if someone else wrote since we read
 * ```
 *
 * The value is encoded with its Schema to JSON text (`Schema.toCodecJson`), never by
 * reflection. Each record carries the version it was read or last written at; a write at
 * a stale version fails with `StateConflict` and overwrites nothing. A stored record that
 * does not decode fails the activation with `StateDecodeError` and is left untouched.
 *
 * With `writeAfterTurn: true` a changed record is written at the end of every turn, before
 * the reply; if that write fails the turn dies (the caller gets `ActorDefect`) and the
 * supervisor decides, so a restart reloads what is stored.
 *
 * In a cluster, a record takes part in live migration on its own (see `Migration`): an
 * activation moved to another silo hands each record's value, version and whether it was
 * changed since its last write to its next activation, which then does not read the store;
 * its next write is version-checked against the handed version, so a write made elsewhere
 * meanwhile still fails with `StateConflict`.
 *
 * @since 0.1.0
 */
import { Effect, Schema } from "effect"
import { ActorContext } from "../Actor/ActorContext.ts"
import type { Activation } from "../Actor/internal/Activation.ts"
import type { ActivationContext } from "../Actor/internal/ActivationContext.ts"
import * as Handover from "../Actor/internal/Handover.ts"
import { type StateConflict, StateDecodeError, type StoreError, type UnknownStore } from "./PersistenceError.ts"
import { formatKey, type StateKey } from "./StateStore.ts"
import { Stores } from "./Stores.ts"

/**
 * Options of a state record.
 *
 * @since 0.1.0
 */
export interface Options<S extends Schema.Top> {
  readonly schema: S
  /** The value of a record never written. */
  readonly initial: () => S["Type"]
  /** The store's name. Default "default". */
  readonly store?: string | undefined
  /** Write the record at the end of each turn that changed it. Default false. */
  readonly writeAfterTurn?: boolean | undefined
}

/**
 * One state record of one activation.
 *
 * @since 0.1.0
 */
export interface ActorState<A> {
  /** The current (in-memory) value. */
  readonly get: Effect.Effect<A>
  /** Replaces the in-memory value; `write` persists it. */
  readonly set: (value: A) => Effect.Effect<void>
  readonly update: (f: (value: A) => A) => Effect.Effect<A>
  /** Persists the value at the version last read or written. */
  readonly write: Effect.Effect<void, StateConflict | StoreError>
  /** Deletes the stored record (version-checked) and resets the value to `initial`. */
  readonly clear: Effect.Effect<void, StateConflict | StoreError>
  /** The stored version this activation last saw (0: never written). */
  readonly version: Effect.Effect<number>
}

/**
 * Declares and loads a state record of the current activation.
 *
 * @since 0.1.0
 */
export const make = <S extends Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }>(
  record: string,
  options: Options<S>
): Effect.Effect<
  ActorState<S["Type"]>,
  StateDecodeError | StoreError | UnknownStore,
  ActorContext
> =>
  Effect.gen(function*() {
    const context = yield* ActorContext
    const store = yield* Effect.flatMap(Stores, (stores) => stores.get(options.store ?? "default"))
    const key: StateKey = { type: context.address.type, id: context.address.id, record }
    const codec = Schema.fromJsonString(Schema.toCodecJson(options.schema))
    const encode = Schema.encodeEffect(codec)
    const act = (context as ActivationContext).activation
    const participant = `$state/${options.store ?? "default"}/${record}`
    let value: S["Type"] = options.initial()
    let version = 0
    let dirty = false
    // Only a clustered silo moves activations: the size is what a move would carry (a rebalancer's cost).
    const noteSize = act.router.remote === undefined ?
      undefined :
      (text: string) => Handover.noteSize(act, participant, text.length)
    const handed = yield* rehydrate(act, participant, codec)
    if (handed !== undefined) {
      ;({ dirty, value, version } = handed)
    } else {
      const stored = yield* store.state.read(key)
      if (stored !== undefined) {
        value = yield* Schema.decodeEffect(codec)(stored.data).pipe(
          Effect.mapError((error) => new StateDecodeError({ key: formatKey(key), reason: error.message }))
        )
        version = stored.version
        noteSize?.(stored.data)
      }
    }

    const write = Effect.suspend(() =>
      Effect.flatMap(Effect.orDie(encode(value)), (data) =>
        Effect.map(store.state.write(key, data as string, version), (next) => {
          version = next
          dirty = false
          noteSize?.(data as string)
        }))
    )
    const state: ActorState<S["Type"]> = {
      get: Effect.sync(() => value),
      set: (next) =>
        Effect.sync(() => {
          value = next
          dirty = true
        }),
      update: (f) =>
        Effect.sync(() => {
          value = f(value)
          dirty = true
          return value
        }),
      write,
      clear: Effect.suspend(() =>
        Effect.map(store.state.clear(key, version), () => {
          version = 0
          value = options.initial()
          dirty = false
        })
      ),
      version: Effect.sync(() => version)
    }
    if (options.writeAfterTurn === true) {
      act.afterTurn(Effect.suspend(() => dirty ? Effect.orDie(write) : Effect.void))
    }
    // Only a clustered silo moves activations.
    if (act.router.remote !== undefined) {
      Handover.participate(
        act,
        participant,
        Effect.suspend(() => Effect.map(encode(value), (data) => encodeHanded({ data: data as string, version, dirty })))
      )
    }
    return state
  })

/** A record as a moved activation hands it over: its stored form, version, and whether it changed since. */
const Handed = Schema.fromJsonString(Schema.Struct({ data: Schema.String, version: Schema.Number, dirty: Schema.Boolean }))
const encodeHanded = Schema.encodeSync(Handed)
const decodeHanded = Schema.decodeUnknownExit(Handed)

/**
 * The record handed to `act` under `participant`, decoded; `undefined` when none was, or
 * when it does not decode (logged): the store is read instead, and the version check
 * still guards the next write.
 */
const rehydrate = <A>(
  act: Activation,
  participant: string,
  codec: Schema.Codec<A, string>
): Effect.Effect<{ readonly value: A; readonly version: number; readonly dirty: boolean } | undefined> =>
  Effect.suspend(() => {
    const text = Handover.take(act, participant)
    if (text === undefined) return Effect.succeed(undefined)
    const exit = decodeHanded(text)
    const fallBack = (reason: string) =>
      Effect.as(
        Effect.logWarning(`${act.slot.name}/${act.id}: the handed-over ${participant} did not decode (${reason}); reading the store`),
        undefined
      )
    if (exit._tag === "Failure") return fallBack(String(exit.cause))
    const { data, dirty, version } = exit.value
    return Schema.decodeEffect(codec)(data).pipe(
      Effect.map((value) => ({ value, version, dirty })),
      Effect.catch((error) => fallBack(error.message))
    )
  })

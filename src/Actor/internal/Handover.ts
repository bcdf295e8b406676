/**
 * The actor side of a live migration: what an activation hands to its next activation on
 * another silo (see `Migration.ts` for the public API, and `Cluster/internal/Migration.ts`
 * for the moves themselves).
 *
 * - **Participants.** An incarnation's activation effect registers participants, by name:
 *   each an effect that encodes (to JSON text) the in-memory state it hands over. They are
 *   kept per incarnation scope, so a restart's activation effect starts from none.
 * - **Dehydration** runs once the activation's last turn and its finalizers have run (so a
 *   record a finalizer wrote hands over its new version), from `Lifecycle.afterStop`, when a
 *   hand-over was asked for (`expect`): the deactivation then waits for the move to finish
 *   before its queue is handed on.
 * - **Rehydration.** The next activation gets the participants' texts attached before its
 *   activation effect runs; each is read (and consumed) by name.
 *
 * Nothing here costs anything to an activation without participants, nor on the turn path:
 * the stop hook is one `Map.size` test per deactivation.
 *
 * @internal
 */
import { Cause, Effect, Schema } from "effect"
import type { Activation } from "./Activation.ts"
import type { LocalRouter } from "./LocalRouter.ts"

/** What one activation hands over: each participant's JSON text, by name. @internal */
export type HandedState = Readonly<Record<string, string>>

interface Participant {
  readonly name: string
  /** The participant's state as JSON text. */
  readonly dehydrate: Effect.Effect<string, unknown>
}

/** Participants per incarnation scope (the activation itself for the first incarnation). */
const participants = new WeakMap<object, Array<Participant>>()

/** The state handed to an activation, not yet read by its participants. */
const handed = new WeakMap<Activation, Record<string, string>>()

/**
 * Activations whose deactivation hands them over: the hook runs after their finalizers, in
 * place of the end of the stop, and must finish it (see `Lifecycle.finishStop`).
 */
const hooks = new Map<Activation, (act: Activation) => void>()

/** Registers (or replaces) participant `name` of `act`'s current incarnation. @internal */
export const participate = (act: Activation, name: string, dehydrate: Effect.Effect<string, unknown>): void => {
  const scope = act.scope
  let list = participants.get(scope)
  if (list === undefined) participants.set(scope, list = [])
  const at = list.findIndex((participant) => participant.name === name)
  if (at >= 0) list[at] = { name, dehydrate }
  else list.push({ name, dehydrate })
}

/** The size in bytes of each participant's state, as last read or written (per incarnation scope). */
const sizes = new WeakMap<object, Map<string, number>>()

/**
 * Notes that participant `name` of `act` holds about `bytes` of state (its record's encoded
 * size at its last read or write): what moving the activation would carry (see
 * `stateBytes`, the rebalancer's cost).
 *
 * @internal
 */
export const noteSize = (act: Activation, name: string, bytes: number): void => {
  const scope = act.scope
  let noted = sizes.get(scope)
  if (noted === undefined) sizes.set(scope, noted = new Map())
  noted.set(name, bytes)
}

/** The bytes of state noted for `act`'s current incarnation, or `undefined` when none was. @internal */
export const stateBytes = (act: Activation): number | undefined => {
  const noted = sizes.get(act.scope)
  if (noted === undefined) return undefined
  let total = 0
  for (const bytes of noted.values()) total += bytes
  return total
}

/** Whether `act`'s current incarnation has anything to hand over. @internal */
export const hasParticipants = (act: Activation): boolean => (participants.get(act.scope)?.length ?? 0) > 0

/**
 * Runs the participants of `act`'s current incarnation; `undefined` when it has none. A
 * participant that fails (or whose value does not encode) is left out with a warning: its
 * next activation starts as without a hand-over (from its store, or afresh).
 *
 * @internal
 */
export const dehydrate = (act: Activation): Effect.Effect<HandedState | undefined> =>
  Effect.suspend(() => {
    const list = participants.get(act.scope)
    if (list === undefined || list.length === 0) return Effect.succeed(undefined)
    const state: Record<string, string> = {}
    return Effect.as(
      Effect.forEach(list, (participant) =>
        participant.dehydrate.pipe(
          Effect.map((text) => void (state[participant.name] = text)),
          Effect.catchCause((cause) =>
            Effect.logWarning(
              `${act.slot.name}/${act.id}: migration participant "${participant.name}" failed to dehydrate; ` +
                `its next activation starts without it`,
              Cause.pretty(cause)
            )
          )
        ), { discard: true }),
      state
    )
  })

/** Attaches what `act`'s participants will read in its activation effect. @internal */
export const attach = (act: Activation, state: HandedState): void => {
  handed.set(act, { ...state })
}

/** Takes (once) what was handed to participant `name` of `act`, if anything. @internal */
export const take = (act: Activation, name: string): string | undefined => {
  const state = handed.get(act)
  if (state === undefined || !Object.hasOwn(state, name)) return undefined
  const text = state[name]
  delete state[name]
  return text
}

/** Asks that `act`'s stop, after its finalizers, call `hook` instead of handing its queue on. @internal */
export const expect = (act: Activation, hook: (act: Activation) => void): void => {
  hooks.set(act, hook)
}

/** Withdraws a hook that did not run (the activation stopped another way). @internal */
export const forget = (act: Activation): void => {
  hooks.delete(act)
}

/** The hook of `act`'s stop, taken once; called by `Lifecycle.afterStop`. @internal */
export const hookOf = (act: Activation): ((act: Activation) => void) | undefined => {
  if (hooks.size === 0) return undefined
  const hook = hooks.get(act)
  if (hook !== undefined) hooks.delete(act)
  return hook
}

/**
 * Per clustered silo: what to do with a stopping activation that has participants and no
 * hook (see `movedAway`); `true` when it took over the end of the stop.
 */
const movers = new WeakMap<LocalRouter, (act: Activation) => boolean>()

/** Installs `router`'s mover (see `movedAway`). @internal */
export const setMover = (router: LocalRouter, mover: (act: Activation) => boolean): void => {
  movers.set(router, mover)
}

/**
 * Called by `Lifecycle.afterStop` on a clustered silo: an activation with participants that
 * stops because its address now belongs to another silo (a ring change, a release) is
 * dehydrated by the silo's mover, which keeps the state for the new owner to ask for.
 * `false` (the stop goes on as usual) when it has no participants or nothing took it.
 *
 * @internal
 */
export const movedAway = (act: Activation): boolean => {
  if (!hasParticipants(act)) return false
  const mover = movers.get(act.router)
  return mover !== undefined && mover(act)
}

const HandedJson = Schema.fromJsonString(Schema.Record(Schema.String, Schema.String))
const encodeText = Schema.encodeSync(HandedJson)
const decodeText = Schema.decodeUnknownExit(HandedJson)
const encoder = new TextEncoder()
const decoder = new TextDecoder()

/** The bytes a hand-over travels as between silos. @internal */
export const encode = (state: HandedState): Uint8Array => encoder.encode(encodeText(state))

/** The state in `bytes`, or `undefined` if they are empty or unreadable. @internal */
export const decode = (bytes: Uint8Array): HandedState | undefined => {
  if (bytes.length === 0) return undefined
  const exit = decodeText(decoder.decode(bytes))
  return exit._tag === "Success" ? exit.value : undefined
}

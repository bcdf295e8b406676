/**
 * Handing an actor's in-memory state to its next activation when it moves to another silo
 * (a live migration, or a hashed address handed over on a ring change): Orleans' grain
 * migration participants (`OnDehydrate` / `OnRehydrate`), typed by a Schema. Opt-in per
 * type, in its activation effect:
 *
 * ```ts
 * const Cart = Schema.Struct({ items: Schema.Array(Schema.String) })
 *
 * export const CartLive = CartActor.toLayer(Effect.gen(function*() {
 *   const handed = yield* Migration.rehydrated("cart", Cart) // Option: some after a move
 *   const cart = yield* Ref.make(Option.getOrElse(handed, () => ({ items: [] })))
 *   yield* Migration.onDehydrate("cart", Cart, Ref.get(cart))
 *   return CartActor.of({ ... })
 * }))
 * ```
 *
 * The rule:
 * - `onDehydrate(name, schema, effect)` registers a participant of this incarnation. When
 *   the activation is moved, its last turn ends, its finalizers run, and then each
 *   participant's effect runs and its value is encoded with its Schema (to JSON text, as
 *   `ActorState` stores it) and sent to the silo that takes the actor over, before that
 *   silo activates it. A deactivation that is not a move (idle, shutdown) runs none.
 * - `rehydrated(name, schema)` in the next activation effect: `Option.some` of the value
 *   handed over under `name` (read once), `Option.none()` when the activation did not come
 *   from a move, or the previous one had no such participant, or its effect failed (a
 *   failed participant is logged on the old silo and left out).
 * - `ActorState` records take part on their own: a moved activation gets each record's
 *   value and version from its previous activation instead of reading the store (one read
 *   fewer per record), and its next write is version-checked against that version as if it
 *   had read it.
 * - Without a participant, a move is a deactivation here and an activation there: the
 *   finalizers write what must survive and the next activation reads it.
 *
 * On a silo that is not part of a cluster nothing can move, and `onDehydrate` registers
 * nothing.
 *
 * @since 0.2.0
 */
import { Effect, Option, Schema } from "effect"
import { ActorContext } from "./ActorContext.ts"
import { ActorAddress } from "./ActorAddress.ts"
import type { ActivationContext } from "./internal/ActivationContext.ts"
import * as Handover from "./internal/Handover.ts"

/**
 * A value handed over under `name` did not decode with the Schema the new activation gave
 * (the two silos run different versions of the type, say). The activation effect may catch
 * it and start as without a hand-over.
 *
 * @since 0.2.0
 */
export class RehydrateError extends Schema.TaggedError<RehydrateError>()("RehydrateError", {
  address: ActorAddress,
  name: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.address.type}/${this.address.id}: the state handed over as "${this.name}" did not decode: ${this.reason}`
  }
}

type Codec = Schema.Top & { readonly DecodingServices: never; readonly EncodingServices: never }

/** Names starting with `$` are Quark's own (`ActorState` records take part under them). */
const checkName = (name: string): void => {
  if (name.length === 0 || name.startsWith("$")) {
    throw new Error(`Migration: participant names must be non-empty and must not start with "$", got "${name}"`)
  }
}

const activationOf = (context: ActorContext["Service"]) => (context as ActivationContext).activation

/**
 * Registers what this activation hands over if it is moved: `dehydrate`'s value, encoded
 * with `schema`, under `name` (a later registration under the same name replaces it).
 *
 * @since 0.2.0
 */
export const onDehydrate = <S extends Codec>(
  name: string,
  schema: S,
  dehydrate: Effect.Effect<S["Type"]>
): Effect.Effect<void, never, ActorContext> =>
  Effect.flatMap(ActorContext, (context) =>
    Effect.sync(() => {
      checkName(name)
      const act = activationOf(context)
      if (act.router.remote === undefined) return
      const encode = Schema.encodeEffect(Schema.fromJsonString(Schema.toCodecJson(schema)))
      Handover.participate(act, name, Effect.flatMap(dehydrate, (value) => encode(value) as Effect.Effect<string, unknown>))
    }))

/**
 * What the previous activation handed over under `name`, decoded with `schema`; `none`
 * when nothing was (see the module doc). Read once: a second read gives `none`.
 *
 * @since 0.2.0
 */
export const rehydrated = <S extends Codec>(
  name: string,
  schema: S
): Effect.Effect<Option.Option<S["Type"]>, RehydrateError, ActorContext> =>
  Effect.flatMap(ActorContext, (context) => {
    checkName(name)
    const act = activationOf(context)
    const text = Handover.take(act, name)
    if (text === undefined) return Effect.succeedNone
    return Schema.decodeEffect(Schema.fromJsonString(Schema.toCodecJson(schema)))(text).pipe(
      Effect.map(Option.some),
      Effect.mapError((error) => new RehydrateError({ address: act.address, name, reason: error.message }))
    )
  })

/**
 * A message sent by name rather than through a typed ref (`Silo.dispatch`, a reminder's
 * tick): the checks its untyped input needs, once per type and message, and then the call.
 *
 * Split in two so that a caller sending the same message many times (a reminder bucket,
 * every tick) looks the type and message up and builds the payload decoder once, and each
 * call is only the decode and the ask.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import { invalidIdReason } from "../ActorAddress.ts"
import { DeclaredError, type DispatchError, InvalidActorId, MessageDecodeError, UnknownActorType, UnknownMessage } from "../ActorError.ts"
import { type MessageEntry, messageEntry } from "./HostedType.ts"
import type { LocalRouter } from "./LocalRouter.ts"

/** One message of one type, ready to send to any id: its result is the handler's (decoded) success. */
export interface PreparedMessage {
  readonly entry: MessageEntry
  readonly send: (id: unknown, payload: unknown) => Effect.Effect<unknown, DispatchError>
  /** `send` for a valid id and a payload that is already the message's type (nothing to decode). */
  readonly sendDecoded: (id: string, payload: unknown) => Effect.Effect<unknown, DispatchError>
}

/**
 * Looks up `type` and `tag` (own properties and `Map`s only: they may come from the wire).
 * Fails with `UnknownActorType` or `UnknownMessage`.
 */
export const prepare = (
  router: LocalRouter,
  type: unknown,
  tag: unknown
): Effect.Effect<PreparedMessage, UnknownActorType | UnknownMessage> => {
  const slot = typeof type === "string" ? router.slots.get(type) : undefined
  if (slot?.registration === undefined) return Effect.fail(new UnknownActorType({ type: String(type) }))
  const entry = typeof tag === "string" ? messageEntry(slot.registration, tag) : undefined
  if (entry === undefined) return Effect.fail(new UnknownMessage({ type: slot.name, tag: String(tag) }))
  const decode = Schema.decodeUnknownEffect(entry.payloadSchema) as (input: unknown) => Effect.Effect<unknown, Schema.SchemaError>
  const isDeclared = Schema.is(entry.errorSchema)
  const encodeError = Schema.encodeUnknownEffect(entry.errorSchema) as (error: unknown) => Effect.Effect<unknown, Schema.SchemaError>
  const declaresErrors = entry.errorSchema.ast._tag !== "Never"
  const ask = (id: string, payload: unknown): Effect.Effect<unknown, DispatchError> => {
    const asked = router.ask(slot, id, entry, payload) as Effect.Effect<unknown, DispatchError>
    if (!declaresErrors) return asked
    return Effect.catch(asked, (error) =>
      isDeclared(error)
        ? Effect.flatMap(
          Effect.orDie(encodeError(error)),
          (encoded) => Effect.fail(new DeclaredError({ address: { type: slot.name, id }, tag: entry.tag, error: encoded }))
        )
        : Effect.fail(error))
  }
  const send = (id: unknown, input: unknown): Effect.Effect<unknown, DispatchError> => {
    // Untyped input: `{ id: 42 }` must not become a second activation beside `{ id: "42" }`.
    const reason = typeof id === "string" ? invalidIdReason(id) : `the id is a ${typeof id}, not a string`
    if (reason !== undefined) return Effect.fail(new InvalidActorId({ type: slot.name, id: String(id), reason }))
    // Nothing to decode (a tick of a message without a payload, say).
    if (!entry.hasPayload && input === undefined) return ask(id as string, undefined)
    const address = { type: slot.name, id: id as string }
    // A decoder that throws on what it is given (a getter that throws, a value deep enough to
    // overflow the stack) is bad input too, not a defect of the silo.
    const payload = Effect.suspend(() => decode(input)).pipe(
      Effect.mapError((error) => new MessageDecodeError({ address, tag: entry.tag, reason: error.message })),
      Effect.catchDefect((defect) =>
        Effect.fail(new MessageDecodeError({ address, tag: entry.tag, reason: String((defect as Error)?.message ?? defect) }))
      )
    )
    return Effect.flatMap(payload, (decoded) => ask(address.id, decoded))
  }
  return Effect.succeed({ entry, send, sendDecoded: ask })
}

/**
 * The sending side of remote calls, mirroring `Inbound`: a call made on a fiber becomes a
 * request envelope (the payload encoded once with the message's schema, the caller's
 * request context, call chain and trace parent) on the connection to the owner, and the
 * reply becomes the value or typed error the call would have ended in locally. Errors of
 * the transport arrive typed from the connection (`ActorUnavailable` not sent,
 * `OutcomeUnknown` written then lost, `CallTimeout`, `PayloadTooLarge`); a transport error
 * in a reply is mapped here, in one place.
 *
 * @internal
 */
import { Context, Effect, type Fiber, Tracer } from "effect"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import {
  ActorDefect,
  ActorUnavailable,
  MessageDecodeError,
  OutcomeUnknown,
  PayloadTooLarge,
  type SendError
} from "../../Actor/ActorError.ts"
import type { CallOptions } from "../../Actor/CallOptions.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import type { MessageEntry } from "../../Actor/internal/HostedType.ts"
import { chainOf, CurrentTurn } from "../../Actor/internal/Turn.ts"
import type { CallRequest } from "../../Transport/Connection.ts"
import type { EnvelopeContext, ReplyOutcome } from "../../Transport/Envelope.ts"
import { codecOf, decodeFailure } from "./MessageCodec.ts"
import type { Peers } from "./Peers.ts"

const noSilo = (slot: TypeSlot, id: string) => new ActorUnavailable({ address: { type: slot.name, id }, reason: "no silo is alive" })

/**
 * A call on its way out: the envelope fields, plus what its reply is decoded with, so that
 * one function decodes every reply (no closure per call).
 */
class OutboundRequest implements CallRequest {
  readonly target: ActorAddress
  readonly tag: string
  readonly payload: string
  readonly context: EnvelopeContext
  readonly chain: ReadonlyArray<ActorAddress>
  readonly trace: string | undefined
  readonly info: MessageEntry
  constructor(
    target: ActorAddress,
    info: MessageEntry,
    payload: string,
    context: EnvelopeContext,
    chain: ReadonlyArray<ActorAddress>,
    trace: string | undefined
  ) {
    this.target = target
    this.tag = info.tag
    this.payload = payload
    this.context = context
    this.chain = chain
    this.trace = trace
    this.info = info
  }
}

/** The envelope of a call from `fiber`, its payload encoded; a failure if it does not encode. */
const request = (
  fiber: Fiber.Fiber<unknown, unknown>,
  slot: TypeSlot,
  id: string,
  info: MessageEntry,
  payload: unknown
): OutboundRequest | MessageDecodeError => {
  let text: string
  try {
    // The JSON text goes into the frame as it is: no intermediate bytes.
    text = codecOf(info).payload.encodeText(payload)
  } catch (error) {
    return encodeError(slot, id, info, "the payload did not encode", error)
  }
  const outer = fiber.getRef(CurrentTurn)
  const context: EnvelopeContext = outer === undefined ?
    emptyContext :
    { requestId: String(outer.seq), correlationId: String(outer.correlation), metadata: outer.metadata }
  const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
  return new OutboundRequest(
    { type: slot.name, id },
    info,
    text,
    context,
    outer === undefined ? noChain : chainOf(outer),
    span === undefined ? undefined : `00-${span.traceId}-${span.spanId}-${span.sampled ? "01" : "00"}`
  )
}

/** Sends an ask made on `fiber` to `owner`. @internal */
export const send = (
  peers: Peers,
  fiber: Fiber.Fiber<unknown, unknown>,
  owner: string | undefined,
  slot: TypeSlot,
  id: string,
  info: MessageEntry,
  payload: unknown,
  options: CallOptions | undefined
): Effect.Effect<any, any> => {
  if (owner === undefined) return Effect.fail(noSilo(slot, id))
  const trace = slot.router.observer?.traceCall
  if (trace !== undefined) {
    // Built inside the client span, so that the envelope names it as the receiver's parent.
    const call = Effect.withFiber((inner) => sendNow(peers, inner, owner, slot, id, info, payload, options))
    return trace(Context.getOrUndefined(fiber.context, Tracer.ParentSpan), { type: slot.name, id }, info.tag, false, call)
  }
  return sendNow(peers, fiber, owner, slot, id, info, payload, options)
}

const sendNow = (
  peers: Peers,
  fiber: Fiber.Fiber<unknown, unknown>,
  owner: string,
  slot: TypeSlot,
  id: string,
  info: MessageEntry,
  payload: unknown,
  options: CallOptions | undefined
): Effect.Effect<any, any> => {
  const envelope = request(fiber, slot, id, info, payload)
  if (envelope instanceof MessageDecodeError) return Effect.fail(envelope)
  const timeout = options?.timeout ?? slot.options?.callTimeout
  return peers.get(owner).call(envelope, timeout === undefined ? undefined : { timeout }, decodeOutcome)
}

/**
 * Sends a one-way message made on `fiber`; a payload that does not encode is a defect
 * (`SendError` has no place for it). @internal
 */
export const sendOneWay = (
  peers: Peers,
  fiber: Fiber.Fiber<unknown, unknown>,
  owner: string | undefined,
  slot: TypeSlot,
  id: string,
  info: MessageEntry,
  payload: unknown
): Effect.Effect<void, SendError> => {
  if (owner === undefined) return Effect.fail(noSilo(slot, id))
  const trace = slot.router.observer?.traceCall
  if (trace !== undefined) {
    const send = Effect.withFiber((inner) => sendOneWayNow(peers, inner, owner, slot, id, info, payload))
    return trace(Context.getOrUndefined(fiber.context, Tracer.ParentSpan), { type: slot.name, id }, info.tag, true, send)
  }
  return sendOneWayNow(peers, fiber, owner, slot, id, info, payload)
}

const sendOneWayNow = (
  peers: Peers,
  fiber: Fiber.Fiber<unknown, unknown>,
  owner: string,
  slot: TypeSlot,
  id: string,
  info: MessageEntry,
  payload: unknown
): Effect.Effect<void, SendError> => {
  const envelope = request(fiber, slot, id, info, payload)
  if (envelope instanceof MessageDecodeError) return Effect.die(envelope)
  return peers.get(owner).send(envelope)
}

const emptyContext: EnvelopeContext = { correlationId: "", metadata: {} }
const noChain: ReadonlyArray<ActorAddress> = []

const encodeError = (slot: TypeSlot, id: string, info: MessageEntry, what: string, error: unknown) =>
  decodeError({ type: slot.name, id }, info, what, error)

const decodeError = (address: ActorAddress, info: MessageEntry, what: string, error: unknown) =>
  new MessageDecodeError({
    address,
    tag: info.tag,
    reason: `${what}: ${error instanceof Error ? error.message : String(error)}`
  })

/** The caller's side of a reply: the value or typed error the call would have ended in locally. */
const decodeOutcome = (outcome: ReplyOutcome, request: OutboundRequest): Effect.Effect<any, any> => {
  const info = request.info
  switch (outcome._tag) {
    case "Success":
      try {
        return Effect.succeed(codecOf(info).success.decode(outcome.value))
      } catch (error) {
        return Effect.fail(decodeError(request.target, info, "the reply did not decode", error))
      }
    case "Failure":
      try {
        return Effect.fail(decodeFailure(info, outcome.error))
      } catch (error) {
        return Effect.fail(decodeError(request.target, info, "the error reply did not decode", error))
      }
    case "Defect":
      return Effect.fail(new ActorDefect({ address: request.target, tag: info.tag, defect: outcome.defect }))
    case "TransportError": {
      const address = request.target
      if (outcome.error === "FrameTooLarge") {
        const [size = 0, maxBytes = 0] = (outcome.message.match(/\d+/g) ?? []).map(Number)
        return Effect.fail(new PayloadTooLarge({ address, tag: info.tag, size, maxBytes }))
      }
      if (outcome.error === "MalformedFrame") {
        return Effect.fail(new MessageDecodeError({ address, tag: info.tag, reason: outcome.message }))
      }
      // The handler was stopped part-way: it may have run.
      if (outcome.error === "Interrupted") return Effect.fail(new OutcomeUnknown({ address, tag: info.tag, reason: outcome.message }))
      // "Draining": the silo is stopping and did not run it.
      return Effect.fail(new ActorUnavailable({ address, reason: outcome.message }))
    }
  }
}

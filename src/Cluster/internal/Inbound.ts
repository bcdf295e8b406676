/**
 * The receiving side of remote calls: turns a request envelope into a call on this silo's
 * router, and its outcome into a reply. Bad input is answered with a typed error where it
 * enters (an unknown actor type or message, an invalid id, a payload that does not
 * decode); nothing half-activates.
 *
 * The call runs under a `RemoteFrame` carrying the caller's request context and call
 * chain, and under the caller's trace span when the envelope names one, so a handler sees
 * the same context, deadlock detection and tracing as it would locally. A call this silo
 * does not own is forwarded once, bytes untouched; one forwarded here that this silo's view
 * gives to yet another silo waits for this silo's ring to change (up to `settleMillis`, see
 * `Drain`: one of the two views is behind) and is decided again, then fails if it still
 * finds no owner here. Three exceptions forward it a second time, never a third: a silo
 * that is draining (it left the ring, so its view is the news), one that released the
 * address to the silo that asked for it (see `Handoff`), and one that just read a
 * directory-placed address's owner from the directory (it moved on the way, see `Migration`).
 *
 * Who is calling: a request from another silo is trusted as it is, principal included (the
 * silo was admitted by the handshake); a client's is not: its principal is established here,
 * from its credentials, before anything else (see `fromClient`), and its control requests
 * are refused. Authorization itself runs where the turn is admitted (`LocalRouter`, see
 * `Security`), on whichever silo serves the call.
 *
 * There is no timeout on this side: the caller's connection times the call out.
 *
 * @internal
 */
import { Effect, Tracer } from "effect"
import { invalidIdReason } from "../../Actor/ActorAddress.ts"
import {
  ActorUnavailable,
  type CallErrorSchema,
  type CallTimeout,
  InvalidActorId,
  MessageDecodeError,
  NoHostForType,
  OutcomeUnknown,
  PayloadTooLarge,
  Unauthenticated,
  Unauthorized,
  UnknownActorType,
  UnknownMessage
} from "../../Actor/ActorError.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import { type MessageEntry, messageEntry } from "../../Actor/internal/HostedType.ts"
import { RemoteFrame } from "../../Actor/internal/Turn.ts"
import type { ReplyOutcome, RequestEnvelope } from "../../Transport/Envelope.ts"
import type { PeerInfo } from "../../Transport/PeerInfo.ts"
import { anonymousClient, authenticateClient } from "../../Security/internal/Gate.ts"
import { codecOf, encodeFailure, encodeQuarkError } from "./MessageCodec.ts"
import * as Control from "./Control.ts"
import { type ControlHost, controlType } from "./Control.ts"
import { moving, type RemoteRouter } from "./RemoteRouter.ts"

const failWith = (error: typeof CallErrorSchema.Type): Effect.Effect<ReplyOutcome> =>
  Effect.succeed({ _tag: "Failure", error: encodeQuarkError(error) })

const noReply: ReplyOutcome = { _tag: "Success", value: new Uint8Array(0) }

const describe = (error: unknown) => error instanceof Error ? error.message : String(error)

/**
 * The server's request handler for a silo. `peer` is what the connection's handshake
 * established; a server that does not say is taken for a silo's (as before peers were
 * told apart).
 *
 * @internal
 */
export const handler = (remote: RemoteRouter, control: ControlHost) =>
(request: RequestEnvelope, peer?: PeerInfo): Effect.Effect<ReplyOutcome> =>
  peer?.role === "client" ? fromClient(remote, control, request, peer) : serveRequest(remote, control, request)

/**
 * A client's request. Nothing it claims about its caller is trusted: the principal is
 * established here, from its token or its connection's certificate (see `Security`), and
 * written into the metadata in place of any it carried, for the silos the call goes on to
 * (they trust what a silo sends). Control requests (releases, migrations, registry status)
 * are between silos: a client's is refused.
 */
const fromClient = (remote: RemoteRouter, control: ControlHost, request: RequestEnvelope, peer: PeerInfo): Effect.Effect<ReplyOutcome> => {
  const { tag, target } = request
  if (target.type === controlType) {
    return failWith(new Unauthorized({ address: target, tag, principal: `client ${peer.address}`, reason: "control requests are accepted from silos only" }))
  }
  const gate = remote.router.gate
  if (gate?.authentication === undefined) {
    // No credentials to check (the common case): synchronous, no effect per request.
    const metadata = anonymousClient(request.context.metadata)
    return serveRequest(remote, control, { ...request, context: { ...request.context, metadata } })
  }
  return Effect.matchEffect(authenticateClient(gate, request.context.metadata, peer.certificate), {
    onFailure: (failed) => {
      const error = new Unauthenticated({ address: target, tag, reason: failed.reason })
      const refused = gate === undefined ? Effect.void : gate.refused(target, tag, request.oneWay === true, request.context.correlationId, failed.reason)
      // A one-way request gets no reply: its refusal would go unseen.
      const logged = request.oneWay === true ?
        Effect.andThen(refused, Effect.logWarning(`one-way ${tag} to ${target.type}/${target.id} dropped`).pipe(Effect.annotateLogs({ error: error.message }))) :
        refused
      return Effect.andThen(logged, failWith(error))
    },
    onSuccess: (metadata) => serveRequest(remote, control, { ...request, context: { ...request.context, metadata } })
  })
}

const serveRequest = (remote: RemoteRouter, control: ControlHost, request: RequestEnvelope): Effect.Effect<ReplyOutcome> => {
  const { id, type } = request.target
  if (type === controlType) return Control.handle(control, request)
  const slot = remote.router.slots.get(type)
  if (slot?.registration === undefined || !slot.virtual) return unhosted(remote, request)
  const entry = messageEntry(slot.registration, request.tag)
  if (entry === undefined) return failWith(new UnknownMessage({ type, tag: request.tag }))
  const reason = invalidIdReason(id)
  if (reason !== undefined) return failWith(new InvalidActorId({ type, id, reason }))
  if (remote.dead || remote.self === undefined) {
    return failWith(new ActorUnavailable({ address: request.target, reason: "the receiving silo was declared dead" }))
  }
  // Checked again when the turn starts; here so that nothing activates for a call that cannot run.
  if (outsideLease(remote)) {
    return failWith(
      new ActorUnavailable({ address: request.target, reason: "the receiving silo cannot show it is still a member; not run" })
    )
  }
  return resolve(remote, slot, entry, request, undefined)
}

/**
 * A call for a type this silo does not host: the caller's view of who hosts what differs
 * from this silo's (one of them is behind). It goes once to the owner this silo's view
 * names (a call already forwarded once fails with `ActorUnavailable`, safe to retry); with
 * no live host in this view either, it fails with `NoHostForType` (safe to retry once one
 * joins); `UnknownActorType` when this silo's own view says it hosts the type.
 */
const unhosted = (remote: RemoteRouter, request: RequestEnvelope): Effect.Effect<ReplyOutcome> => {
  const { id, type } = request.target
  const ring = remote.rings.ringOf(type)
  if (ring.members.length === 0) return failWith(new NoHostForType({ address: request.target }))
  const self = remote.self
  if (self === undefined || ring.has(self)) return failWith(new UnknownActorType({ type }))
  if (request.forwarded === true) return failWith(new ActorUnavailable({ address: request.target, reason: moving }))
  const reason = invalidIdReason(id)
  if (reason !== undefined) return failWith(new InvalidActorId({ type, id, reason }))
  // A ref made here knows the type's placement; otherwise it is hashed, or the host forwards.
  const known = remote.router.slots.get(type)
  const placement = known?.placement
  const owner = placement === undefined ?
    ring.owner(`${type}/${id}`) :
    placement.usesDirectory ?
    placement.place(request.target, remote.viewOf(type)) :
    remote.ownerOf(known!, id)
  return owner === undefined || owner === self ? failWith(new UnknownActorType({ type })) : forward(remote, owner, request)
}

const resolve = (
  remote: RemoteRouter,
  slot: TypeSlot,
  entry: MessageEntry,
  request: RequestEnvelope,
  settleUntil: number | undefined
): Effect.Effect<ReplyOutcome> => {
  const owner = remote.resolveInbound(slot, request.target.id)
  return typeof owner === "string" ?
    route(remote, slot, entry, request, owner, settleUntil) :
    Effect.flatMap(
      Effect.catch(owner, (error) => Effect.succeed(error)),
      (owner) => typeof owner === "string" ? route(remote, slot, entry, request, owner, settleUntil) : failWith(owner)
    )
}

const route = (
  remote: RemoteRouter,
  slot: TypeSlot,
  entry: MessageEntry,
  request: RequestEnvelope,
  owner: string,
  /** For a forwarded call: until when this silo waits for its view to change (see `resolve`). */
  settleUntil: number | undefined
): Effect.Effect<ReplyOutcome> => {
  if (owner === remote.self) {
    if (remote.isReleased(slot, request.target.id)) {
      // To the silo it was released to, whose ring gives it the address: even a call forwarded
      // once already (two hops at most: that silo serves it or refuses it, never forwards it).
      const to = remote.handoff.releasedTo(slot, request.target.id)
      return to === undefined || to === remote.self || request.forwardedTwice === true ?
        failWith(new ActorUnavailable({ address: request.target, reason: `${moving} (released here)` })) :
        forward(remote, to, request)
    }
    // After the wait, resolved again: a ring that changed meanwhile may give the address to
    // another silo, which serves it (this one must not activate it).
    const handoff = remote.handoffBefore(slot, request.target.id)
    return handoff === undefined ?
      serve(remote, slot, entry, request) :
      Effect.matchEffect(handoff, {
        onFailure: failWith,
        onSuccess: () => remote.ownsHere(slot, request.target.id) ? serve(remote, slot, entry, request) : resolve(remote, slot, entry, request, settleUntil)
      })
  }
  // A draining silo left the ring: its own view of where the address went is the news the
  // forwarding silo lacks, so it sends the call on (a second hop; the next silo never forwards it).
  if (request.forwarded === true && remote.router.draining && request.forwardedTwice !== true) return forward(remote, owner, request)
  // A directory placement's owner here was just read from the directory, not from a view that
  // may lag: the actor moved while the call was on its way (a live migration), so it follows.
  if (request.forwarded === true && slot.placement?.usesDirectory === true && request.forwardedTwice !== true) {
    return forward(remote, owner, request)
  }
  if (request.forwarded === true) {
    const settleMillis = remote.options.settleMillis ?? 0
    const now = remote.options.now()
    // Half the caller's timeout at most: a refusal it can retry beats a timeout it cannot read.
    const until = settleUntil ?? now + Math.min(settleMillis, request.timeoutMillis > 0 ? request.timeoutMillis / 2 : settleMillis)
    if (now >= until) {
      return Effect.andThen(
        Effect.logWarning("a call forwarded here is refused: this silo's view gives its address to another silo").pipe(
          Effect.annotateLogs({ address: `${request.target.type}/${request.target.id}`, owner, members: remote.ring.members.map((m) => m.id).join(",") })
        ),
        failWith(new ActorUnavailable({ address: request.target, reason: `${moving} (views differ)` }))
      )
    }
    // Each ring change may be the one that agrees (a leave and a join can follow each other).
    return Effect.andThen(remote.nextRing(until - now), Effect.suspend(() => resolve(remote, slot, entry, request, until)))
  }
  return forward(remote, owner, request)
}

/** Runs the call here. */
const serve = (remote: RemoteRouter, slot: TypeSlot, entry: MessageEntry, request: RequestEnvelope): Effect.Effect<ReplyOutcome> => {
  const codec = codecOf(entry)
  const { id, type } = request.target
  let payload: unknown
  try {
    payload = codec.payload.decode(request.payload)
  } catch (error) {
    return failWith(new MessageDecodeError({ address: request.target, tag: request.tag, reason: describe(error) }))
  }
  const context = request.context
  // The caller's deadline goes along: an ask whose caller gave up leaves the mailbox instead of running later.
  const frame = new RemoteFrame(context.correlationId, context.metadata, request.chain, request.timeoutMillis)
  if (request.oneWay === true) {
    // Not answered (the server drops what this returns), so a failure (a full mailbox, say) is logged here.
    return traced(request, remote.router.tellLocal(slot, id, entry, payload, undefined, frame)).pipe(
      Effect.catch((error) =>
        Effect.logWarning(`one-way ${request.tag} to ${type}/${id} dropped`).pipe(Effect.annotateLogs({ error: error.message }))
      ),
      Effect.as(noReply)
    )
  }
  const call = traced(request, remote.router.askLocal(slot, id, entry, payload, undefined, frame))
  return Effect.match(call, {
    onSuccess: (value): ReplyOutcome => {
      if (outsideLease(remote)) return failure(entry, lostLease(request))
      try {
        return { _tag: "Success", value: codec.success.encode(value) }
      } catch (error) {
        return failure(entry, new MessageDecodeError({ address: request.target, tag: request.tag, reason: `the reply did not encode: ${describe(error)}` }))
      }
    },
    onFailure: (error) => failure(entry, outsideLease(remote) ? lostLease(request) : error)
  })
}

/**
 * Whether this silo cannot show it is still a member. A turn that started within the lease
 * and ended outside it (the process was paused while it ran) may have read stale state,
 * since another silo may host the actor now, so its result is not delivered.
 */
const outsideLease = (remote: RemoteRouter): boolean => {
  const lease = remote.router.lease
  return lease !== undefined && !lease()
}

const lostLease = (request: RequestEnvelope) =>
  new OutcomeUnknown({
    address: request.target,
    tag: request.tag,
    reason: "the serving silo lost its membership lease while the turn ran; its result is withheld"
  })

const failure = (entry: MessageEntry, error: unknown): ReplyOutcome => {
  try {
    return { _tag: "Failure", error: encodeFailure(entry, error) }
  } catch (encodeError) {
    return { _tag: "Defect", defect: `the error reply did not encode: ${describe(encodeError)}` }
  }
}

/** Sends the call on to its owner, once; the reply comes back as it is. */
const forward = (remote: RemoteRouter, owner: string, request: RequestEnvelope): Effect.Effect<ReplyOutcome> => {
  const connection = remote.peers.get(owner)
  // A second hop is the last: the receiver will not send it on again.
  const onward = request.forwarded === true ? { ...request, forwardedTwice: true } : { ...request, forwarded: true }
  const sent: Effect.Effect<ReplyOutcome | void, ActorUnavailable | PayloadTooLarge | CallTimeout | OutcomeUnknown> =
    request.oneWay === true ?
      connection.send(onward) :
      connection.call(onward, { timeout: request.timeoutMillis })
  return Effect.matchEffect(sent, {
    onSuccess: (outcome) => Effect.succeed(outcome ?? noReply),
    onFailure: failWith
  })
}

/** `call` as a child of the caller's span, when the envelope names one. */
const traced = <A, E>(request: RequestEnvelope, call: Effect.Effect<A, E>): Effect.Effect<A, E> => {
  const parent = request.trace === undefined ? undefined : parseTraceparent(request.trace)
  return parent === undefined ? call : Effect.withParentSpan(call, parent)
}

/** A W3C `traceparent` (`00-<trace id>-<span id>-<flags>`) as a parent span, or `undefined`. */
const parseTraceparent = (traceparent: string): Tracer.ExternalSpan | undefined => {
  const parts = traceparent.split("-")
  if (parts.length !== 4 || parts[1]!.length !== 32 || parts[2]!.length !== 16) return undefined
  return Tracer.externalSpan({ traceId: parts[1]!, spanId: parts[2]!, sampled: (parseInt(parts[3]!, 16) & 1) === 1 })
}

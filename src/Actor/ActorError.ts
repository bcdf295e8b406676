/**
 * The typed errors a call to an actor can end in, besides the message's own declared
 * errors. Each is a `Schema.TaggedError`, so it crosses process boundaries intact.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { ActorAddress, formatAddress, formatPath } from "./ActorAddress.ts"

/**
 * No implementation of this actor type is registered in the silo.
 *
 * @since 0.1.0
 */
export class UnknownActorType extends Schema.TaggedError<UnknownActorType>()("UnknownActorType", {
  type: Schema.String
}) {
  override get message(): string {
    return `no actor type named "${this.type}" is registered in this silo`
  }
}

/**
 * The actor type has no message with this tag (only reachable from untyped input).
 *
 * @since 0.1.0
 */
export class UnknownMessage extends Schema.TaggedError<UnknownMessage>()("UnknownMessage", {
  type: Schema.String,
  tag: Schema.String
}) {
  override get message(): string {
    return `actor type "${this.type}" has no message "${this.tag}"`
  }
}

/**
 * An id was empty or too long where it entered.
 *
 * @since 0.1.0
 */
export class InvalidActorId extends Schema.TaggedError<InvalidActorId>()("InvalidActorId", {
  type: Schema.String,
  id: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid id for actor type "${this.type}": ${this.reason}`
  }
}

/**
 * An untyped payload did not decode with the message's schema. Nothing was delivered.
 *
 * @since 0.1.0
 */
export class MessageDecodeError extends Schema.TaggedError<MessageDecodeError>()("MessageDecodeError", {
  address: ActorAddress,
  tag: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `payload of ${formatAddress(this.address)}.${this.tag} does not decode: ${this.reason}`
  }
}

/**
 * The activation effect failed or died. No activation was kept; the next call tries again.
 *
 * @since 0.1.0
 */
export class ActivationFailed extends Schema.TaggedError<ActivationFailed>()("ActivationFailed", {
  address: ActorAddress,
  reason: Schema.String
}) {
  override get message(): string {
    return `activation of ${formatAddress(this.address)} failed: ${this.reason}`
  }
}

/**
 * The activation's mailbox held `capacity` messages and the send asked not to wait.
 *
 * @since 0.1.0
 */
export class MailboxFull extends Schema.TaggedError<MailboxFull>()("MailboxFull", {
  address: ActorAddress,
  capacity: Schema.Number
}) {
  override get message(): string {
    return `mailbox of ${formatAddress(this.address)} is full (${this.capacity} messages)`
  }
}

/**
 * The call would wait on an activation that is itself waiting on this call. `cycle` starts
 * and ends with that activation.
 *
 * @since 0.1.0
 */
export class Deadlock extends Schema.TaggedError<Deadlock>()("Deadlock", {
  cycle: Schema.Array(ActorAddress)
}) {
  override get message(): string {
    return `deadlock: ${formatPath(this.cycle)}`
  }
}

/**
 * No reply arrived within the call's timeout. Whether the message ran is unknown.
 *
 * @since 0.1.0
 */
export class CallTimeout extends Schema.TaggedError<CallTimeout>()("CallTimeout", {
  address: ActorAddress,
  tag: Schema.String,
  timeoutMillis: Schema.Number
}) {
  override get message(): string {
    return `${formatAddress(this.address)}.${this.tag} did not reply within ${this.timeoutMillis} ms`
  }
}

/**
 * The request left this process but its reply never came: the connection to the silo that
 * owns the actor was lost after the request was written, or that silo stopped while the
 * turn ran. The message may or may not have run, so retry only what is idempotent (as
 * after a {@link CallTimeout}).
 *
 * @since 0.1.0
 */
export class OutcomeUnknown extends Schema.TaggedError<OutcomeUnknown>()("OutcomeUnknown", {
  address: ActorAddress,
  tag: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${formatAddress(this.address)}.${this.tag} may or may not have run: ${this.reason}`
  }
}

/**
 * The handler died (threw, or failed with a defect) during this call's turn. The
 * activation itself goes on with its next message.
 *
 * @since 0.1.0
 */
export class ActorDefect extends Schema.TaggedError<ActorDefect>()("ActorDefect", {
  address: ActorAddress,
  tag: Schema.String,
  defect: Schema.String
}) {
  override get message(): string {
    return `${formatAddress(this.address)}.${this.tag} died: ${this.defect}`
  }
}

/**
 * The message was not delivered and did not run: the silo is shutting down, the activation
 * was stopped with this message still in it, or (in a cluster) the silo that owns the actor
 * cannot be reached (no connection, no silo alive, ownership moving, the owner could not
 * show it is still a member). Safe to retry. A request that was written and then lost ends
 * in {@link OutcomeUnknown} instead.
 *
 * @since 0.1.0
 */
export class ActorUnavailable extends Schema.TaggedError<ActorUnavailable>()("ActorUnavailable", {
  address: ActorAddress,
  reason: Schema.String
}) {
  override get message(): string {
    return `${formatAddress(this.address)} is unavailable: ${this.reason}`
  }
}

/**
 * In a cluster: no live silo hosts this actor type (every silo announces the types it
 * hosts, see `ClusterSilo`), so the call failed at once, without waiting for a timeout. Not
 * delivered and did not run. Safe to retry once a silo hosting the type joins (during a
 * rolling upgrade that adds a type, say, or after every silo hosting it went down).
 *
 * @since 0.2.0
 */
export class NoHostForType extends Schema.TaggedError<NoHostForType>()("NoHostForType", {
  address: ActorAddress
}) {
  override get message(): string {
    return `no live silo hosts actor type "${this.address.type}" (${formatAddress(this.address)} was not delivered); ` +
      `safe to retry once a silo hosting it joins`
  }
}

/**
 * The actor was stopped by its supervisor (or, for a child actor, by its parent) with this
 * message still waiting, or the call went to a child that no longer exists. A virtual
 * actor activates again on its next call.
 *
 * @since 0.1.0
 */
export class ActorStopped extends Schema.TaggedError<ActorStopped>()("ActorStopped", {
  address: ActorAddress,
  reason: Schema.String
}) {
  override get message(): string {
    return `${formatAddress(this.address)} was stopped: ${this.reason}`
  }
}

/**
 * An encoded message (or its reply) is larger than the transport's maximum frame size;
 * nothing was sent.
 *
 * @since 0.1.0
 */
export class PayloadTooLarge extends Schema.TaggedError<PayloadTooLarge>()("PayloadTooLarge", {
  address: ActorAddress,
  tag: Schema.String,
  size: Schema.Number,
  maxBytes: Schema.Number
}) {
  override get message(): string {
    return `${formatAddress(this.address)} ${this.tag}: ${this.size} bytes exceed the maximum of ${this.maxBytes}`
  }
}

/**
 * The call was refused before its turn: the silo's authorization rule for this actor type
 * and message denied it to the caller's principal (see `Authorization`). Not delivered, did
 * not run, and not retried by Quark (reminders and stream deliveries give up on it at
 * once): the same call would be refused again.
 *
 * @since 0.2.0
 */
export class Unauthorized extends Schema.TaggedError<Unauthorized>()("Unauthorized", {
  address: ActorAddress,
  tag: Schema.String,
  principal: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${formatAddress(this.address)}.${this.tag} denied to principal "${this.principal}": ${this.reason} ` +
      `(not delivered; not retried)`
  }
}

/**
 * The caller's credentials (a token in the request context, a client certificate) did not
 * establish a principal, or none were given where the silo requires them (see
 * `Authentication`). Not delivered, did not run, not retried.
 *
 * @since 0.2.0
 */
export class Unauthenticated extends Schema.TaggedError<Unauthenticated>()("Unauthenticated", {
  address: ActorAddress,
  tag: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `${formatAddress(this.address)}.${this.tag}: the caller is not authenticated: ${this.reason} (not delivered; not retried)`
  }
}

/**
 * Every error a call can end in besides the message's declared errors. `UnknownMessage`,
 * `MessageDecodeError` and `PayloadTooLarge` only arise across silos (a peer running another
 * version of the contract, or an oversized payload), `NoHostForType` only in a cluster,
 * `Unauthorized` and `Unauthenticated` only under a silo's `Authorization` or `Authentication`.
 *
 * @since 0.1.0
 */
export type CallError =
  | UnknownActorType
  | UnknownMessage
  | MessageDecodeError
  | PayloadTooLarge
  | ActivationFailed
  | MailboxFull
  | Deadlock
  | CallTimeout
  | OutcomeUnknown
  | ActorDefect
  | ActorUnavailable
  | ActorStopped
  | NoHostForType
  | Unauthorized
  | Unauthenticated

/**
 * Every error a one-way send can end in: it only waits for the mailbox to accept it.
 *
 * @since 0.1.0
 */
export type SendError =
  | UnknownActorType
  | MailboxFull
  | ActorUnavailable
  | ActorStopped
  | PayloadTooLarge
  | NoHostForType

/**
 * From `silo.dispatch`: the handler failed with one of its message's declared errors.
 * `error` is that error encoded with the message's error schema (what a gateway puts on the
 * wire; a `Schema.TaggedError` keeps its `_tag`). The message ran.
 *
 * @since 0.1.0
 */
export class DeclaredError extends Schema.TaggedError<DeclaredError>()("DeclaredError", {
  address: ActorAddress,
  tag: Schema.String,
  error: Schema.Unknown
}) {
  override get message(): string {
    const tag = typeof this.error === "object" && this.error !== null && "_tag" in this.error ? String(this.error._tag) : "an error"
    return `${formatAddress(this.address)}.${this.tag} failed with its declared ${tag}`
  }
}

/**
 * Every error `silo.dispatch` can end in, all tagged, so a caller can `catchTag` on each:
 * bad input (`UnknownActorType`, `UnknownMessage`, `InvalidActorId`, `MessageDecodeError`:
 * nothing was delivered), Quark's call errors, and the message's declared errors wrapped in
 * `DeclaredError`.
 *
 * @since 0.1.0
 */
export type DispatchError = CallError | InvalidActorId | DeclaredError

/**
 * Every error class of {@link CallError}, and `InvalidActorId`.
 *
 * @since 0.1.0
 */
export const callErrorClasses = [
  UnknownActorType,
  UnknownMessage,
  InvalidActorId,
  MessageDecodeError,
  PayloadTooLarge,
  ActivationFailed,
  MailboxFull,
  Deadlock,
  CallTimeout,
  OutcomeUnknown,
  ActorDefect,
  ActorUnavailable,
  ActorStopped,
  NoHostForType,
  Unauthorized,
  Unauthenticated
] as const

/**
 * The schema of every {@link callErrorClasses} error, for codecs that carry them across a
 * boundary.
 *
 * @since 0.1.0
 */
export const CallErrorSchema = Schema.Union(callErrorClasses)

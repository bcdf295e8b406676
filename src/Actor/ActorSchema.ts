/**
 * Annotations that change how a message is scheduled, set on its `Rpc` definition with
 * `Rpc.make(...).annotate(ActorSchema.ReadOnly, true)`.
 *
 * @since 0.1.0
 */
import { Context } from "effect"
import { constFalse } from "effect/Function"

/**
 * A read-only message does not change the actor's state, so turns of read-only messages
 * may run at the same time as each other (never beside a turn of another message).
 *
 * @since 0.1.0
 */
export const ReadOnly = Context.Reference<boolean>("quark/ActorSchema/ReadOnly", {
  defaultValue: constFalse
})

/**
 * An always-interleave message starts at once, beside whatever turn is running and ahead
 * of the queued messages. Meant for queries that must answer while the actor waits.
 *
 * @since 0.1.0
 */
export const AlwaysInterleave = Context.Reference<boolean>("quark/ActorSchema/AlwaysInterleave", {
  defaultValue: constFalse
})

/**
 * The identity of a stream: a namespace (what kind of events, declared by a
 * `StreamContract`) and a key (whose: a device, an account). Every event of one stream is
 * kept in order; streams are created by publishing to them and cost nothing while unused.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"

/**
 * Longest accepted namespace and key, in UTF-16 code units (keys travel with every event).
 *
 * @since 0.2.0
 */
export const maxPartLength = 256

/**
 * @since 0.2.0
 */
export interface StreamId {
  readonly namespace: string
  readonly key: string
}

/**
 * @since 0.2.0
 */
export const StreamId = Schema.Struct({ namespace: Schema.String, key: Schema.String })

/**
 * A stream id was refused where it entered (empty, too long, not a string).
 *
 * @since 0.2.0
 */
export class InvalidStreamId extends Schema.TaggedError<InvalidStreamId>()("InvalidStreamId", {
  namespace: Schema.String,
  key: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `stream ${this.namespace}/${this.key}: ${this.reason}`
  }
}

/**
 * Why a namespace or key is refused, or `undefined` if it is fine.
 *
 * @since 0.2.0
 */
export const invalidPartReason = (what: "namespace" | "key", value: unknown): string | undefined =>
  typeof value !== "string" ? `the ${what} is a ${typeof value}, not a string`
  : value.length === 0 ? `the ${what} must not be empty`
  : value.length > maxPartLength ? `the ${what} must be at most ${maxPartLength} characters`
  : undefined

/**
 * Formats a stream id as `namespace/key`.
 *
 * @since 0.2.0
 */
export const format = (id: StreamId): string => `${id.namespace}/${id.key}`

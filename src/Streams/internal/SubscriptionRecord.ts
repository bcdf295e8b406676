/**
 * A durable subscription as the provider stores it (JSON in `StoredSubscription.data`):
 * the subscriber, the message each event is delivered as, and the backpressure strategy.
 *
 * @internal
 */
import { Schema } from "effect"
import { Backpressure } from "../Backpressure.ts"

export const SubscriptionRecord = Schema.Struct({
  type: Schema.String,
  id: Schema.String,
  message: Schema.String,
  backpressure: Backpressure,
  createdAt: Schema.Number
})

export type SubscriptionRecord = typeof SubscriptionRecord.Type

const codec = Schema.fromJsonString(SubscriptionRecord)

export const encodeRecord: (record: SubscriptionRecord) => string = Schema.encodeSync(codec)

/** Throws on data that is not a record (written by something else). */
export const decodeRecord: (data: string) => SubscriptionRecord = Schema.decodeUnknownSync(codec)

/** An actor subscription's id: one per subscriber and message, so subscribing again replaces it. */
export const explicitId = (type: string, id: string, message: string): string =>
  `${encodeURIComponent(type)}/${encodeURIComponent(id)}#${encodeURIComponent(message)}`

export const implicitId = (type: string, message: string): string =>
  `implicit:${encodeURIComponent(type)}#${encodeURIComponent(message)}`

/**
 * A reminder as the reminder service stores it (the `data` of a `StoredReminder`), the
 * history and dead-letter entries, and the bucket a key belongs to.
 *
 * @internal
 */
import { Schema } from "effect"
import type { ReminderKey } from "../ReminderStore.ts"
import { TimingOptions } from "../ReminderTiming.ts"

/**
 * What is stored besides `bucket` and `nextDue`: the message a tick delivers (its payload
 * encoded with the message's schema), the timing, and how many ticks have fired.
 */
export const ReminderRecord = Schema.Struct({
  message: Schema.String,
  /** Absent for a message without a payload. */
  payload: Schema.optional(Schema.Unknown),
  timing: TimingOptions,
  ticks: Schema.Number,
  registeredAt: Schema.Number
})
export type ReminderRecord = typeof ReminderRecord.Type

/**
 * `JSON.stringify`, not the schema's encoder: a record is plain data, already in its encoded
 * form (the payload is encoded when registered), and this runs on every tick.
 */
export const encodeRecord = (record: ReminderRecord): string => JSON.stringify(record)
export const decodeRecord = Schema.decodeUnknownSync(Schema.fromJsonString(ReminderRecord))

/** One fired tick, for operators: kept per reminder, newest first, up to the history size. */
export const TickOutcome = Schema.Struct({
  due: Schema.Number,
  firedAt: Schema.Number,
  outcome: Schema.Literals(["delivered", "dead-lettered"]),
  attempts: Schema.Number,
  error: Schema.optional(Schema.String)
})
export type TickOutcome = typeof TickOutcome.Type

/** Plain data too, written on every tick: see `encodeRecord`. */
export const encodeOutcome = (outcome: TickOutcome): string => JSON.stringify(outcome)
export const decodeOutcome = Schema.decodeUnknownSync(Schema.fromJsonString(TickOutcome))

/** The details of a dead letter (its `data`), for a reminder's tick or a one-way message. */
export const DeadLetterDetails = Schema.Struct({
  type: Schema.String,
  id: Schema.String,
  message: Schema.String,
  payload: Schema.optional(Schema.Unknown),
  reminder: Schema.optional(Schema.String),
  due: Schema.optional(Schema.Number),
  attempts: Schema.Number,
  error: Schema.String
})
export type DeadLetterDetails = typeof DeadLetterDetails.Type

const detailsJson = Schema.fromJsonString(DeadLetterDetails)
export const encodeDetails = Schema.encodeSync(detailsJson)
export const decodeDetails = Schema.decodeUnknownSync(detailsJson)

/** A key as one string: unambiguous, since each part is URI-encoded. */
export const formatReminderKey = (key: ReminderKey): string =>
  `${encodeURIComponent(key.type)}/${encodeURIComponent(key.id)}/${encodeURIComponent(key.name)}`

/**
 * The bucket of a key: FNV-1a over its actor (not its name, so one actor's reminders are
 * fired by one bucket, in one place). Fixed for the life of a store, so the bucket count is
 * too.
 */
export const bucketOf = (key: ReminderKey, bucketCount: number): number => {
  const text = `${encodeURIComponent(key.type)}/${encodeURIComponent(key.id)}`
  let hash = 0x811c9dc5
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % bucketCount
}

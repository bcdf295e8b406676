/**
 * The typed errors of actor state and journals.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * A write or clear carried a version (ETag) that is no longer the stored one: someone else
 * wrote since this activation read. Nothing was overwritten.
 *
 * @since 0.1.0
 */
export class StateConflict extends Schema.TaggedError<StateConflict>()("StateConflict", {
  key: Schema.String,
  expectedVersion: Schema.Number,
  actualVersion: Schema.Number
}) {
  override get message(): string {
    return `state ${this.key}: expected version ${this.expectedVersion}, found ${this.actualVersion}`
  }
}

/**
 * An append to a journal at an expected sequence number that is no longer the last one.
 * Nothing was appended.
 *
 * @since 0.1.0
 */
export class JournalConflict extends Schema.TaggedError<JournalConflict>()("JournalConflict", {
  key: Schema.String,
  expectedSequence: Schema.Number,
  actualSequence: Schema.Number
}) {
  override get message(): string {
    return `journal ${this.key}: expected sequence ${this.expectedSequence}, found ${this.actualSequence}`
  }
}

/**
 * A stored record (or event, or snapshot) no longer decodes with the current schema. The
 * activation fails; the stored bytes are left as they are.
 *
 * @since 0.1.0
 */
export class StateDecodeError extends Schema.TaggedError<StateDecodeError>()("StateDecodeError", {
  key: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `stored ${this.key} does not decode: ${this.reason}`
  }
}

/**
 * The storage itself failed (connection lost, server error). Whether a write happened is
 * unknown.
 *
 * @since 0.1.0
 */
export class StoreError extends Schema.TaggedError<StoreError>()("StoreError", {
  store: Schema.String,
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `store "${this.store}" failed to ${this.operation}: ${this.reason}`
  }
}

/**
 * No store of this name was provided to the silo.
 *
 * @since 0.1.0
 */
export class UnknownStore extends Schema.TaggedError<UnknownStore>()("UnknownStore", {
  store: Schema.String
}) {
  override get message(): string {
    return `no store named "${this.store}" is provided`
  }
}

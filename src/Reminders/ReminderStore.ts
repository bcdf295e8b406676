/**
 * The storage contract for reminders, their recent history, and the dead-letter queue.
 * Providers (memory, Redis, PostgreSQL) implement it; one conformance suite
 * (`test/reminders/conformance.ts`) runs against every one, on the real servers.
 *
 * A reminder is stored as opaque JSON text (`data`, the Schema-encoded record the reminder
 * service owns) beside the two fields a store must understand: `bucket`, the partition its
 * firing silo owns, and `nextDue`, when it fires next (epoch milliseconds). What is due next
 * in a bucket is one ordered read (a sorted set per bucket on Redis, an index on
 * `(bucket, next_due)` in PostgreSQL), and every write is a compare-and-set on `version`, so
 * two silos that both believe they own a bucket cannot both advance the same tick.
 *
 * Versions are integers: 0 means "no reminder"; each successful put stores version + 1.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import type { StateConflict, StoreError } from "../Persistence/PersistenceError.ts"

/**
 * A reminder's identity: its actor and its name (unique per actor).
 *
 * @since 0.1.0
 */
export interface ReminderKey {
  readonly type: string
  readonly id: string
  readonly name: string
}

/**
 * @since 0.1.0
 */
export interface StoredReminder {
  readonly key: ReminderKey
  /** The partition of the reminder: `0 ≤ bucket < bucketCount`, fixed for a key. */
  readonly bucket: number
  /** When it fires next, epoch milliseconds. */
  readonly nextDue: number
  /** The reminder service's record, as JSON text. */
  readonly data: string
  readonly version: number
}

/**
 * What `put` writes: everything but the version.
 *
 * @since 0.1.0
 */
export type ReminderWrite = Omit<StoredReminder, "version">

/**
 * A history entry written with a put: appended as by `appendHistory` when the put succeeds.
 *
 * @since 0.1.0
 */
export interface HistoryAppend {
  readonly entry: string
  readonly keep: number
}

/**
 * One entry of the dead-letter queue: something that could not be delivered after its
 * retries (a reminder's tick, or a one-way message). `data` is the JSON text of the entry's
 * details (what, to whom, attempts, last error); `kind` says what it was ("reminder", "tell").
 *
 * @since 0.1.0
 */
export interface DeadLetter {
  /** Unique, chosen by the writer. */
  readonly id: string
  readonly kind: string
  /** Epoch milliseconds. */
  readonly at: number
  readonly data: string
}

/**
 * @since 0.1.0
 */
export interface ReminderStore {
  readonly name: string
  /** The reminder, or `undefined` if there is none. */
  readonly get: (key: ReminderKey) => Effect.Effect<StoredReminder | undefined, StoreError>
  /**
   * Stores the reminder if the stored version is `expectedVersion` (0: no reminder yet) and
   * returns the new version (`expectedVersion + 1`); otherwise fails with `StateConflict`
   * and changes nothing. `bucket` must not change for a key. A `nextDue` that is not a finite
   * number, or a `bucket` that is not a non-negative integer, fails with `StoreError` (and
   * changes nothing).
   *
   * With `history`, a put that succeeds also appends that entry to the reminder's history,
   * as `appendHistory` would: in the same step where the store can (memory, Redis: one
   * script), which saves a fired tick a second round trip. A store that cannot (PostgreSQL)
   * appends right after, and a failed append there is logged, not reported: the put stood.
   */
  readonly put: (
    reminder: ReminderWrite,
    expectedVersion: number,
    history?: HistoryAppend | undefined
  ) => Effect.Effect<number, StateConflict | StoreError>
  /**
   * Deletes the reminder if its version is `expectedVersion`, with its history; otherwise
   * `StateConflict`. Deleting a reminder that does not exist (expected version 0) succeeds.
   */
  readonly remove: (key: ReminderKey, expectedVersion: number) => Effect.Effect<void, StateConflict | StoreError>
  /** The reminders of one actor, ordered by name (by code point, as for `due`). */
  readonly list: (type: string, id: string) => Effect.Effect<ReadonlyArray<StoredReminder>, StoreError>
  /**
   * The reminders of `bucket` due at or before `until`, ordered by `nextDue` then by key
   * (type, id, name), at most `limit` of them. Strings compare by Unicode code point (the
   * byte order of their UTF-8, as Redis orders sorted-set members and PostgreSQL's `"C"`
   * collation orders text), so every provider breaks ties alike.
   */
  readonly due: (bucket: number, until: number, limit: number) => Effect.Effect<ReadonlyArray<StoredReminder>, StoreError>
  /**
   * Appends to the reminder's history (JSON text, one entry per fired tick), keeping the
   * newest `keep` entries. History lives and dies with its reminder: for a key with no
   * reminder (say, removed while its tick ran) nothing is stored.
   */
  readonly appendHistory: (key: ReminderKey, entry: string, keep: number) => Effect.Effect<void, StoreError>
  /** The reminder's history, newest first. */
  readonly history: (key: ReminderKey) => Effect.Effect<ReadonlyArray<string>, StoreError>
  /**
   * Adds an entry to the dead-letter queue (an entry with an id already there is replaced).
   * An `at` that is not a finite number fails with `StoreError`.
   */
  readonly addDeadLetter: (entry: DeadLetter) => Effect.Effect<void, StoreError>
  /**
   * Dead letters ordered by `at` then `id` (by code point), oldest first, at most `limit`,
   * optionally of one kind.
   */
  readonly deadLetters: (options: { readonly limit: number; readonly kind?: string | undefined }) => Effect.Effect<ReadonlyArray<DeadLetter>, StoreError>
  /** Removes a dead letter; `false` if there was none with that id. */
  readonly removeDeadLetter: (id: string) => Effect.Effect<boolean, StoreError>
}

/**
 * The storage contract for event-sourced actors: an append-only sequence of events per
 * actor and journal name, appended atomically at an expected sequence number, read in
 * ranges, plus the latest snapshot.
 *
 * Sequence numbers start at 1; `0` means "empty journal". Events and snapshots are
 * Schema-encoded JSON text.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import type { JournalConflict, StoreError } from "./PersistenceError.ts"
import type { StateKey } from "./StateStore.ts"

/**
 * A stored event with its sequence number.
 *
 * @since 0.1.0
 */
export interface JournalEntry {
  readonly sequence: number
  readonly data: string
}

/**
 * A snapshot of the state after the event `sequence`.
 *
 * @since 0.1.0
 */
export interface Snapshot {
  readonly sequence: number
  readonly data: string
}

/**
 * @since 0.1.0
 */
export interface Journal {
  readonly name: string
  /**
   * Appends `events` (at least one) as sequence numbers `expectedSequence + 1 ...` if the
   * last stored sequence is `expectedSequence`; returns the new last sequence. Otherwise
   * fails with `JournalConflict` and appends nothing: all or none.
   */
  readonly append: (
    key: StateKey,
    expectedSequence: number,
    events: ReadonlyArray<string>
  ) => Effect.Effect<number, JournalConflict | StoreError>
  /** Events with sequence in `[from, to]` (`to` absent: to the end), in order. */
  readonly read: (key: StateKey, from: number, to?: number) => Effect.Effect<ReadonlyArray<JournalEntry>, StoreError>
  /** The last stored sequence number (0 when empty). */
  readonly lastSequence: (key: StateKey) => Effect.Effect<number, StoreError>
  readonly saveSnapshot: (key: StateKey, snapshot: Snapshot) => Effect.Effect<void, StoreError>
  /** The latest snapshot, or `undefined`. */
  readonly loadSnapshot: (key: StateKey) => Effect.Effect<Snapshot | undefined, StoreError>
}

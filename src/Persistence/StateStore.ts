/**
 * The storage contract for actor state records: read, and compare-and-set by version.
 * Providers (memory, Redis, PostgreSQL) implement it; the conformance suite in
 * `test/persistence/` runs against every one.
 *
 * Versions are integers: 0 means "no record"; each successful write stores version + 1.
 * The ETag of a record is its version.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import type { StateConflict, StoreError } from "./PersistenceError.ts"

/**
 * Where a record lives: its actor and its name.
 *
 * @since 0.1.0
 */
export interface StateKey {
  readonly type: string
  readonly id: string
  readonly record: string
}

/**
 * A stored record: the Schema-encoded value as JSON text, and its version.
 *
 * @since 0.1.0
 */
export interface StoredState {
  readonly data: string
  readonly version: number
}

/**
 * @since 0.1.0
 */
export interface StateStore {
  readonly name: string
  /** The record, or `undefined` if there is none. */
  readonly read: (key: StateKey) => Effect.Effect<StoredState | undefined, StoreError>
  /**
   * Stores `data` if the stored version is `expectedVersion` (0: no record yet), and returns
   * the new version (`expectedVersion + 1`). Otherwise fails with `StateConflict` and
   * changes nothing.
   */
  readonly write: (key: StateKey, data: string, expectedVersion: number) => Effect.Effect<number, StateConflict | StoreError>
  /** Deletes the record if its version is `expectedVersion`; otherwise `StateConflict`. */
  readonly clear: (key: StateKey, expectedVersion: number) => Effect.Effect<void, StateConflict | StoreError>
}

/**
 * A printable form of a key, for errors and logs.
 *
 * @since 0.1.0
 */
export const formatKey = (key: StateKey): string => `${key.type}/${key.id}/${key.record}`

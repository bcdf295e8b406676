/**
 * Enumerating what a store holds, for the re-encryption job (`EncryptedStore.reencrypt`):
 * not part of the `StateStore`/`Journal` contracts, which stay what an actor needs. Each
 * built-in provider registers a scan for the objects it returns (memory here, Redis in
 * `RedisScan.ts`, PostgreSQL in `PgScan.ts`); a store without one cannot be re-encrypted.
 *
 * Keys come in pages with an opaque cursor (`undefined`: the first page / no more pages).
 * A key written during a scan may or may not be listed: it was written through the
 * encrypting wrapper, so with the active key already. Events and snapshots are replaced
 * only if still stored exactly as read (compare-and-set on the text); a state record's
 * compare-and-set is the store's own version check.
 *
 * @internal
 */
import type { Effect } from "effect"
import type { StoreError } from "../PersistenceError.ts"
import type { StateKey } from "../StateStore.ts"

/** One page of keys. @internal */
export interface KeyPage {
  readonly keys: ReadonlyArray<StateKey>
  readonly cursor: string | undefined
}

/** @internal */
export interface StateScan {
  readonly stateKeys: (cursor: string | undefined) => Effect.Effect<KeyPage, StoreError>
}

/** @internal */
export interface JournalScan {
  /** Keys (type, id, journal name) of the journals holding events. */
  readonly journalKeys: (cursor: string | undefined) => Effect.Effect<KeyPage, StoreError>
  /** Keys of the journals holding a snapshot. */
  readonly snapshotKeys: (cursor: string | undefined) => Effect.Effect<KeyPage, StoreError>
  /** Replaces event `sequence` if it is still `expected`; whether it was. */
  readonly replaceEvent: (key: StateKey, sequence: number, expected: string, data: string) => Effect.Effect<boolean, StoreError>
  /** Replaces the snapshot if it is still at `sequence` with `expected`; whether it was. */
  readonly replaceSnapshot: (key: StateKey, sequence: number, expected: string, data: string) => Effect.Effect<boolean, StoreError>
}

const stateScans = new WeakMap<object, StateScan>()
const journalScans = new WeakMap<object, JournalScan>()

/** Registers how `store` (a `StateStore`) is enumerated. @internal */
export const registerStateScan = <S extends object>(store: S, scan: StateScan): S => {
  stateScans.set(store, scan)
  return store
}

/** Registers how `journal` (a `Journal`) is enumerated and rewritten. @internal */
export const registerJournalScan = <J extends object>(journal: J, scan: JournalScan): J => {
  journalScans.set(journal, scan)
  return journal
}

/** @internal */
export const stateScanOf = (store: object): StateScan | undefined => stateScans.get(store)

/** @internal */
export const journalScanOf = (journal: object): JournalScan | undefined => journalScans.get(journal)

/** `store` (a state store and journal pair) with `scan` registered for both. @internal */
export const withScan = <S extends { readonly state: object; readonly journal: object }>(store: S, scan: StateScan & JournalScan): S => {
  registerStateScan(store.state, scan)
  registerJournalScan(store.journal, scan)
  return store
}

/**
 * Persistence: typed actor state with version checks, event sourcing with snapshots, and
 * the stores behind them (memory by default). The Redis and PostgreSQL stores are the
 * subpaths `quark/persistence/redis` and `quark/persistence/pg`, so their drivers load only
 * where they are used.
 *
 * @since 0.1.0
 */
export type { Journal, JournalEntry, Snapshot } from "./Journal.ts"
export * from "./PersistenceError.ts"
export { formatKey, type StateKey, type StateStore, type StoredState } from "./StateStore.ts"
export type { Store, StoresShape } from "./Stores.ts"
export * as Stores from "./Stores.ts"
export * as ActorState from "./ActorState.ts"
export * as EventSourced from "./EventSourced.ts"
export * as Encryption from "./Encryption.ts"
export * as EncryptedStore from "./EncryptedStore.ts"

/**
 * Persistence: typed actor state with version checks, event sourcing with snapshots, and
 * the stores behind them (memory by default; Redis and PostgreSQL providers).
 *
 * @since 0.1.0
 */
export type { Journal, JournalEntry, Snapshot } from "./Journal.ts"
export * from "./PersistenceError.ts"
export { formatKey, type StateKey, type StateStore, type StoredState } from "./StateStore.ts"
export * as Stores from "./Stores.ts"
export * as ActorState from "./ActorState.ts"
export * as EventSourced from "./EventSourced.ts"
export * as RedisStore from "./RedisStore.ts"
export * as PgStore from "./PgStore.ts"

/**
 * Quark: distributed virtual actors with supervision hierarchies, built on Effect.
 *
 * This entry point is the local runtime (contracts, refs, the silo), supervision, and
 * persistence, reminders and streams with their in-memory stores: it loads `effect` and nothing
 * else. Clustering, the transport, and the Redis and PostgreSQL providers are subpaths of
 * their own
 * (`quark/cluster`, `quark/cluster/redis`, `quark/transport`, `quark/persistence/redis`,
 * `quark/persistence/pg`, `quark/testing`), so that importing a contract never loads a
 * socket or a database driver.
 *
 * @since 0.1.0
 */
export * from "./Actor/index.ts"
export * from "./Supervision/index.ts"
export * from "./Persistence/index.ts"
export * from "./Reminders/index.ts"
export * from "./Streams/index.ts"
export * from "./Telemetry/index.ts"
export * from "./Security/index.ts"

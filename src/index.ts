/**
 * Quark: distributed virtual actors with supervision hierarchies, built on Effect.
 *
 * @since 0.1.0
 */
export * from "./Actor/index.ts"
export * from "./Supervision/index.ts"
export * from "./Persistence/index.ts"
export * from "./Cluster/index.ts"
export * from "./Transport/index.ts"

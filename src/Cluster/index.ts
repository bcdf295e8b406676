/**
 * Clustering (`quark/cluster`): membership, the consistent hash ring, placement policies
 * (load-aware ones too: `Load`, the `Rebalancer`), the activation directory (in memory),
 * and the layers that make a program a cluster member (`ClusterSilo`) or a client of one
 * (`ClusterClient`). Membership and the directory on
 * Redis are `quark/cluster/redis`; an in-process cluster for tests is `quark/testing`.
 *
 * @since 0.1.0
 */
export * from "./Cluster.ts"
export * from "./Migrator.ts"
export * as ClusterClient from "./ClusterClient.ts"
export * as ClusterSilo from "./ClusterSilo.ts"
export * as HashRing from "./HashRing.ts"
export * as Membership from "./Membership.ts"
export * as MemoryMembership from "./MemoryMembership.ts"
export * from "./SiloIdentity.ts"
export * as Placement from "./Placement.ts"
export * as Load from "./Load.ts"
export * as Rebalancer from "./Rebalancer.ts"
export * as Directory from "./Directory.ts"
export * as MemoryDirectory from "./MemoryDirectory.ts"

/**
 * Cluster groundwork: the consistent hash ring, silo identities and membership (in memory
 * and on Redis). Placement, the directory, the transport and remote routing are the rest of
 * the cluster milestone and are not built yet.
 *
 * @since 0.1.0
 */
export * as HashRing from "./HashRing.ts"
export * as Membership from "./Membership.ts"
export * as MemoryMembership from "./MemoryMembership.ts"
export * as RedisMembership from "./RedisMembership.ts"
export * from "./SiloIdentity.ts"
export * as Placement from "./Placement.ts"
export * as Directory from "./Directory.ts"
export * as MemoryDirectory from "./MemoryDirectory.ts"
export * as RedisDirectory from "./RedisDirectory.ts"

/**
 * Membership and the activation directory on Redis (`quark/cluster/redis`): the registry a
 * production cluster runs on; and `RedisSettings`, how they connect (AUTH, TLS). A subpath
 * of its own so that `ioredis` loads only where it is used.
 *
 * @since 0.1.0
 */
export * as RedisDirectory from "./RedisDirectory.ts"
export * as RedisMembership from "./RedisMembership.ts"
export * as RedisSettings from "../Persistence/RedisSettings.ts"

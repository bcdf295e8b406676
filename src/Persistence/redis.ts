/**
 * The Redis state and journal store (`quark/persistence/redis`). A subpath of its own so that
 * `ioredis` loads only where it is used.
 *
 * @since 0.1.0
 */
export * as RedisStore from "./RedisStore.ts"

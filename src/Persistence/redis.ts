/**
 * The Redis providers (`quark/persistence/redis`): state and journals, reminders, and
 * streams (Redis Streams); and `RedisSettings`, how they connect (AUTH, TLS). A subpath of
 * its own so that `ioredis` loads only where it is used.
 *
 * @since 0.1.0
 */
export * as RedisSettings from "./RedisSettings.ts"
export * as RedisStore from "./RedisStore.ts"
export * as RedisReminderStore from "../Reminders/RedisReminderStore.ts"
export * as RedisStreamProvider from "../Streams/RedisStreamProvider.ts"

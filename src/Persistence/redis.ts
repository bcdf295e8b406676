/**
 * The Redis stores (`quark/persistence/redis`): state and journals, and reminders. A subpath
 * of its own so that `ioredis` loads only where it is used.
 *
 * @since 0.1.0
 */
export * as RedisStore from "./RedisStore.ts"
export * as RedisReminderStore from "../Reminders/RedisReminderStore.ts"

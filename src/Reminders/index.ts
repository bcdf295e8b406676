/**
 * Durable reminders: named schedules (one shot, fixed period, cron in a time zone) that
 * deliver an actor's declared message as a turn, survive every silo restarting, retry a
 * failing tick and keep a dead-letter queue. The in-memory store is here; the Redis and
 * PostgreSQL stores are in `quark/persistence/redis` and `quark/persistence/pg`.
 *
 * @since 0.1.0
 */
export * as Reminders from "./Reminders.ts"
export * as ReminderTiming from "./ReminderTiming.ts"
export * as MemoryReminderStore from "./MemoryReminderStore.ts"
export type { DeadLetter, ReminderKey, ReminderStore, ReminderWrite, StoredReminder } from "./ReminderStore.ts"
export * as EncryptedReminderStore from "./EncryptedReminderStore.ts"

/**
 * The PostgreSQL stores (`quark/persistence/pg`): state and journals, and reminders. A
 * subpath of its own so that `@effect/sql-pg` loads only where it is used.
 *
 * @since 0.1.0
 */
export * as PgStore from "./PgStore.ts"
export * as PgReminderStore from "../Reminders/PgReminderStore.ts"

/**
 * The PostgreSQL stores (`quark/persistence/pg`): state and journals, and reminders; and
 * `PgSettings`, how they connect (password, TLS). A subpath of its own so that
 * `@effect/sql-pg` loads only where it is used.
 *
 * @since 0.1.0
 */
export * as PgSettings from "./PgSettings.ts"
export * as PgStore from "./PgStore.ts"
export * as PgReminderStore from "../Reminders/PgReminderStore.ts"

/**
 * The PostgreSQL state and journal store (`quark/persistence/pg`). A subpath of its own so
 * that `@effect/sql-pg` loads only where it is used.
 *
 * @since 0.1.0
 */
export * as PgStore from "./PgStore.ts"

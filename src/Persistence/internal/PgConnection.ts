/**
 * Opening a PostgreSQL store: a small pool, its tables created under an advisory lock, and
 * the driver's errors turned into `StoreError`s that carry the server's own message.
 *
 * @internal
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted, type Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import type { SqlError } from "effect/sql/SqlError"
import { StoreError } from "../PersistenceError.ts"

export interface PgConnection {
  readonly sql: PgClient.PgClient
  /** Runs one statement; a failure is a `StoreError` of `operation`. */
  readonly run: <A extends object>(operation: string, text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, StoreError>
  readonly fail: (operation: string) => (error: SqlError) => StoreError
  /** The `StoreError` of a driver error's reason. */
  readonly storeError: (operation: string, reason: SqlError["reason"]) => StoreError
}

/** Connects to `url` and runs `ddl` in one transaction locked on `lockName`. */
export const open = (
  store: string,
  url: string,
  lockName: string,
  ddl: ReadonlyArray<string>
): Effect.Effect<PgConnection, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    // The server's own message is the cause the driver keeps.
    const storeError = (operation: string, { _tag, cause, message }: SqlError["reason"]) =>
      new StoreError({ store, operation, reason: `${_tag}: ${cause instanceof Error ? cause.message : message}` })
    const fail = (operation: string) => (error: SqlError) => storeError(operation, error.reason)
    const sql = yield* PgClient.make({ url: Redacted.make(url), maxConnections: 4, connectTimeout: "5 seconds" }).pipe(
      Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
      Effect.mapError(fail("connect"))
    )
    // One transaction holding an advisory lock: concurrent `CREATE … IF NOT EXISTS` of the
    // same table can otherwise fail on the catalog's unique index.
    yield* sql.withTransaction(
      Effect.forEach([`SELECT pg_advisory_xact_lock(hashtext('${lockName}'))`, ...ddl], (statement) =>
        sql.unsafe(statement), { discard: true })
    ).pipe(
      // The pool connects lazily, so this first statement is where an unreachable server shows.
      Effect.mapError((error) =>
        storeError(error.reason._tag === "ConnectionError" ? "connect" : "create tables", error.reason)
      )
    )
    const run = <A extends object>(operation: string, text: string, params: ReadonlyArray<unknown>) =>
      Effect.mapError(sql.unsafe<A>(text, params), fail(operation))
    return { sql, run, fail, storeError }
  })

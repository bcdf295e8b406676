/**
 * Opening a PostgreSQL store: a small pool on `PgSettings` (a URL string is one), its tables
 * created under an advisory lock, and the driver's errors turned into `StoreError`s that
 * carry the server's own message; a failure to connect says what failed (authentication,
 * TLS) and never holds a secret of the settings.
 *
 * @internal
 */
import { PgClient } from "@effect/sql-pg"
import type { ConnectionOptions } from "node:tls"
import { Effect, Redacted, type Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import type { SqlError } from "effect/sql/SqlError"
import { StoreError } from "../PersistenceError.ts"
import type * as PgSettings from "../PgSettings.ts"
import { connectFailure, tlsOptions, tlsSecrets, urlSecrets } from "./Tls.ts"

export interface PgConnection {
  readonly sql: PgClient.PgClient
  /** Runs one statement; a failure is a `StoreError` of `operation`. */
  readonly run: <A extends object>(operation: string, text: string, params: ReadonlyArray<unknown>) => Effect.Effect<ReadonlyArray<A>, StoreError>
  readonly fail: (operation: string) => (error: SqlError) => StoreError
  /** The `StoreError` of a driver error's reason. */
  readonly storeError: (operation: string, reason: SqlError["reason"]) => StoreError
}

interface Resolved {
  readonly config: PgClient.PgPoolConfig
  readonly secrets: ReadonlyArray<string>
}

const sslOptions = (ssl: PgSettings.Ssl): Effect.Effect<ConnectionOptions, string> =>
  Effect.map(tlsOptions(ssl), (material): ConnectionOptions =>
    ssl.mode === "require" ?
      { ...material, rejectUnauthorized: false } :
      ssl.mode === "verify-ca" ?
      { ...material, rejectUnauthorized: true, checkServerIdentity: () => undefined } :
      { ...material, rejectUnauthorized: true })

/** The pool's settings of `input` (default `QUARK_PG_URL`, else the local `test` database). */
const resolve = (input: PgSettings.Input | undefined): Effect.Effect<Resolved, string> =>
  Effect.gen(function*() {
    const settings: PgSettings.Settings = typeof input === "string" ? { url: input } : input ?? {}
    const url = settings.url !== undefined
      ? (typeof settings.url === "string" ? settings.url : Redacted.value(settings.url))
      : settings.host === undefined
      ? process.env.QUARK_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
      : undefined
    const ssl = settings.ssl === undefined ? undefined : settings.ssl === false ? false : yield* sslOptions(settings.ssl)
    const config: PgClient.PgPoolConfig = {
      ...(url === undefined ? {} : { url: Redacted.make(url) }),
      ...(settings.host === undefined ? {} : { host: settings.host }),
      ...(settings.port === undefined ? {} : { port: settings.port }),
      ...(settings.database === undefined ? {} : { database: settings.database }),
      ...(settings.user === undefined ? {} : { username: settings.user }),
      ...(settings.password === undefined ? {} : { password: settings.password }),
      ...(ssl === undefined ? {} : { ssl }),
      maxConnections: 4,
      connectTimeout: "5 seconds"
    }
    const secrets = [
      ...(settings.password === undefined ? [] : [Redacted.value(settings.password)]),
      ...(url === undefined ? [] : urlSecrets(url)),
      ...tlsSecrets(settings.ssl === false ? undefined : settings.ssl)
    ]
    return { config, secrets }
  })

/** Connects as `settings` say and runs `ddl` in one transaction locked on `lockName`. */
export const open = (
  store: string,
  settings: PgSettings.Input | undefined,
  lockName: string,
  ddl: ReadonlyArray<string>
): Effect.Effect<PgConnection, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const { config, secrets } = yield* Effect.mapError(resolve(settings), (reason) =>
      new StoreError({ store, operation: "connect", reason }))
    // The server's own message is the cause the driver keeps.
    const storeError = (operation: string, { _tag, cause, message }: SqlError["reason"]) =>
      new StoreError({
        store,
        operation,
        reason: operation === "connect" ?
          `${_tag}: ${connectFailure(cause instanceof Error ? cause : message, secrets)}` :
          `${_tag}: ${cause instanceof Error ? cause.message : message}`
      })
    const fail = (operation: string) => (error: SqlError) => storeError(operation, error.reason)
    const sql = yield* PgClient.make(config).pipe(
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
        storeError(
          error.reason._tag === "ConnectionError" || error.reason._tag === "AuthenticationError" ? "connect" : "create tables",
          error.reason
        )
      )
    )
    const run = <A extends object>(operation: string, text: string, params: ReadonlyArray<unknown>) =>
      Effect.mapError(sql.unsafe<A>(text, params), fail(operation))
    return { sql, run, fail, storeError }
  })

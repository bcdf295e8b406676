/**
 * The PostgreSQL `ReminderStore`: reminders, their history and the dead-letter queue in three
 * tables, created on first use (`CREATE … IF NOT EXISTS` under an advisory lock, as the
 * state store does); `{t}` is the `table` option (default `quark_reminders`):
 *
 * ```sql
 * CREATE TABLE {t} (
 *   actor_type text COLLATE "C", actor_id text COLLATE "C", name text COLLATE "C",
 *   bucket bigint NOT NULL, next_due double precision NOT NULL,
 *   version bigint NOT NULL, data text NOT NULL,
 *   PRIMARY KEY (actor_type, actor_id, name))
 * CREATE INDEX {t}_due ON {t} (bucket, next_due, actor_type, actor_id, name)
 * CREATE TABLE {t}_history (
 *   actor_type, actor_id, name (as above), seq bigint, entry text NOT NULL,
 *   PRIMARY KEY (actor_type, actor_id, name, seq),
 *   FOREIGN KEY (actor_type, actor_id, name) REFERENCES {t} ON DELETE CASCADE)
 * CREATE TABLE {t}_dead_letters (
 *   id text COLLATE "C" PRIMARY KEY, kind text COLLATE "C" NOT NULL,
 *   at double precision NOT NULL, data text NOT NULL)
 * CREATE INDEX {t}_dl_at ON {t}_dead_letters (at, id)
 * CREATE INDEX {t}_dl_kind ON {t}_dead_letters (kind, at, id)
 * ```
 *
 * **Why this shape.**
 * - `due` is one range scan of `{t}_due`: `WHERE bucket = $1 AND next_due <= $2 ORDER BY
 *   next_due, actor_type, actor_id, name LIMIT $3` reads the index in order and stops after
 *   `limit` rows. `list` is a range of the primary key, already in name order.
 * - Text columns use the `"C"` collation: byte order of UTF-8, which is code-point order, as
 *   Redis and the memory store order keys (a locale's collation would order ties
 *   differently, and per database).
 * - Times are `double precision`, which holds every JavaScript number exactly.
 * - Every check is made by the statement that writes, so any number of silos can share the
 *   tables: a put is `INSERT … ON CONFLICT DO NOTHING` at expected version 0 and `UPDATE …
 *   WHERE version = $expected` otherwise; a remove is `DELETE … WHERE version = $expected`.
 *   A statement that changes no row is a conflict (or, for a remove at version 0 of a
 *   reminder that does not exist, a success).
 * - History rows reference their reminder with `ON DELETE CASCADE`, so a remove takes the
 *   history with it, and an append for a reminder that is gone (even one removed while the
 *   append runs: the foreign key locks the row) stores nothing. Each append numbers its
 *   entry `max(seq) + 1` and deletes what falls out of the newest `keep` in the same
 *   statement; two appends racing on one reminder collide on the primary key, and the loser
 *   goes again.
 *
 * **Puts are batched** (as the state store's writes are): the puts issued while the previous
 * batch is in the database go out together as one statement (one commit), each still
 * succeeding or conflicting on its own, so registering many reminders, or a silo advancing
 * many ticks at once, is not bound by one commit per put. A batch holds a key at most once.
 * A batch that deadlocks with another silo's (their rows locked in opposite orders) wrote
 * nothing and goes again. Everything else is one statement per call.
 *
 * PostgreSQL text cannot hold NUL, and UTF-8 cannot carry a lone surrogate: a call with such
 * text fails with `StoreError` and changes nothing.
 *
 * Operations are timed as store kind `"postgres"` (`internal/ReminderStoreMetrics.ts`); a
 * put from its call to its result, the wait for its batch included.
 *
 * @since 0.1.0
 */
import { PgTypes } from "@effect/sql-pg"
import { Effect, type Scope } from "effect"
import { batcher } from "../Persistence/internal/WriteBatcher.ts"
import { open } from "../Persistence/internal/PgConnection.ts"
import { StateConflict, StoreError } from "../Persistence/PersistenceError.ts"
import * as PgSettings from "../Persistence/PgSettings.ts"
import { instrumentReminderStore } from "./internal/ReminderStoreMetrics.ts"
import { countOf, invalidDeadLetter, invalidWrite } from "./internal/StoreOrder.ts"
import type { DeadLetter, ReminderKey, ReminderStore, ReminderWrite, StoredReminder } from "./ReminderStore.ts"

/**
 * Where to connect (default: `QUARK_PG_URL`, else the local server's `test` database) and
 * the name of the reminders table (default `quark_reminders`; the history and dead-letter
 * tables are named after it, `…_history` and `…_dead_letters`).
 *
 * @since 0.1.0
 */
export interface PgReminderStoreOptions {
  readonly url?: string
  /** Where to connect and how to authenticate (TLS, a password): see `PgSettings`. Default: `url`. */
  readonly connection?: PgSettings.Input
  readonly table?: string
}

const unstorableText = /\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

interface ReminderRow {
  readonly actor_type: string
  readonly actor_id: string
  readonly name: string
  readonly bucket: bigint | number
  readonly next_due: number
  readonly version: bigint | number
  readonly data: string
}

interface DeadLetterRow {
  readonly id: string
  readonly kind: string
  readonly at: number
  readonly data: string
}

const validVersion = (version: number): boolean => Number.isSafeInteger(version) && version > 0

const reminderOf = (row: ReminderRow): StoredReminder => ({
  key: { type: row.actor_type, id: row.actor_id, name: row.name },
  bucket: Number(row.bucket),
  nextDue: Number(row.next_due),
  version: Number(row.version),
  data: row.data
})

/**
 * A `ReminderStore` backed by PostgreSQL (a pool of up to 4 connections, closed with the
 * scope). Fails with `StoreError` if the server cannot be reached (within the 5-second
 * connect timeout, without retrying) or the tables cannot be created.
 *
 * @since 0.1.0
 */
export const make = (
  name: string,
  options?: PgReminderStoreOptions
): Effect.Effect<ReminderStore, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const table = options?.table ?? "quark_reminders"
    // PostgreSQL cuts names at 63 bytes; the longest derived one adds 13.
    if (!/^[a-z_][a-z0-9_]*$/.test(table) || table.length > 50) {
      return yield* new StoreError({ store: name, operation: "open", reason: `invalid table name "${table}"` })
    }
    const q = queries(table)
    const { fail, run, sql, storeError } = yield* open(name, PgSettings.fromOptions(options?.url, options?.connection), `quark:${table}`, q.create)
    /** A `StoreError` if any text cannot be stored (checked before anything is sent). */
    const unstorable = (operation: string, texts: ReadonlyArray<string>) =>
      texts.some((text) => unstorableText.test(text))
        ? new StoreError({
          store: name,
          operation,
          reason: "text with a NUL character or a lone surrogate cannot be stored"
        })
        : undefined
    const keyOf = (key: ReminderKey) => [key.type, key.id, key.name]
    const conflict = (key: ReminderKey, expectedVersion: number, actualVersion: number) =>
      new StateConflict({ key: `${key.type}/${key.id}/${key.name}`, expectedVersion, actualVersion })
    const currentVersion = (operation: string, key: ReminderKey) =>
      Effect.map(
        run<{ version: bigint }>(operation, q.version, keyOf(key)),
        (rows) => rows.length === 0 ? 0 : Number(rows[0]!.version)
      )

    // Whether each put of a batch was stored: one statement for all of them.
    const putBatch = yield* batcher(name, "put", batchKey, (batch: ReadonlyArray<Put>) =>
      sql.unsafe<{ n: number }>(q.putBatch, [
        batch.map((p) => p.reminder.key.type),
        batch.map((p) => p.reminder.key.id),
        batch.map((p) => p.reminder.key.name),
        batch.map((p) => BigInt(p.reminder.bucket)),
        // As text (exact: the shortest form that reads back as the same double), since an
        // array of numbers would take its type from whether the first is an integer.
        batch.map((p) => String(p.reminder.nextDue)),
        batch.map((p) => p.reminder.data),
        batch.map((p) => BigInt(p.expectedVersion))
      ]).pipe(
        // A deadlock aborted the whole statement (nothing was written): it goes again.
        Effect.retry({ times: 3, while: (error) => error.reason._tag === "DeadlockError" }),
        Effect.mapError(fail("put")),
        Effect.map((rows) => {
          const written = new Set(rows.map((row) => row.n))
          return batch.map((_, n) => written.has(n))
        })
      ))

    const appendHistory = (key: ReminderKey, entry: string, keep: number): Effect.Effect<void, StoreError> =>
      sql.unsafe(q.appendHistory, [...keyOf(key), entry, BigInt(keep)]).pipe(
        Effect.asVoid,
        Effect.catchReason(
          "SqlError",
          "UniqueViolation",
          // A concurrent append took the same sequence number: go again after it.
          () => appendHistory(key, entry, keep),
          (reason) =>
            // The reminder was removed while this append ran: it has no history to add to.
            reason._tag === "ConstraintError" ? Effect.void : Effect.fail(storeError("appendHistory", reason))
        )
      )

    const store: ReminderStore = {
      name,
      get: (key) =>
        Effect.suspend(() => {
          const invalid = unstorable("get", keyOf(key))
          if (invalid) return Effect.fail(invalid)
          return Effect.map(
            run<ReminderRow>("get", q.get, keyOf(key)),
            (rows) => rows.length === 0 ? undefined : reminderOf(rows[0]!)
          )
        }),
      put: Effect.fnUntraced(function*(reminder, expectedVersion, history) {
        const invalid = invalidWrite(reminder)
        if (invalid !== undefined) return yield* new StoreError({ store: name, operation: "put", reason: invalid })
        const unfit = unstorable("put", [...keyOf(reminder.key), reminder.data, history?.entry ?? ""])
        if (unfit) return yield* unfit
        // No stored version is anything but 0 or a positive integer.
        if ((expectedVersion === 0 || validVersion(expectedVersion)) && (yield* putBatch({ reminder, expectedVersion }))) {
          if (history !== undefined) {
            // The put stood; its history entry is for operators, and a failure to add it is logged.
            yield* store.appendHistory(reminder.key, history.entry, history.keep).pipe(
              Effect.catch((error) => Effect.logWarning(`reminder history entry not stored: ${error.message}`))
            )
          }
          return expectedVersion + 1
        }
        return yield* conflict(reminder.key, expectedVersion, yield* currentVersion("put", reminder.key))
      }),
      remove: Effect.fnUntraced(function*(key, expectedVersion) {
        const invalid = unstorable("remove", keyOf(key))
        if (invalid) return yield* invalid
        const rows = validVersion(expectedVersion)
          ? yield* run("remove", q.delete, [...keyOf(key), BigInt(expectedVersion)])
          : []
        if (rows.length === 1) return
        const actualVersion = yield* currentVersion("remove", key)
        // Removing a reminder that does not exist, at version 0, succeeds.
        if (expectedVersion === 0 && actualVersion === 0) return
        return yield* conflict(key, expectedVersion, actualVersion)
      }),
      list: (type, id) =>
        Effect.suspend(() => {
          const invalid = unstorable("list", [type, id])
          if (invalid) return Effect.fail(invalid)
          return Effect.map(run<ReminderRow>("list", q.list, [type, id]), (rows) => rows.map(reminderOf))
        }),
      due: (bucket, until, limit) => {
        const count = countOf(limit)
        // No put stores such a bucket; and nothing is at or before NaN (which PostgreSQL
        // would order after every number).
        if (count === 0 || !Number.isSafeInteger(bucket) || Number.isNaN(until)) return Effect.succeed([])
        return Effect.map(
          run<ReminderRow>("due", q.due, [BigInt(bucket), PgTypes.float8(until), BigInt(count)]),
          (rows) => rows.map(reminderOf)
        )
      },
      appendHistory: (key, entry, keep) =>
        Effect.suspend(() => {
          const invalid = unstorable("appendHistory", [...keyOf(key), entry])
          if (invalid) return Effect.fail(invalid)
          const kept = countOf(keep)
          if (kept === 0) return Effect.asVoid(run("appendHistory", q.clearHistory, keyOf(key)))
          return appendHistory(key, entry, kept)
        }),
      history: (key) =>
        Effect.suspend(() => {
          const invalid = unstorable("history", keyOf(key))
          if (invalid) return Effect.fail(invalid)
          return Effect.map(run<{ entry: string }>("history", q.history, keyOf(key)), (rows) => rows.map((row) => row.entry))
        }),
      addDeadLetter: (entry) =>
        Effect.suspend(() => {
          const invalid = invalidDeadLetter(entry)
          if (invalid !== undefined) {
            return Effect.fail(new StoreError({ store: name, operation: "addDeadLetter", reason: invalid }))
          }
          const unfit = unstorable("addDeadLetter", [entry.id, entry.kind, entry.data])
          if (unfit) return Effect.fail(unfit)
          return Effect.asVoid(
            run("addDeadLetter", q.addDeadLetter, [entry.id, entry.kind, PgTypes.float8(entry.at), entry.data])
          )
        }),
      deadLetters: ({ kind, limit }) =>
        Effect.suspend(() => {
          const count = countOf(limit)
          if (count === 0) return Effect.succeed([])
          if (kind !== undefined) {
            const invalid = unstorable("deadLetters", [kind])
            if (invalid) return Effect.fail(invalid)
          }
          return Effect.map(
            kind === undefined
              ? run<DeadLetterRow>("deadLetters", q.deadLetters, [BigInt(count)])
              : run<DeadLetterRow>("deadLetters", q.deadLettersOfKind, [BigInt(count), kind]),
            (rows) => rows.map((row): DeadLetter => ({ id: row.id, kind: row.kind, at: Number(row.at), data: row.data }))
          )
        }),
      removeDeadLetter: (id) =>
        Effect.suspend(() => {
          const invalid = unstorable("removeDeadLetter", [id])
          if (invalid) return Effect.fail(invalid)
          return Effect.map(run("removeDeadLetter", q.removeDeadLetter, [id]), (rows) => rows.length > 0)
        })
    }
    // The put above calls `store.appendHistory` unwrapped: its time is the put's.
    return instrumentReminderStore("postgres", store)
  })

interface Put {
  readonly reminder: ReminderWrite
  readonly expectedVersion: number
}

/** Text cannot hold NUL in PostgreSQL, so this joins the parts of a key without ambiguity. */
const batchKey = ({ reminder: { key } }: Put): string => `${key.type}\u0000${key.id}\u0000${key.name}`

/** Every statement's text, fixed per table name, so each is prepared once per connection. */
const queries = (table: string) => {
  const history = `${table}_history`
  const dead = `${table}_dead_letters`
  const key = "actor_type = $1 AND actor_id = $2 AND name = $3"
  const keyColumns = `actor_type text COLLATE "C" NOT NULL, actor_id text COLLATE "C" NOT NULL,
        name text COLLATE "C" NOT NULL`
  return {
    create: [
      `CREATE TABLE IF NOT EXISTS ${table} (${keyColumns},
        bucket bigint NOT NULL, next_due double precision NOT NULL, version bigint NOT NULL, data text NOT NULL,
        PRIMARY KEY (actor_type, actor_id, name))`,
      `CREATE INDEX IF NOT EXISTS ${table}_due ON ${table} (bucket, next_due, actor_type, actor_id, name)`,
      `CREATE TABLE IF NOT EXISTS ${history} (${keyColumns}, seq bigint NOT NULL, entry text NOT NULL,
        PRIMARY KEY (actor_type, actor_id, name, seq),
        FOREIGN KEY (actor_type, actor_id, name) REFERENCES ${table} ON DELETE CASCADE)`,
      `CREATE TABLE IF NOT EXISTS ${dead} (id text COLLATE "C" PRIMARY KEY, kind text COLLATE "C" NOT NULL,
        at double precision NOT NULL, data text NOT NULL)`,
      `CREATE INDEX IF NOT EXISTS ${table}_dl_at ON ${dead} (at, id)`,
      `CREATE INDEX IF NOT EXISTS ${table}_dl_kind ON ${dead} (kind, at, id)`
    ],
    get: `SELECT actor_type, actor_id, name, bucket, next_due, version, data FROM ${table} WHERE ${key}`,
    version: `SELECT version FROM ${table} WHERE ${key}`,
    // A batch of version-checked puts (keys distinct): an update where the stored version is
    // the expected one, an insert where 0 is expected and there is no reminder. Returns the
    // positions (0-based) of the puts stored.
    putBatch: `WITH input AS (
        SELECT (i.n - 1)::int AS n, i.actor_type COLLATE "C" AS actor_type, i.actor_id COLLATE "C" AS actor_id,
          i.name COLLATE "C" AS name, i.bucket, i.next_due, i.data, i.expected
        FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[], $6::text[], $7::bigint[])
          WITH ORDINALITY AS i(actor_type, actor_id, name, bucket, next_due, data, expected, n)),
      updated AS (
        UPDATE ${table} r SET bucket = i.bucket, next_due = i.next_due, data = i.data, version = r.version + 1
        FROM input i
        WHERE i.expected > 0 AND r.actor_type = i.actor_type AND r.actor_id = i.actor_id AND r.name = i.name
          AND r.version = i.expected
        RETURNING i.n),
      inserted AS (
        INSERT INTO ${table} (actor_type, actor_id, name, bucket, next_due, version, data)
        SELECT actor_type, actor_id, name, bucket, next_due, 1, data FROM input WHERE expected = 0
        ON CONFLICT DO NOTHING
        RETURNING actor_type, actor_id, name)
      SELECT n FROM updated
      UNION ALL SELECT i.n FROM inserted s JOIN input i USING (actor_type, actor_id, name)`,
    delete: `DELETE FROM ${table} WHERE ${key} AND version = $4 RETURNING version`,
    list: `SELECT actor_type, actor_id, name, bucket, next_due, version, data FROM ${table}
      WHERE actor_type = $1 AND actor_id = $2 ORDER BY name`,
    due: `SELECT actor_type, actor_id, name, bucket, next_due, version, data FROM ${table}
      WHERE bucket = $1 AND next_due <= $2 ORDER BY next_due, actor_type, actor_id, name LIMIT $3`,
    // Inserts the entry (only if the reminder exists) and deletes the entries that fall out
    // of the newest $5: the DELETE sees the rows before the INSERT, which are all older.
    appendHistory: `WITH added AS (
        INSERT INTO ${history} (actor_type, actor_id, name, seq, entry)
        SELECT $1, $2, $3, coalesce((SELECT max(seq) FROM ${history} WHERE ${key}), 0) + 1, $4
        WHERE EXISTS (SELECT 1 FROM ${table} WHERE ${key})
        RETURNING seq)
      DELETE FROM ${history} WHERE ${key} AND seq <= (SELECT seq FROM added) - $5`,
    clearHistory: `DELETE FROM ${history} WHERE ${key}`,
    history: `SELECT entry FROM ${history} WHERE ${key} ORDER BY seq DESC`,
    addDeadLetter: `INSERT INTO ${dead} (id, kind, at, data) VALUES ($1, $2, $3, $4)
      ON CONFLICT (id) DO UPDATE SET kind = excluded.kind, at = excluded.at, data = excluded.data`,
    deadLetters: `SELECT id, kind, at, data FROM ${dead} ORDER BY at, id LIMIT $1`,
    deadLettersOfKind: `SELECT id, kind, at, data FROM ${dead} WHERE kind = $2 ORDER BY at, id LIMIT $1`,
    removeDeadLetter: `DELETE FROM ${dead} WHERE id = $1 RETURNING id`
  }
}

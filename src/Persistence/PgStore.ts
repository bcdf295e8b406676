/**
 * The PostgreSQL provider: actor state records, journals and snapshots in three tables,
 * created on first use (`CREATE TABLE IF NOT EXISTS`, under an advisory lock so that
 * processes starting together do not race); `{prefix}` is the `tablePrefix` option
 * (default `quark_`, so `quark_state`, ...):
 *
 * ```sql
 * CREATE TABLE {prefix}state (
 *   actor_type text, actor_id text, record text,
 *   version bigint NOT NULL, data text NOT NULL,
 *   PRIMARY KEY (actor_type, actor_id, record))
 * CREATE TABLE {prefix}journal (
 *   actor_type text, actor_id text, journal text,
 *   sequence bigint NOT NULL, data text NOT NULL,
 *   PRIMARY KEY (actor_type, actor_id, journal, sequence))
 * CREATE TABLE {prefix}snapshot (
 *   actor_type text, actor_id text, journal text,
 *   sequence bigint NOT NULL, data text NOT NULL,
 *   PRIMARY KEY (actor_type, actor_id, journal))
 * ```
 *
 * Every check is done by the database in the statement that writes, so any number of
 * processes can share the tables: a state write is an `UPDATE ... WHERE version =
 * expected` (or an `INSERT ... ON CONFLICT DO NOTHING` at version 0); an append inserts
 * its events only if the last stored sequence is the expected one, and the primary key
 * turns a concurrent append at the same sequence into a conflict.
 *
 * Writes and appends are batched: those issued while the previous batch is in the
 * database go out together as one statement (one commit), and each still succeeds or
 * conflicts on its own. Reads, clears and snapshots are one statement each.
 *
 * Operations are timed as store kind `"postgres"` (`internal/StoreMetrics.ts`): a write or
 * append from its call to its result, the wait for its batch included.
 *
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import { batcher } from "./internal/WriteBatcher.ts"
import { open } from "./internal/PgConnection.ts"
import type { Journal, JournalEntry, Snapshot } from "./Journal.ts"
import { JournalConflict, StateConflict, StoreError } from "./PersistenceError.ts"
import * as PgSettings from "./PgSettings.ts"
import { formatKey, type StateKey, type StateStore, type StoredState } from "./StateStore.ts"
import { instrumentJournal, instrumentState } from "./internal/StoreMetrics.ts"
import { withPgScan } from "./internal/PgScan.ts"
import type { Store } from "./Stores.ts"

/**
 * Where to connect (default: `QUARK_PG_URL`, else the local server's `test` database)
 * and the prefix of the table names (default `quark_`).
 *
 * @since 0.1.0
 */
export interface Options {
  readonly url?: string
  /** Where to connect and how to authenticate (TLS, a password): see `PgSettings`. Default: `url`. */
  readonly connection?: PgSettings.Input
  readonly tablePrefix?: string
}

/**
 * A store backed by PostgreSQL (a pool of up to 4 connections, closed with the scope).
 * Fails with `StoreError` if the server cannot be reached (within the 5-second connect
 * timeout, without retrying) or the tables cannot be created.
 *
 * @since 0.1.0
 */
export const make = (name: string, options?: Options): Effect.Effect<Store, StoreError, Scope.Scope> =>
  Effect.gen(function*() {
    const prefix = options?.tablePrefix ?? "quark_"
    if (!/^[a-z_][a-z0-9_]*$/.test(prefix)) {
      return yield* new StoreError({ store: name, operation: "open", reason: `invalid table prefix "${prefix}"` })
    }
    const q = queries(prefix)
    const { run, sql, storeError } = yield* open(name, PgSettings.fromOptions(options?.url, options?.connection), `quark:${prefix}`, q.create)
    const keyOf = (key: StateKey) => [key.type, key.id, key.record]

    const read = (operation: string, key: StateKey) =>
      Effect.map(run<{ version: bigint; data: string }>(operation, q.read, keyOf(key)), (rows) =>
        rows.length === 0 ? undefined : { version: Number(rows[0]!.version), data: rows[0]!.data } as StoredState)
    const currentVersion = (operation: string, key: StateKey) =>
      Effect.map(read(operation, key), (stored) => stored?.version ?? 0)
    // PostgreSQL text cannot hold NUL: such a request fails alone, before it could fail a
    // whole batch of others.
    const unstorable = (operation: string, key: StateKey, texts: ReadonlyArray<string>) =>
      [key.type, key.id, key.record, ...texts].some((text) => text.includes("\u0000")) &&
      new StoreError({ store: name, operation, reason: "text with a NUL character cannot be stored" })
    const lastSequence = (key: StateKey) =>
      Effect.map(run<{ last: bigint }>("lastSequence", q.last, keyOf(key)), (rows) => Number(rows[0]!.last))

    // Whether each write of a batch was stored: one statement for all of them.
    const writeBatch = yield* batcher(name, "write", (w: Write) => batchKey(w.key), (batch: ReadonlyArray<Write>) =>
      Effect.map(
        run<{ actor_type: string; actor_id: string; record: string }>("write", q.writeBatch, [
          ...keyColumns(batch),
          batch.map((w) => w.data),
          batch.map((w) => BigInt(w.expectedVersion))
        ]),
        (rows) => {
          const written = new Set(rows.map((row) =>
            batchKey({ type: row.actor_type, id: row.actor_id, record: row.record })
          ))
          return batch.map((w) => written.has(batchKey(w.key)))
        }
      ))

    // The last sequence of each journal of a batch, as the statement found it: the events
    // went in where it is the expected one.
    const appendStatement = (batch: ReadonlyArray<Append>) => {
      const events = batch.flatMap((a, n) =>
        a.events.map((data, i) => ({ n, sequence: BigInt(a.expectedSequence + i + 1), data }))
      )
      return Effect.map(
        sql.unsafe<{ n: number; last: bigint }>(q.append, [
          ...keyColumns(batch),
          batch.map((a) => BigInt(a.expectedSequence)),
          batch.map((_, n) => n),
          events.map((e) => e.n),
          events.map((e) => e.sequence),
          events.map((e) => e.data)
        ]),
        (rows) => {
          const last = new Array<number>(batch.length)
          for (const row of rows) last[row.n] = Number(row.last)
          return last
        }
      )
    }
    // A unique violation means a concurrent append elsewhere took a sequence this statement
    // inserts: the statement appended nothing, and each append of it goes again alone,
    // where the violation is its own conflict.
    const appendBatch = yield* batcher(name, "append", (a: Append) => batchKey(a.key), (batch: ReadonlyArray<Append>) =>
      appendStatement(batch).pipe(Effect.catchReason(
        "SqlError",
        "UniqueViolation",
        () => Effect.succeed(batch.map(() => undefined)),
        (reason) => Effect.fail(storeError("append", reason))
      )))
    const appendAlone = (append: Append) =>
      appendStatement([append]).pipe(
        Effect.map((last) => last[0]!),
        Effect.catchReason(
          "SqlError",
          "UniqueViolation",
          () => lastSequence(append.key),
          (reason) => Effect.fail(storeError("append", reason))
        )
      )

    const state: StateStore = {
      name,
      read: (key) => read("read", key),
      write: Effect.fnUntraced(function*(key: StateKey, data: string, expectedVersion: number) {
        const invalid = unstorable("write", key, [data])
        if (invalid) return yield* invalid
        if (yield* writeBatch({ key, data, expectedVersion })) return expectedVersion + 1
        const actualVersion = yield* currentVersion("write", key)
        return yield* new StateConflict({ key: formatKey(key), expectedVersion, actualVersion })
      }),
      clear: Effect.fnUntraced(function*(key: StateKey, expectedVersion: number) {
        const rows = yield* run("clear", q.delete, [...keyOf(key), expectedVersion])
        if (rows.length === 1) return
        const actualVersion = yield* currentVersion("clear", key)
        // Clearing a record that does not exist, at version 0, succeeds (as in memory).
        if (expectedVersion === 0 && actualVersion === 0) return
        return yield* new StateConflict({ key: formatKey(key), expectedVersion, actualVersion })
      })
    }

    const journal: Journal = {
      name,
      append: Effect.fnUntraced(function*(key: StateKey, expectedSequence: number, events: ReadonlyArray<string>) {
        const invalid = unstorable("append", key, events)
        if (invalid) return yield* invalid
        const append = { key, expectedSequence, events }
        const last = (yield* appendBatch(append)) ?? (yield* appendAlone(append))
        if (last !== expectedSequence) {
          return yield* new JournalConflict({ key: formatKey(key), expectedSequence, actualSequence: last })
        }
        return expectedSequence + events.length
      }),
      read: (key, from, to) =>
        Effect.map(
          run<{ sequence: bigint; data: string }>("read", q.events, [
            ...keyOf(key),
            from,
            to ?? Number.MAX_SAFE_INTEGER
          ]),
          (rows) => rows.map((row): JournalEntry => ({ sequence: Number(row.sequence), data: row.data }))
        ),
      lastSequence,
      saveSnapshot: (key, snapshot) =>
        Effect.asVoid(run("saveSnapshot", q.saveSnapshot, [...keyOf(key), snapshot.sequence, snapshot.data])),
      loadSnapshot: (key) =>
        Effect.map(run<{ sequence: bigint; data: string }>("loadSnapshot", q.loadSnapshot, keyOf(key)), (rows) =>
          rows.length === 0 ? undefined : { sequence: Number(rows[0]!.sequence), data: rows[0]!.data } as Snapshot)
    }

    // The re-encryption job enumerates through this (`internal/StoreScan.ts`).
    return withPgScan({ name, state: instrumentState("postgres", state), journal: instrumentJournal("postgres", journal) }, run, prefix)
  })

interface Write {
  readonly key: StateKey
  readonly data: string
  readonly expectedVersion: number
}
interface Append {
  readonly key: StateKey
  readonly expectedSequence: number
  readonly events: ReadonlyArray<string>
}

/** A batch's keys as three array parameters (type, id, record). */
const keyColumns = (batch: ReadonlyArray<{ readonly key: StateKey }>) => [
  batch.map((r) => r.key.type),
  batch.map((r) => r.key.id),
  batch.map((r) => r.key.record)
]

/** Text cannot hold NUL in PostgreSQL, so this joins the parts of a key without ambiguity. */
const batchKey = (key: StateKey): string => `${key.type}\u0000${key.id}\u0000${key.record}`

/** Every statement's text, fixed per prefix, so each is prepared once per connection. */
const queries = (prefix: string) => {
  const state = `${prefix}state`
  const journal = `${prefix}journal`
  const snapshot = `${prefix}snapshot`
  const key = "actor_type = $1 AND actor_id = $2"
  return {
    create: [
      `CREATE TABLE IF NOT EXISTS ${state} (actor_type text NOT NULL, actor_id text NOT NULL, record text NOT NULL,
        version bigint NOT NULL, data text NOT NULL, PRIMARY KEY (actor_type, actor_id, record))`,
      `CREATE TABLE IF NOT EXISTS ${journal} (actor_type text NOT NULL, actor_id text NOT NULL, journal text NOT NULL,
        sequence bigint NOT NULL, data text NOT NULL, PRIMARY KEY (actor_type, actor_id, journal, sequence))`,
      `CREATE TABLE IF NOT EXISTS ${snapshot} (actor_type text NOT NULL, actor_id text NOT NULL, journal text NOT NULL,
        sequence bigint NOT NULL, data text NOT NULL, PRIMARY KEY (actor_type, actor_id, journal))`
    ],
    read: `SELECT version, data FROM ${state} WHERE ${key} AND record = $3`,
    // A batch of version-checked writes (keys distinct): an update where the stored version
    // is the expected one, an insert where 0 is expected and no record exists. Returns the
    // keys written.
    writeBatch: `WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[])
          AS i(actor_type, actor_id, record, data, expected)),
      updated AS (
        UPDATE ${state} s SET version = s.version + 1, data = i.data FROM input i
        WHERE i.expected > 0 AND s.actor_type = i.actor_type AND s.actor_id = i.actor_id AND s.record = i.record
          AND s.version = i.expected
        RETURNING s.actor_type, s.actor_id, s.record),
      inserted AS (
        INSERT INTO ${state} (actor_type, actor_id, record, version, data)
        SELECT actor_type, actor_id, record, 1, data FROM input WHERE expected = 0
        ON CONFLICT DO NOTHING
        RETURNING actor_type, actor_id, record)
      SELECT * FROM updated UNION ALL SELECT * FROM inserted`,
    delete: `DELETE FROM ${state} WHERE ${key} AND record = $3 AND version = $4 RETURNING version`,
    last: `SELECT coalesce(max(sequence), 0) AS last FROM ${journal} WHERE ${key} AND journal = $3`,
    // A batch of appends (journals distinct; request n's events are the rows of $6..$8 with
    // that n): each one's events go in only if its last sequence, read in the same
    // statement, is the expected one; the last sequences found are returned.
    append: `WITH input AS (
        SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::int[])
          AS i(actor_type, actor_id, journal, expected, n)),
      current AS (
        SELECT i.*, (SELECT coalesce(max(j.sequence), 0) FROM ${journal} j
          WHERE j.actor_type = i.actor_type AND j.actor_id = i.actor_id AND j.journal = i.journal) AS last
        FROM input i),
      appended AS (
        INSERT INTO ${journal} (actor_type, actor_id, journal, sequence, data)
        SELECT c.actor_type, c.actor_id, c.journal, e.sequence, e.data
        FROM unnest($6::int[], $7::bigint[], $8::text[]) AS e(n, sequence, data) JOIN current c USING (n)
        WHERE c.last = c.expected
        RETURNING 1)
      SELECT n, last FROM current`,
    events: `SELECT sequence, data FROM ${journal} WHERE ${key} AND journal = $3 AND sequence BETWEEN $4 AND $5
      ORDER BY sequence`,
    saveSnapshot: `INSERT INTO ${snapshot} (actor_type, actor_id, journal, sequence, data) VALUES ($1, $2, $3, $4, $5)
      ON CONFLICT (actor_type, actor_id, journal) DO UPDATE SET sequence = excluded.sequence, data = excluded.data
      WHERE ${snapshot}.sequence <= excluded.sequence`,
    loadSnapshot: `SELECT sequence, data FROM ${snapshot} WHERE ${key} AND journal = $3`
  }
}

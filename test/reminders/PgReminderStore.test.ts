import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import type { StoreError } from "../../src/Persistence/PersistenceError.ts"
import * as PgReminderStore from "../../src/Reminders/PgReminderStore.ts"
import { pgUrl, unreachable } from "../persistence/services.ts"
import { reminderConformance } from "./conformance.ts"

const run = `quark_tr${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
let tables = 0

/** A plain client, to look at the tables behind the store's back; an unreachable server fails the test. */
const rawSql = PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
  Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
  Effect.tap((sql) => sql`SELECT 1`),
  Effect.mapError((error) => unreachable("PostgreSQL", pgUrl, error))
)

const drop = (table: string) =>
  Effect.scoped(Effect.flatMap(rawSql, (sql) =>
    sql.unsafe(`DROP TABLE IF EXISTS ${table}_history, ${table}_dead_letters, ${table}`))).pipe(Effect.orDie)

/** Fails with the "start it or point QUARK_PG_URL at one" message when the server is down. */
const orUnreachable = <A, R>(effect: Effect.Effect<A, StoreError, R>) =>
  Effect.mapError(effect, (error) => error.operation === "connect" ? unreachable("PostgreSQL", pgUrl, error) : error)

/**
 * A store on tables of its own, dropped when the scope closes (after the store's pool is
 * closed, by a client of its own: a pool cannot open a connection from a finalizer of the
 * scope it lives in).
 */
const freshStore = (name = "pg") =>
  Effect.gen(function*() {
    const table = `${run}_${++tables}`
    yield* Effect.addFinalizer(() => drop(table))
    const store = yield* orUnreachable(PgReminderStore.make(name, { url: pgUrl, table }))
    return { store, table }
  })

reminderConformance("pg", Effect.map(freshStore(), ({ store }) => store))

describe("pg: provider specifics", () => {
  it.live("creates the documented tables, keys, indexes and collations on first use", () =>
    Effect.gen(function*() {
      const { table } = yield* freshStore()
      const sql = yield* rawSql
      const names = [table, `${table}_history`, `${table}_dead_letters`]
      const columns = yield* sql<{ table_name: string; column_name: string; data_type: string; is_nullable: string; collation_name: string | null }>`
        SELECT table_name, column_name, data_type, is_nullable, collation_name FROM information_schema.columns
        WHERE table_name IN ${sql.in(names)} ORDER BY table_name, ordinal_position`
      const describeTable = (name: string) =>
        columns.filter((c) => c.table_name === name).map((c) =>
          `${c.column_name} ${c.data_type}${c.collation_name === null ? "" : ` collate ${c.collation_name}`}${
            c.is_nullable === "NO" ? " not null" : ""
          }`
        )
      assert.deepStrictEqual(describeTable(table), [
        "actor_type text collate C not null",
        "actor_id text collate C not null",
        "name text collate C not null",
        "bucket bigint not null",
        "next_due double precision not null",
        "version bigint not null",
        "data text not null"
      ])
      assert.deepStrictEqual(describeTable(`${table}_history`), [
        "actor_type text collate C not null",
        "actor_id text collate C not null",
        "name text collate C not null",
        "seq bigint not null",
        "entry text not null"
      ])
      assert.deepStrictEqual(describeTable(`${table}_dead_letters`), [
        "id text collate C not null",
        "kind text collate C not null",
        "at double precision not null",
        "data text not null"
      ])
      const indexes = yield* sql<{ indexname: string; indexdef: string }>`
        SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ${sql.in(names)} ORDER BY indexname`
      const columnsOf = (index: string) => /\(([^)]*)\)$/.exec(indexes.find((i) => i.indexname === index)!.indexdef)![1]
      assert.strictEqual(columnsOf(`${table}_pkey`), "actor_type, actor_id, name")
      assert.strictEqual(columnsOf(`${table}_due`), "bucket, next_due, actor_type, actor_id, name")
      assert.strictEqual(columnsOf(`${table}_history_pkey`), "actor_type, actor_id, name, seq")
      assert.strictEqual(columnsOf(`${table}_dead_letters_pkey`), "id")
      assert.strictEqual(columnsOf(`${table}_dl_at`), "at, id")
      assert.strictEqual(columnsOf(`${table}_dl_kind`), "kind, at, id")
      // Opening again (tables present) is fine.
      yield* orUnreachable(PgReminderStore.make("pg", { url: pgUrl, table }))
    }))

  it.live("due reads the index in order (no sort of the bucket)", () =>
    Effect.gen(function*() {
      const { store, table } = yield* freshStore()
      for (let i = 0; i < 50; i++) {
        yield* store.put({ key: { type: "T", id: `a${i}`, name: "r" }, bucket: i % 5, nextDue: i, data: "" }, 0)
      }
      const sql = yield* rawSql
      yield* sql.unsafe(`ANALYZE ${table}`)
      const plan = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe("SET LOCAL enable_seqscan = off")
        return yield* sql.unsafe<{ "QUERY PLAN": string }>(
          `EXPLAIN SELECT actor_type, actor_id, name, bucket, next_due, version, data FROM ${table}
            WHERE bucket = 1 AND next_due <= 100 ORDER BY next_due, actor_type, actor_id, name LIMIT 10`
        )
      }))
      const text = plan.map((row) => row["QUERY PLAN"]).join("\n")
      assert.include(text, `${table}_due`)
      assert.notInclude(text, "Sort")
    }))

  it.live("an unreachable server fails with StoreError at once", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const error = yield* Effect.flip(PgReminderStore.make("pg-down", { url: "postgres://postgres@127.0.0.1:1/test" }))
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.store, "pg-down")
      assert.strictEqual(error.operation, "connect")
      assert.isBelow(Date.now() - started, 2_000)
    }))

  it.live("an invalid table name fails with StoreError before connecting", () =>
    Effect.gen(function*() {
      for (const table of ["Bad", "x; DROP TABLE y", "1x", "a".repeat(51)]) {
        const error = yield* Effect.flip(PgReminderStore.make("pg", { url: pgUrl, table }))
        assert.strictEqual(error.operation, "open")
      }
    }))

  it.live("two stores (as two silos) racing on one reminder: exactly one put of each round wins", () =>
    Effect.gen(function*() {
      const { store: a, table } = yield* freshStore("pg-a")
      const b = yield* orUnreachable(PgReminderStore.make("pg-b", { url: pgUrl, table }))
      const stores = [a, b]
      const k = { type: "Race", id: "a", name: "r" }
      for (const expected of [0, 1, 2]) {
        const exits = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
          Effect.exit(stores[i % 2]!.put({ key: k, bucket: 0, nextDue: i, data: `w${i}` }, expected)), {
          concurrency: "unbounded"
        })
        const winners = exits.flatMap((exit, i) => Exit.isSuccess(exit) ? [i] : [])
        assert.strictEqual(winners.length, 1)
        assert.strictEqual((yield* b.get(k))?.data, `w${winners[0]}`)
        for (const exit of exits) if (Exit.isFailure(exit)) assert.include(String(exit.cause), "StateConflict")
      }
      assert.deepStrictEqual((yield* a.due(0, 100, 10)).map((r) => r.version), [3])
    }))

  it.live("puts batched together each succeed or conflict on their own; a key waits for the next batch", () =>
    Effect.gen(function*() {
      const { store } = yield* freshStore()
      const keys = Array.from({ length: 200 }, (_, i) => ({ type: "Batch", id: `a${i}`, name: "r" }))
      yield* Effect.forEach(keys.slice(0, 100), (k) => store.put({ key: k, bucket: 0, nextDue: 1, data: "v1" }, 0), {
        concurrency: "unbounded"
      })
      // Half create (new keys), a quarter update at the right version, a quarter at a stale one.
      const exits = yield* Effect.forEach(keys, (k, i) =>
        Effect.exit(store.put({ key: k, bucket: 0, nextDue: 2, data: "v2" }, i >= 100 ? 0 : i % 2 === 0 ? 1 : 7)), {
        concurrency: "unbounded"
      })
      assert.deepStrictEqual(
        exits.map((exit) => Exit.isSuccess(exit) ? exit.value : String(exit.cause).includes("StateConflict") ? "conflict" : "?"),
        keys.map((_, i) => i >= 100 ? 1 : i % 2 === 0 ? 2 : "conflict")
      )
      // Two puts of one key issued together: the second goes in the batch after the first.
      const k = { type: "Batch", id: "twice", name: "r" }
      const [first, second] = yield* Effect.all([
        store.put({ key: k, bucket: 0, nextDue: 1, data: "one" }, 0),
        store.put({ key: k, bucket: 0, nextDue: 1, data: "two" }, 1)
      ], { concurrency: "unbounded" })
      assert.deepStrictEqual([first, second], [1, 2])
      assert.strictEqual((yield* store.get(k))?.data, "two")
    }))

  it.live("two stores putting the same reminders in opposite orders: one win per reminder, no error", () =>
    Effect.gen(function*() {
      const { store: a, table } = yield* freshStore("pg-a")
      const b = yield* orUnreachable(PgReminderStore.make("pg-b", { url: pgUrl, table }))
      const keys = Array.from({ length: 100 }, (_, i) => ({ type: "Cross", id: `a${i}`, name: "r" }))
      for (let round = 0; round < 5; round++) {
        const [fromA, fromB] = yield* Effect.all([
          Effect.forEach(keys, (k) => Effect.exit(a.put({ key: k, bucket: 0, nextDue: round, data: "a" }, round)), {
            concurrency: "unbounded"
          }),
          Effect.forEach([...keys].reverse(), (k) => Effect.exit(b.put({ key: k, bucket: 0, nextDue: round, data: "b" }, round)), {
            concurrency: "unbounded"
          })
        ], { concurrency: "unbounded" })
        const bByKey = [...fromB].reverse()
        keys.forEach((_, i) => {
          const results = [fromA[i]!, bByKey[i]!]
          assert.strictEqual(results.filter(Exit.isSuccess).length, 1)
          for (const exit of results) if (Exit.isFailure(exit)) assert.include(String(exit.cause), "StateConflict")
        })
      }
    }))

  it.live("concurrent history appends all land, and exactly the newest `keep` stay", () =>
    Effect.gen(function*() {
      const { store: a, table } = yield* freshStore("pg-a")
      const b = yield* orUnreachable(PgReminderStore.make("pg-b", { url: pgUrl, table }))
      const k = { type: "Hist", id: "a", name: "r" }
      yield* a.put({ key: k, bucket: 0, nextDue: 1, data: "" }, 0)
      yield* Effect.forEach(Array.from({ length: 30 }, (_, i) => i), (i) =>
        [a, b][i % 2]!.appendHistory(k, `e${i}`, 5), { concurrency: "unbounded", discard: true })
      const history = yield* a.history(k)
      assert.strictEqual(history.length, 5)
      const sql = yield* rawSql
      const rows = yield* sql.unsafe<{ seq: bigint }>(`SELECT seq FROM ${table}_history ORDER BY seq`)
      assert.deepStrictEqual(rows.map((row) => Number(row.seq)), [26, 27, 28, 29, 30])
    }))

  it.live("history appends racing with the remove of their reminder leave no rows behind", () =>
    Effect.gen(function*() {
      const { store, table } = yield* freshStore()
      const sql = yield* rawSql
      for (let round = 0; round < 10; round++) {
        const k = { type: "Gone", id: `a${round}`, name: "r" }
        yield* store.put({ key: k, bucket: 0, nextDue: 1, data: "" }, 0)
        yield* Effect.all([
          Effect.forEach(Array.from({ length: 10 }, (_, i) => i), (i) =>
            store.appendHistory(k, `e${i}`, 100), { concurrency: "unbounded", discard: true }),
          store.remove(k, 1)
        ], { concurrency: "unbounded" })
        assert.deepStrictEqual(yield* store.history(k), [])
      }
      const rows = yield* sql.unsafe<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}_history`)
      assert.strictEqual(rows[0]!.n, 0)
    }))

  it.live("text PostgreSQL cannot store (NUL, lone surrogate) fails its call with StoreError", () =>
    Effect.gen(function*() {
      const { store } = yield* freshStore()
      for (const k of [{ type: "T", id: "a\u0000", name: "r" }, { type: "T", id: "a\uDC00", name: "r" }]) {
        const error = yield* Effect.flip(store.put({ key: k, bucket: 0, nextDue: 1, data: "" }, 0))
        assert.strictEqual(error._tag, "StoreError")
      }
      const ok = { type: "T", id: "a", name: "r" }
      const error = yield* Effect.flip(store.put({ key: ok, bucket: 0, nextDue: 1, data: "x\u0000" }, 0))
      assert.strictEqual(error._tag, "StoreError")
      assert.isUndefined(yield* store.get(ok))
      const dead = yield* Effect.flip(store.addDeadLetter({ id: "d", kind: "tell", at: 1, data: "\u0000" }))
      assert.strictEqual(dead.operation, "addDeadLetter")
    }))

  it.live("a failing statement is a StoreError naming the store and the operation", () =>
    Effect.gen(function*() {
      const { store, table } = yield* freshStore("pg-dropped")
      const sql = yield* rawSql
      yield* sql.unsafe(`DROP TABLE ${table}_history, ${table}_dead_letters, ${table}`)
      const error = yield* Effect.flip(store.due(0, 10, 10))
      assert.strictEqual(error.store, "pg-dropped")
      assert.strictEqual(error.operation, "due")
      assert.include(error.reason, "does not exist")
    }))
})

import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Fiber, Redacted, Schedule, Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import { JournalConflict, StateConflict, StoreError } from "../../src/index.ts"
import * as PgStore from "../../src/Persistence/PgStore.ts"
import { conformance } from "./conformance.ts"
import { pgUrl, unreachable } from "./services.ts"

/** Fails with the "start it or point QUARK_PG_URL at one" message when the server is down. */
const orUnreachable = <A, R>(effect: Effect.Effect<A, StoreError, R>) =>
  Effect.mapError(effect, (error) => error.operation === "connect" ? unreachable("PostgreSQL", pgUrl, error) : error)

conformance("pg", orUnreachable(PgStore.make("pg", { url: pgUrl })))

/** A plain client, to look at (and tamper with) the tables behind the store's back. */
const rawSql = PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
  Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
  Effect.tap((sql) => sql`SELECT 1`),
  Effect.mapError((error) => unreachable("PostgreSQL", pgUrl, error))
)

/**
 * Runs `use` on tables of its own (so "created on first use" is observed) and drops them
 * afterwards. The drop runs before the test's scope closes: a pool cannot open a
 * connection from a finalizer of the scope it lives in.
 */
const withOwnTables = <A, E, R>(use: (sql: PgClient.PgClient, prefix: string) => Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const sql = yield* rawSql
    const prefix = `quark_t${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}_`
    const drop = Effect.orDie(sql.unsafe(`DROP TABLE IF EXISTS ${prefix}state, ${prefix}journal, ${prefix}snapshot`))
    return yield* Effect.ensuring(use(sql, prefix), drop)
  })

/** Waits until a statement on `table` is waiting for a lock (held by the test's own transaction). */
const blockedOn = (sql: PgClient.PgClient, table: string) =>
  sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE wait_event_type = 'Lock' AND query LIKE ${`%${table}%`}`.pipe(
    Effect.repeat({ until: (rows) => rows[0]!.n > 0, schedule: Schedule.spaced("5 millis") })
  )

describe("pg: PostgreSQL specifics", () => {
  it.live("creates the documented tables, columns and keys on first use", () =>
    withOwnTables(Effect.fnUntraced(function*(sql, prefix) {
      yield* PgStore.make("pg", { url: pgUrl, tablePrefix: prefix })

      const columns = yield* sql<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>`
        SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns
        WHERE table_name IN (${prefix + "state"}, ${prefix + "journal"}, ${prefix + "snapshot"})
        ORDER BY table_name, ordinal_position`
      const describeTable = (table: string) =>
        columns.filter((c) => c.table_name === prefix + table).map((c) =>
          `${c.column_name} ${c.data_type}${c.is_nullable === "NO" ? " not null" : ""}`
        )
      assert.deepStrictEqual(describeTable("state"), [
        "actor_type text not null",
        "actor_id text not null",
        "record text not null",
        "version bigint not null",
        "data text not null"
      ])
      assert.deepStrictEqual(describeTable("journal"), [
        "actor_type text not null",
        "actor_id text not null",
        "journal text not null",
        "sequence bigint not null",
        "data text not null"
      ])
      assert.deepStrictEqual(describeTable("snapshot"), [
        "actor_type text not null",
        "actor_id text not null",
        "journal text not null",
        "sequence bigint not null",
        "data text not null"
      ])

      const keys = yield* sql<{ table_name: string; column_name: string }>`
        SELECT k.table_name, k.column_name FROM information_schema.table_constraints c
        JOIN information_schema.key_column_usage k USING (constraint_schema, constraint_name)
        WHERE c.constraint_type = 'PRIMARY KEY'
          AND c.table_name IN (${prefix + "state"}, ${prefix + "journal"}, ${prefix + "snapshot"})
        ORDER BY k.table_name, k.ordinal_position`
      const keyOf = (table: string) => keys.filter((k) => k.table_name === prefix + table).map((k) => k.column_name)
      assert.deepStrictEqual(keyOf("state"), ["actor_type", "actor_id", "record"])
      assert.deepStrictEqual(keyOf("journal"), ["actor_type", "actor_id", "journal", "sequence"])
      assert.deepStrictEqual(keyOf("snapshot"), ["actor_type", "actor_id", "journal"])

      // Opening again (tables present) is fine.
      yield* PgStore.make("pg", { url: pgUrl, tablePrefix: prefix })
    })))

  it.live("an unreachable server fails with StoreError at once", () =>
    Effect.gen(function*() {
      const started = Date.now()
      const error = yield* Effect.flip(PgStore.make("pg-down", { url: "postgres://postgres@127.0.0.1:1/test" }))
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.store, "pg-down")
      assert.strictEqual(error.operation, "connect")
      assert.isBelow(Date.now() - started, 2_000)
    }))

  it.live("a gap in a journal is not papered over", () =>
    withOwnTables(Effect.fnUntraced(function*(sql, prefix) {
      const { journal } = yield* PgStore.make("pg", { url: pgUrl, tablePrefix: prefix })
      const key = { type: "Gap", id: "a", record: "ledger" }
      // Sequence 2 is missing: written by something else, not by this store.
      yield* sql.unsafe(
        `INSERT INTO ${prefix}journal (actor_type, actor_id, journal, sequence, data)
         VALUES ('Gap', 'a', 'ledger', 1, 'e1'), ('Gap', 'a', 'ledger', 3, 'e3')`
      )
      assert.strictEqual(yield* journal.lastSequence(key), 3)
      for (const expected of [1, 2]) {
        const conflict = yield* Effect.flip(journal.append(key, expected, ["x"]))
        assert.instanceOf(conflict, JournalConflict)
        assert.strictEqual((conflict as JournalConflict).actualSequence, 3)
      }
      assert.deepStrictEqual((yield* journal.read(key, 1)).map((e) => e.sequence), [1, 3])
      assert.strictEqual(yield* journal.append(key, 3, ["e4"]), 4)
    })))

  it.live("two stores (as two processes) racing on one record and one journal: exactly one of each wins", () =>
    withOwnTables(Effect.fnUntraced(function*(_sql, prefix) {
      const stores = [
        yield* PgStore.make("pg-a", { url: pgUrl, tablePrefix: prefix }),
        yield* PgStore.make("pg-b", { url: pgUrl, tablePrefix: prefix })
      ]
      const key = { type: "Race", id: "a", record: "r" }
      const writes = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
        Effect.exit(stores[i % 2]!.state.write(key, `w${i}`, 0)), { concurrency: "unbounded" })
      assert.strictEqual(writes.filter(Exit.isSuccess).length, 1)
      const appends = yield* Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) =>
        Effect.exit(stores[i % 2]!.journal.append(key, 0, [`a${i}`, `b${i}`])), { concurrency: "unbounded" })
      const winner = appends.findIndex(Exit.isSuccess)
      assert.strictEqual(appends.filter(Exit.isSuccess).length, 1)
      assert.deepStrictEqual((yield* stores[0]!.journal.read(key, 1)).map((e) => e.data), [`a${winner}`, `b${winner}`])
    })))

  it.live("an append that loses a race on the primary key conflicts, appending nothing", () =>
    withOwnTables(Effect.fnUntraced(function*(sql, prefix) {
      const { journal } = yield* PgStore.make("pg", { url: pgUrl, tablePrefix: prefix })
      const key = { type: "Race", id: "b", record: "ledger" }
      yield* journal.append(key, 0, ["e1"])
      // Another writer's sequence 2, not yet committed: the store's statement still sees 1 as
      // the last, inserts 2 and 3, waits on the key, and then violates it.
      const append = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`INSERT INTO ${prefix}journal VALUES ('Race', 'b', 'ledger', 2, 'theirs')`)
        const append = yield* Effect.forkChild(Effect.flip(journal.append(key, 1, ["x", "y"])))
        yield* blockedOn(sql, `${prefix}journal`)
        return append
      }))
      const conflict = yield* Fiber.join(append)
      assert.instanceOf(conflict, JournalConflict)
      assert.strictEqual((conflict as JournalConflict).actualSequence, 2)
      assert.deepStrictEqual((yield* journal.read(key, 1)).map((e) => e.data), ["e1", "theirs"])
    })))

  it.live("a write whose caller is interrupted before it went out is not made", () =>
    withOwnTables(Effect.fnUntraced(function*(sql, prefix) {
      const { state } = yield* PgStore.make("pg", { url: pgUrl, tablePrefix: prefix })
      const busy = { type: "Cancel", id: "busy", record: "r" }
      const other = { type: "Cancel", id: "other", record: "r" }
      yield* state.write(busy, "v1", 0)
      const [first, second] = yield* sql.withTransaction(Effect.gen(function*() {
        // Holding the row's lock keeps the store's batch of `busy` in the database...
        yield* sql.unsafe(`UPDATE ${prefix}state SET data = data WHERE actor_id = 'busy'`)
        const first = yield* Effect.forkChild(state.write(busy, "v2", 1))
        yield* blockedOn(sql, `${prefix}state`)
        // ...so this write waits for the next batch, and its caller gives up.
        const second = yield* Effect.forkChild(state.write(other, "never", 0), { startImmediately: true })
        yield* Fiber.interrupt(second)
        return [first, second] as const
      }))
      assert.strictEqual(yield* Fiber.join(first), 2)
      assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(second)))
      // A later write goes through the store; had the interrupted one gone out, this would conflict.
      assert.strictEqual(yield* state.write(other, "later", 0), 1)
      assert.deepStrictEqual(yield* state.read(other), { data: "later", version: 1 })
      const stale = yield* Effect.flip(state.write(busy, "v3", 1))
      assert.instanceOf(stale, StateConflict)
    })))

  it.live("closing the store fails the writes still waiting for it with StoreError", () =>
    withOwnTables(Effect.fnUntraced(function*(sql, prefix) {
      const scope = yield* Scope.make()
      const { state } = yield* Scope.provide(scope)(PgStore.make("pg-closing", { url: pgUrl, tablePrefix: prefix }))
      const key = { type: "Close", id: "a", record: "r" }
      yield* state.write(key, "v1", 0)
      const waiting = yield* sql.withTransaction(Effect.gen(function*() {
        yield* sql.unsafe(`UPDATE ${prefix}state SET data = data WHERE actor_id = 'a'`)
        const inFlight = yield* Effect.forkChild(state.write(key, "v2", 1))
        yield* blockedOn(sql, `${prefix}state`)
        const queued = yield* Effect.forkChild(state.write({ ...key, id: "b" }, "v1", 0), { startImmediately: true })
        yield* Scope.close(scope, Exit.void)
        return [inFlight, queued]
      }))
      for (const fiber of waiting) {
        const error = yield* Effect.flip(Fiber.join(fiber))
        assert.instanceOf(error, StoreError)
        assert.strictEqual(error.store, "pg-closing")
      }
    })))

  it.live("an unstorable value (NUL) fails its own write only, not the others of its batch", () =>
    withOwnTables(Effect.fnUntraced(function*(_sql, prefix) {
      const { journal, state } = yield* PgStore.make("pg", { url: pgUrl, tablePrefix: prefix })
      const keys = Array.from({ length: 10 }, (_, i) => ({ type: "Nul", id: `a${i}`, record: "r" }))
      const writes = yield* Effect.forEach(keys, (key, i) =>
        Effect.exit(state.write(key, i === 5 ? "bad\u0000" : "ok", 0)), { concurrency: "unbounded" })
      const appends = yield* Effect.forEach(keys, (key, i) =>
        Effect.exit(journal.append(key, 0, [i === 5 ? "bad\u0000" : "ok"])), { concurrency: "unbounded" })
      for (const exits of [writes, appends]) {
        assert.deepStrictEqual(exits.map(Exit.isSuccess), keys.map((_, i) => i !== 5))
        assert.include(String(exits[5]), "StoreError")
      }
    })))

  it.live("a failing statement is a StoreError naming the store and the operation", () =>
    withOwnTables(Effect.fnUntraced(function*(sql, prefix) {
      const { state } = yield* PgStore.make("pg-dropped", { url: pgUrl, tablePrefix: prefix })
      yield* sql.unsafe(`DROP TABLE ${prefix}state`)
      const error = yield* Effect.flip(state.read({ type: "T", id: "a", record: "r" }))
      assert.instanceOf(error, StoreError)
      assert.strictEqual(error.store, "pg-dropped")
      assert.strictEqual(error.operation, "read")
      assert.include(error.reason, "does not exist")
    })))
})

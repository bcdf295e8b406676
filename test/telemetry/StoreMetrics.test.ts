/**
 * Store operation metrics: the same known workload on each built-in store (memory, and the
 * real Redis and PostgreSQL: an unreachable server fails, never skips) counts exactly one
 * observation per operation in `quark_store_operation_duration_seconds{store,operation}`,
 * version conflicts are not errors, store errors are; the export carries the series; and a
 * store call under a sampled trace gets a span, under none it does not.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Effect, Fiber, Layer, Metric, Redacted, Schedule, Tracer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Reactivity } from "effect/reactivity"
import { Stores, Telemetry } from "../../src/index.ts"
import type { StoreError } from "../../src/Persistence/PersistenceError.ts"
import * as PgStore from "../../src/Persistence/PgStore.ts"
import * as RedisStore from "../../src/Persistence/RedisStore.ts"
import * as MemoryReminderStore from "../../src/Reminders/MemoryReminderStore.ts"
import * as PgReminderStore from "../../src/Reminders/PgReminderStore.ts"
import * as RedisReminderStore from "../../src/Reminders/RedisReminderStore.ts"
import type { ReminderStore } from "../../src/Reminders/ReminderStore.ts"
import * as Catalog from "../../src/Telemetry/MetricCatalog.ts"
import * as ProcessMetrics from "../../src/Telemetry/internal/ProcessMetrics.ts"
import { pgUrl, rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { series } from "./support.ts"

const operations = [
  "state.read",
  "state.write",
  "state.clear",
  "journal.append",
  "journal.read",
  "journal.last_sequence",
  "snapshot.save",
  "snapshot.load",
  "reminder.get",
  "reminder.put",
  "reminder.remove",
  "reminder.list",
  "reminder.due",
  "reminder.history_append",
  "reminder.history",
  "dead_letter.add",
  "dead_letter.list",
  "dead_letter.remove"
] as const
type Operation = typeof operations[number]

/** Observations and errors of every operation of one store kind. */
const read = (store: string) => {
  const out = {} as Record<Operation, { count: number; errors: number }>
  for (const operation of operations) {
    out[operation] = {
      count: ProcessMetrics.histogram(Catalog.storeOperationDuration, { store, operation }).count,
      errors: ProcessMetrics.counter(Catalog.storeOperationErrorsTotal, { store, operation }).value
    }
  }
  return out
}

const deltaOf = (store: string, before: ReturnType<typeof read>) => {
  const now = read(store)
  const out = {} as Record<Operation, { count: number; errors: number }>
  for (const operation of operations) {
    out[operation] = { count: now[operation].count - before[operation].count, errors: now[operation].errors - before[operation].errors }
  }
  return out
}

/** What {@link workload} does, operation by operation. */
const expected: Record<Operation, { count: number; errors: number }> = {
  "state.read": { count: 2, errors: 0 },
  "state.write": { count: 3, errors: 1 }, // one conflict (no error) and one unstorable key (an error)
  "state.clear": { count: 1, errors: 0 },
  "journal.append": { count: 2, errors: 0 }, // one conflict
  "journal.read": { count: 1, errors: 0 },
  "journal.last_sequence": { count: 1, errors: 0 },
  "snapshot.save": { count: 1, errors: 0 },
  "snapshot.load": { count: 1, errors: 0 },
  "reminder.get": { count: 1, errors: 0 },
  "reminder.put": { count: 4, errors: 1 }, // one with history, one conflict, one invalid (an error)
  "reminder.remove": { count: 1, errors: 0 },
  "reminder.list": { count: 1, errors: 0 },
  "reminder.due": { count: 1, errors: 0 },
  "reminder.history_append": { count: 1, errors: 0 },
  "reminder.history": { count: 1, errors: 0 },
  "dead_letter.add": { count: 1, errors: 0 },
  "dead_letter.list": { count: 1, errors: 0 },
  "dead_letter.remove": { count: 1, errors: 0 }
}

/**
 * The same calls on any store; `unstorable` is an id the provider refuses with StoreError
 * (the memory state store refuses none: without one, that write is left out).
 */
const workload = (store: Stores.Store, reminders: ReminderStore, unstorable: string | undefined) =>
  Effect.gen(function*() {
    const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
    const key = { type: "Metered", id: `m-${run}`, record: "r" }
    const { journal, state } = store
    assert.isUndefined(yield* state.read(key))
    assert.strictEqual(yield* state.write(key, `{"n":1}`, 0), 1)
    assert.strictEqual((yield* Effect.flip(state.write(key, `{"n":2}`, 0)))._tag, "StateConflict")
    if (unstorable !== undefined) {
      assert.strictEqual((yield* Effect.flip(state.write({ ...key, id: unstorable }, `{}`, 0)))._tag, "StoreError")
    }
    assert.strictEqual((yield* state.read(key))?.version, 1)
    yield* state.clear(key, 1)
    assert.strictEqual(yield* journal.append(key, 0, ["e1", "e2"]), 2)
    assert.strictEqual((yield* Effect.flip(journal.append(key, 0, ["x"])))._tag, "JournalConflict")
    assert.deepStrictEqual((yield* journal.read(key, 1)).map((e) => e.data), ["e1", "e2"])
    assert.strictEqual(yield* journal.lastSequence(key), 2)
    yield* journal.saveSnapshot(key, { sequence: 2, data: "s" })
    assert.strictEqual((yield* journal.loadSnapshot(key))?.data, "s")

    const reminder = { key: { type: "Metered", id: `m-${run}`, name: "n" }, bucket: 1, nextDue: 1_000, data: "{}" }
    assert.strictEqual(yield* reminders.put(reminder, 0), 1)
    assert.strictEqual(yield* reminders.put({ ...reminder, nextDue: 2_000 }, 1, { entry: "h0", keep: 5 }), 2)
    assert.strictEqual((yield* Effect.flip(reminders.put(reminder, 0)))._tag, "StateConflict")
    assert.strictEqual((yield* Effect.flip(reminders.put({ ...reminder, nextDue: Number.NaN }, 2)))._tag, "StoreError")
    assert.strictEqual((yield* reminders.get(reminder.key))?.version, 2)
    assert.strictEqual((yield* reminders.list(reminder.key.type, reminder.key.id)).length, 1)
    assert.strictEqual((yield* reminders.due(1, 5_000, 10)).length, 1)
    yield* reminders.appendHistory(reminder.key, "h1", 5)
    assert.deepStrictEqual(yield* reminders.history(reminder.key), ["h1", "h0"])
    yield* reminders.addDeadLetter({ id: `d-${run}`, kind: "metered", at: 1, data: "{}" })
    assert.strictEqual((yield* reminders.deadLetters({ limit: 10, kind: "metered" })).length, 1)
    assert.isTrue(yield* reminders.removeDeadLetter(`d-${run}`))
    yield* reminders.remove(reminder.key, 2)
  })

const checkKind = (kind: "memory" | "redis" | "postgres", store: Stores.Store, reminders: ReminderStore, unstorable: string) =>
  Effect.gen(function*() {
    const before = read(kind)
    yield* workload(store, reminders, unstorable)
    assert.deepStrictEqual(deltaOf(kind, before), expected)
  })


describe("store operation metrics", () => {
  it.effect("memory: one observation per operation; conflicts are no errors, a store error is; exported", () =>
    Effect.gen(function*() {
      const before = read("memory")
      yield* workload(Stores.memory("metered"), MemoryReminderStore.make("metered"), undefined)
      assert.deepStrictEqual(deltaOf("memory", before), { ...expected, "state.write": { count: 2, errors: 0 } })
      const text = yield* PrometheusMetrics.format().pipe(
        Effect.provide(Telemetry.layer({ logs: false }).pipe(Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))))
      )
      const total = read("memory")
      assert.strictEqual(
        series(text, "quark_store_operation_duration_seconds_count", { store: "memory", operation: "state.write" }),
        total["state.write"].count
      )
      assert.strictEqual(
        series(text, "quark_store_operation_errors_total", { store: "memory", operation: "reminder.put" }),
        total["reminder.put"].errors
      )
    }))

  it.live("redis: one observation per operation; conflicts are no errors, store errors are", () =>
    Effect.gen(function*() {
      const prefix = `quark-test-metrics-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
      const redis = yield* rawRedis
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          const keys = await redis.keys(`${prefix}*`)
          if (keys.length > 0) await redis.del(...keys)
        })
      )
      const toUnreachable = (error: StoreError) => unreachable("Redis", redisUrl, error)
      const store = yield* Effect.mapError(RedisStore.make("redis", { url: redisUrl, keyPrefix: prefix }), toUnreachable)
      const reminders = yield* Effect.mapError(
        RedisReminderStore.make("redis", { url: redisUrl, keyPrefix: `${prefix}-r` }),
        toUnreachable
      )
      // A lone surrogate cannot be encoded into a key: StoreError.
      yield* checkKind("redis", store, reminders, "\uD800")
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("postgres: one observation per operation; conflicts are no errors, store errors are", () =>
    Effect.gen(function*() {
      const prefix = `quark_tm${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}_`
      const table = `${prefix}reminders`
      // Dropped by a client of its own after the stores' pools closed (inner scope first).
      yield* Effect.addFinalizer(() =>
        Effect.scoped(Effect.flatMap(rawSql, (sql) =>
          sql.unsafe(
            `DROP TABLE IF EXISTS ${prefix}state, ${prefix}journal, ${prefix}snapshot, ${table}_history, ${table}_dead_letters, ${table}`
          ))).pipe(Effect.orDie)
      )
      yield* Effect.gen(function*() {
        const toUnreachable = (error: StoreError) => error.operation === "connect" ? unreachable("PostgreSQL", pgUrl, error) : error
        const store = yield* Effect.mapError(PgStore.make("pg", { url: pgUrl, tablePrefix: prefix }), toUnreachable)
        const reminders = yield* Effect.mapError(PgReminderStore.make("pg", { url: pgUrl, table }), toUnreachable)
        // PostgreSQL text cannot hold NUL: StoreError.
        yield* checkKind("postgres", store, reminders, "nul\u0000")
      }).pipe(Effect.scoped)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.live("postgres: a batched write is timed from its caller's call, its wait for the batch included", () =>
    Effect.gen(function*() {
      const prefix = `quark_tm${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}_`
      const sql = yield* rawSql
      yield* Effect.addFinalizer(() =>
        Effect.scoped(Effect.flatMap(rawSql, (sql) =>
          sql.unsafe(`DROP TABLE IF EXISTS ${prefix}state, ${prefix}journal, ${prefix}snapshot`))).pipe(Effect.orDie)
      )
      // The store's pool closes with this inner scope, before the tables are dropped.
      yield* Effect.gen(function*() {
        const { state } = yield* Effect.mapError(
          PgStore.make("pg", { url: pgUrl, tablePrefix: prefix }),
          (error) => error.operation === "connect" ? unreachable("PostgreSQL", pgUrl, error) : error
        )
        const busy = { type: "Timed", id: "busy", record: "r" }
        yield* state.write(busy, "v1", 0)
        const cell = ProcessMetrics.histogram(Catalog.storeOperationDuration, { store: "postgres", operation: "state.write" })
        const [count, sum] = [cell.count, cell.sum]
        const [first, second, queuedAt, releasedAt] = yield* sql.withTransaction(Effect.gen(function*() {
          // Holding the row's lock keeps the store's batch of `busy` in the database...
          yield* sql.unsafe(`UPDATE ${prefix}state SET data = data WHERE actor_id = 'busy'`)
          const first = yield* Effect.forkChild(state.write(busy, "v2", 1))
          yield* blockedOn(sql, `${prefix}state`)
          // ...so this write waits for the next batch: its own statement is quick, its caller's wait is not.
          const queuedAt = performance.now()
          const second = yield* Effect.forkChild(state.write({ ...busy, id: "queued" }, "v1", 0), { startImmediately: true })
          yield* Effect.sleep("100 millis") // the wait to be measured
          return [first, second, queuedAt, performance.now()] as const
        }))
        assert.strictEqual(yield* Fiber.join(first), 2)
        assert.strictEqual(yield* Fiber.join(second), 1)
        assert.strictEqual(cell.count - count, 2)
        // Both waited at least from the queued one's call to the lock's release (ms; 1 ms of
        // slack for the fiber's start). Timed by its statement alone, the queued one would add ~1 ms.
        const waited = releasedAt - queuedAt
        assert.isAtLeast(cell.sum - sum, 2 * waited - 1)
      }).pipe(Effect.scoped)
    }).pipe(Effect.scoped), { timeout: 30_000 })

  it.effect("a store call under a sampled trace is a span; unsampled or untraced, none", () => {
    const spans: Array<string> = []
    const tracer = Tracer.make({
      span: (options) => {
        const span = new Tracer.NativeSpan(options)
        spans.push(span.name)
        return span
      }
    })
    return Effect.gen(function*() {
      const { state } = Stores.memory("traced")
      const key = { type: "Metered", id: "traced", record: "r" }
      yield* state.write(key, "{}", 0).pipe(Effect.withSpan("caller"))
      yield* state.read(key).pipe(Effect.withSpan("unsampled", { sampled: false }))
      yield* state.read(key)
      assert.deepStrictEqual(spans, ["caller", "quark.store state.write", "unsampled"])
    }).pipe(Effect.provideService(Tracer.Tracer, tracer))
  })
})

/** Waits until a statement on `table` is waiting for a lock (held by the test's own transaction). */
const blockedOn = (sql: PgClient.PgClient, table: string) =>
  sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_stat_activity
    WHERE wait_event_type = 'Lock' AND query LIKE ${`%${table}%`}`.pipe(
    Effect.repeat({ until: (rows) => rows[0]!.n > 0, schedule: Schedule.spaced("5 millis") })
  )

const rawSql = PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
  Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
  Effect.mapError((error) => unreachable("PostgreSQL", pgUrl, error))
)

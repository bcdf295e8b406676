/**
 * Encrypted reminders: the reminder store conformance suite through the encrypting wrapper
 * on memory, Redis and PostgreSQL (the same contract), what the servers really hold, a
 * record that does not decrypt (fails a `get`, is left out of a `due` and logged), reminders
 * firing on the TestClock over an encrypted store, and a key rotation with the job.
 */
import { assert, describe, it } from "@effect/vitest"
import { PgClient } from "@effect/sql-pg"
import { Clock, Effect, Layer, Redacted, Schema, type Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { Actor, Silo } from "../../src/index.ts"
import * as Encryption from "../../src/Persistence/Encryption.ts"
import type { StoreError } from "../../src/Persistence/PersistenceError.ts"
import * as EncryptedReminderStore from "../../src/Reminders/EncryptedReminderStore.ts"
import * as MemoryReminderStore from "../../src/Reminders/MemoryReminderStore.ts"
import * as PgReminderStore from "../../src/Reminders/PgReminderStore.ts"
import * as RedisReminderStore from "../../src/Reminders/RedisReminderStore.ts"
import type { ReminderStore } from "../../src/Reminders/ReminderStore.ts"
import * as Reminders from "../../src/Reminders/Reminders.ts"
import { pgUrl, rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { type Captured, capturingLogs } from "../support/capturedLogs.ts"
import { reminderConformance } from "./conformance.ts"

const k1: Encryption.KeySpec = { id: "k1", key: Redacted.make(Buffer.alloc(32, 1).toString("base64")) }
const k2: Encryption.KeySpec = { id: "k2", key: Redacted.make(Buffer.alloc(32, 2).toString("base64")) }
const ring = (active: Encryption.KeySpec, ...others: ReadonlyArray<Encryption.KeySpec>) =>
  Encryption.makeKeyring({ keys: [active, ...others], active: active.id })

const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
let opened = 0

/** What the server holds for a reminder's data, its history and a dead letter. */
interface Raw {
  readonly data: (type: string, id: string, name: string) => Effect.Effect<string | undefined, unknown>
  readonly history: (type: string, id: string, name: string) => Effect.Effect<ReadonlyArray<string>, unknown>
  readonly deadLetter: (id: string) => Effect.Effect<string | undefined, unknown>
}
type Open = Effect.Effect<{ readonly store: ReminderStore; readonly raw: Raw }, unknown, Scope.Scope>

const memory: Open = Effect.sync(() => {
  const store = MemoryReminderStore.make("memory")
  return {
    store,
    raw: {
      data: (type, id, name) => Effect.map(store.get({ type, id, name }), (r) => r?.data),
      history: (type, id, name) => store.history({ type, id, name }),
      deadLetter: (id) => Effect.map(store.deadLetters({ limit: 1_000 }), (all) => all.find((d) => d.id === id)?.data)
    }
  }
})

const redis: Open = Effect.gen(function*() {
  const prefix = `quark-test-enc-rem-${run}-${++opened}`
  const client = yield* rawRedis
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const keys = await client.keys(`${prefix}:*`)
      if (keys.length > 0) await client.del(...keys)
    })
  )
  const store = yield* RedisReminderStore.make("redis", { url: redisUrl, keyPrefix: prefix }).pipe(
    Effect.mapError((error) => unreachable("Redis", redisUrl, error))
  )
  const base = `${prefix}:{reminders}`
  const member = (type: string, id: string, name: string) => RedisReminderStore.memberOf({ type, id, name })
  return {
    store,
    raw: {
      data: (type, id, name) => Effect.promise(async () => (await client.hget(`${base}:r:${member(type, id, name)}`, "data")) ?? undefined),
      history: (type, id, name) => Effect.promise(() => client.lrange(`${base}:h:${member(type, id, name)}`, 0, -1)),
      deadLetter: (id) => Effect.promise(async () => (await client.hget(`${base}:dl:data`, id)) ?? undefined)
    }
  }
})

const rawSql = PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
  Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
  Effect.tap((sql) => sql`SELECT 1`),
  Effect.mapError((error) => unreachable("PostgreSQL", pgUrl, error))
)
const orUnreachable = <A, R>(effect: Effect.Effect<A, StoreError, R>) =>
  Effect.mapError(effect, (error) => error.operation === "connect" ? unreachable("PostgreSQL", pgUrl, error) : error)

const pg: Open = Effect.gen(function*() {
  const table = `quark_ter${run}_${++opened}`
  yield* Effect.addFinalizer(() =>
    Effect.scoped(Effect.flatMap(rawSql, (sql) =>
      sql.unsafe(`DROP TABLE IF EXISTS ${table}_history, ${table}_dead_letters, ${table}`))).pipe(Effect.orDie)
  )
  const store = yield* orUnreachable(PgReminderStore.make("pg", { url: pgUrl, table }))
  const sql = yield* rawSql
  const where = "actor_type = $1 AND actor_id = $2 AND name = $3"
  return {
    store,
    raw: {
      data: (type, id, name) =>
        Effect.map(sql.unsafe<{ data: string }>(`SELECT data FROM ${table} WHERE ${where}`, [type, id, name]), (rows) => rows[0]?.data),
      history: (type, id, name) =>
        Effect.map(sql.unsafe<{ entry: string }>(`SELECT entry FROM ${table}_history WHERE ${where}`, [type, id, name]), (rows) =>
          rows.map((row) => row.entry)),
      deadLetter: (id) =>
        Effect.map(sql.unsafe<{ data: string }>(`SELECT data FROM ${table}_dead_letters WHERE id = $1`, [id]), (rows) => rows[0]?.data)
    }
  }
})

const backends: ReadonlyArray<readonly [string, Open]> = [["memory", memory], ["redis", redis], ["pg", pg]]
const secret = `{"card":"4111-1111-1111-1111"}`

for (const [label, open] of backends) {
  reminderConformance(
    `${label}-encrypted`,
    Effect.flatMap(open, ({ store }) => Effect.map(ring(k1), (keyring) => EncryptedReminderStore.wrap(store, keyring)))
  )

  describe(`${label}: encrypted reminder store`, () => {
    it.live("data, history and dead letters are stored as envelopes; key, bucket and due time in clear", () =>
      Effect.gen(function*() {
        const { raw, store } = yield* open
        const encrypted = EncryptedReminderStore.wrap(store, yield* ring(k1))
        const key = { type: "Billing", id: "acct-1", name: "renew" }
        yield* encrypted.put({ key, bucket: 3, nextDue: 1_000, data: secret }, 0, { entry: secret, keep: 5 })
        yield* encrypted.addDeadLetter({ id: "dl-1", kind: "reminder", at: 5, data: secret })
        assert.deepStrictEqual(yield* encrypted.get(key), { key, bucket: 3, nextDue: 1_000, data: secret, version: 1 })
        assert.deepStrictEqual(yield* encrypted.history(key), [secret])
        assert.deepStrictEqual((yield* encrypted.deadLetters({ limit: 10 })).map((d) => d.data), [secret])
        assert.deepStrictEqual((yield* store.due(3, 1_000, 10)).map((r) => r.key.name), ["renew"], "due reads the clear fields")
        for (const held of [yield* raw.data("Billing", "acct-1", "renew"), ...(yield* raw.history("Billing", "acct-1", "renew")), yield* raw.deadLetter("dl-1")]) {
          assert.match(held!, /^qenc:1:k1:/)
          assert.notInclude(held!, "4111")
        }
      }).pipe(Effect.scoped))

    it.live("a reminder that does not decrypt fails get, and is left out of due and list (logged)", () =>
      Effect.gen(function*() {
        const { store } = yield* open
        const encrypted = EncryptedReminderStore.wrap(store, yield* ring(k1))
        const good = { type: "T", id: "a", name: "good" }
        const moved = { type: "T", id: "a", name: "moved" }
        yield* encrypted.put({ key: good, bucket: 0, nextDue: 10, data: secret }, 0)
        // good's ciphertext copied to another reminder: bound to good's key, it does not decrypt there.
        yield* store.put({ key: moved, bucket: 0, nextDue: 20, data: (yield* store.get(good))!.data }, 0)
        const error = yield* Effect.flip(encrypted.get(moved))
        assert.instanceOf(error, Encryption.DecryptionError)
        assert.deepStrictEqual([(error as Encryption.DecryptionError).failure, (error as Encryption.DecryptionError).keyId], [
          "authentication-failed",
          "k1"
        ])
        const logs: Array<Captured> = []
        const due = yield* encrypted.due(0, 100, 10).pipe(capturingLogs(logs))
        assert.deepStrictEqual(due.map((r) => r.key.name), ["good"])
        assert.deepStrictEqual((yield* encrypted.list("T", "a").pipe(capturingLogs(logs))).map((r) => r.key.name), ["good"])
        assert.strictEqual(logs.length, 2)
        assert.include(logs[0]!.message, "reminder T/a/moved does not decrypt")
        assert.strictEqual(logs[0]!.level, "Error")
        // Plaintext written before encryption: read as it is, refused when required.
        const plain = { type: "T", id: "a", name: "plain" }
        yield* store.put({ key: plain, bucket: 0, nextDue: 30, data: secret }, 0)
        assert.strictEqual((yield* encrypted.get(plain))!.data, secret)
        const strict = EncryptedReminderStore.wrap(store, yield* ring(k1), { requireEncrypted: true })
        assert.strictEqual(((yield* Effect.flip(strict.get(plain))) as Encryption.DecryptionError).failure, "not-encrypted")
      }).pipe(Effect.scoped))

    it.live("rotation: the job rewrites reminders under the old key, then the old key can go", () =>
      Effect.gen(function*() {
        const { raw, store } = yield* open
        const keyring = yield* ring(k1)
        const encrypted = EncryptedReminderStore.wrap(store, keyring)
        const keys = Array.from({ length: 6 }, (_, i) => ({ type: "T", id: `r${i}`, name: "n" }))
        for (const [i, key] of keys.entries()) {
          yield* encrypted.put({ key, bucket: i % 4, nextDue: 100 + i, data: `{"i":${i}}` }, 0, { entry: `"h"`, keep: 3 })
        }
        yield* keyring.add(k2)
        yield* keyring.activate("k2")
        yield* encrypted.put({ key: keys[0]!, bucket: 0, nextDue: 500, data: `{"i":0,"again":true}` }, 1)
        const report = yield* EncryptedReminderStore.reencrypt(encrypted, { bucketCount: 4 })
        assert.deepStrictEqual(report.reminders, { rewritten: 5, current: 1, skipped: 0, failed: 0 })
        assert.strictEqual(report.historyUnderOtherKeys, 6, "history is not rewritten, and is reported")
        yield* keyring.remove("k1")
        for (const [i, key] of keys.entries()) {
          const stored = (yield* encrypted.get(key))!
          assert.strictEqual(stored.data, i === 0 ? `{"i":0,"again":true}` : `{"i":${i}}`)
          assert.strictEqual(stored.nextDue, i === 0 ? 500 : 100 + i, "the clear fields are kept")
          assert.match((yield* raw.data(key.type, key.id, key.name))!, /^qenc:1:k2:/)
        }
      }).pipe(Effect.scoped))
  })
}

// --- firing ------------------------------------------------------------------------------

const Ping = Rpc.make("Ping", { payload: { label: Schema.String } })
const Target = Actor.make("EncTarget", [Ping])

describe("reminders over an encrypted store", () => {
  for (const [label, open] of backends.slice(0, 2)) {
    it.effect(`${label}: a periodic reminder fires with its payload; what is stored is encrypted`, () =>
      Effect.gen(function*() {
        const { raw, store } = yield* open
        const encrypted = EncryptedReminderStore.wrap(store, yield* ring(k1))
        const seen: Array<readonly [string, number]> = []
        const silo = Reminders.layer({ store: encrypted }).pipe(Layer.provideMerge(Silo.layerTest(
          Target.toLayer(Effect.succeed(Target.of({
            Ping: ({ label }) => Effect.map(Clock.currentTimeMillis, (at) => void seen.push([label, at]))
          })))
        )))
        yield* Effect.gen(function*() {
          const id = `enc-${label}-${run}`
          yield* Reminders.register(Target, id, "beat", { message: "Ping", payload: { label: "secret-label" }, every: "1 second" })
          for (let t = 0; t < 35; t++) {
            yield* TestClock.adjust("100 millis")
            for (let i = 0; i < 50; i++) yield* Effect.yieldNow
          }
          assert.deepStrictEqual(seen, [["secret-label", 1_000], ["secret-label", 2_000], ["secret-label", 3_000]])
          const history = yield* Reminders.history({ type: "EncTarget", id }, "beat")
          assert.deepStrictEqual(history.map((h) => h.due), [3_000, 2_000, 1_000])
          const held = (yield* raw.data("EncTarget", id, "beat"))!
          assert.match(held, /^qenc:1:k1:/)
          assert.notInclude(held, "secret-label")
        }).pipe(Effect.provide(silo))
      }).pipe(Effect.scoped))
  }
})

/**
 * Encrypted state, journals and snapshots on every store: the encrypted suite
 * (`encryptedSuite.ts`), and the store conformance suite run through the encrypting
 * wrapper (it must be the same contract). Redis and PostgreSQL are the real servers; one
 * that cannot be reached fails the test (never skips it).
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import type { StateKey, StoreError } from "../../src/index.ts"
import { Stores } from "../../src/index.ts"
import * as EncryptedStore from "../../src/Persistence/EncryptedStore.ts"
import * as Encryption from "../../src/Persistence/Encryption.ts"
import * as PgStore from "../../src/Persistence/PgStore.ts"
import * as RedisStore from "../../src/Persistence/RedisStore.ts"
import { conformance } from "./conformance.ts"
import { encryptedSuite, k1, k2 } from "./encryptedSuite.ts"
import { pgUrl, rawRedis, redisUrl, unreachable } from "./services.ts"

const run = `${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`
let opened = 0
const keyring = Encryption.makeKeyring({ keys: [k1, k2], active: "k2" })

// --- memory ----------------------------------------------------------------------------

encryptedSuite({
  label: "memory",
  open: Effect.sync(() => {
    const store = Stores.memory("memory")
    return {
      store,
      raw: {
        state: (key: StateKey) => Effect.map(store.state.read(key), (s) => s?.data),
        event: (key: StateKey, sequence: number) => Effect.map(store.journal.read(key, sequence, sequence), (e) => e[0]?.data),
        snapshot: (key: StateKey) => Effect.map(store.journal.loadSnapshot(key), (s) => s?.data)
      }
    }
  })
})
conformance("memory-encrypted", Effect.flatMap(keyring, (ring) => Effect.succeed(EncryptedStore.wrap(Stores.memory("memory-encrypted"), ring))))

// --- Redis -----------------------------------------------------------------------------

const redisStore = (name: string, keyPrefix: string) =>
  RedisStore.make(name, { url: redisUrl, keyPrefix }).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)))

encryptedSuite({
  label: "redis",
  open: Effect.gen(function*() {
    const prefix = `quark-test-enc-${run}-${++opened}`
    const redis = yield* rawRedis
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const keys = await redis.keys(`${prefix}:*`)
        if (keys.length > 0) await redis.del(...keys)
      })
    )
    const store = yield* redisStore("redis", prefix)
    const at = (kind: RedisStore.KeyKind, key: StateKey) => RedisStore.redisKey(prefix, kind, key)
    return {
      store,
      raw: {
        state: (key: StateKey) => Effect.promise(() => redis.hget(at("state", key), "data").then((v) => v ?? undefined)),
        event: (key: StateKey, sequence: number) =>
          Effect.promise(() => redis.lindex(at("journal", key), sequence - 1).then((v) => v ?? undefined)),
        snapshot: (key: StateKey) => Effect.promise(() => redis.hget(at("snapshot", key), "data").then((v) => v ?? undefined))
      }
    }
  })
})
conformance("redis-encrypted", Effect.flatMap(keyring, (ring) => EncryptedStore.wrap(redisStore("redis-encrypted", "quark"), ring)))

// --- PostgreSQL ------------------------------------------------------------------------

/** A plain client, to read the tables behind the store's back. */
const rawSql = PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
  Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make),
  Effect.tap((sql) => sql`SELECT 1`),
  Effect.mapError((error) => unreachable("PostgreSQL", pgUrl, error))
)
const orUnreachable = <A, R>(effect: Effect.Effect<A, StoreError, R>) =>
  Effect.mapError(effect, (error) => error.operation === "connect" ? unreachable("PostgreSQL", pgUrl, error) : error)

encryptedSuite({
  label: "pg",
  open: Effect.gen(function*() {
    const prefix = `quark_te${run}_${++opened}_`
    // Dropped by a client of its own, after the store's pool closed (finalizers run in reverse).
    yield* Effect.addFinalizer(() =>
      Effect.scoped(Effect.flatMap(rawSql, (sql) =>
        sql.unsafe(`DROP TABLE IF EXISTS ${prefix}state, ${prefix}journal, ${prefix}snapshot`))).pipe(Effect.orDie)
    )
    const store = yield* orUnreachable(PgStore.make("pg", { url: pgUrl, tablePrefix: prefix }))
    const sql = yield* rawSql
    const one = (text: string, params: ReadonlyArray<unknown>) =>
      Effect.map(sql.unsafe<{ data: string }>(text, params), (rows) => rows[0]?.data)
    const where = "actor_type = $1 AND actor_id = $2"
    return {
      store,
      raw: {
        state: (key: StateKey) => one(`SELECT data FROM ${prefix}state WHERE ${where} AND record = $3`, [key.type, key.id, key.record]),
        event: (key: StateKey, sequence: number) =>
          one(`SELECT data FROM ${prefix}journal WHERE ${where} AND journal = $3 AND sequence = $4`, [key.type, key.id, key.record, sequence]),
        snapshot: (key: StateKey) =>
          one(`SELECT data FROM ${prefix}snapshot WHERE ${where} AND journal = $3`, [key.type, key.id, key.record])
      }
    }
  })
})
conformance(
  "pg-encrypted",
  Effect.flatMap(keyring, (ring) => EncryptedStore.wrap(orUnreachable(PgStore.make("pg-encrypted", { url: pgUrl })), ring))
)

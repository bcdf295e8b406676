import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as RedisStore from "../../src/Persistence/RedisStore.ts"
import { conformance } from "./conformance.ts"
import { rawRedis, redisUrl, unreachable } from "./services.ts"

/** The store under test; an unreachable server fails the suite (never skips it). */
const store = (keyPrefix?: string) =>
  RedisStore.make("redis", { url: redisUrl, keyPrefix }).pipe(
    Effect.mapError((error) => unreachable("Redis", redisUrl, error))
  )


conformance("redis", store())

describe("redis: provider specifics", () => {
  const prefix = `quark-test-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

  it.effect("the documented key layout is what is stored", () =>
    Effect.gen(function*() {
      const { state, journal } = yield* store(prefix)
      const redis = yield* rawRedis
      const key = { type: "Bank/Account", id: "a:b/c{d}", record: "balance" }
      yield* state.write(key, `{"n":1}`, 0)
      yield* journal.append(key, 0, ["e1", "e2"])
      yield* journal.saveSnapshot(key, { sequence: 2, data: "s2" })

      const actor = `${prefix}:{Bank%2FAccount:a%3Ab%2Fc%7Bd%7D}`
      assert.strictEqual(RedisStore.redisKey(prefix, "state", key), `${actor}:state:balance`)
      const stored = yield* Effect.promise(() => redis.keys(`${prefix}:*`))
      assert.deepStrictEqual(stored.sort(), [`${actor}:journal:balance`, `${actor}:snapshot:balance`, `${actor}:state:balance`])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.hgetall(`${actor}:state:balance`)), {
        version: "1",
        data: `{"n":1}`
      })
      assert.deepStrictEqual(yield* Effect.promise(() => redis.lrange(`${actor}:journal:balance`, 0, -1)), ["e1", "e2"])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.hgetall(`${actor}:snapshot:balance`)), {
        sequence: "2",
        data: "s2"
      })
      yield* Effect.promise(() => redis.del(...stored))
    }).pipe(Effect.scoped))

  it.effect("unicode in data, events, snapshots and ids round-trips byte for byte", () =>
    Effect.gen(function*() {
      const { state, journal } = yield* store(prefix)
      const text = JSON.stringify({ s: "ü€𝄞 日本語 👩‍👩‍👧 \u0000 \"q\" \\ " })
      const key = { type: "Ünï", id: "çødé-𝄞", record: "ré" }
      yield* state.write(key, text, 0)
      assert.deepStrictEqual(yield* state.read(key), { data: text, version: 1 })
      yield* journal.append(key, 0, [text, "ñ"])
      assert.deepStrictEqual(yield* journal.read(key, 1), [{ sequence: 1, data: text }, { sequence: 2, data: "ñ" }])
      yield* journal.saveSnapshot(key, { sequence: 1, data: text })
      assert.deepStrictEqual(yield* journal.loadSnapshot(key), { sequence: 1, data: text })
      const redis = yield* rawRedis
      yield* Effect.promise(() => redis.del(...(["state", "journal", "snapshot"] as const).map((kind) => RedisStore.redisKey(prefix, kind, key))))
    }).pipe(Effect.scoped))

  it.effect("one append of 10,000 events lands whole (more than Lua's unpack takes at once)", () =>
    Effect.gen(function*() {
      const { journal } = yield* store(prefix)
      const key = { type: "T", id: "big-append", record: "ledger" }
      const events = Array.from({ length: 10_000 }, (_, i) => `e${i + 1}`)
      assert.strictEqual(yield* journal.append(key, 0, ["e0"]), 1)
      assert.strictEqual(yield* journal.append(key, 1, events), 10_001)
      assert.deepStrictEqual(yield* journal.read(key, 10_000, 10_001), [
        { sequence: 10_000, data: "e9999" },
        { sequence: 10_001, data: "e10000" }
      ])
      const redis = yield* rawRedis
      yield* Effect.promise(() => redis.del(RedisStore.redisKey(prefix, "journal", key)))
    }).pipe(Effect.scoped))

  it.live("an unreachable server fails make with StoreError promptly", () =>
    Effect.gen(function*() {
      const error = yield* RedisStore.make("redis", { url: "redis://127.0.0.1:1" }).pipe(
        Effect.scoped,
        Effect.timeout("3 seconds"),
        Effect.flip
      )
      assert.strictEqual(error._tag, "StoreError")
      if (error._tag === "StoreError") {
        assert.strictEqual(error.store, "redis")
        assert.strictEqual(error.operation, "connect")
      }
    }))

  it.effect("an operation on a closed store fails with StoreError", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { state } = yield* Scope.provide(scope)(store(prefix))
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(state.read({ type: "T", id: "closed", record: "r" }))
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.operation, "read state")
    }))
})

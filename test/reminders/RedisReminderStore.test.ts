import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import * as fc from "fast-check"
import { compareKeys } from "../../src/Reminders/internal/StoreOrder.ts"
import * as RedisReminderStore from "../../src/Reminders/RedisReminderStore.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { reminderConformance } from "./conformance.ts"

const run = `quark-test-reminders-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
let stores = 0

/**
 * A store under a key prefix of its own, whose keys are deleted when the scope closes; an
 * unreachable server fails it (never skips).
 */
const freshStore = Effect.gen(function*() {
  const prefix = `${run}-${++stores}`
  const redis = yield* rawRedis
  yield* Effect.addFinalizer(() =>
    Effect.promise(async () => {
      const keys = await redis.keys(`${prefix}:*`)
      if (keys.length > 0) await redis.del(...keys)
    })
  )
  const store = yield* RedisReminderStore.make("redis", { url: redisUrl, keyPrefix: prefix }).pipe(
    Effect.mapError((error) => unreachable("Redis", redisUrl, error))
  )
  return { store, prefix, redis }
})

reminderConformance("redis", Effect.map(freshStore, ({ store }) => store))

describe("redis: provider specifics", () => {
  it.live("the documented key layout is what is stored, and a remove leaves nothing", () =>
    Effect.gen(function*() {
      const { prefix, redis, store } = yield* freshStore
      const k = { type: "Billing", id: "acct/1 %!", name: "renew" }
      yield* store.put({ key: k, bucket: 3, nextDue: 1_700_000_000_000, data: `{"n":1}` }, 0)
      yield* store.appendHistory(k, "h1", 5)
      yield* store.addDeadLetter({ id: "d/1", kind: "tell", at: 42, data: "dead" })

      const member = "Billing!acct/1%20%25%21!renew"
      assert.strictEqual(RedisReminderStore.memberOf(k), member)
      const base = `${prefix}:{reminders}`
      const stored = yield* Effect.promise(() => redis.keys(`${prefix}:*`))
      assert.deepStrictEqual(stored.sort(), [
        `${base}:a:Billing!acct/1%20%25%21`,
        `${base}:dl`,
        `${base}:dl:by-kind:tell`,
        `${base}:dl:data`,
        `${base}:dl:kind`,
        `${base}:due:3`,
        `${base}:h:${member}`,
        `${base}:r:${member}`
      ].sort())
      assert.deepStrictEqual(yield* Effect.promise(() => redis.hgetall(`${base}:r:${member}`)), {
        data: `{"n":1}`,
        version: "1",
        bucket: "3",
        nextDue: "1700000000000"
      })
      assert.deepStrictEqual(yield* Effect.promise(() => redis.zrange(`${base}:due:3`, "0", "-1", "WITHSCORES")), [
        member,
        "1700000000000"
      ])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.zrange(`${base}:a:Billing!acct/1%20%25%21`, "0", "-1")), [member])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.lrange(`${base}:h:${member}`, 0, -1)), ["h1"])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.zrange(`${base}:dl`, "0", "-1", "WITHSCORES")), ["d/1", "42"])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.hgetall(`${base}:dl:data`)), { "d/1": "dead" })
      assert.deepStrictEqual(yield* Effect.promise(() => redis.hgetall(`${base}:dl:kind`)), { "d/1": "tell" })

      yield* store.remove(k, 1)
      assert.isTrue(yield* store.removeDeadLetter("d/1"))
      assert.deepStrictEqual(yield* Effect.promise(() => redis.keys(`${prefix}:*`)), [])
    }))

  it("members sort as their keys do (byte order of UTF-8 = key order by code point)", () => {
    const part = fc.oneof(
      fc.string({ unit: "grapheme", maxLength: 4 }),
      fc.string({ unit: fc.constantFrom("a", "!", "%", "-", "/", " ", "\u0000", "\u0025", "\u0026", "é", "𝄞"), maxLength: 4 })
    )
    const keyArb = fc.record({ type: part, id: part, name: part })
    fc.assert(
      fc.property(keyArb, keyArb, (a, b) => {
        const [ma, mb] = [RedisReminderStore.memberOf(a), RedisReminderStore.memberOf(b)]
        assert.deepStrictEqual(RedisReminderStore.keyOfMember(ma), a)
        assert.strictEqual(
          Math.sign(Buffer.compare(Buffer.from(ma, "utf8"), Buffer.from(mb, "utf8"))),
          Math.sign(compareKeys(a, b))
        )
      }),
      { numRuns: 5_000 }
    )
  })

  it.live("a key with a lone surrogate fails with StoreError (UTF-8 cannot carry it)", () =>
    Effect.gen(function*() {
      const { store } = yield* freshStore
      const k = { type: "T", id: "bad\uD800", name: "r" }
      const error = yield* Effect.flip(store.put({ key: k, bucket: 0, nextDue: 1, data: "" }, 0))
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual((yield* Effect.flip(store.get(k))).operation, "get")
      assert.deepStrictEqual(yield* store.due(0, 10, 10), [])
    }))

  it.live("an unreachable server fails make with StoreError promptly", () =>
    Effect.gen(function*() {
      const error = yield* RedisReminderStore.make("redis", { url: "redis://127.0.0.1:1" }).pipe(
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

  it.live("an operation on a closed store fails with StoreError", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const { store } = yield* Scope.provide(scope)(freshStore)
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(store.due(0, 10, 10))
      assert.strictEqual(error._tag, "StoreError")
      assert.strictEqual(error.operation, "due")
    }))
})

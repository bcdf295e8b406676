import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber, Schedule } from "effect"
import * as RedisStreamProvider from "../../src/Streams/RedisStreamProvider.ts"
import type { NewEntry, StreamEntry } from "../../src/Streams/StreamProvider.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { type FreshOptions, providerConformance } from "./conformance.ts"

const run = `quark-test-streams-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
let providers = 0

/**
 * A provider under a key prefix of its own, whose keys are deleted when the scope closes.
 * It trims after every ack (`trimIntervalMillis: 0`) so the retention test can look at
 * once. An unreachable server fails the test (never skips).
 */
const freshProvider = (options?: FreshOptions & { readonly connectionName?: string }) =>
  Effect.gen(function*() {
    const prefix = `${run}-${++providers}`
    const redis = yield* rawRedis
    yield* Effect.addFinalizer(() =>
      Effect.promise(async () => {
        const keys = await redis.keys(`${prefix}:*`)
        if (keys.length > 0) await redis.del(...keys)
      })
    )
    const provider = yield* RedisStreamProvider.make({ url: redisUrl, keyPrefix: prefix, trimIntervalMillis: 0, ...options }).pipe(
      Effect.mapError((error) => unreachable("Redis", redisUrl, error))
    )
    return { provider, prefix, redis }
  })

providerConformance("redis", (options) => Effect.orDie(Effect.map(freshProvider(options), ({ provider }) => provider)), {
  propertyRuns: 25
})

const entry = (key: string, n: number): NewEntry => ({ namespace: "ns", key, payload: { n } })
const tokensOf = (entries: ReadonlyArray<StreamEntry>) => entries.map((e) => e.token)
const redisCall = (redis: { call: (command: string, args: Array<string | number>) => Promise<unknown> }, command: string, ...args: Array<string | number>) =>
  Effect.promise(() => redis.call(command, args))

describe("redis: provider specifics", () => {
  it.live("the documented key layout is what is stored", () =>
    Effect.gen(function*() {
      const { prefix, provider, redis } = yield* Effect.orDie(freshProvider())
      assert.strictEqual(provider.name, "redis")
      assert.isTrue(provider.encodes)
      const [token] = yield* provider.append(0, [{ namespace: "ns:a/b", key: "k!%", payload: { x: [1, "é"] } }])
      yield* provider.consume(1, "c")
      yield* provider.subscriptions.put("ns:a/b", "k!%", { id: "s1", data: "D" })

      const keys = RedisStreamProvider.redisKeys(prefix)
      assert.strictEqual(keys.partition(0), `${prefix}:p:{0}`)
      assert.strictEqual(keys.subscriptions("ns:a/b", "k!%"), `${prefix}:subs:ns:a/b!k%21%25`)
      const stored = yield* Effect.promise(() => redis.keys(`${prefix}:*`))
      assert.strictEqual(keys.owner(1), `${prefix}:p:{1}:owner`)
      assert.deepStrictEqual(stored.sort(), [
        `${prefix}:p:{0}`,
        `${prefix}:p:{1}`,
        `${prefix}:p:{1}:owner`,
        `${prefix}:subs:ns:a/b!k%21%25`
      ])
      // The fence: the token of the partition's newest consumer, named after it.
      assert.match(String(yield* redisCall(redis, "GET", `${prefix}:p:{1}:owner`)), /^c [0-9a-f-]{36}$/)
      assert.deepStrictEqual(yield* redisCall(redis, "XRANGE", `${prefix}:p:{0}`, "-", "+"), [
        [token, ["n", "ns:a/b", "k", "k!%", "d", `{"x":[1,"é"]}`]]
      ])
      // The group exists where a consumer was made, and was created at the beginning.
      assert.deepStrictEqual(yield* redisCall(redis, "XINFO", "GROUPS", `${prefix}:p:{0}`), [])
      const groups = (yield* redisCall(redis, "XINFO", "GROUPS", `${prefix}:p:{1}`)) as Array<Array<unknown>>
      assert.strictEqual(groups.length, 1)
      assert.deepStrictEqual(groups[0]!.slice(0, 2), ["name", "quark"])
      assert.deepStrictEqual(yield* redisCall(redis, "HGETALL", `${prefix}:subs:ns:a/b!k%21%25`), ["s1", "D"])
    }))

  it.live("malformed entries in a partition are skipped (and acknowledged by the consumer), never crash it", () =>
    Effect.gen(function*() {
      const { prefix, provider, redis } = yield* Effect.orDie(freshProvider())
      const key = `${prefix}:p:{0}`
      const consumer = yield* provider.consume(0, "c")
      const [first] = yield* provider.append(0, [entry("k", 1)])
      yield* redisCall(redis, "XADD", key, "*", "x", "y")
      yield* redisCall(redis, "XADD", key, "*", "n", "ns", "k", "k", "d", "{not json")
      yield* redisCall(redis, "XADD", key, "*", "n", "ns", "k", "k")
      const [second] = yield* provider.append(0, [entry("k", 2)])
      assert.deepStrictEqual(tokensOf(yield* consumer.next(10, 0)), [first, second])
      // Only the valid entries are pending.
      assert.strictEqual(((yield* redisCall(redis, "XPENDING", key, "quark")) as Array<unknown>)[0], 2)
      assert.deepStrictEqual(tokensOf(yield* consumer.claim(0)), [first, second])
      const reader = yield* provider.reader(0)
      assert.deepStrictEqual(tokensOf(yield* reader.read({ _tag: "Earliest" }, 10, 0)), [first, second])
      // A batch of nothing but garbage: nothing, at once, and the reader passes it too.
      yield* redisCall(redis, "XADD", key, "*", "d", "1")
      assert.deepStrictEqual(yield* consumer.next(10, 0), [])
      assert.deepStrictEqual(yield* reader.read({ _tag: "After", token: second! }, 10, 0), [])
      const [third] = yield* provider.append(0, [entry("k", 3)])
      assert.deepStrictEqual(tokensOf(yield* reader.read({ _tag: "After", token: second! }, 1, 0)), [third])

      // Garbage another consumer read and left pending is acknowledged by claim.
      yield* redisCall(redis, "XADD", key, "*", "zz", "1")
      const [fourth] = yield* provider.append(0, [entry("k", 4)])
      yield* redisCall(redis, "XREADGROUP", "GROUP", "quark", "other", "COUNT", 10, "STREAMS", key, ">")
      assert.deepStrictEqual(tokensOf(yield* consumer.claim(0)), [first, second, third, fourth])
      assert.strictEqual(((yield* redisCall(redis, "XPENDING", key, "quark")) as Array<unknown>)[0], 4)
    }))

  it.live("a full claim forgets the group's other consumers that hold nothing, and keeps those that do", () =>
    Effect.gen(function*() {
      const { prefix, provider, redis } = yield* Effect.orDie(freshProvider())
      const key = `${prefix}:p:{0}`
      const tokens = yield* provider.append(0, [entry("k", 1), entry("k", 2)])
      const gone = yield* provider.consume(0, "silo-gone")
      yield* gone.next(1, 0)
      yield* gone.ack([tokens[0]!])
      const busy = yield* provider.consume(0, "silo-busy")
      yield* busy.next(1, 0)
      const consumers = (yield* redisCall(redis, "XINFO", "CONSUMERS", key, "quark")) as Array<Array<unknown>>
      assert.deepStrictEqual(consumers.map((c) => c[1]).sort(), ["silo-busy", "silo-gone"])
      // Idle claim first: nothing is idle for a minute, so nobody is forgotten.
      const claimer = yield* provider.consume(0, "silo-new")
      assert.deepStrictEqual(yield* claimer.claim(60_000), [])
      assert.strictEqual(((yield* redisCall(redis, "XINFO", "CONSUMERS", key, "quark")) as Array<unknown>).length, 2)
      assert.deepStrictEqual(tokensOf(yield* claimer.claim(0)), [tokens[1]])
      // silo-busy's entry is now silo-new's: both old consumers hold nothing and are forgotten.
      const after = (yield* redisCall(redis, "XINFO", "CONSUMERS", key, "quark")) as Array<Array<unknown>>
      assert.deepStrictEqual(after.map((c) => c[1]), ["silo-new"])
    }))

  it.live("a blocking next interrupted while Redis holds it does not break the next one", () =>
    Effect.gen(function*() {
      const name = `${run}-blocking`
      const { provider, redis } = yield* Effect.orDie(freshProvider({ connectionName: name }))
      const consumer = yield* provider.consume(0, "c")
      const blocked = yield* Effect.forkChild(consumer.next(10, 30_000))
      // No latch reaches into Redis: watch the server until it holds the read.
      yield* redisCall(redis, "CLIENT", "LIST").pipe(
        Effect.map((list) =>
          String(list).split("\n").some((line) => line.includes(`name=${name}-p0 `) && line.includes("cmd=xread "))
        ),
        Effect.repeat({ until: (held) => held, schedule: Schedule.spaced("5 millis") }),
        Effect.timeout("5 seconds")
      )
      const start = yield* Clock.currentTimeMillis
      yield* Fiber.interrupt(blocked)
      assert.isBelow((yield* Clock.currentTimeMillis) - start, 2_000)
      const tokens = yield* provider.append(0, [entry("k", 1)])
      assert.deepStrictEqual(tokensOf(yield* consumer.next(10, 5_000)), tokens)
      const waiting = yield* Effect.forkChild(consumer.next(10, 5_000))
      yield* Effect.yieldNow
      const more = yield* provider.append(0, [entry("k", 2)])
      assert.deepStrictEqual(tokensOf(yield* Fiber.join(waiting)), more)
    }))

  it.live("concurrent single-entry appends share round trips and each gets the token of its own entry", () =>
    Effect.gen(function*() {
      const { provider } = yield* Effect.orDie(freshProvider())
      const tokens = yield* Effect.forEach(
        Array.from({ length: 2_000 }, (_, i) => i),
        (i) => Effect.map(provider.append(0, [entry(`k${i % 7}`, i)]), ([token]) => [i, token!] as const),
        { concurrency: "unbounded" }
      )
      assert.strictEqual(new Set(tokens.map(([, token]) => token)).size, 2_000)
      const reader = yield* provider.reader(0)
      const stored = yield* reader.read({ _tag: "Earliest" }, 5_000, 0)
      const byToken = new Map(stored.map((e) => [e.token, e.payload]))
      for (const [i, token] of tokens) assert.deepStrictEqual(byToken.get(token), { n: i })
    }))

  it.live("claim and ack go past one XAUTOCLAIM page and one XACK chunk", () =>
    Effect.gen(function*() {
      const { provider } = yield* Effect.orDie(freshProvider())
      const tokens = yield* provider.append(0, Array.from({ length: 2_500 }, (_, i) => entry("k", i)))
      const dying = yield* Effect.scoped(Effect.flatMap(provider.consume(0, "a"), (consumer) => consumer.next(5_000, 0)))
      assert.strictEqual(dying.length, 2_500)
      const consumer = yield* provider.consume(0, "b")
      assert.deepStrictEqual(tokensOf(yield* consumer.claim(0)), tokens)
      yield* consumer.ack(tokens)
      assert.deepStrictEqual(yield* consumer.claim(0), [])
    }))

  it.live("what Redis cannot carry fails the call with StreamProviderError", () =>
    Effect.gen(function*() {
      const { provider } = yield* Effect.orDie(freshProvider())
      const notJson = yield* Effect.flip(provider.append(0, [{ namespace: "ns", key: "k", payload: undefined }]))
      assert.strictEqual(notJson.operation, "append")
      const bigint = yield* Effect.flip(provider.append(0, [{ namespace: "ns", key: "k", payload: 1n }]))
      assert.strictEqual(bigint.operation, "append")
      const surrogate = yield* Effect.flip(provider.append(0, [{ namespace: "ns", key: "bad\uD800", payload: 1 }]))
      assert.strictEqual(surrogate.operation, "append")
      assert.strictEqual((yield* Effect.flip(provider.subscriptions.list("ns", "bad\uDC00")))._tag, "StreamProviderError")
      assert.isUndefined(yield* provider.lastToken(0))
    }))

  it.live("an unreachable server fails make with StreamProviderError promptly", () =>
    Effect.gen(function*() {
      const error = yield* RedisStreamProvider.make({ url: "redis://127.0.0.1:1" }).pipe(
        Effect.scoped,
        Effect.timeout("3 seconds"),
        Effect.flip
      )
      assert.strictEqual(error._tag, "StreamProviderError")
      if (error._tag === "StreamProviderError") assert.strictEqual(error.operation, "connect")
    }))
})

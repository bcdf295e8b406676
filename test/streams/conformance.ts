/**
 * The conformance suite every `StreamProvider` must pass. A provider's test file calls
 * `providerConformance("redis", fresh)`, where each run of `fresh(options)` gives a new,
 * empty provider (its own key prefix) honouring `options`, and removes what it created when
 * its scope closes; a server that cannot be reached fails `fresh`, and so the test.
 *
 * `fresh` must make trimming observable right after an ack (the Redis provider's
 * `trimIntervalMillis: 0`), so the retention test can look without waiting.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Fiber, Scope } from "effect"
import * as fc from "fast-check"
import type { NewEntry, PartitionConsumer, StreamEntry, StreamProvider } from "../../src/Streams/StreamProvider.ts"
import * as StreamToken from "../../src/Streams/StreamToken.ts"

/**
 * What the suite asks of a fresh provider.
 */
export interface FreshOptions {
  readonly retain?: { readonly maxLength?: number }
}

export type Fresh = (options?: FreshOptions) => Effect.Effect<StreamProvider, never, Scope.Scope>

const entry = (key: string, n: number, namespace = "ns"): NewEntry => ({ namespace, key, payload: { n, text: "é😀" } })

/** The fields of entries, as plain records (providers may return richer objects). */
const view = (entries: ReadonlyArray<StreamEntry>) =>
  entries.map(({ key, namespace, payload, token }) => ({ namespace, key, payload, token }))
const withTokens = (entries: ReadonlyArray<NewEntry>, tokens: ReadonlyArray<string>) =>
  entries.map(({ key, namespace, payload }, i) => ({ namespace, key, payload, token: tokens[i]! }))
const tokensOf = (entries: ReadonlyArray<StreamEntry>) => entries.map((e) => e.token)

/** A consumer living in a scope of its own, to be closed (the consumer "dies") at will. */
const consumerIn = (provider: StreamProvider, partition: number, name: string) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const consumer = yield* provider.consume(partition, name).pipe(Scope.provide(scope))
    return { consumer, close: Scope.close(scope, Exit.void) }
  })

const elapsedMillis = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.gen(function*() {
    const start = yield* Clock.currentTimeMillis
    const result = yield* effect
    return [result, (yield* Clock.currentTimeMillis) - start] as const
  })

type Op =
  | { readonly _tag: "append"; readonly stream: number; readonly count: number }
  | { readonly _tag: "next"; readonly max: number }
  | { readonly _tag: "ack"; readonly mask: ReadonlyArray<boolean> }
  | { readonly _tag: "restart" }

const opArb: fc.Arbitrary<Op> = fc.oneof(
  fc.record({ _tag: fc.constant("append" as const), stream: fc.nat(2), count: fc.integer({ min: 1, max: 4 }) }),
  fc.record({ _tag: fc.constant("next" as const), max: fc.integer({ min: 1, max: 5 }) }),
  fc.record({ _tag: fc.constant("ack" as const), mask: fc.array(fc.boolean(), { maxLength: 8 }) }),
  fc.constant({ _tag: "restart" as const })
)

export const providerConformance = (name: string, fresh: Fresh, config?: { readonly propertyRuns?: number }) =>
  describe(`${name}: stream provider conformance`, () => {
    it.live("append returns increasing tokens; lastToken is the newest", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        assert.isAtLeast(provider.partitions, 2)
        assert.isUndefined(yield* provider.lastToken(0))
        assert.deepStrictEqual(yield* provider.append(0, []), [])
        const first = yield* provider.append(0, [entry("a", 1), entry("b", 2), entry("a", 3)])
        const second = yield* provider.append(0, [entry("a", 4), entry("c", 5)])
        const all = [...first, ...second]
        assert.strictEqual(all.length, 5)
        for (const token of all) assert.isDefined(StreamToken.parse(token), token)
        for (let i = 1; i < all.length; i++) assert.isTrue(StreamToken.compare(all[i - 1]!, all[i]!) < 0)
        assert.strictEqual(yield* provider.lastToken(0), all[4])
        assert.isUndefined(yield* provider.lastToken(1))
      }))

    it.live("a partition that does not exist fails with StreamProviderError", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        for (const partition of [-1, provider.partitions, 0.5]) {
          const error = yield* Effect.flip(provider.append(partition, [entry("a", 1)]))
          assert.strictEqual(error._tag, "StreamProviderError")
          assert.strictEqual(error.operation, "append")
          assert.strictEqual((yield* Effect.flip(provider.consume(partition, "c")))._tag, "StreamProviderError")
        }
      }))

    it.live("partitions are independent", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const zero = [entry("a", 1), entry("a", 2)]
        const one = [entry("a", 3)]
        const zeroTokens = yield* provider.append(0, zero)
        const oneTokens = yield* provider.append(1, one)
        const c1 = yield* provider.consume(1, "c")
        assert.deepStrictEqual(view(yield* c1.next(10, 0)), withTokens(one, oneTokens))
        assert.deepStrictEqual(yield* c1.next(10, 0), [])
        const c0 = yield* provider.consume(0, "c")
        assert.deepStrictEqual(view(yield* c0.next(10, 0)), withTokens(zero, zeroTokens))
        const r1 = yield* provider.reader(1)
        assert.deepStrictEqual(view(yield* r1.read({ _tag: "Earliest" }, 10, 0)), withTokens(one, oneTokens))
        assert.strictEqual(yield* provider.lastToken(1), oneTokens[0])
      }))

    it.live("entries appended before any consumer existed are delivered, in order, to the newest consumer only", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const entries = Array.from({ length: 10 }, (_, i) => entry(`k${i % 3}`, i))
        const tokens = yield* provider.append(0, entries)
        const expected = withTokens(entries, tokens)
        const a = yield* provider.consume(0, "a")
        assert.deepStrictEqual(view(yield* a.next(4, 0)), expected.slice(0, 4))
        // A newer consumer fences the older one, whatever its name: it reads and claims nothing more.
        const b = yield* provider.consume(0, "a")
        const fenced = yield* Effect.flip(a.next(100, 0))
        assert.strictEqual(fenced._tag, "ConsumerFenced")
        assert.strictEqual((yield* Effect.flip(a.claim(0)))._tag, "ConsumerFenced")
        assert.deepStrictEqual(view(yield* b.claim(0)), expected.slice(0, 4))
        assert.deepStrictEqual(view(yield* b.next(100, 0)), expected.slice(4))
        // What the fenced one delivered it may still acknowledge.
        yield* a.ack(tokens.slice(0, 2))
        assert.deepStrictEqual(tokensOf(yield* b.claim(0)), tokens.slice(2))
        assert.deepStrictEqual(yield* b.next(100, 0), [])
      }))

    it.live("a read a pause delayed past a newer consumer's start takes nothing (the fence)", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const a = yield* provider.consume(0, "silo-a")
        // `a` waits; meanwhile its silo "pauses", a survivor's consumer starts and claims.
        const late = yield* Effect.forkChild(Effect.flip(a.next(10, 20_000)))
        yield* Effect.yieldNow
        const b = yield* provider.consume(0, "silo-b")
        assert.deepStrictEqual(yield* b.claim(0), [])
        const tokens = yield* provider.append(0, [entry("k", 1), entry("k", 2)])
        // The waiting read wakes with the append, and is refused instead of taking them.
        const refused = yield* Fiber.join(late).pipe(Effect.timeout("10 seconds"))
        assert.strictEqual(refused._tag, "ConsumerFenced")
        assert.deepStrictEqual(tokensOf(yield* b.next(10, 5_000)), tokens)
        assert.deepStrictEqual(tokensOf(yield* b.claim(0)), tokens)
      }))

    it.live("a dead consumer's unacknowledged entries are claimed in order, then next reads on", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const entries = Array.from({ length: 6 }, (_, i) => entry("k", i))
        const tokens = yield* provider.append(0, entries)
        const expected = withTokens(entries, tokens)

        const dying = yield* consumerIn(provider, 0, "silo-a")
        assert.deepStrictEqual(tokensOf(yield* dying.consumer.next(4, 0)), tokens.slice(0, 4))
        yield* dying.consumer.ack([tokens[1]!])
        yield* dying.close

        const b = yield* provider.consume(0, "silo-b")
        assert.deepStrictEqual(view(yield* b.claim(0)), [expected[0], expected[2], expected[3]])
        assert.deepStrictEqual(view(yield* b.next(10, 0)), expected.slice(4))
        // Claiming again takes everything pending, whoever read it.
        assert.deepStrictEqual(tokensOf(yield* b.claim(0)), [tokens[0], tokens[2], tokens[3], tokens[4], tokens[5]])
        // Unknown tokens (and strings that are no token) are ignored.
        yield* b.ack(["1-0", "99999999999999-0", "nonsense", ...tokens])
        assert.deepStrictEqual(yield* b.claim(0), [])
        const c = yield* provider.consume(0, "silo-c")
        assert.deepStrictEqual(yield* c.claim(0), [])
        assert.deepStrictEqual(yield* c.next(10, 0), [])
      }))

    it.live("claim(minIdle) takes only entries read at least that long ago", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const tokens = yield* provider.append(0, Array.from({ length: 3 }, (_, i) => entry("k", i)))
        const a = yield* provider.consume(0, "silo-a")
        assert.deepStrictEqual(tokensOf(yield* a.next(3, 0)), tokens)
        const b = yield* provider.consume(0, "silo-b")
        // Read a moment ago: not idle for a minute, so not taken.
        assert.deepStrictEqual(yield* b.claim(60_000), [])
        assert.deepStrictEqual(tokensOf(yield* b.claim(0)), tokens)
        // A claim counts as a read: they are not idle again yet.
        assert.deepStrictEqual(yield* b.claim(60_000), [])
        // `a` is fenced since `b` started: its claim takes nothing, however idle the entries.
        assert.strictEqual((yield* Effect.flip(a.claim(0)))._tag, "ConsumerFenced")
      }))

    it.live("next waits for an append and wakes with it; with none, returns nothing after waitMillis", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const consumer = yield* provider.consume(0, "c")
        const [empty, waited] = yield* elapsedMillis(consumer.next(10, 50))
        assert.deepStrictEqual(empty, [])
        assert.isAtLeast(waited, 45)

        const waiting = yield* Effect.forkChild(consumer.next(10, 20_000))
        yield* Effect.yieldNow
        const tokens = yield* provider.append(0, [entry("k", 1)])
        const [got, tookMillis] = yield* elapsedMillis(Fiber.join(waiting))
        assert.deepStrictEqual(tokensOf(got), tokens)
        assert.isBelow(tookMillis, 10_000)
      }))

    it.live("an interrupted next leaves the consumer usable", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const consumer = yield* provider.consume(0, "c")
        const waiting = yield* Effect.forkChild(consumer.next(10, 60_000))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(waiting).pipe(Effect.timeout("5 seconds"))
        const tokens = yield* provider.append(0, [entry("k", 1)])
        assert.deepStrictEqual(tokensOf(yield* consumer.next(10, 5_000)), tokens)
      }))

    it.live("a reader reads from Earliest, After a token and a Time, outside the group", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const entries = Array.from({ length: 5 }, (_, i) => entry(`k${i}`, i))
        const tokens = yield* provider.append(0, entries)
        const expected = withTokens(entries, tokens)
        const reader = yield* provider.reader(0)
        assert.deepStrictEqual(view(yield* reader.read({ _tag: "Earliest" }, 10, 0)), expected)
        assert.deepStrictEqual(view(yield* reader.read({ _tag: "Earliest" }, 2, 0)), expected.slice(0, 2))
        assert.deepStrictEqual(view(yield* reader.read({ _tag: "After", token: tokens[1]! }, 2, 0)), expected.slice(2, 4))
        assert.deepStrictEqual(yield* reader.read({ _tag: "After", token: tokens[4]! }, 10, 0), [])
        assert.deepStrictEqual(view(yield* reader.read({ _tag: "After", token: "0-0" }, 10, 0)), expected)
        const millis = StreamToken.millisOf(tokens[2]!)
        const fromTime = expected.filter((e) => StreamToken.millisOf(e.token) >= millis)
        assert.deepStrictEqual(view(yield* reader.read({ _tag: "Time", millis }, 10, 0)), fromTime)
        assert.deepStrictEqual(view(yield* reader.read({ _tag: "Time", millis: 0 }, 10, 0)), expected)
        assert.deepStrictEqual(yield* reader.read({ _tag: "Time", millis: millis + 3_600_000 }, 10, 0), [])
        const error = yield* Effect.flip(reader.read({ _tag: "After", token: "nonsense" }, 10, 0))
        assert.strictEqual(error._tag, "StreamProviderError")
        // Reading moved nothing to pending: the group still has every entry to hand out.
        const consumer = yield* provider.consume(0, "c")
        assert.deepStrictEqual(view(yield* consumer.next(10, 0)), expected)
        assert.deepStrictEqual(view(yield* reader.read({ _tag: "Earliest" }, 10, 0)), expected)
      }))

    it.live("a reader waits for new entries; with none, returns nothing after waitMillis", () =>
      Effect.gen(function*() {
        const provider = yield* fresh()
        const [first] = yield* provider.append(0, [entry("k", 0)])
        const reader = yield* provider.reader(0)
        const after = { _tag: "After", token: first! } as const
        const [empty, waited] = yield* elapsedMillis(reader.read(after, 10, 50))
        assert.deepStrictEqual(empty, [])
        assert.isAtLeast(waited, 45)
        const waiting = yield* Effect.forkChild(reader.read(after, 10, 20_000))
        yield* Effect.yieldNow
        const tokens = yield* provider.append(0, [entry("k", 1), entry("k", 2)])
        const got = yield* Fiber.join(waiting)
        assert.isAtLeast(got.length, 1)
        assert.deepStrictEqual(tokensOf(got), tokens.slice(0, got.length))
        const interrupted = yield* Effect.forkChild(reader.read({ _tag: "After", token: tokens[1]! }, 10, 60_000))
        yield* Effect.yieldNow
        yield* Fiber.interrupt(interrupted).pipe(Effect.timeout("5 seconds"))
        assert.deepStrictEqual(tokensOf(yield* reader.read(after, 10, 0)), tokens)
      }))

    it.live("subscriptions: list, put (replacing), remove", () =>
      Effect.gen(function*() {
        const { subscriptions } = yield* fresh()
        assert.deepStrictEqual(yield* subscriptions.list("ns", "k"), [])
        yield* subscriptions.put("ns", "k", { id: "b", data: "B1" })
        yield* subscriptions.put("ns", "k", { id: "a", data: "A1" })
        yield* subscriptions.put("ns", "k", { id: "b", data: "B2" })
        assert.deepStrictEqual(yield* subscriptions.list("ns", "k"), [{ id: "a", data: "A1" }, { id: "b", data: "B2" }])
        assert.isTrue(yield* subscriptions.remove("ns", "k", "a"))
        assert.isFalse(yield* subscriptions.remove("ns", "k", "a"))
        assert.isFalse(yield* subscriptions.remove("ns", "other", "b"))
        assert.deepStrictEqual(yield* subscriptions.list("ns", "k"), [{ id: "b", data: "B2" }])
        assert.isTrue(yield* subscriptions.remove("ns", "k", "b"))
        assert.deepStrictEqual(yield* subscriptions.list("ns", "k"), [])
      }))

    it.live("subscriptions of streams with odd names do not collide", () =>
      Effect.gen(function*() {
        const { subscriptions } = yield* fresh()
        const namespaces = ["a", "a!b", "a:b", "a/b", "a%21b", "__proto__", "constructor", "ü😀", "a b\u0000"]
        const keys = ["b", "b!c", "c", "__proto__", "toString", "x/y:z", "ключ"]
        for (const namespace of namespaces) {
          for (const key of keys) yield* subscriptions.put(namespace, key, { id: "s", data: `${namespace}|${key}` })
        }
        yield* subscriptions.put("__proto__", "__proto__", { id: "__proto__", data: "p" })
        yield* subscriptions.put("__proto__", "__proto__", { id: "constructor", data: "c" })
        for (const namespace of namespaces) {
          for (const key of keys) {
            const expected = [{ id: "s", data: `${namespace}|${key}` }]
            if (namespace === "__proto__" && key === "__proto__") {
              expected.unshift({ id: "__proto__", data: "p" }, { id: "constructor", data: "c" })
            }
            assert.deepStrictEqual(yield* subscriptions.list(namespace, key), expected, `${namespace}|${key}`)
          }
        }
        assert.deepStrictEqual(yield* subscriptions.list("a", "b!c!"), [])
        assert.deepStrictEqual(yield* subscriptions.list("a!b!c", ""), [])
      }))

    it.live("retention: acknowledged entries beyond maxLength are trimmed, pending and unread ones never", () =>
      Effect.gen(function*() {
        const provider = yield* fresh({ retain: { maxLength: 3 } })
        const tokens = [...(yield* provider.append(0, Array.from({ length: 10 }, (_, i) => entry("k", i))))]
        const consumer = yield* provider.consume(0, "c")
        const reader = yield* provider.reader(0)
        const earliest = Effect.map(reader.read({ _tag: "Earliest" }, 100, 0), tokensOf)
        assert.strictEqual((yield* consumer.next(100, 0)).length, 10)
        // All acknowledged but the fifth: it and every entry after it stay.
        yield* consumer.ack(tokens.filter((_, i) => i !== 4))
        assert.deepStrictEqual(yield* earliest, tokens.slice(4))
        yield* consumer.ack([tokens[4]!])
        assert.deepStrictEqual(yield* earliest, tokens.slice(7))

        tokens.push(...(yield* provider.append(0, Array.from({ length: 5 }, (_, i) => entry("k", 10 + i)))))
        assert.deepStrictEqual(tokensOf(yield* consumer.next(2, 0)), tokens.slice(10, 12))
        yield* consumer.ack([tokens[10]!])
        // One pending and three unread: four entries, more than maxLength, all kept.
        assert.deepStrictEqual(yield* earliest, tokens.slice(11))
        assert.deepStrictEqual(tokensOf(yield* consumer.claim(0)), [tokens[11]])
        assert.deepStrictEqual(tokensOf(yield* consumer.next(100, 0)), tokens.slice(12))
      }))

    it.live("property: every appended entry is delivered at least once, and exactly once in order per stream after de-duplication", () =>
      Effect.promise(() =>
        fc.assert(
          fc.asyncProperty(fc.array(opArb, { maxLength: 30 }), (ops) => Effect.runPromise(Effect.scoped(runOps(fresh, ops)))),
          { numRuns: config?.propertyRuns ?? 30 }
        )
      ))
  })

/** Runs `ops` on one partition against a model of the group; asserts the delivery guarantees. */
const runOps = (fresh: Fresh, ops: ReadonlyArray<Op>) =>
  Effect.gen(function*() {
    const provider = yield* fresh()
    const appended = new Map<string, Array<string>>()
    const delivered: Array<StreamEntry> = []
    /** What the model says is pending (read by some consumer, not acknowledged), in token order. */
    let pending: Array<string> = []
    let current: { readonly consumer: PartitionConsumer; readonly close: Effect.Effect<void> } | undefined
    let generation = 0
    const restart = Effect.gen(function*() {
      if (current !== undefined) yield* current.close
      current = yield* consumerIn(provider, 0, `consumer-${++generation}`)
      const claimed = yield* current.consumer.claim(0)
      assert.deepStrictEqual(tokensOf(claimed), pending)
      delivered.push(...claimed)
      return current.consumer
    })
    let consumer = yield* restart
    for (const op of ops) {
      switch (op._tag) {
        case "append": {
          const key = `k${op.stream}`
          const tokens = yield* provider.append(0, Array.from({ length: op.count }, (_, i) => entry(key, i)))
          appended.set(key, [...(appended.get(key) ?? []), ...tokens])
          break
        }
        case "next": {
          const got = yield* consumer.next(op.max, 0)
          delivered.push(...got)
          pending.push(...tokensOf(got))
          break
        }
        case "ack": {
          const acked = pending.filter((_, i) => op.mask[i] === true)
          yield* consumer.ack(acked)
          pending = pending.filter((_, i) => op.mask[i] !== true)
          break
        }
        case "restart":
          consumer = yield* restart
      }
    }
    // Drain: a last consumer claims what is pending and reads the rest.
    consumer = yield* restart
    while (true) {
      const got = yield* consumer.next(100, 0)
      if (got.length === 0) break
      delivered.push(...got)
      pending.push(...tokensOf(got))
    }
    yield* consumer.ack(pending)
    assert.deepStrictEqual(yield* consumer.claim(0), [])

    // At least once: every appended token was delivered.
    const seen = new Set(tokensOf(delivered))
    for (const tokens of appended.values()) for (const token of tokens) assert.isTrue(seen.has(token), token)
    // De-duplicated the way a subscriber does (skip a token not after the last one handled),
    // each stream's deliveries are its appends, once each, in order.
    const last = new Map<string, string>()
    const accepted = new Map<string, Array<string>>()
    for (const { key, token } of delivered) {
      if (!StreamToken.isAfter(token, last.get(key))) continue
      last.set(key, token)
      accepted.set(key, [...(accepted.get(key) ?? []), token])
    }
    const sorted = (map: Map<string, Array<string>>) => [...map].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    assert.deepStrictEqual(sorted(accepted), sorted(appended))
  })

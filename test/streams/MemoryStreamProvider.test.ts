import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryStreamProvider from "../../src/Streams/MemoryStreamProvider.ts"
import type { NewEntry, StreamEntry } from "../../src/Streams/StreamProvider.ts"
import { providerConformance } from "./conformance.ts"

providerConformance("memory", (options) => Effect.sync(() => MemoryStreamProvider.make(options)), { propertyRuns: 100 })

const entry = (key: string, n: number): NewEntry => ({ namespace: "ns", key, payload: { n } })
const tokensOf = (entries: ReadonlyArray<StreamEntry>) => entries.map((e) => e.token)

describe("memory: provider specifics", () => {
  it.live("maxBacklog: append waits while the partition holds that many unacknowledged entries, until acks make room", () =>
    Effect.gen(function*() {
      const provider = MemoryStreamProvider.make({ maxBacklog: 3 })
      const first = yield* provider.append(0, [entry("k", 0), entry("k", 1), entry("k", 2)])
      const blocked = yield* Effect.forkChild(provider.append(0, [entry("k", 3)]))
      yield* Effect.yieldNow
      assert.isUndefined(blocked.pollUnsafe(), "the append should wait")
      // Other partitions are not held back.
      assert.strictEqual((yield* provider.append(1, [entry("k", 9)])).length, 1)

      const consumer = yield* provider.consume(0, "c")
      assert.deepStrictEqual(tokensOf(yield* consumer.next(10, 0)), first)
      yield* Effect.yieldNow
      assert.isUndefined(blocked.pollUnsafe(), "reading makes no room; acknowledging does")
      yield* consumer.ack([first[0]!])
      const fourth = yield* Fiber.join(blocked)
      assert.strictEqual(fourth.length, 1)
      assert.deepStrictEqual(tokensOf(yield* consumer.next(10, 0)), fourth)

      // Full again (three pending): an append interrupted while it waits appends nothing.
      const interrupted = yield* Effect.forkChild(provider.append(0, [entry("k", 4)]))
      yield* Effect.yieldNow
      yield* Fiber.interrupt(interrupted)
      yield* consumer.ack([first[1]!, first[2]!, fourth[0]!])
      assert.deepStrictEqual(yield* consumer.next(10, 0), [])
      assert.strictEqual(yield* provider.lastToken(0), fourth[0])
    }))

  it.effect("tokens follow the Effect Clock; when it stands still or goes back, the milliseconds stay and the sequence counts up", () =>
    Effect.gen(function*() {
      const provider = MemoryStreamProvider.make()
      const readings = [1_000, 1_000, 999, 1_001, 5, 1_001]
      const base = yield* Effect.clockWith(Effect.succeed)
      const clock: Clock.Clock = {
        currentTimeMillisUnsafe: () => readings.shift() ?? 2_000,
        currentTimeMillis: Effect.sync(() => readings.shift() ?? 2_000),
        currentTimeNanosUnsafe: () => base.currentTimeNanosUnsafe(),
        currentTimeNanos: base.currentTimeNanos,
        monotonicTimeNanosUnsafe: () => base.monotonicTimeNanosUnsafe(),
        monotonicTimeNanos: base.monotonicTimeNanos,
        sleep: (duration) => base.sleep(duration)
      }
      const tokens = yield* Effect.gen(function*() {
        const out: Array<string> = []
        for (let i = 0; i < 5; i++) out.push(...(yield* provider.append(0, [entry("k", i)])))
        out.push(...(yield* provider.append(0, [entry("k", 5), entry("k", 6)])))
        return out
      }).pipe(Effect.provideService(Clock.Clock, clock))
      assert.deepStrictEqual(tokens, ["1000-0", "1000-1", "1000-2", "1001-0", "1001-1", "1001-2", "1001-3"])
    }))

  it.effect("maxAge: acknowledged entries older than maxAge are trimmed; a pending one never", () =>
    Effect.gen(function*() {
      const provider = MemoryStreamProvider.make({ retain: { maxAge: "1 minute" } })
      yield* TestClock.setTime(1_000_000)
      const old = yield* provider.append(0, [entry("k", 0), entry("k", 1), entry("k", 2)])
      yield* TestClock.setTime(1_030_000)
      const recent = yield* provider.append(0, [entry("k", 3), entry("k", 4)])
      const consumer = yield* provider.consume(0, "c")
      const reader = yield* provider.reader(0)
      const earliest = Effect.map(reader.read({ _tag: "Earliest" }, 100, 0), tokensOf)
      assert.strictEqual((yield* consumer.next(10, 0)).length, 5)
      yield* TestClock.setTime(1_070_000)
      yield* consumer.ack([...old, ...recent])
      assert.deepStrictEqual(yield* earliest, recent)

      const kept = yield* provider.append(0, [entry("k", 5)])
      assert.deepStrictEqual(tokensOf(yield* consumer.next(10, 0)), kept)
      yield* TestClock.setTime(1_200_000)
      const latest = yield* provider.append(0, [entry("k", 6)])
      assert.deepStrictEqual(yield* earliest, [...kept, ...latest])
    }))

  it.effect("payloads are stored as they are: the very object appended is delivered", () =>
    Effect.gen(function*() {
      const provider = MemoryStreamProvider.make()
      assert.isFalse(provider.encodes)
      const payload = { at: new Date(0), big: 10n, nested: { list: [1, 2] } }
      yield* provider.append(0, [{ namespace: "ns", key: "k", payload }])
      const consumer = yield* provider.consume(0, "c")
      assert.strictEqual((yield* consumer.next(1, 0))[0]!.payload, payload)
      const reader = yield* provider.reader(0)
      assert.strictEqual((yield* reader.read({ _tag: "Earliest" }, 1, 0))[0]!.payload, payload)
    }))

  it.effect("a long run through trimming and compaction keeps order, pending entries and the retention window", () =>
    Effect.gen(function*() {
      const provider = MemoryStreamProvider.make({ retain: { maxLength: 100 } })
      const consumer = yield* provider.consume(0, "c")
      const reader = yield* provider.reader(0)
      const all: Array<string> = []
      let held: string | undefined
      for (let round = 0; round < 50; round++) {
        all.push(...(yield* provider.append(0, Array.from({ length: 1_000 }, (_, i) => entry("k", round * 1_000 + i)))))
        const got = tokensOf(yield* consumer.next(1_000, 0))
        assert.deepStrictEqual(got, all.slice(round * 1_000, (round + 1) * 1_000))
        // Round 10 keeps its first entry pending until round 30: nothing from it on may go.
        if (round === 10) held = got[0]
        yield* consumer.ack(got.filter((token) => token !== held))
        if (round === 20) assert.strictEqual((yield* reader.read({ _tag: "Earliest" }, 1, 0))[0]!.token, held)
        if (round === 30) yield* consumer.ack([held!])
      }
      assert.deepStrictEqual(tokensOf(yield* reader.read({ _tag: "Earliest" }, 1_000, 0)), all.slice(-100))
      assert.deepStrictEqual(yield* consumer.claim(0), [])
    }))
})

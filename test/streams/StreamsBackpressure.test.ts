/**
 * Backpressure on one silo with the memory provider, on the TestClock. A subscriber whose
 * turn waits on a gate (`Watcher/slow`, blocked on event 0) lets its buffer fill; each
 * strategy decides what it keeps, `Streams.lag` shows the counts, and a slow subscriber
 * holds up no one else unless its strategy is `suspend`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { Backpressure, MemoryStreamProvider, Streams } from "../../src/index.ts"
import {
  advance,
  Feed,
  Gate,
  lagOf,
  publishEach,
  range,
  settle,
  StreamProbe,
  waitFor,
  Watcher,
  withProbe
} from "./fixtures.ts"

const subscribeWatcher = (key: string, id: string, backpressure?: Backpressure.Backpressure) =>
  Streams.subscribe(Feed, key, { actor: Watcher, id, message: "Seen", backpressure })

/** A probe whose `Watcher/slow` blocks on event 0 until the gate opens. */
const slowProbe = () => {
  const probe = new StreamProbe()
  const gate = new Gate()
  probe.hook = (d) => d.id === "slow" && d.n === 0 ? gate.pass(probe) : Effect.void
  return { probe, gate }
}

/** Waits until the slow lane has taken in `count` events besides the one in flight (buffered or dropped). */
const offered = (key: string, subscription: string, count: number) =>
  waitFor(`${count} events offered to the slow lane`, Effect.map(lagOf("feed", key, subscription), (row) =>
    row !== undefined && row.buffered + row.dropped === count))

describe("drop strategies", () => {
  it.effect("dropNewest(n) keeps the first n behind the one in flight; a fast subscriber of the same stream keeps receiving", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      const slow = yield* subscribeWatcher("dn", "slow", Backpressure.dropNewest(3))
      // Room for a burst: a lane takes in what one read brings before its fiber delivers any.
      yield* subscribeWatcher("dn", "fast", Backpressure.dropNewest(100))
      yield* publishEach(Feed, "dn", [0])
      yield* gate.awaitEntered
      const tokens = yield* publishEach(Feed, "dn", range(1, 10))
      // The slow one is blocked; the fast one gets everything meanwhile, burst after burst.
      yield* waitFor("the fast subscriber's events", () => probe.ns("Watcher", "fast").length === 10)
      yield* publishEach(Feed, "dn", range(10, 15))
      yield* waitFor("the fast subscriber's next events", () => probe.ns("Watcher", "fast").length === 15)
      assert.deepStrictEqual(probe.ns("Watcher", "fast"), range(0, 15))
      yield* offered("dn", slow.id, 14)
      assert.deepInclude(yield* lagOf("feed", "dn", slow.id), { strategy: "DropNewest", buffered: 3, dropped: 11, delivered: 0, failed: 0 })
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [])

      yield* gate.open
      yield* waitFor("the slow subscriber's events", () => probe.ns("Watcher", "slow").length === 4)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [0, 1, 2, 3])
      assert.deepInclude(yield* lagOf("feed", "dn", slow.id), { buffered: 0, dropped: 11, delivered: 4, lastToken: tokens[2] })
    }))
  })

  it.effect("dropOldest(n) keeps the newest n behind the one in flight", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      const slow = yield* subscribeWatcher("do", "slow", Backpressure.dropOldest(3))
      yield* publishEach(Feed, "do", [0])
      yield* gate.awaitEntered
      const tokens = yield* publishEach(Feed, "do", range(1, 10))
      yield* offered("do", slow.id, 9)
      assert.deepInclude(yield* lagOf("feed", "do", slow.id), { strategy: "DropOldest", buffered: 3, dropped: 6, delivered: 0 })
      yield* gate.open
      yield* waitFor("the slow subscriber's events", () => probe.ns("Watcher", "slow").length === 4)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [0, 7, 8, 9])
      assert.deepInclude(yield* lagOf("feed", "do", slow.id), { buffered: 0, dropped: 6, delivered: 4, lastToken: tokens[8] })
    }))
  })

  it.effect("a slow subscriber with a drop strategy holds up no other stream of its partition", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* subscribeWatcher("one", "slow", Backpressure.dropNewest(2))
      yield* subscribeWatcher("two", "fast")
      yield* publishEach(Feed, "one", [0])
      yield* gate.awaitEntered
      yield* publishEach(Feed, "one", range(1, 10))
      yield* publishEach(Feed, "two", [100, 101])
      yield* waitFor("the other stream's events", () => probe.ns("Watcher", "fast").length === 2)
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [])
      yield* gate.open
      yield* waitFor("the slow subscriber's events", () => probe.ns("Watcher", "slow").length === 3)
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [0, 1, 2])
    }), { streams: { provider: MemoryStreamProvider.make({ partitions: 1 }) } })
  })
})

describe("suspend", () => {
  it.effect("suspend(n) loses nothing and holds up the partition: another stream of it waits", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      const slow = yield* subscribeWatcher("s1", "slow", Backpressure.suspend(3))
      yield* subscribeWatcher("s2", "other")
      yield* publishEach(Feed, "s1", [0])
      yield* gate.awaitEntered
      yield* publishEach(Feed, "s1", range(1, 10))
      yield* publishEach(Feed, "s2", [100])
      yield* offered("s1", slow.id, 3)
      yield* settle()
      assert.deepInclude(yield* lagOf("feed", "s1", slow.id), { strategy: "Suspend", buffered: 3, dropped: 0, delivered: 0 })
      assert.deepStrictEqual(probe.ns("Watcher", "other"), [], "the partition waits for room in the slow lane")

      yield* gate.open
      yield* waitFor("everything", () => probe.ns("Watcher", "slow").length === 10 && probe.ns("Watcher", "other").length === 1)
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), range(0, 10), "nothing lost, in order")
      assert.deepStrictEqual(probe.ns("Watcher", "other"), [100])
      assert.deepInclude(yield* lagOf("feed", "s1", slow.id), { buffered: 0, dropped: 0, delivered: 10 })
    }), { streams: { provider: MemoryStreamProvider.make({ partitions: 1 }) } })
  })

  it.effect("with the memory provider, a producer's publish waits once maxBacklog events are not acknowledged", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* subscribeWatcher("mb", "slow", Backpressure.suspend(2))
      yield* publishEach(Feed, "mb", [0])
      yield* gate.awaitEntered
      let published = 1
      const producer = yield* Effect.forkChild(Effect.forEach(range(1, 12), (n) =>
        Effect.andThen(Streams.publish(Feed, "mb", { n }), Effect.sync(() => void published++)), { discard: true }))
      yield* settle()
      assert.strictEqual(published, 5, "five unacknowledged events: the sixth publish waits")
      assert.isUndefined(producer.pollUnsafe())
      yield* gate.open
      yield* Fiber.join(producer)
      yield* waitFor("everything", () => probe.ns("Watcher", "slow").length === 12)
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), range(0, 12))
    }), { streams: { provider: MemoryStreamProvider.make({ partitions: 1, maxBacklog: 5 }) } })
  })

  // The dispatcher waits for room in a full suspend lane holding no lock, so an unsubscribe
  // (which closes the lane and wakes it) goes through while the subscriber's turn is blocked.
  it.effect("unsubscribing a subscriber whose suspend buffer is full returns, drops its buffer and frees the partition", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      const slow = yield* subscribeWatcher("st1", "slow", Backpressure.suspend(2))
      yield* subscribeWatcher("st2", "other")
      yield* publishEach(Feed, "st1", [0])
      yield* gate.awaitEntered
      yield* publishEach(Feed, "st1", range(1, 10))
      yield* publishEach(Feed, "st2", [100])
      yield* offered("st1", slow.id, 2)
      const unsubscribing = yield* Effect.forkChild(Streams.unsubscribe(slow))
      yield* waitFor("the unsubscribe returns while the turn is still blocked", () => unsubscribing.pollUnsafe() !== undefined)
      assert.isTrue(yield* Fiber.join(unsubscribing))
      yield* waitFor("the other stream's event", () => probe.ns("Watcher", "other").length === 1)
      assert.isUndefined(yield* lagOf("feed", "st1", slow.id))
      yield* gate.open
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [0], "the delivery under way completed; the buffered ones were dropped")
    }), { streams: { provider: MemoryStreamProvider.make({ partitions: 1 }) } })
  })

  // Likewise a subscribe from the subscriber's own handler: it does not wait for the
  // dispatcher, which waits for room in that subscriber's lane.
  it.effect("a subscriber whose handler subscribes while its own suspend buffer is full does not deadlock the partition", () => {
    const probe = new StreamProbe()
    probe.hook = (d) =>
      d.id === "busy" && d.n === 0
        ? Effect.raceFirst(Effect.asVoid(Effect.orDie(subscribeWatcher("elsewhere", "busy"))), Deferred.await(probe.abort))
        : Effect.void
    return withProbe(probe, Effect.gen(function*() {
      yield* subscribeWatcher("burst", "busy", Backpressure.suspend(2))
      yield* Streams.publishAll(Feed, "burst", range(0, 10).map((n) => ({ n })))
      yield* waitFor("the whole burst", () => probe.ns("Watcher", "busy").length === 10)
      assert.deepStrictEqual(probe.ns("Watcher", "busy"), range(0, 10))
      assert.deepStrictEqual((yield* Streams.subscriptions(Feed, "elsewhere")).map((s) => s.subscriber.id), ["busy"])
    }), { streams: { provider: MemoryStreamProvider.make({ partitions: 1 }) } })
  })
})

describe("time-based strategies", () => {
  it.effect("slidingWindow drops the events that are older than the window when their turn comes", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      const slow = yield* subscribeWatcher("sw", "slow", Backpressure.slidingWindow("1 second", 10))
      yield* publishEach(Feed, "sw", [0])
      yield* gate.awaitEntered
      yield* publishEach(Feed, "sw", [1, 2]) // at 0 ms
      yield* advance(1_500)
      const fresh = yield* publishEach(Feed, "sw", [3]) // at 1 500 ms
      yield* offered("sw", slow.id, 3)
      // Kept until their turn: buffered, the oldest 1.5 s old.
      assert.deepInclude(yield* lagOf("feed", "sw", slow.id), { strategy: "SlidingWindow", buffered: 3, dropped: 0, lagMillis: 1_500 })
      yield* gate.open
      yield* waitFor("the fresh event", () => probe.ns("Watcher", "slow").length === 2)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [0, 3])
      assert.deepInclude(yield* lagOf("feed", "sw", slow.id), { buffered: 0, dropped: 2, delivered: 2, lagMillis: 0, lastToken: fresh[0] })
    }))
  })

  it.effect("slidingWindow, when full, drops the oldest", () => {
    const { gate, probe } = slowProbe()
    return withProbe(probe, Effect.gen(function*() {
      const slow = yield* subscribeWatcher("swf", "slow", Backpressure.slidingWindow("1 minute", 2))
      yield* publishEach(Feed, "swf", [0])
      yield* gate.awaitEntered
      yield* publishEach(Feed, "swf", range(1, 6))
      yield* offered("swf", slow.id, 5)
      yield* gate.open
      yield* waitFor("the newest two", () => probe.ns("Watcher", "slow").length === 3)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "slow"), [0, 4, 5])
      assert.deepInclude(yield* lagOf("feed", "swf", slow.id), { dropped: 3, delivered: 3 })
    }))
  })

  it.effect("sample(every) delivers at most one event per interval: the latest", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const sampled = yield* subscribeWatcher("sm", "sampler", Backpressure.sample("1 second"))
      yield* publishEach(Feed, "sm", [0])
      yield* waitFor("the first event, at once", () => probe.deliveries.length === 1)
      yield* publishEach(Feed, "sm", [1, 2, 3])
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "sampler"), [0], "the next waits for the interval")
      assert.deepInclude(yield* lagOf("feed", "sm", sampled.id), { strategy: "Sample", buffered: 1, dropped: 2 })
      yield* advance(1_000)
      yield* waitFor("the latest of the interval", () => probe.deliveries.length === 2)
      yield* publishEach(Feed, "sm", [4, 5])
      yield* advance(500)
      assert.deepStrictEqual(probe.ns("Watcher", "sampler"), [0, 3])
      yield* advance(500)
      yield* waitFor("the latest of the next interval", () => probe.deliveries.length === 3)
      assert.deepStrictEqual(probe.ns("Watcher", "sampler"), [0, 3, 5])
      assert.deepStrictEqual(probe.deliveries.map((d) => d.at), [0, 1_000, 2_000])
      // Quiet for longer than the interval: the next event goes at once.
      yield* advance(3_000, 500)
      yield* publishEach(Feed, "sm", [6])
      yield* waitFor("event 6", () => probe.deliveries.length === 4)
      assert.strictEqual(probe.deliveries[3]!.at, 5_000)
      assert.deepInclude(yield* lagOf("feed", "sm", sampled.id), { buffered: 0, dropped: 3, delivered: 4 })
    }))
  })
})

/**
 * Explicit (durable) subscriptions on one silo with the memory provider, on the TestClock:
 * subscribing from outside and from a handler, re-subscribing, unsubscribing, delivery to a
 * deactivated subscriber and across a restart of the silo on the same provider, and rewind
 * (`from`: earliest, after a token, from a time) with no duplicate and no gap where the
 * history meets the live events.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Option } from "effect"
import { Backpressure, MemoryStreamProvider, Silo, Streams, StreamToken } from "../../src/index.ts"
import {
  advance,
  Feed,
  Gate,
  lagOf,
  publishEach,
  range,
  settle,
  siloWith,
  StreamProbe,
  waitFor,
  Watcher,
  withProbe
} from "./fixtures.ts"

const subscribeWatcher = (key: string, id: string, options?: { readonly from?: Streams.From; readonly backpressure?: Backpressure.Backpressure }) =>
  Streams.subscribe(Feed, key, { actor: Watcher, id, message: "Seen", ...options })

describe("explicit subscriptions", () => {
  it.effect("subscribed from outside, an actor gets each event of the stream as a turn, in order; the subscription is listed", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const sub = yield* subscribeWatcher("s", "w1")
      assert.deepStrictEqual(sub, {
        id: sub.id,
        stream: { namespace: "feed", key: "s" },
        subscriber: { type: "Watcher", id: "w1" },
        message: "Seen",
        backpressure: Backpressure.suspend()
      })
      assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "s"), [sub])
      assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "other"), [])
      assert.strictEqual(probe.activationsOf("Watcher", "w1"), 0, "subscribing does not activate the subscriber")

      const tokens = yield* publishEach(Feed, "s", range(0, 10))
      yield* publishEach(Feed, "other", [99])
      yield* waitFor("ten deliveries", () => probe.deliveries.length === 10)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "w1", "Seen"), range(0, 10))
      assert.deepStrictEqual(probe.deliveries.map((d) => d.event), tokens.map((token) => ({ stream: { namespace: "feed", key: "s" }, token, attempt: 1 })))
      assert.strictEqual(probe.activationsOf("Watcher", "w1"), 1)
      assert.deepInclude(yield* lagOf("feed", "s", sub.id), { subscriber: { type: "Watcher", id: "w1" }, strategy: "Suspend", delivered: 10, lastToken: tokens[9] })
    }))
  })

  it.effect("an actor subscribes itself from its handler", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const watcher = yield* Watcher.ref("w2")
      yield* watcher.Follow({ key: "h" })
      const [listed, ...rest] = yield* Streams.subscriptions(Feed, "h")
      assert.strictEqual(rest.length, 0)
      assert.deepInclude(listed, { subscriber: { type: "Watcher", id: "w2" }, message: "Seen" })
      yield* publishEach(Feed, "h", range(0, 5))
      yield* waitFor("five deliveries", () => probe.deliveries.length === 5)
      assert.deepStrictEqual(probe.ns("Watcher", "w2"), range(0, 5))
    }))
  })

  it.effect("several subscribers of one stream each get every event, in order", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      for (const id of ["m1", "m2", "m3"]) yield* subscribeWatcher("m", id)
      assert.deepStrictEqual((yield* Streams.subscriptions(Feed, "m")).map((s) => s.subscriber.id), ["m1", "m2", "m3"])
      yield* publishEach(Feed, "m", range(0, 20))
      yield* waitFor("sixty deliveries", () => probe.deliveries.length === 60)
      for (const id of ["m1", "m2", "m3"]) assert.deepStrictEqual(probe.ns("Watcher", id), range(0, 20), id)
    }))
  })

  it.effect("subscribing again with the same actor, stream and message is one subscription: one delivery per event", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const first = yield* subscribeWatcher("r", "w3")
      const second = yield* subscribeWatcher("r", "w3")
      assert.strictEqual(second.id, first.id)
      assert.strictEqual((yield* Streams.subscriptions(Feed, "r")).length, 1)
      yield* publishEach(Feed, "r", range(0, 5))
      yield* waitFor("five deliveries", () => probe.deliveries.length === 5)
      yield* subscribeWatcher("r", "w3") // while the stream is being delivered
      yield* publishEach(Feed, "r", range(5, 10))
      yield* waitFor("ten deliveries", () => probe.deliveries.length === 10)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "w3"), range(0, 10))
      assert.strictEqual(probe.attempts.length, 10)
      assert.strictEqual((yield* Streams.subscriptions(Feed, "r")).length, 1)
    }))
  })

  // The lane of the subscription already exists on the agent here: it takes the new strategy.
  it.effect("subscribing again with another backpressure strategy replaces the strategy", () => {
    const probe = new StreamProbe()
    const gate = new Gate()
    probe.hook = (d) => d.n === 1 ? gate.pass(probe) : Effect.void
    return withProbe(probe, Effect.gen(function*() {
      yield* subscribeWatcher("bp", "w4", { backpressure: Backpressure.dropNewest(2) })
      yield* publishEach(Feed, "bp", [0])
      yield* waitFor("event 0", () => probe.deliveries.length === 1)
      const sub = yield* subscribeWatcher("bp", "w4", { backpressure: Backpressure.dropOldest(2) })
      assert.deepStrictEqual((yield* Streams.subscriptions(Feed, "bp")).map((s) => s.backpressure), [Backpressure.dropOldest(2)])
      yield* publishEach(Feed, "bp", [1])
      yield* gate.awaitEntered
      yield* publishEach(Feed, "bp", range(2, 7))
      yield* waitFor("four dropped", Effect.map(lagOf("feed", "bp", sub.id), (row) => row !== undefined && row.dropped + row.buffered === 5))
      assert.deepInclude(yield* lagOf("feed", "bp", sub.id), { strategy: "DropOldest", buffered: 2, dropped: 3 })
      yield* gate.open
      yield* waitFor("the rest", () => probe.ns("Watcher", "w4").length === 4)
      assert.deepStrictEqual(probe.ns("Watcher", "w4"), [0, 1, 5, 6], "the newest two kept, as dropOldest does")
    }))
  })

  it.effect("unsubscribing stops the deliveries; other subscribers of the stream go on", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const leaving = yield* subscribeWatcher("u", "leaving")
      yield* subscribeWatcher("u", "staying")
      yield* publishEach(Feed, "u", [0])
      yield* waitFor("event 0 to both", () => probe.deliveries.length === 2)
      assert.isTrue(yield* Streams.unsubscribe(leaving))
      assert.deepStrictEqual((yield* Streams.subscriptions(Feed, "u")).map((s) => s.subscriber.id), ["staying"])
      assert.isUndefined(yield* lagOf("feed", "u", leaving.id), "its lane is gone")
      yield* publishEach(Feed, "u", [1, 2])
      yield* waitFor("the staying subscriber's events", () => probe.ns("Watcher", "staying").length === 3)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "staying"), [0, 1, 2])
      assert.deepStrictEqual(probe.ns("Watcher", "leaving"), [0])
      assert.isFalse(yield* Streams.unsubscribe(leaving), "nothing left to remove")
      assert.isFalse(yield* Streams.unsubscribe({ id: "Watcher/nobody#Seen", stream: { namespace: "feed", key: "u" } }))
      // Subscribing again starts with the live events.
      yield* subscribeWatcher("u", "leaving")
      yield* publishEach(Feed, "u", [3])
      yield* waitFor("event 3 to both", () => probe.deliveries.length === 6)
      assert.deepStrictEqual(probe.ns("Watcher", "leaving"), [0, 3])
    }))
  })

  it.effect("durable: a subscriber deactivated for idleness is activated again by the next event", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* subscribeWatcher("d", "sleepy")
      yield* publishEach(Feed, "d", [0])
      yield* waitFor("event 0", () => probe.deliveries.length === 1)
      yield* advance(20_000, 1_000) // idle 2 s, passivation sweeps within 10 s more
      assert.strictEqual(probe.deactivationsOf("Watcher", "sleepy"), 1, "deactivated")
      const silo = yield* Silo.Silo
      assert.deepStrictEqual(yield* silo.activations("Watcher"), [])
      yield* publishEach(Feed, "d", [1, 2])
      yield* waitFor("events 1 and 2", () => probe.deliveries.length === 3)
      assert.deepStrictEqual(probe.ns("Watcher", "sleepy"), [0, 1, 2])
      assert.strictEqual(probe.activationsOf("Watcher", "sleepy"), 2)
    }), { watcher: { idleTimeout: "2 seconds" } })
  })

  it.effect("durable: a subscriber stopped by silo.deactivate while idle gets the next event", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* subscribeWatcher("d2", "stopped")
      yield* publishEach(Feed, "d2", [0])
      yield* waitFor("event 0", () => probe.deliveries.length === 1)
      const silo = yield* Silo.Silo
      assert.isTrue(yield* silo.deactivate({ type: "Watcher", id: "stopped" }))
      assert.strictEqual(probe.deactivationsOf("Watcher", "stopped"), 1)
      yield* publishEach(Feed, "d2", [1])
      yield* waitFor("event 1", () => probe.deliveries.length === 2)
      assert.strictEqual(probe.activationsOf("Watcher", "stopped"), 2)
    }))
  })

  it.effect("durable: a subscription made on one silo delivers on the next silo built on the same provider", () => {
    const probe = new StreamProbe()
    const provider = MemoryStreamProvider.make()
    const onSilo = <A, E>(body: Effect.Effect<A, E, Silo.Silo | Streams.Streams>) =>
      Effect.provide(Effect.tap(body, () => settle()), siloWith(probe, { streams: { provider } }))
    return Effect.gen(function*() {
      const sub = yield* onSilo(Effect.gen(function*() {
        const sub = yield* subscribeWatcher("restart", "survivor")
        yield* publishEach(Feed, "restart", [0])
        yield* waitFor("event 0", () => probe.deliveries.length === 1)
        return sub
      }))
      assert.strictEqual(probe.deactivationsOf("Watcher", "survivor"), 1, "the first silo is gone, and its activations")
      yield* onSilo(Effect.gen(function*() {
        assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "restart"), [sub])
        yield* publishEach(Feed, "restart", [1, 2])
        yield* waitFor("events 1 and 2", () => probe.deliveries.length === 3)
        yield* settle()
        assert.deepStrictEqual(probe.ns("Watcher", "survivor"), [0, 1, 2], "event 0 is not delivered again")
        assert.strictEqual(probe.activationsOf("Watcher", "survivor"), 2)
        assert.isTrue(yield* Streams.unsubscribe(sub))
      }))
      yield* onSilo(Effect.gen(function*() {
        assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "restart"), [], "the unsubscribe was durable too")
        yield* publishEach(Feed, "restart", [3])
        yield* settle()
        assert.deepStrictEqual(probe.ns("Watcher", "survivor"), [0, 1, 2])
      }))
    })
  })
})

describe("rewind", () => {
  it.effect("from earliest: the whole history, then the live events, each once", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const history = yield* publishEach(Feed, "e", range(0, 5))
      yield* publishEach(Feed, "not-this-one", [99])
      yield* settle()
      yield* subscribeWatcher("e", "rewinder", { from: "earliest" })
      const live = yield* publishEach(Feed, "e", [5, 6])
      yield* waitFor("seven deliveries", () => probe.deliveries.length === 7)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "rewinder"), range(0, 7))
      assert.deepStrictEqual(probe.deliveries.map((d) => d.event!.token), [...history, ...live])
      // A subscriber that did not rewind sees only what came after it subscribed.
      yield* subscribeWatcher("e", "latecomer")
      yield* publishEach(Feed, "e", [7])
      yield* waitFor("event 7 to both", () => probe.ns("Watcher", "latecomer").length === 1 && probe.ns("Watcher", "rewinder").length === 8)
      assert.deepStrictEqual(probe.ns("Watcher", "latecomer"), [7])
    }))
  })

  it.effect("after a token: what followed it, then the live events", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const history = yield* publishEach(Feed, "a", range(0, 5))
      yield* subscribeWatcher("a", "after", { from: { after: history[2]! } })
      const live = yield* publishEach(Feed, "a", [5, 6])
      yield* waitFor("four deliveries", () => probe.deliveries.length === 4)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "after"), [3, 4, 5, 6])
      // After the newest token: nothing to replay.
      yield* subscribeWatcher("a", "after-last", { from: { after: live[1]! } })
      yield* publishEach(Feed, "a", [7])
      yield* waitFor("event 7", () => probe.ns("Watcher", "after-last").length === 1)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "after-last"), [7])
    }))
  })

  it.effect("from a time: the events accepted at or after it, then the live events", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Feed, "t", [0, 1]) // at 0 ms
      yield* advance(1_000)
      const second = yield* publishEach(Feed, "t", [2, 3]) // at 1 000 ms
      yield* advance(1_000)
      yield* publishEach(Feed, "t", [4]) // at 2 000 ms
      assert.strictEqual(StreamToken.millisOf(second[0]!), 1_000)
      yield* subscribeWatcher("t", "since-1s", { from: { time: 1_000 } })
      yield* subscribeWatcher("t", "since-1.5s", { from: { time: new Date(1_500) } })
      yield* publishEach(Feed, "t", [5])
      yield* waitFor("both", () => probe.ns("Watcher", "since-1s").length === 4 && probe.ns("Watcher", "since-1.5s").length === 2)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "since-1s"), [2, 3, 4, 5])
      assert.deepStrictEqual(probe.ns("Watcher", "since-1.5s"), [4, 5])
    }))
  })

  it.effect("events published while the subscription rewinds: no duplicate, no gap", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Feed, "c", range(0, 10))
      // The subscribes land at different points of a concurrent burst of publishes.
      const subscribers = ["c0", "c1", "c2", "c3", "c4", "c5"]
      const publisher = Effect.forEach(range(10, 40), (n) => Effect.andThen(Streams.publish(Feed, "c", { n }), Effect.yieldNow), { discard: true })
      const subscribing = Effect.forEach(subscribers, (id, i) =>
        Effect.andThen(settle(i * 3), subscribeWatcher("c", id, { from: "earliest" })), { concurrency: "unbounded", discard: true })
      yield* Effect.all([publisher, subscribing], { concurrency: "unbounded", discard: true })
      yield* waitFor("all events to every subscriber", () => subscribers.every((id) => probe.ns("Watcher", id).length >= 40))
      yield* settle()
      for (const id of subscribers) assert.deepStrictEqual(probe.ns("Watcher", id), range(0, 40), id)
    }))
  })

  // The replay runs after the Subscribe call returns: an actor that rewinds from its own
  // handler is not waiting on its own deliveries, however long the history.
  it.effect("an actor rewinding its own subscription from its handler gets a history longer than its buffer", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Feed, "long", range(0, 10))
      const watcher = yield* Watcher.ref("self")
      const following = yield* Effect.forkChild(watcher.Follow({ key: "long", earliest: true, capacity: 2 }))
      yield* waitFor("the Follow turn ends", () => following.pollUnsafe() !== undefined)
      yield* publishEach(Feed, "long", [10])
      yield* waitFor("the history, then the live event", () => probe.ns("Watcher", "self").length === 11)
      assert.deepStrictEqual(probe.ns("Watcher", "self"), range(0, 11))
    }))
  })

  // A `from` that is no token is refused where it enters, before anything is stored.
  it.effect("a rewind from a string that is not a token fails and stores nothing", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Feed, "bad-token", [0])
      const exit = yield* Effect.exit(subscribeWatcher("bad-token", "w5", { from: { after: "not-a-token" } }))
      assert.isTrue(exit._tag === "Failure" && Cause.findErrorOption(exit.cause).pipe(Option.exists((e) => e._tag === "InvalidStreamToken")), "the subscribe fails with InvalidStreamToken")
      assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "bad-token"), [], "and nothing is stored")
      yield* publishEach(Feed, "bad-token", [1])
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "w5"), [])
    }))
  })

  it.effect("rewinding from earliest on a stream that has no history yet gets the live events", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* subscribeWatcher("fresh", "first", { from: "earliest" })
      yield* publishEach(Feed, "fresh", [0, 1])
      yield* waitFor("two deliveries", () => probe.deliveries.length === 2)
      yield* settle()
      assert.deepStrictEqual(probe.ns("Watcher", "first"), [0, 1])
    }))
  })
})

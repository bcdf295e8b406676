/**
 * Streams on one silo with the memory provider, on the TestClock: implicit subscriptions
 * (the stream key names the actor, activated by its first event), failed deliveries
 * (retried, then given up on, the next event still delivered), pull consumers
 * (`Streams.stream`), and bad input refused where it enters.
 *
 * Explicit subscriptions and rewind are in `StreamsSubscriptions.test.ts`, backpressure in
 * `StreamsBackpressure.test.ts`; the fixtures (actors, probe, silo layer) in `fixtures.ts`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Logger, Stream } from "effect"
import { Backpressure, MemoryStreamProvider, StreamContract, StreamId, type StreamProvider, StreamProviderError, Streams, StreamToken } from "../../src/index.ts"
import {
  advance,
  Alerts,
  defaultImplicit,
  Device,
  Feed,
  Ghost,
  lagOf,
  publishEach,
  Quiet,
  range,
  Reading,
  Readings,
  Refused,
  settle,
  StreamProbe,
  waitFor,
  Watcher,
  withProbe
} from "./fixtures.ts"

const recordLane = "implicit:Device#Record"

describe("implicit subscriptions", () => {
  it.effect("events of several streams reach the actor whose id is the key, each in publish order, activating it", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      assert.isUndefined(yield* Streams.currentEvent, "no event outside a delivery")
      const tokens = new Map<string, Array<string>>([["a", []], ["b", []], ["c", []]])
      for (let i = 0; i < 20; i++) {
        tokens.get("a")!.push(yield* Streams.publish(Readings, "a", { n: i }))
        tokens.get("b")!.push(yield* Streams.publish(Readings, "b", { n: 100 + i }))
      }
      tokens.get("c")!.push(...(yield* Streams.publishAll(Readings, "c", range(200, 220).map((n) => ({ n })))))
      assert.strictEqual(probe.activationsOf("Device", "a"), 0, "publishing alone activates nothing yet")

      yield* waitFor("60 deliveries", () => probe.deliveries.length === 60)
      assert.deepStrictEqual(probe.ns("Device", "a"), range(0, 20))
      assert.deepStrictEqual(probe.ns("Device", "b"), range(100, 120))
      assert.deepStrictEqual(probe.ns("Device", "c"), range(200, 220))
      for (const key of ["a", "b", "c"]) {
        assert.strictEqual(probe.activationsOf("Device", key), 1, `Device/${key} activated once`)
        const seen = probe.deliveries.filter((d) => d.id === key)
        assert.isTrue(seen.every((d) => d.message === "Record"))
        // The turn knows its event: the stream, the token publish returned, first attempt.
        assert.deepStrictEqual(seen.map((d) => d.event), tokens.get(key)!.map((token) => ({
          stream: { namespace: "readings", key },
          token,
          attempt: 1
        })))
        for (let i = 1; i < seen.length; i++) {
          assert.isBelow(StreamToken.compare(seen[i - 1]!.event!.token, seen[i]!.event!.token), 0, "tokens increase")
          assert.isTrue(StreamToken.isAfter(seen[i]!.event!.token, seen[i - 1]!.event!.token))
        }
        const lane = yield* lagOf("readings", key, recordLane)
        assert.deepInclude(lane, {
          subscriber: { type: "Device", id: key },
          message: "Record",
          strategy: "Suspend",
          buffered: 0,
          delivered: 20,
          dropped: 0,
          failed: 0,
          lastToken: tokens.get(key)![19]
        })
      }
      assert.deepStrictEqual(probe.attempts.length, 60, "no event delivered twice")
    }))
  })

  it.effect("options.id maps the stream key to the actor id", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const tokens = yield* publishEach(Alerts, "7", [1, 2, 3])
      yield* waitFor("3 alerts", () => probe.deliveries.length === 3)
      assert.deepStrictEqual(probe.ns("Device", "dev-7", "Alert"), [1, 2, 3])
      assert.strictEqual(probe.activationsOf("Device", "7"), 0, "the key itself is not an actor here")
      assert.deepStrictEqual(probe.deliveries.map((d) => d.event), tokens.map((token) => ({ stream: { namespace: "alerts", key: "7" }, token, attempt: 1 })))
      assert.deepInclude(yield* lagOf("alerts", "7", "implicit:Device#Alert"), { subscriber: { type: "Device", id: "dev-7" }, delivered: 3 })
    }))
  })

  it.effect("one event reaches every implicit subscriber of its namespace, each in order", () => {
    const probe = new StreamProbe()
    const both = [...defaultImplicit, Streams.implicit(Readings, Device, "Alert", { id: (key) => `copy-${key}` })]
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Readings, "x", range(0, 10))
      yield* waitFor("both subscribers", () => probe.deliveries.length === 20)
      assert.deepStrictEqual(probe.ns("Device", "x", "Record"), range(0, 10))
      assert.deepStrictEqual(probe.ns("Device", "copy-x", "Alert"), range(0, 10))
    }), { streams: { implicit: both } })
  })

  it.effect("a stream nobody subscribes to only retains its events", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const tokens = yield* publishEach(Quiet, "q", [1, 2, 3])
      // A delivered stream in the same silo shows the agents are running.
      yield* publishEach(Readings, "q", [9])
      yield* waitFor("the readings event", () => probe.deliveries.length === 1)
      yield* settle()
      assert.deepStrictEqual(probe.deliveries.map((d) => d.event!.stream.namespace), ["readings"])
      assert.isTrue((yield* Streams.lag).every((row) => row.stream.namespace !== "quiet"), "no lane for the quiet stream")
      const kept = yield* Streams.stream(Quiet, "q", { from: "earliest" }).pipe(Stream.take(3), Stream.runCollect)
      assert.deepStrictEqual(kept.map((e) => [e.event.n, e.token]), [[1, tokens[0]], [2, tokens[1]], [3, tokens[2]]])
    }))
  })

  // The agent's code says an id mapping that throws is "refused at delivery as an invalid
  // id"; with the memory provider (`encodes: false`) the delivery takes `sendDecoded`, which
  // does not check the id, so the event is delivered to an activation with id "".
  it.effect("an id mapping that gives an invalid actor id (or throws): the event fails, no actor is activated", () => {
    const probe = new StreamProbe()
    const badIds = Streams.implicit(Feed, Device, "Record", {
      id: (key) => {
        if (key === "throws") throw new Error("no id for this key")
        return key === "empty" ? "" : key.repeat(300)
      }
    })
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Feed, "empty", [1])
      yield* publishEach(Feed, "throws", [2])
      yield* publishEach(Feed, "x", [3])
      yield* publishEach(Readings, "ok", [4])
      yield* waitFor("the valid stream's event", () => probe.ns("Device", "ok").length === 1)
      const feedLanes = Effect.map(Streams.lag, (rows) => rows.filter((r) => r.stream.namespace === "feed"))
      yield* waitFor("the three feed lanes are done", Effect.map(feedLanes, (rows) => rows.filter((r) => r.lastToken !== undefined).length === 3))
      assert.deepStrictEqual(probe.deliveries.map((d) => d.n), [4], "nothing delivered to an invalid id")
      assert.deepStrictEqual([...probe.activations.keys()], ["Device/ok"], "no activation with an invalid id")
      const outcomes = (yield* feedLanes).map((r) => [r.stream.key, r.delivered, r.failed]).sort()
      assert.deepStrictEqual(outcomes, [["empty", 0, 1], ["throws", 0, 1], ["x", 0, 1]])
    }), { streams: { implicit: [...defaultImplicit, badIds] } })
  })
})

describe("failed deliveries", () => {
  it.effect("a turn that fails once gets the same event again as attempt 2, and the stream's order holds", () => {
    const probe = new StreamProbe()
    probe.hook = (d) => d.n === 1 && d.event!.attempt === 1 ? Effect.fail(new Refused({ n: d.n })) : Effect.void
    return withProbe(probe, Effect.gen(function*() {
      const tokens = yield* publishEach(Readings, "f", [0, 1, 2])
      yield* waitFor("the failed attempt", () => probe.attempts.length === 2)
      yield* settle()
      assert.deepStrictEqual(probe.attemptNs("Device", "f"), [0, 1], "event 2 waits for event 1's retry")
      yield* advance(100) // the first backoff
      yield* waitFor("all three", () => probe.deliveries.length === 3)
      assert.deepStrictEqual(probe.attemptNs("Device", "f"), [0, 1, 1, 2])
      assert.deepStrictEqual(probe.ns("Device", "f"), [0, 1, 2])
      assert.deepStrictEqual(probe.attempts.map((d) => [d.event!.token, d.event!.attempt]), [
        [tokens[0], 1],
        [tokens[1], 1],
        [tokens[1], 2],
        [tokens[2], 1]
      ])
      assert.deepStrictEqual(probe.attempts.map((d) => d.at), [0, 0, 100, 100])
      assert.deepInclude(yield* lagOf("readings", "f", recordLane), { delivered: 3, failed: 0, lastToken: tokens[2] })
    }))
  })

  it.effect("a turn that always fails is given up on after the retry attempts; the next event is delivered", () => {
    const probe = new StreamProbe()
    probe.hook = (d) => d.n === 1 ? Effect.fail(new Refused({ n: d.n })) : Effect.void
    return withProbe(probe, Effect.gen(function*() {
      const tokens = yield* publishEach(Readings, "g", [0, 1, 2])
      yield* waitFor("the first attempt", () => probe.attempts.length === 2)
      yield* advance(2_000)
      yield* waitFor("event 2", () => probe.deliveries.length === 2)
      assert.deepStrictEqual(probe.attemptNs("Device", "g"), [0, 1, 1, 1, 1, 1, 2], "five attempts of event 1, then event 2")
      assert.deepStrictEqual(probe.ns("Device", "g"), [0, 2])
      const retries = probe.attempts.filter((d) => d.n === 1)
      assert.deepStrictEqual(retries.map((d) => d.event!.attempt), [1, 2, 3, 4, 5])
      assert.deepStrictEqual(retries.map((d) => d.at), [0, 100, 300, 700, 1_500], "100 ms doubling between attempts")
      assert.deepInclude(yield* lagOf("readings", "g", recordLane), { delivered: 2, failed: 1, dropped: 0, lastToken: tokens[2] })
      // Nothing is tried again later.
      yield* advance(5_000, 500)
      assert.strictEqual(probe.attempts.length, 7)
    }))
  })

  it.effect("retryAttempts bounds the attempts of a failing turn", () => {
    const probe = new StreamProbe()
    probe.hook = (d) => d.n === 1 ? Effect.fail(new Refused({ n: d.n })) : Effect.void
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Readings, "h", [0, 1, 2])
      yield* waitFor("the first attempt", () => probe.attempts.length === 2)
      yield* advance(500)
      yield* waitFor("event 2", () => probe.deliveries.length === 2)
      assert.deepStrictEqual(probe.attemptNs("Device", "h"), [0, 1, 1, 2])
      assert.deepInclude(yield* lagOf("readings", "h", recordLane), { delivered: 2, failed: 1 })
    }), { streams: { retryAttempts: 2 } })
  })

  it.effect("an implicit subscription to an actor type this silo does not host: its events count as failed, nothing else is disturbed", () => {
    const probe = new StreamProbe()
    const implicit = [...defaultImplicit, Streams.implicit(Readings, Ghost, "Record")]
    return withProbe(probe, Effect.gen(function*() {
      const tokens = yield* publishEach(Readings, "g", [1, 2])
      yield* waitFor("Device's deliveries", () => probe.deliveries.length === 2)
      yield* waitFor("Ghost's failures", Effect.map(lagOf("readings", "g", "implicit:Ghost#Record"), (row) => row?.failed === 2))
      assert.deepInclude(yield* lagOf("readings", "g", "implicit:Ghost#Record"), { delivered: 0, failed: 2, buffered: 0, lastToken: tokens[1] })
      assert.deepStrictEqual(probe.ns("Device", "g"), [1, 2])
      // No retry waits on it: the streams go on without the clock moving.
      yield* publishEach(Readings, "g", [3])
      yield* waitFor("the next event", () => probe.deliveries.length === 3)
      yield* waitFor("Ghost's third failure", Effect.map(lagOf("readings", "g", "implicit:Ghost#Record"), (row) => row?.failed === 3))
    }), { streams: { implicit } })
  })

  it.effect("a partition whose agent cannot start delivers nothing and says why, once per reason; it starts once the provider lets it", () => {
    const probe = new StreamProbe()
    const logs: Array<string> = []
    const memory = MemoryStreamProvider.make({ partitions: 1 })
    let refusing = true
    const provider: StreamProvider = {
      ...memory,
      consume: (partition, consumer) =>
        refusing ? Effect.fail(new StreamProviderError({ operation: "consume", reason: "refused by the test" })) : memory.consume(partition, consumer)
    }
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Readings, "k", [1])
      // Three keeper rounds (one a second): the agent is refused each time, and logged once.
      yield* advance(3_000)
      assert.deepStrictEqual(probe.deliveries, [])
      assert.deepStrictEqual(logs.filter((line) => line.includes("refused by the test")).length, 1, logs.join("\n"))
      assert.include(logs.find((line) => line.includes("refused by the test")), "stream partition 0: its agent does not start")
      refusing = false
      yield* advance(1_000)
      yield* waitFor("the event, once the agent starts", () => probe.deliveries.length === 1)
    }), { streams: { provider } }).pipe(
      // Around the silo too: the keeper that logs runs in the streams layer.
      Effect.provide(Logger.layer([Logger.make((entry) => logs.push(String(entry.message)))], { mergeWithExisting: false }))
    )
  })
})

describe("pull consumers", () => {
  it.effect("from earliest, Stream.take(n) returns the stream's events in order, with their tokens", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const tokens = yield* publishEach(Feed, "p", range(0, 5))
      const read = yield* Streams.stream(Feed, "p", { from: "earliest" }).pipe(Stream.take(5), Stream.runCollect)
      assert.deepStrictEqual(read, range(0, 5).map((n) => ({ stream: { namespace: "feed", key: "p" }, token: tokens[n]!, event: { n } })))
      // Small batches page through the same events.
      const paged = yield* Streams.stream(Feed, "p", { from: "earliest", batchSize: 2 }).pipe(Stream.take(5), Stream.runCollect)
      assert.deepStrictEqual(paged.map((e) => e.token), tokens)
      const after = yield* Streams.stream(Feed, "p", { from: { after: tokens[2]! } }).pipe(Stream.take(2), Stream.runCollect)
      assert.deepStrictEqual(after.map((e) => e.event.n), [3, 4])
    }))
  })

  it.effect("from now (the default) it sees only the events published after it started, waiting for them", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      yield* publishEach(Feed, "n", [0, 1])
      const reading = yield* Effect.forkChild(Streams.stream(Feed, "n").pipe(Stream.take(2), Stream.runCollect))
      yield* settle()
      assert.isUndefined(reading.pollUnsafe(), "it waits for new events")
      const tokens = yield* publishEach(Feed, "n", [2, 3])
      const read = yield* Fiber.join(reading)
      assert.deepStrictEqual(read.map((e) => [e.event.n, e.token]), [[2, tokens[0]], [3, tokens[1]]])
    }))
  })

  it.effect("from now on an empty partition starts at the first event", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const reading = yield* Effect.forkChild(Streams.stream(Feed, "empty").pipe(Stream.take(1), Stream.runCollect))
      yield* settle()
      yield* publishEach(Feed, "empty", [7])
      assert.deepStrictEqual((yield* Fiber.join(reading)).map((e) => e.event.n), [7])
    }))
  })

  it.effect("other streams of the same partition are filtered out", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const mine: Array<string> = []
      for (let i = 0; i < 5; i++) {
        mine.push(yield* Streams.publish(Feed, "a", { n: i }))
        yield* Streams.publish(Feed, "b", { n: 100 + i })
        yield* Streams.publish(Readings, "a", { n: 200 + i }) // same key, other namespace
      }
      const live = yield* Effect.forkChild(Streams.stream(Feed, "a").pipe(Stream.take(2), Stream.runCollect))
      const read = yield* Streams.stream(Feed, "a", { from: "earliest" }).pipe(Stream.take(5), Stream.runCollect)
      assert.deepStrictEqual(read.map((e) => e.event.n), range(0, 5))
      assert.deepStrictEqual(read.map((e) => e.token), mine)
      assert.isTrue(read.every((e) => e.stream.namespace === "feed" && e.stream.key === "a"))
      yield* settle()
      yield* Streams.publish(Feed, "b", { n: 105 })
      yield* Streams.publish(Readings, "a", { n: 205 })
      yield* Streams.publish(Feed, "a", { n: 5 })
      yield* Streams.publish(Feed, "b", { n: 106 })
      yield* Streams.publish(Feed, "a", { n: 6 })
      assert.deepStrictEqual((yield* Fiber.join(live)).map((e) => e.event.n), [5, 6])
    }), { streams: { provider: MemoryStreamProvider.make({ partitions: 1 }) } })
  })
})

describe("bad input", () => {
  const nothingAppended = Effect.gen(function*() {
    const { provider } = yield* Streams.Streams
    for (let p = 0; p < provider.partitions; p++) {
      assert.isUndefined(yield* provider.lastToken(p), `partition ${p} is empty`)
    }
  })

  it.effect("publishing to an empty or oversized key fails with InvalidStreamId, and appends nothing", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const empty = yield* Effect.flip(Streams.publish(Readings, "", { n: 1 }))
      assert.instanceOf(empty, StreamId.InvalidStreamId)
      assert.deepInclude(empty, { namespace: "readings", key: "" })
      assert.match(empty.reason, /empty/)
      const long = "k".repeat(300)
      const tooLong = yield* Effect.flip(Streams.publish(Readings, long, { n: 1 }))
      assert.instanceOf(tooLong, StreamId.InvalidStreamId)
      assert.deepInclude(tooLong, { namespace: "readings", key: long })
      assert.match(tooLong.reason, /256/)
      assert.strictEqual((yield* Effect.flip(Streams.publishAll(Readings, "", [{ n: 1 }, { n: 2 }])))._tag, "InvalidStreamId")
      assert.strictEqual((yield* Effect.flip(Streams.publish(Readings, 42 as unknown as string, { n: 1 })))._tag, "InvalidStreamId")
      yield* nothingAppended
      // The same key checks on the other ways in.
      const subscribed = yield* Effect.flip(Streams.subscribe(Feed, "", { actor: Watcher, id: "w", message: "Seen" }))
      assert.strictEqual(subscribed._tag, "InvalidStreamId")
      const pulled = yield* Effect.flip(Streams.stream(Feed, long, { from: "earliest" }).pipe(Stream.take(1), Stream.runCollect))
      assert.strictEqual(pulled._tag, "InvalidStreamId")
      // The longest accepted key is fine.
      yield* Streams.publish(Readings, "k".repeat(256), { n: 1 })
      yield* waitFor("the 256-character key's event", () => probe.ns("Device", "k".repeat(256)).length === 1)
    }))
  })

  it("StreamContract.make refuses an empty or oversized namespace", () => {
    assert.throws(() => StreamContract.make("", Reading), /empty/)
    assert.throws(() => StreamContract.make("n".repeat(257), Reading), /256/)
    assert.strictEqual(StreamContract.make("n".repeat(256), Reading).namespace.length, 256)
  })

  it("backpressure strategies refuse a capacity or duration that is not positive", () => {
    assert.throws(() => Backpressure.dropNewest(0), RangeError)
    assert.throws(() => Backpressure.suspend(1.5), RangeError)
    assert.throws(() => Backpressure.sample("0 millis"), RangeError)
    assert.throws(() => Backpressure.slidingWindow("1 second", -1), RangeError)
    assert.throws(() => MemoryStreamProvider.make({ partitions: 0 }), RangeError)
  })

  it.effect("subscribing an invalid actor id fails with InvalidActorId and stores nothing", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      for (const id of ["", "w".repeat(300)]) {
        const error = yield* Effect.flip(Streams.subscribe(Feed, "s", { actor: Watcher, id, message: "Seen" }))
        assert.strictEqual(error._tag, "InvalidActorId")
        assert.deepInclude(error, { type: "Watcher", id })
      }
      assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "s"), [])
      yield* publishEach(Feed, "s", [1])
      yield* settle()
      assert.deepStrictEqual(probe.deliveries, [])
    }))
  })

  it.effect("keys like __proto__ and constructor are ordinary streams", () => {
    const probe = new StreamProbe()
    return withProbe(probe, Effect.gen(function*() {
      const keys = ["__proto__", "constructor", "hasOwnProperty", "toString"]
      for (const key of keys) yield* publishEach(Readings, key, [1, 2])
      yield* waitFor("implicit deliveries", () => probe.deliveries.length === 8)
      for (const key of keys) {
        assert.deepStrictEqual(probe.ns("Device", key), [1, 2], key)
        assert.deepInclude(yield* lagOf("readings", key, recordLane), { delivered: 2 })
      }
      // Explicit: a subscriber with such an id, on a stream with such a key.
      const sub = yield* Streams.subscribe(Feed, "__proto__", { actor: Watcher, id: "constructor", message: "Seen" })
      yield* Streams.subscribe(Feed, "constructor", { actor: Watcher, id: "__proto__", message: "Seen" })
      assert.deepStrictEqual((yield* Streams.subscriptions(Feed, "__proto__")).map((s) => s.subscriber), [{ type: "Watcher", id: "constructor" }])
      assert.deepStrictEqual((yield* Streams.subscriptions(Feed, "constructor")).map((s) => s.subscriber), [{ type: "Watcher", id: "__proto__" }])
      assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "toString"), [])
      yield* publishEach(Feed, "__proto__", [3])
      yield* publishEach(Feed, "constructor", [4])
      yield* waitFor("explicit deliveries", () => probe.deliveries.length === 10)
      assert.deepStrictEqual(probe.ns("Watcher", "constructor"), [3])
      assert.deepStrictEqual(probe.ns("Watcher", "__proto__"), [4])
      const read = yield* Streams.stream(Readings, "__proto__", { from: "earliest" }).pipe(Stream.take(2), Stream.runCollect)
      assert.deepStrictEqual(read.map((e) => e.event.n), [1, 2])
      assert.isTrue(yield* Streams.unsubscribe(sub))
      assert.deepStrictEqual(yield* Streams.subscriptions(Feed, "__proto__"), [])
      assert.isUndefined(({} as Record<string, unknown>)["Watcher"], "no prototype was written to")
    }))
  })
})

/**
 * The transport's process-wide metrics over real TCP on 127.0.0.1: frames and bytes in each
 * direction, remote asks in flight (back to 0 after replies, timeouts, interruptions, a
 * dropped connection and a closed one), open connections; and that `Telemetry.layer`
 * exports them. Client and server run in this process, so every frame is counted twice:
 * written by one end, read by the other.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Metric, Schedule, Schema, Scope } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { CallTimeout, OutcomeUnknown, PayloadTooLarge } from "../../src/Actor/ActorError.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import { Telemetry } from "../../src/index.ts"
import * as ProcessMetrics from "../../src/Telemetry/internal/ProcessMetrics.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import { payloadCodec, type ReplyOutcome, type RequestEnvelope, writeReply, writeRequest } from "../../src/Transport/Envelope.ts"
import { OutputBuffer } from "../../src/Transport/Frame.ts"
import * as Server from "../../src/Transport/Server.ts"
import { Counter, counterLayer, Lifecycle } from "../fixtures/Counter.ts"
import { series } from "./support.ts"

const Num = payloadCodec(Schema.Struct({ n: Schema.Number }))

const request = (n: number): Connection.CallRequest => ({
  target: { type: "Counter", id: "1" },
  tag: "Double",
  payload: Num.encode({ n }),
  context: { correlationId: "c-1", metadata: {} },
  chain: []
})

const doubled = (n: number): ReplyOutcome => ({ _tag: "Success", value: Num.encode({ n: n * 2 }) })

const doubler = (req: RequestEnvelope): Effect.Effect<ReplyOutcome> => Effect.sync(() => doubled(Num.decode(req.payload).n))

/** Bytes of one frame as the codec writes it, length prefix included. */
const requestFrameBytes = (n: number) => writeRequest(new OutputBuffer(), { ...request(n), requestId: 1, timeoutMillis: 1 }, 1 << 20) + 4
const replyFrameBytes = (outcome: ReplyOutcome) => writeReply(new OutputBuffer(), 1, outcome, 1 << 20) + 4

const snapshot = () => ({
  framesIn: ProcessMetrics.framesIn.value,
  framesOut: ProcessMetrics.framesOut.value,
  bytesIn: ProcessMetrics.bytesIn.value,
  bytesOut: ProcessMetrics.bytesOut.value
})
const delta = (before: ReturnType<typeof snapshot>) => {
  const now = snapshot()
  return {
    framesIn: now.framesIn - before.framesIn,
    framesOut: now.framesOut - before.framesOut,
    bytesIn: now.bytesIn - before.bytesIn,
    bytesOut: now.bytesOut - before.bytesOut
  }
}

const inFlight = () => ProcessMetrics.callsInFlight.value

/** Polls (every 5 ms, at most 3 s) until `condition` holds: socket events arrive on the event loop. */
const until = (what: string, condition: () => boolean) =>
  Effect.suspend(() => condition() ? Effect.void : Effect.fail(what)).pipe(
    Effect.retry(Schedule.spaced("5 millis")),
    Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => Effect.die(new Error(`never happened: ${what}`)) })
  )

const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => Effect.die("bounded wait exceeded") }))

const connectionsOpen = () => ({
  outbound: ProcessMetrics.connectionsOutbound.value,
  inbound: ProcessMetrics.connectionsInbound.value
})

describe("transport metrics", () => {
  it.live("frames and bytes: exact counts for a known number of calls, both ends counted", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ port: 0, handle: doubler })
      const connection = yield* Connection.make({ host: "127.0.0.1", port: server.port })
      // Taken before the connection is up: connecting writes no frame.
      const before = snapshot()
      const calls = 25
      let expectedBytes = 0
      for (let n = 1; n <= calls; n++) {
        const outcome = yield* bounded(connection.call(request(n)))
        assert.deepStrictEqual(outcome, doubled(n))
        expectedBytes += requestFrameBytes(n) + replyFrameBytes(doubled(n))
      }
      // Concurrent calls, coalesced into fewer writes: still one frame each.
      const concurrent = 40
      yield* Effect.forEach(Array.from({ length: concurrent }, (_, i) => i), (n) => bounded(connection.call(request(n))), {
        concurrency: "unbounded",
        discard: true
      })
      for (let n = 0; n < concurrent; n++) expectedBytes += requestFrameBytes(n) + replyFrameBytes(doubled(n))
      const seen = delta(before)
      const total = calls + concurrent
      assert.deepStrictEqual(seen, {
        framesOut: 2 * total, // the client's requests and the server's replies
        framesIn: 2 * total,
        bytesOut: expectedBytes,
        bytesIn: expectedBytes
      })
      assert.strictEqual(inFlight(), 0)
    }).pipe(Effect.scoped))

  it.live("one-way sends count one frame each way, no call in flight", () =>
    Effect.gen(function*() {
      let handled = 0
      const server = yield* Server.make({ port: 0, handle: (req) => Effect.andThen(Effect.sync(() => handled++), doubler(req)) })
      const connection = yield* Connection.make({ host: "127.0.0.1", port: server.port })
      yield* bounded(connection.call(request(0))) // connected
      const before = snapshot()
      for (let n = 0; n < 10; n++) yield* connection.send(request(n))
      assert.strictEqual(inFlight(), 0, "a send waits for no reply")
      yield* until("the server handled the sends", () => handled === 11)
      const seen = delta(before)
      assert.strictEqual(seen.framesOut, 10)
      assert.strictEqual(seen.framesIn, 10)
      assert.strictEqual(seen.bytesOut, seen.bytesIn)
    }).pipe(Effect.scoped))

  it.live("calls in flight: up while unanswered, back to 0 after replies, timeouts, interruptions and an oversized reply", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      let arrived = 0
      const server = yield* Server.make({
        port: 0,
        handle: (req) => {
          const n = Num.decode(req.payload).n
          if (n === 999) return Effect.succeed({ _tag: "Success", value: new Uint8Array(5000) } as const)
          arrived++
          return n < 0 ? Effect.never : Effect.andThen(Deferred.await(gate), doubler(req))
        }
      })
      const connection = yield* Connection.make({ host: "127.0.0.1", port: server.port, maxFrameBytes: 1024 })
      assert.strictEqual(inFlight(), 0)

      // Replies: five calls wait at the server, then are answered.
      const waiting = yield* Effect.forEach(Array.from({ length: 5 }, (_, i) => i), (n) => Effect.forkChild(connection.call(request(n))))
      yield* until("five calls at the server", () => arrived === 5)
      assert.strictEqual(inFlight(), 5)
      yield* Deferred.succeed(gate, undefined)
      yield* bounded(Fiber.joinAll(waiting))
      assert.strictEqual(inFlight(), 0)

      // Timeouts: never answered.
      const timedOut = yield* Effect.forEach(
        Array.from({ length: 3 }, (_, i) => -1 - i),
        (n) => Effect.forkChild(Effect.flip(connection.call(request(n), { timeout: "30 millis" })))
      )
      for (const error of yield* bounded(Fiber.joinAll(timedOut))) assert.instanceOf(error, CallTimeout)
      assert.strictEqual(inFlight(), 0)

      // Interruptions: the caller gives up.
      arrived = 0
      const interrupted = yield* Effect.forEach([-10, -11], (n) => Effect.forkChild(connection.call(request(n))))
      yield* until("two more calls at the server", () => arrived === 2)
      assert.strictEqual(inFlight(), 2)
      yield* Fiber.interruptAll(interrupted)
      assert.strictEqual(inFlight(), 0)

      // A reply over the client's maximum fails its call.
      const tooLarge = yield* bounded(Effect.flip(connection.call(request(999))))
      assert.instanceOf(tooLarge, PayloadTooLarge)
      assert.strictEqual(inFlight(), 0)
    }).pipe(Effect.scoped))

  it.live("calls in flight: back to 0 when the connection drops, and when it is closed", () =>
    Effect.gen(function*() {
      let arrived = 0
      const serverScope = yield* Scope.make()
      const server = yield* Server.make({ port: 0, handle: () => Effect.andThen(Effect.sync(() => arrived++), Effect.never) }).pipe(
        Scope.provide(serverScope)
      )
      const connection = yield* Connection.make({ host: "127.0.0.1", port: server.port, reconnect: Schedule.spaced("1 hour") })
      const dropped = yield* Effect.forEach(Array.from({ length: 4 }, (_, i) => i), (n) => Effect.forkChild(Effect.flip(connection.call(request(n)))))
      yield* until("four calls at the server", () => arrived === 4)
      assert.strictEqual(inFlight(), 4)
      yield* Scope.close(serverScope, Exit.void)
      for (const error of yield* bounded(Fiber.joinAll(dropped))) assert.instanceOf(error, OutcomeUnknown)
      assert.strictEqual(inFlight(), 0)

      // A connection closed with calls waiting.
      arrived = 0
      const server2 = yield* Server.make({ port: 0, handle: () => Effect.andThen(Effect.sync(() => arrived++), Effect.never) })
      const connectionScope = yield* Scope.make()
      const connection2 = yield* Connection.make({ host: "127.0.0.1", port: server2.port }).pipe(Scope.provide(connectionScope))
      const closed = yield* Effect.forEach([1, 2, 3], (n) => Effect.forkChild(Effect.flip(connection2.call(request(n)))))
      yield* until("three calls at the server", () => arrived === 3)
      assert.strictEqual(inFlight(), 3)
      yield* Scope.close(connectionScope, Exit.void)
      yield* bounded(Fiber.joinAll(closed))
      assert.strictEqual(inFlight(), 0)
    }).pipe(Effect.scoped))

  it.live("open connections, outbound and inbound, while the scope lasts", () =>
    Effect.gen(function*() {
      // The earlier tests' sockets close on the event loop after their scopes did.
      yield* until("no connection open", () => connectionsOpen().outbound === 0 && connectionsOpen().inbound === 0)
      const scope = yield* Scope.make()
      yield* Effect.gen(function*() {
        const server = yield* Server.make({ port: 0, handle: doubler })
        for (let i = 0; i < 3; i++) {
          const connection = yield* Connection.make({ host: "127.0.0.1", port: server.port })
          yield* bounded(connection.call(request(i)))
        }
        assert.strictEqual(connectionsOpen().outbound, 3)
        // The server has read a request on each, so it has accepted them all.
        assert.strictEqual(connectionsOpen().inbound, 3)
      }).pipe(Scope.provide(scope))
      yield* Scope.close(scope, Exit.void)
      yield* until("every connection closed", () => connectionsOpen().outbound === 0 && connectionsOpen().inbound === 0)
    }))
})


describe("transport metrics through a cluster", () => {
  it.effect("remote asks between two silos: two frames each way per call, bytes alike, none left in flight; exported", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations: counterLayer(new Lifecycle()) })
      const [a, b] = cluster.silos
      // An id that B owns, so that A's calls go over TCP.
      let remote: string | undefined
      for (let i = 0; remote === undefined; i++) {
        const owner = yield* a!.run(Effect.flatMap(Cluster, (cluster) => cluster.ownerOf({ type: "Counter", id: `r-${i}` })))
        if (owner === b!.id) remote = `r-${i}`
      }
      const increment = Effect.flatMap(Counter.ref(remote), (ref) => ref.Increment({ by: 1 }))
      yield* a!.run(increment) // activates it on B
      const before = snapshot()
      const calls = 20
      for (let i = 0; i < calls; i++) yield* a!.run(increment)
      const seen = delta(before)
      assert.strictEqual(seen.framesOut, 2 * calls)
      assert.strictEqual(seen.framesIn, 2 * calls)
      assert.strictEqual(seen.bytesOut, seen.bytesIn)
      assert.isAbove(seen.bytesOut, 2 * calls * 4)
      assert.strictEqual(inFlight(), 0)

      const text = yield* PrometheusMetrics.format().pipe(
        Effect.provide(Telemetry.layer({ logs: false }).pipe(Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))))
      )
      assert.strictEqual(series(text, "quark_transport_frames_total", { direction: "out" }), ProcessMetrics.framesOut.value)
      assert.strictEqual(series(text, "quark_transport_frames_total", { direction: "in" }), ProcessMetrics.framesIn.value)
      assert.strictEqual(series(text, "quark_transport_bytes_total", { direction: "out" }), ProcessMetrics.bytesOut.value)
      assert.strictEqual(series(text, "quark_transport_calls_in_flight"), 0)
      // A silo's connection to the other, both ways (each dials the other when it first calls).
      assert.isAtLeast(series(text, "quark_transport_connections", { direction: "outbound" })!, 1)
      assert.isAtLeast(series(text, "quark_transport_connections", { direction: "inbound" })!, 1)
    }).pipe(Effect.scoped))
})

import { assert, describe, it } from "@effect/vitest"
import { Deferred, Duration, Effect, Exit, Fiber, Schedule, Schema, Scope } from "effect"
import { ActorUnavailable, CallTimeout, OutcomeUnknown, PayloadTooLarge } from "../../src/Actor/ActorError.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import {
  payloadCodec,
  readReply,
  readRequest,
  type ReplyOutcome,
  type RequestEnvelope,
  writeReply,
  writeRequest
} from "../../src/Transport/Envelope.ts"
import { encodeFrame, FrameDecoder, OutputBuffer } from "../../src/Transport/Frame.ts"
import * as Server from "../../src/Transport/Server.ts"
import { rawConnect } from "../support/rawPeer.ts"

const Num = payloadCodec(Schema.Struct({ n: Schema.Number }))

const request = (n: number, id = "1"): Connection.CallRequest => ({
  target: { type: "Counter", id },
  tag: "Double",
  payload: Num.encode({ n }),
  context: { correlationId: "c-1", metadata: {} },
  chain: []
})

const success = (outcome: ReplyOutcome): number => {
  if (outcome._tag !== "Success") throw new Error(`expected Success, got ${JSON.stringify(outcome)}`)
  return Num.decode(outcome.value).n
}

/** Doubles `n`. */
const doubler = (req: RequestEnvelope): Effect.Effect<ReplyOutcome> =>
  Effect.sync(() => ({ _tag: "Success", value: Num.encode({ n: Num.decode(req.payload).n * 2 }) }))

/** Bounds a wait that should end quickly: a hang fails the test in 3 s instead of 30. */
const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: "3 seconds", orElse: () => Effect.die("bounded wait exceeded") }))

const collect = () => {
  const frames: Array<string> = []
  const oversized: Array<{ size: number; prefix: Array<number> }> = []
  return {
    frames,
    oversized,
    handler: {
      onFrame: (frame: Buffer) => void frames.push(frame.toString("utf8")),
      onOversized: (size: number, prefix: Buffer) => void oversized.push({ size, prefix: Array.from(prefix) })
    }
  }
}

describe("Frame", () => {
  const payloads = ["hello", "", "x".repeat(300), "ünïcödé ✓", "last"]
  const stream = Buffer.concat(payloads.map((p) => encodeFrame(Buffer.from(p, "utf8"))))

  it("decodes frames split byte by byte", () => {
    const c = collect()
    const decoder = new FrameDecoder(c.handler)
    for (let i = 0; i < stream.length; i++) decoder.push(stream.subarray(i, i + 1))
    assert.deepStrictEqual(c.frames, payloads)
  })

  it("decodes frames coalesced in one chunk and split at every offset", () => {
    const c = collect()
    new FrameDecoder(c.handler).push(stream)
    assert.deepStrictEqual(c.frames, payloads)
    for (let cut = 1; cut < stream.length; cut++) {
      const d = collect()
      const decoder = new FrameDecoder(d.handler)
      decoder.push(stream.subarray(0, cut))
      decoder.push(stream.subarray(cut))
      assert.deepStrictEqual(d.frames, payloads, `cut at ${cut}`)
    }
  })

  it("skips an oversized frame, reports its prefix, and stays in sync", () => {
    const big = Buffer.alloc(100, 7)
    big[0] = 1
    const all = Buffer.concat([encodeFrame(Buffer.from("a")), encodeFrame(big), encodeFrame(Buffer.from("b"))])
    for (const step of [1, 3, 7, all.length]) {
      const c = collect()
      const decoder = new FrameDecoder(c.handler, 50)
      for (let i = 0; i < all.length; i += step) decoder.push(all.subarray(i, i + step))
      assert.deepStrictEqual(c.frames, ["a", "b"], `step ${step}`)
      assert.strictEqual(c.oversized.length, 1)
      assert.strictEqual(c.oversized[0]!.size, 100)
      assert.deepStrictEqual(c.oversized[0]!.prefix, [1, ...Array(15).fill(7)])
    }
  })
})

describe("Envelope", () => {
  it("round-trips requests and replies through the binary codec", () => {
    const out = new OutputBuffer()
    const req: RequestEnvelope = {
      requestId: 0xfffffffe,
      target: { type: "Bank", id: "ä-42" },
      tag: "Deposit",
      payload: Num.encode({ n: 5 }),
      context: { requestId: "r-9", correlationId: "corr", metadata: { user: "ö", tenant: "t".repeat(100) } },
      chain: [{ type: "A", id: "1" }, { type: "B", id: "2" }],
      trace: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
      timeoutMillis: 1234
    }
    writeRequest(out, req, 1 << 20)
    writeReply(out, 7, { _tag: "Defect", defect: "boom ✗" }, 1 << 20)
    const frames: Array<Buffer> = []
    new FrameDecoder({ onFrame: (f) => void frames.push(Buffer.from(f)), onOversized: () => {} }).push(out.take()!)
    assert.deepStrictEqual(readRequest(frames[0]!), req)
    assert.deepStrictEqual(Schema.decodeUnknownSync(Schema.toCodecJson(Schema.Struct({ n: Schema.Number })))({ n: 5 }), {
      n: 5
    })
    assert.deepStrictEqual(readReply(frames[1]!), { requestId: 7, outcome: { _tag: "Defect", defect: "boom ✗" } })
  })

  it("refuses an envelope over the maximum frame size without writing it", () => {
    const out = new OutputBuffer()
    const size = writeRequest(out, { ...request(1), requestId: 1, timeoutMillis: 1, payload: new Uint8Array(100) }, 50)
    assert.isTrue(size > 50)
    assert.isTrue(out.isEmpty)
  })
})

/** A server on a free port and a connection to it, both for the test's scope. */
const setup = <R>(
  handle: (req: RequestEnvelope) => Effect.Effect<ReplyOutcome, never, R>,
  options: { readonly maxFrameBytes?: number; readonly defaultTimeout?: Duration.Input } = {}
) =>
  Effect.gen(function*() {
    const server = yield* Server.make({ port: 0, handle, maxFrameBytes: options.maxFrameBytes })
    const connection = yield* Connection.make({
      host: "127.0.0.1",
      port: server.port,
      maxFrameBytes: options.maxFrameBytes,
      defaultTimeout: options.defaultTimeout
    })
    return { server, connection }
  })

describe("Transport over TCP", () => {
  it.live("round trip", () =>
    Effect.gen(function*() {
      const { connection } = yield* setup(doubler)
      assert.strictEqual(success(yield* bounded(connection.call(request(21)))), 42)
      assert.strictEqual(yield* connection.status, "connected")
      assert.strictEqual(yield* connection.inFlight, 0)
    }).pipe(Effect.scoped))

  it.live("1,000 concurrent requests multiplexed on one connection, replies out of order", () =>
    Effect.gen(function*() {
      const count = 1000
      const gates = new Map<number, Deferred.Deferred<void>>()
      const allArrived = yield* Deferred.make<void>()
      const clientDone: Array<number> = []
      const { connection, server } = yield* setup((req) =>
        Effect.gen(function*() {
          const n = Num.decode(req.payload).n
          const gate = yield* Deferred.make<void>()
          gates.set(n, gate)
          if (gates.size === count) yield* Deferred.succeed(allArrived, undefined)
          yield* Deferred.await(gate)
          return { _tag: "Success", value: Num.encode({ n: n * 2 }) } as const
        })
      )
      const fiber = yield* Effect.forEach(
        Array.from({ length: count }, (_, i) => i),
        (i) =>
          connection.call(request(i)).pipe(
            Effect.map(success),
            Effect.tap(() => Effect.sync(() => clientDone.push(i)))
          ),
        { concurrency: "unbounded" }
      ).pipe(Effect.forkChild)
      yield* bounded(Deferred.await(allArrived))
      assert.strictEqual(yield* connection.inFlight, count)
      assert.strictEqual(yield* server.connections, 1)
      // Reply to the odd requests only, last first: they overtake the earlier even ones.
      for (let i = count - 1; i >= 0; i -= 2) yield* Deferred.succeed(gates.get(i)!, undefined)
      yield* bounded(
        Effect.suspend(() => (clientDone.length === count / 2 ? Effect.void : Effect.fail("wait"))).pipe(
          Effect.retry(Schedule.spaced("5 millis"))
        )
      )
      assert.isTrue(clientDone.every((i) => i % 2 === 1))
      assert.strictEqual(yield* connection.inFlight, count / 2)
      for (let i = 0; i < count; i += 2) yield* Deferred.succeed(gates.get(i)!, undefined)
      const results = yield* bounded(Fiber.join(fiber))
      assert.deepStrictEqual(results, Array.from({ length: count }, (_, i) => i * 2))
      assert.strictEqual(yield* connection.inFlight, 0)
    }).pipe(Effect.scoped))

  it.live("an oversized request fails with PayloadTooLarge and the connection goes on", () =>
    Effect.gen(function*() {
      const { connection } = yield* setup(doubler, { maxFrameBytes: 1024 })
      const big = { ...request(1), payload: new Uint8Array(2000) }
      const error = yield* Effect.flip(bounded(connection.call(big)))
      assert.instanceOf(error, PayloadTooLarge)
      assert.strictEqual((error as PayloadTooLarge).maxBytes, 1024)
      assert.isAbove((error as PayloadTooLarge).size, 2000)
      assert.strictEqual(success(yield* bounded(connection.call(request(4)))), 8)
    }).pipe(Effect.scoped))

  it.live("a reply larger than the client's maximum fails its call with PayloadTooLarge; the others go on", () =>
    Effect.gen(function*() {
      // Replies 3,000 bytes to n = 1, doubles anything else; the server allows it, the client does not.
      const server = yield* Server.make({
        port: 0,
        handle: (req) =>
          Num.decode(req.payload).n === 1 ? Effect.succeed({ _tag: "Success", value: new Uint8Array(3000) }) : doubler(req)
      })
      const connection = yield* Connection.make({ host: "127.0.0.1", port: server.port, maxFrameBytes: 1024 })
      const [big, small] = yield* Effect.all([Effect.flip(bounded(connection.call(request(1)))), bounded(connection.call(request(6)))], {
        concurrency: "unbounded"
      })
      assert.instanceOf(big, PayloadTooLarge)
      assert.deepStrictEqual((big as PayloadTooLarge).address, { type: "Counter", id: "1" })
      assert.strictEqual((big as PayloadTooLarge).maxBytes, 1024)
      assert.strictEqual(success(small), 12)
      assert.strictEqual(success(yield* bounded(connection.call(request(7)))), 14)
    }).pipe(Effect.scoped))

  it.live("the server answers an oversized or malformed frame with a typed error, else closes", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ port: 0, handle: doubler, maxFrameBytes: 1024 })
      const socket = yield* Effect.acquireRelease(
        Effect.promise(() => rawConnect(server.port)),
        (s) => Effect.sync(() => s.destroy())
      )
      const replies: Array<unknown> = []
      let closed = false
      const decoder = new FrameDecoder({ onFrame: (f) => void replies.push(readReply(f)), onOversized: () => {} })
      socket.on("data", (chunk: Buffer) => decoder.push(chunk))
      socket.on("close", () => (closed = true))
      const waitFor = (ok: () => boolean) =>
        bounded(Effect.suspend(() => (ok() ? Effect.void : Effect.fail("wait"))).pipe(
          Effect.retry(Schedule.spaced("5 millis"))
        ))
      // Oversized: 2,000 bytes announced, starting with kind=1 and request id 77.
      const big = Buffer.alloc(2000)
      big[0] = 1
      big.writeUInt32BE(77, 1)
      socket.write(encodeFrame(big))
      // Then a valid request on the same socket.
      const out = new OutputBuffer()
      writeRequest(out, { ...request(5), requestId: 78, timeoutMillis: 1000 }, 1024)
      socket.write(out.take()!)
      // Malformed with a readable id.
      socket.write(encodeFrame(Buffer.from([1, 0, 0, 0, 79, 9])))
      yield* waitFor(() => replies.length === 3)
      const byId = new Map(replies.map((r) => [(r as { requestId: number }).requestId, (r as { outcome: ReplyOutcome }).outcome]))
      assert.strictEqual(byId.get(77)?._tag, "TransportError")
      assert.strictEqual((byId.get(77) as { error: string }).error, "FrameTooLarge")
      assert.strictEqual(success(byId.get(78)!), 10)
      assert.strictEqual((byId.get(79) as { error: string }).error, "MalformedFrame")
      assert.isFalse(closed)
      // Unreadable request id: the connection is closed.
      socket.write(encodeFrame(Buffer.from([9, 9])))
      yield* waitFor(() => closed)
    }).pipe(Effect.scoped))

  it.live("a handler defect is answered with a Defect reply", () =>
    Effect.gen(function*() {
      const { connection } = yield* setup(() => Effect.die(new Error("kaboom")))
      const outcome = yield* bounded(connection.call(request(1)))
      assert.strictEqual(outcome._tag, "Defect")
      assert.include((outcome as { defect: string }).defect, "kaboom")
    }).pipe(Effect.scoped))

  it.live("losing the server fails written calls promptly with OutcomeUnknown; it reconnects when the server returns", () =>
    Effect.gen(function*() {
      const arrived = yield* Deferred.make<void>()
      let seen = 0
      const serverScope = yield* Scope.make()
      const server = yield* Server.make({
        port: 0,
        handle: () => Effect.andThen(Effect.sync(() => ++seen === 10 && Deferred.doneUnsafe(arrived, Exit.void)), Effect.never)
      }).pipe(Scope.provide(serverScope))
      const port = server.port
      const connection = yield* Connection.make({
        host: "127.0.0.1",
        port,
        reconnect: Schedule.spaced("20 millis")
      })
      const fibers = yield* Effect.forEach(
        Array.from({ length: 10 }, (_, i) => i),
        (i) => Effect.forkChild(Effect.flip(connection.call(request(i, `a${i}`))))
      )
      yield* bounded(Deferred.await(arrived))
      const started = Date.now()
      yield* bounded(Scope.close(serverScope, Exit.void))
      const errors = yield* bounded(Fiber.joinAll(fibers))
      assert.isBelow(Date.now() - started, 1000)
      // Every request had reached the server: whether it ran is unknown, not "unavailable".
      errors.forEach((error, i) => {
        assert.instanceOf(error, OutcomeUnknown)
        assert.deepStrictEqual((error as OutcomeUnknown).address, { type: "Counter", id: `a${i}` })
        assert.strictEqual((error as OutcomeUnknown).tag, "Double")
        assert.strictEqual((error as OutcomeUnknown).reason, `connection to 127.0.0.1:${port} lost`)
      })
      // While the server is away, calls fail fast with ActorUnavailable (never hang).
      const whileDown = yield* bounded(Effect.flip(connection.call(request(1))))
      assert.instanceOf(whileDown, ActorUnavailable)
      // The server comes back on the same port: the connection reconnects on its own.
      yield* Server.make({ port, handle: doubler })
      const value = yield* bounded(
        connection.call(request(8)).pipe(Effect.retry(Schedule.spaced("10 millis")))
      )
      assert.strictEqual(success(value), 16)
      assert.strictEqual(yield* connection.status, "connected")
    }).pipe(Effect.scoped))

  it.live("request timeout: per-call override and connection default, late replies ignored", () =>
    Effect.gen(function*() {
      const { connection } = yield* setup(() => Effect.never, { defaultTimeout: "150 millis" })
      let started = Date.now()
      const error = yield* bounded(Effect.flip(connection.call(request(1, "t1"), { timeout: "40 millis" })))
      const elapsed = Date.now() - started
      assert.instanceOf(error, CallTimeout)
      assert.deepStrictEqual(
        { address: (error as CallTimeout).address, tag: (error as CallTimeout).tag, ms: (error as CallTimeout).timeoutMillis },
        { address: { type: "Counter", id: "t1" }, tag: "Double", ms: 40 }
      )
      assert.isAtLeast(elapsed, 35)
      assert.isBelow(elapsed, 1000)
      started = Date.now()
      const byDefault = yield* bounded(Effect.flip(connection.call(request(2))))
      assert.instanceOf(byDefault, CallTimeout)
      assert.strictEqual((byDefault as CallTimeout).timeoutMillis, 150)
      assert.isAtLeast(Date.now() - started, 140)
      assert.strictEqual(yield* connection.inFlight, 0)
      assert.strictEqual(yield* connection.status, "connected")
    }).pipe(Effect.scoped))

  it.live("a short timeout among long ones fires on time", () =>
    Effect.gen(function*() {
      const { connection } = yield* setup(() => Effect.never)
      const long = yield* Effect.forkChild(connection.call(request(1), { timeout: "10 seconds" }))
      const started = Date.now()
      const error = yield* bounded(Effect.flip(connection.call(request(2), { timeout: "30 millis" })))
      assert.instanceOf(error, CallTimeout)
      assert.isBelow(Date.now() - started, 1000)
      assert.strictEqual(yield* connection.inFlight, 1)
      yield* Fiber.interrupt(long)
      assert.strictEqual(yield* connection.inFlight, 0)
    }).pipe(Effect.scoped))
})

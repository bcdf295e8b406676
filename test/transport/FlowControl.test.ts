/**
 * The transport under stress and faults: outcome known vs unknown when a connection goes,
 * backpressure and caps on both ends, Clock-driven deadlines, containment of what a peer
 * sends, logging, and the server's drain. Real sockets on 127.0.0.1.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import { Clock, Deferred, Effect, Exit, Fiber, Schedule, Schema, Scope } from "effect"
import { type Captured, capturingLogs } from "../support/capturedLogs.ts"
import { TestClock } from "effect/testing"
import { ActorUnavailable, CallTimeout, OutcomeUnknown } from "../../src/Actor/ActorError.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import {
  payloadCodec,
  readReply,
  type ReplyOutcome,
  type RequestEnvelope,
  writeReply,
  writeRequest
} from "../../src/Transport/Envelope.ts"
import { encodeFrame, FrameDecoder, OutputBuffer } from "../../src/Transport/Frame.ts"
import * as Server from "../../src/Transport/Server.ts"
import { rawConnect, serverHandshake } from "../support/rawPeer.ts"

const host = "127.0.0.1"
const Num = payloadCodec(Schema.Struct({ n: Schema.Number }))

const request = (n: number, id = "1"): Connection.CallRequest => ({
  target: { type: "Counter", id },
  tag: "Double",
  payload: Num.encode({ n }),
  context: { correlationId: "c-1", metadata: {} },
  chain: []
})

const doubled = (n: number): ReplyOutcome => ({ _tag: "Success", value: Num.encode({ n: n * 2 }) })

const success = (outcome: ReplyOutcome): number => {
  if (outcome._tag !== "Success") throw new Error(`expected Success, got ${JSON.stringify(outcome)}`)
  return Num.decode(outcome.value).n
}

const doubler = (req: RequestEnvelope): Effect.Effect<ReplyOutcome> => Effect.sync(() => doubled(Num.decode(req.payload).n))

/** Runs `effect` on the real clock, also inside a TestClock test. */
const live = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.provideService(effect, Clock.Clock, Clock.Clock.defaultValue())

/** Bounds a wait that should end quickly (on the live clock, so it works under TestClock too). */
const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  live(
    effect.pipe(Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die("bounded wait exceeded") }))
  )

/** Waits until `ok()` holds (checking every few ms), or dies after 5 s. */
const waitUntil = (label: string, ok: () => boolean) =>
  live(
    Effect.suspend(() => (ok() ? Effect.void : Effect.fail(label))).pipe(
      Effect.retry(Schedule.spaced("5 millis")),
      Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die(`timed out waiting: ${label}`) })
    )
  )

/** Waits until `read` gives a value `ok` accepts. */
const waitFor = <A>(label: string, read: Effect.Effect<A>, ok: (a: A) => boolean) =>
  live(
    Effect.flatMap(read, (a) => (ok(a) ? Effect.succeed(a) : Effect.fail(label))).pipe(
      Effect.retry(Schedule.spaced("5 millis")),
      Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die(`timed out waiting: ${label}`) })
    )
  )

/** Lets Node's event loop run once (socket events), whatever the Effect scheduler does. */
const macrotask = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

/** A plain TCP server for playing a misbehaving peer (after the handshake). */
const rawServer = (onConnection: (socket: Net.Socket, index: number) => void) =>
  Effect.acquireRelease(
    Effect.callback<{ readonly port: number; readonly sockets: Array<Net.Socket> }>((resume) => {
      const sockets: Array<Net.Socket> = []
      const server = Net.createServer((socket) => {
        socket.on("error", () => {})
        sockets.push(socket)
        const index = sockets.length - 1
        serverHandshake(socket, () => onConnection(socket, index))
      })
      server.listen({ host, port: 0 }, () =>
        resume(Effect.succeed({ port: (server.address() as Net.AddressInfo).port, sockets, server })))
    }),
    (raw) =>
      Effect.callback<void>((resume) => {
        for (const socket of raw.sockets) socket.destroy()
        ;(raw as unknown as { server: Net.Server }).server.close(() => resume(Effect.void))
      })
  )

/** A plain TCP client for playing a misbehaving peer (after the handshake). */
const rawClient = (port: number) =>
  Effect.acquireRelease(
    Effect.promise(() => rawConnect(port, { host })),
    (socket) => Effect.sync(() => socket.destroy())
  )

/** Every frame `socket` receives, decoded as replies. */
const replies = (socket: Net.Socket) => {
  const received: Array<{ readonly requestId: number; readonly outcome: ReplyOutcome }> = []
  const decoder = new FrameDecoder({ onFrame: (frame) => void received.push(readReply(frame)), onOversized: () => {} })
  socket.on("data", (chunk: Buffer) => decoder.push(chunk))
  return received
}


describe("Frame: pausing and backlogs", () => {
  it("a paused decoder holds what follows the current frame until resumed", () => {
    const frames: Array<string> = []
    const decoder: FrameDecoder = new FrameDecoder({
      onFrame: (frame) => {
        frames.push(frame.toString("utf8"))
        if (frame.toString("utf8") === "b") decoder.pause()
      },
      onOversized: () => {}
    })
    const all = Buffer.concat(["a", "b", "c", "d"].map((p) => encodeFrame(Buffer.from(p))))
    decoder.push(all.subarray(0, all.length - 2))
    assert.deepStrictEqual(frames, ["a", "b"])
    decoder.push(all.subarray(all.length - 2)) // arrives while paused: held, not decoded
    assert.deepStrictEqual(frames, ["a", "b"])
    decoder.resume()
    assert.deepStrictEqual(frames, ["a", "b", "c", "d"])
    decoder.push(encodeFrame(Buffer.from("e")))
    assert.deepStrictEqual(frames, ["a", "b", "c", "d", "e"])
  })

  it("a backlog of frames nobody takes grows and is handed over whole", () => {
    const out = new OutputBuffer()
    const n = 2000
    for (let i = 0; i < n; i++) writeReply(out, i, { _tag: "Success", value: new Uint8Array(5000).fill(i & 0xff) }, 1 << 20)
    const ids: Array<number> = []
    new FrameDecoder({
      onFrame: (frame) => {
        const reply = readReply(frame)
        const value = (reply.outcome as { value: Uint8Array }).value
        if (value.length !== 5000 || value[4999] !== (reply.requestId & 0xff)) throw new Error(`bad frame ${reply.requestId}`)
        ids.push(reply.requestId)
      },
      onOversized: () => {}
    }).push(out.take()!)
    assert.deepStrictEqual(ids, Array.from({ length: n }, (_, i) => i))
    assert.isTrue(out.isEmpty)
  })
})

describe("Connection: outcome known vs unknown", () => {
  it.live("closing the connection fails a written call with OutcomeUnknown and a call still in the write buffer with ActorUnavailable", () =>
    Effect.gen(function*() {
      const arrived = yield* Deferred.make<void>()
      const seen: Array<number> = []
      const server = yield* Server.make({
        port: 0,
        handle: (req) =>
          Effect.andThen(Effect.sync(() => seen.push(Num.decode(req.payload).n) && Deferred.doneUnsafe(arrived, Exit.void)), Effect.never)
      })
      const connectionScope = yield* Scope.make()
      const connection = yield* Connection.make({ host, port: server.port }).pipe(Scope.provide(connectionScope))
      const written = yield* Effect.forkChild(Effect.flip(connection.call(request(1, "w"))))
      yield* bounded(Deferred.await(arrived))
      // In one synchronous step: a call is encoded (its write waits for the end of the tick), then the connection closes.
      const buffered = yield* Effect.sync(() => {
        const fiber = Effect.runFork(Effect.flip(connection.call(request(2, "b"))))
        Effect.runFork(Scope.close(connectionScope, Exit.void))
        return fiber
      })
      const [w, b] = yield* bounded(Effect.all([Fiber.join(written), Fiber.join(buffered)]))
      const reason = `connection to 127.0.0.1:${server.port} closed`
      assert.instanceOf(w, OutcomeUnknown)
      assert.deepStrictEqual({ ...(w as OutcomeUnknown) }, { _tag: "OutcomeUnknown", address: { type: "Counter", id: "w" }, tag: "Double", reason })
      assert.instanceOf(b, ActorUnavailable)
      assert.deepStrictEqual({ ...(b as ActorUnavailable) }, { _tag: "ActorUnavailable", address: { type: "Counter", id: "b" }, reason })
      // The unsent request never reached the server.
      yield* waitFor("the server sees the connection closed", server.connections, (n) => n === 0)
      assert.deepStrictEqual(seen, [1])
    }).pipe(Effect.scoped))

  it.live("calls waiting for a connection attempt that fails are ActorUnavailable (never sent)", () =>
    Effect.gen(function*() {
      // Nothing listens on this port any more.
      const port = yield* Effect.scoped(Effect.map(rawServer(() => {}), (raw) => raw.port))
      const connection = yield* Connection.make({ host, port, reconnect: Schedule.spaced("1 hour") })
      const error = yield* bounded(Effect.flip(connection.call(request(1))))
      assert.instanceOf(error, ActorUnavailable)
    }).pipe(Effect.scoped))
})

describe("Backpressure and caps", () => {
  it.live("client: a peer that stops reading backs writes up; past maxBufferedBytes calls fail at once; on loss written calls are OutcomeUnknown, unsent ones ActorUnavailable", () =>
    Effect.gen(function*() {
      const raw = yield* rawServer((socket) => socket.pause()) // accepts, never reads
      const maxBufferedBytes = 1024 * 1024
      const connection = yield* Connection.make({ host, port: raw.port, maxBufferedBytes })
      const payload = new Uint8Array(128 * 1024)
      const calls: Array<Fiber.Fiber<unknown, unknown>> = []
      let refused: unknown = undefined
      // Far more than the kernel's socket buffers hold: without a cap this never stops.
      for (let i = 0; i < 1000 && refused === undefined; i++) {
        const fiber = yield* Effect.forkChild(Effect.flip(connection.call({ ...request(i, `c${i}`), payload })), {
          startImmediately: true
        })
        const exit = fiber.pollUnsafe()
        if (exit === undefined) calls.push(fiber)
        else refused = Exit.isSuccess(exit) ? exit.value : exit
        yield* macrotask // let the socket take what it will
      }
      assert.instanceOf(refused, ActorUnavailable)
      assert.include((refused as ActorUnavailable).reason, "backed up")
      assert.isAbove(calls.length, 1)
      assert.strictEqual(yield* connection.inFlight, calls.length)
      // The peer goes away with all that unread.
      yield* waitUntil("the raw server accepted", () => raw.sockets.length === 1)
      raw.sockets[0]!.destroy()
      const errors = yield* bounded(Fiber.joinAll(calls))
      const firstUnsent = errors.findIndex((error) => error instanceof ActorUnavailable)
      assert.instanceOf(errors[0], OutcomeUnknown, "the first request was written")
      assert.isAbove(firstUnsent, 0, "the last requests were never handed to the socket")
      errors.slice(0, firstUnsent).forEach((error) => assert.instanceOf(error, OutcomeUnknown))
      errors.slice(firstUnsent).forEach((error) => assert.instanceOf(error, ActorUnavailable))
    }).pipe(Effect.scoped))

  it.live("client: a call beyond maxInFlight fails at once with ActorUnavailable and is not sent", () =>
    Effect.gen(function*() {
      const seen: Array<number> = []
      const server = yield* Server.make({
        port: 0,
        handle: (req) => Effect.andThen(Effect.sync(() => seen.push(Num.decode(req.payload).n)), Effect.never)
      })
      const connection = yield* Connection.make({ host, port: server.port, maxInFlight: 3 })
      const first = yield* Effect.forEach([1, 2, 3], (n) => Effect.forkChild(connection.call(request(n))))
      yield* waitFor("three in flight", connection.inFlight, (n) => n === 3)
      const error = yield* Effect.flip(connection.call(request(4)))
      assert.instanceOf(error, ActorUnavailable)
      assert.include((error as ActorUnavailable).reason, "3 calls in flight")
      assert.strictEqual(yield* connection.inFlight, 3)
      yield* Fiber.interrupt(first[0]!)
      yield* Effect.forkChild(connection.call(request(5)))
      // Requests arrive in order: once 5 is in, 4 would have been before it.
      yield* waitUntil("request 5 arrives", () => seen.includes(5))
      assert.deepStrictEqual(seen, [1, 2, 3, 5])
    }).pipe(Effect.scoped))

  it.live("server: at maxInFlight running handlers a connection is not read until one finishes", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      let started = 0
      let running = 0
      let maxRunning = 0
      const server = yield* Server.make({
        port: 0,
        maxInFlight: 5,
        handle: (req) => {
          if (req.target.id === "witness") return doubler(req)
          return Effect.gen(function*() {
            started++
            maxRunning = Math.max(maxRunning, ++running)
            yield* Deferred.await(release)
            running--
            return doubled(Num.decode(req.payload).n)
          })
        }
      })
      const connection = yield* Connection.make({ host, port: server.port })
      const witness = yield* Connection.make({ host, port: server.port })
      const all = yield* Effect.forkChild(
        Effect.forEach(Array.from({ length: 20 }, (_, i) => i), (i) => Effect.map(connection.call(request(i)), success), {
          concurrency: "unbounded"
        })
      )
      yield* waitUntil("five handlers started", () => started >= 5)
      // A round trip on another connection gives the server every chance to start more.
      assert.strictEqual(success(yield* bounded(witness.call(request(21, "witness")))), 42)
      assert.strictEqual(started, 5)
      assert.strictEqual(yield* server.running, 5)
      yield* Deferred.succeed(release, undefined)
      const results = yield* bounded(Fiber.join(all))
      assert.deepStrictEqual(results, Array.from({ length: 20 }, (_, i) => i * 2))
      assert.strictEqual(maxRunning, 5)
      assert.strictEqual(started, 20)
    }).pipe(Effect.scoped))

  it.live("server: a peer that does not read its replies stops being read at maxBufferedBytes, and is served in full once it reads", () =>
    Effect.gen(function*() {
      const maxBufferedBytes = 1024 * 1024
      const count = 200 // 200 replies of 128 KiB: 25 MiB, far more than the cap and the kernel's buffers
      const value = new Uint8Array(128 * 1024)
      let handled = 0
      let maxBufferedAtStart = 0
      let server: Server.Server | undefined = undefined
      server = yield* Server.make({
        port: 0,
        maxBufferedBytes,
        handle: () =>
          Effect.map(server!.bufferedBytes, (buffered): ReplyOutcome => {
            handled++
            maxBufferedAtStart = Math.max(maxBufferedAtStart, buffered)
            return { _tag: "Success", value }
          })
      })
      const socket = yield* rawClient(server.port)
      socket.pause()
      const out = new OutputBuffer()
      for (let i = 0; i < count; i++) writeRequest(out, { ...request(i), requestId: i, timeoutMillis: 0 }, 1 << 20)
      socket.write(out.take()!)
      yield* waitFor("the server's output reaches the cap", server.bufferedBytes, (n) => n >= maxBufferedBytes)
      const handledAtCap = handled
      assert.isBelow(handledAtCap, count)
      // It now reads: every request is answered, in order, and no handler started while the cap was reached.
      const received = replies(socket)
      socket.resume()
      yield* waitUntil("all replies", () => received.length === count)
      assert.deepStrictEqual(received.map((r) => r.requestId), Array.from({ length: count }, (_, i) => i))
      assert.isTrue(received.every((r) => r.outcome._tag === "Success" && r.outcome.value.length === value.length))
      // Unblocked, the socket may hold up to its 16 KiB high-water mark beyond what the cap counts.
      assert.isBelow(maxBufferedAtStart, maxBufferedBytes + 64 * 1024)
    }).pipe(Effect.scoped))
})

describe("Deadlines", () => {
  it.effect("call timeouts follow the Effect Clock: a TestClock drives them, the earliest first", () =>
    Effect.gen(function*() {
      const arrived: Array<number> = []
      const server = yield* Server.make({
        port: 0,
        handle: (req) => Effect.andThen(Effect.sync(() => arrived.push(Num.decode(req.payload).n)), Effect.never)
      })
      const connection = yield* Connection.make({ host, port: server.port, defaultTimeout: "30 seconds" })
      const long = yield* Effect.forkChild(Effect.flip(connection.call(request(1, "long"))))
      const short = yield* Effect.forkChild(Effect.flip(connection.call(request(2, "short"), { timeout: "5 seconds" })))
      yield* waitUntil("both requests arrive", () => arrived.length === 2)
      yield* TestClock.adjust("4999 millis")
      assert.isUndefined(short.pollUnsafe())
      yield* TestClock.adjust("1 milli")
      const shortError = yield* bounded(Fiber.join(short))
      assert.instanceOf(shortError, CallTimeout)
      assert.strictEqual((shortError as CallTimeout).timeoutMillis, 5000)
      yield* TestClock.adjust("24999 millis")
      assert.isUndefined(long.pollUnsafe())
      assert.strictEqual(yield* connection.inFlight, 1)
      yield* TestClock.adjust("1 milli")
      const longError = yield* bounded(Fiber.join(long))
      assert.instanceOf(longError, CallTimeout)
      assert.deepStrictEqual({ ...(longError as CallTimeout) }, {
        _tag: "CallTimeout",
        address: { type: "Counter", id: "long" },
        tag: "Double",
        timeoutMillis: 30_000
      })
      assert.strictEqual(yield* connection.inFlight, 0)
      assert.strictEqual(yield* connection.status, "connected")
    }).pipe(Effect.scoped))
})

describe("Containment", () => {
  it.live("a handler that throws while starting closes only its connection; the server serves the others", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const server = yield* Server.make({
        port: 0,
        handle: (req) => {
          if (Num.decode(req.payload).n === 13) throw new Error("unlucky")
          return doubler(req)
        }
      })
      const victim = yield* Connection.make({ host, port: server.port, reconnect: Schedule.spaced("10 millis") })
      const other = yield* Connection.make({ host, port: server.port })
      assert.strictEqual(success(yield* bounded(other.call(request(1)))), 2)
      const error = yield* bounded(Effect.flip(victim.call(request(13))))
      assert.instanceOf(error, OutcomeUnknown, "the request was written before the connection was cut")
      assert.strictEqual(success(yield* bounded(other.call(request(2)))), 4)
      // The victim reconnects and is served again.
      const again = yield* bounded(victim.call(request(3)).pipe(Effect.retry(Schedule.spaced("10 millis"))))
      assert.strictEqual(success(again), 6)
      const warning = logs.find((log) => log.message.includes("closing the connection after an error in a request"))
      assert.isDefined(warning)
      assert.strictEqual(warning!.level, "Warn")
      assert.include(String(warning!.annotations.error), "unlucky")
      assert.match(String(warning!.annotations.peer), /^127\.0\.0\.1:\d+$/)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("a reply callback that throws fails only its own call; the connection goes on", () =>
    Effect.gen(function*() {
      const { port } = yield* Server.make({ port: 0, handle: doubler })
      const connection = yield* Connection.make({ host, port })
      const exit = yield* bounded(Effect.exit(connection.call(request(1), undefined, () => {
        throw new Error("bad reply callback")
      })))
      assert.isTrue(Exit.isFailure(exit) && exit.cause.reasons.some((r) => r._tag === "Die" && String(r.defect).includes("bad reply callback")))
      assert.strictEqual(success(yield* bounded(connection.call(request(5)))), 10)
      assert.strictEqual(yield* connection.status, "connected")
    }).pipe(Effect.scoped))

  it.live("a throw while decoding replies closes only that connection (its calls fail with OutcomeUnknown); the process lives on", () => {
    const logs: Array<Captured> = []
    const push = FrameDecoder.prototype.push
    return Effect.gen(function*() {
      // The reply to n = 333 (`{"n":666}`) makes the client's decoder throw, as a bug would.
      yield* Effect.acquireRelease(
        Effect.sync(() => {
          FrameDecoder.prototype.push = function(this: FrameDecoder, chunk: Buffer) {
            if (chunk.includes("\"n\":666")) throw new TypeError("decoder exploded")
            return push.call(this, chunk)
          }
        }),
        () => Effect.sync(() => void (FrameDecoder.prototype.push = push))
      )
      const { port } = yield* Server.make({ port: 0, handle: doubler })
      const connection = yield* Connection.make({ host, port, reconnect: Schedule.spaced("10 millis") })
      const other = yield* Connection.make({ host, port })
      const error = yield* bounded(Effect.flip(connection.call(request(333))))
      assert.instanceOf(error, OutcomeUnknown)
      assert.strictEqual(success(yield* bounded(other.call(request(4)))), 8)
      const again = yield* bounded(connection.call(request(5)).pipe(Effect.retry(Schedule.spaced("10 millis"))))
      assert.strictEqual(success(again), 10)
      const warning = logs.find((log) => log.message.includes("closing the connection after an error in its data callback"))
      assert.isDefined(warning)
      assert.strictEqual(warning!.annotations.peer, `127.0.0.1:${port}`)
      assert.include(String(warning!.annotations.error), "decoder exploded")
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("a reply without a readable request id closes the connection at once: its calls fail with OutcomeUnknown, not a timeout", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      // First connection: answers any request with a 2-byte frame; second: with an oversized
      // frame of an unknown kind; later ones: properly.
      const raw = yield* rawServer((socket, index) => {
        const decoder = new FrameDecoder({
          onFrame: (frame) => {
            const id = frame.readUInt32BE(1)
            if (index === 0) socket.write(encodeFrame(Buffer.from([9, 9])))
            else if (index === 1) socket.write(encodeFrame(Buffer.alloc(4096, 9)))
            else {
              const out = new OutputBuffer()
              writeReply(out, id, doubled(7), 1 << 20)
              socket.write(out.take()!)
            }
          },
          onOversized: () => {}
        })
        socket.on("data", (chunk: Buffer) => decoder.push(chunk))
      })
      const connection = yield* Connection.make({
        host,
        port: raw.port,
        maxFrameBytes: 1024,
        defaultTimeout: "1 minute",
        reconnect: Schedule.spaced("10 millis")
      })
      for (const id of ["garbled", "oversized"]) {
        const error = yield* bounded(Effect.flip(connection.call(request(1, id))))
        assert.instanceOf(error, OutcomeUnknown)
        assert.deepStrictEqual((error as OutcomeUnknown).address, { type: "Counter", id })
        yield* waitFor("reconnected", connection.status, (status) => status === "connected")
      }
      assert.strictEqual(success(yield* bounded(connection.call(request(7)))), 14)
      const warnings = logs.filter((log) => log.message.includes("without a readable request id"))
      assert.strictEqual(warnings.length, 2)
      assert.strictEqual(warnings[0]!.annotations.peer, `127.0.0.1:${raw.port}`)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })
})

describe("Logging", () => {
  it.live("a socket error is logged once, with the peer and the error code", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      // Resets every connection as soon as a request arrives.
      const raw = yield* rawServer((socket) => socket.once("data", () => socket.resetAndDestroy()))
      const connection = yield* Connection.make({ host, port: raw.port, reconnect: Schedule.spaced("1 hour") })
      const error = yield* bounded(Effect.flip(connection.call(request(1))))
      assert.instanceOf(error, OutcomeUnknown)
      const errors = logs.filter((log) => log.message.includes("connection error"))
      assert.strictEqual(errors.length, 1)
      assert.strictEqual(errors[0]!.level, "Warn")
      assert.strictEqual(errors[0]!.annotations.peer, `127.0.0.1:${raw.port}`)
      assert.strictEqual(errors[0]!.annotations.code, "ECONNRESET")
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("the server logs a one-way request that died or failed (nobody else will hear of it)", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const { port } = yield* Server.make({
        port: 0,
        handle: (req) =>
          req.tag === "Die" ?
            Effect.die(new Error("one-way boom")) :
            Effect.succeed({ _tag: "TransportError", error: "MalformedFrame", message: "nope" } as const)
      })
      const connection = yield* Connection.make({ host, port })
      yield* connection.send({ ...request(1), tag: "Die" })
      yield* connection.send({ ...request(2), tag: "Fail" })
      yield* waitUntil("both logged", () => logs.filter((log) => log.message.includes("one-way request")).length === 2)
      const died = logs.find((log) => log.message.includes("one-way request died"))!
      assert.include(String(died.annotations.cause), "one-way boom")
      assert.strictEqual(died.annotations.tag, "Die")
      const failed = logs.find((log) => log.message.includes("one-way request failed"))!
      assert.strictEqual(failed.annotations.outcome, "TransportError")
    }).pipe(Effect.scoped, capturingLogs(logs))
  })
})

describe("Server: handlers and drain", () => {
  it.live("a peer closing its socket does not interrupt running handlers; closing the server's scope does", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const started: Array<string> = []
      const ended: Array<string> = []
      const serverScope = yield* Scope.make()
      const server = yield* Server.make({
        port: 0,
        handle: (req) =>
          Effect.gen(function*() {
            started.push(req.target.id)
            yield* req.target.id === "forever" ? Effect.never : Deferred.await(gate)
            ended.push(`${req.target.id} finished`)
            return doubled(1)
          }).pipe(Effect.onInterrupt(() => Effect.sync(() => ended.push(`${req.target.id} interrupted`))))
      }).pipe(Scope.provide(serverScope))
      const connectionScope = yield* Scope.make()
      const connection = yield* Connection.make({ host, port: server.port }).pipe(Scope.provide(connectionScope))
      const call = yield* Effect.forkChild(Effect.flip(connection.call(request(1, "a"))))
      yield* waitUntil("the handler started", () => started.length === 1)
      yield* Scope.close(connectionScope, Exit.void)
      assert.instanceOf(yield* bounded(Fiber.join(call)), OutcomeUnknown)
      yield* waitFor("the server sees the socket closed", server.connections, (n) => n === 0)
      assert.deepStrictEqual(ended, [])
      assert.strictEqual(yield* server.running, 1)
      yield* Deferred.succeed(gate, undefined)
      yield* waitFor("the handler finished", server.running, (n) => n === 0)
      assert.deepStrictEqual(ended, ["a finished"])
      // A handler still running when the server's scope closes is interrupted, and awaited.
      const other = yield* Connection.make({ host, port: server.port })
      const forever = yield* Effect.forkChild(Effect.flip(other.call(request(2, "forever"))))
      yield* waitUntil("the second handler started", () => started.length === 2)
      yield* bounded(Scope.close(serverScope, Exit.void))
      assert.deepStrictEqual(ended, ["a finished", "forever interrupted"])
      assert.instanceOf(yield* bounded(Fiber.join(forever)), OutcomeUnknown)
    }).pipe(Effect.scoped))

  it.live("drain: later requests are answered Draining and new connections refused; it ends once running handlers replied", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const started: Array<number> = []
      const server = yield* Server.make({
        port: 0,
        handle: (req) =>
          Effect.gen(function*() {
            const n = Num.decode(req.payload).n
            started.push(n)
            yield* Deferred.await(gate)
            return doubled(n)
          })
      })
      const connection = yield* Connection.make({ host, port: server.port })
      const first = yield* Effect.forkChild(connection.call(request(1)))
      yield* waitUntil("the first handler started", () => started.length === 1)
      const drain = yield* Effect.forkChild(server.drain("10 seconds"), { startImmediately: true })
      // A request after the drain began is not run: a Draining transport error (not delivered).
      const late = yield* bounded(connection.call(request(2)))
      assert.deepStrictEqual(late, {
        _tag: "TransportError",
        error: "Draining",
        message: "the server is draining: the request was not run"
      })
      assert.deepStrictEqual(started, [1])
      // No new connections.
      const refused = yield* bounded(Effect.callback<string>((resume) => {
        const socket = Net.connect({ host, port: server.port })
        socket.once("connect", () => {
          socket.destroy()
          resume(Effect.succeed("connected"))
        })
        socket.once("error", (error: Error & { code?: string }) => resume(Effect.succeed(error.code ?? "error")))
      }))
      assert.strictEqual(refused, "ECONNREFUSED")
      assert.isUndefined(drain.pollUnsafe(), "the running handler has not replied yet")
      yield* Deferred.succeed(gate, undefined)
      yield* bounded(Fiber.join(drain))
      // The drain ended after the reply was written: the caller has it (nothing was cut).
      assert.strictEqual(success(yield* bounded(Fiber.join(first))), 2)
      assert.strictEqual(yield* server.running, 0)
    }).pipe(Effect.scoped))

  it.effect("drain gives up after its timeout (on the Effect Clock) when a handler does not finish", () =>
    Effect.gen(function*() {
      const server = yield* Server.make({ port: 0, handle: () => Effect.never })
      const connection = yield* Connection.make({ host, port: server.port })
      yield* Effect.forkChild(connection.call(request(1)))
      yield* waitFor("the handler runs", server.running, (n) => n === 1)
      const drain = yield* Effect.forkChild(server.drain("2 seconds"), { startImmediately: true })
      yield* TestClock.adjust("1999 millis")
      assert.isUndefined(drain.pollUnsafe())
      yield* TestClock.adjust("1 milli")
      yield* bounded(Fiber.join(drain))
      assert.strictEqual(yield* server.running, 1)
    }).pipe(Effect.scoped))
})

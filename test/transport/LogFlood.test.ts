/**
 * What a peer sends cannot flood the logs: the transport's warnings are rate limited per
 * peer host (`LogLimiter`), with one summary line per host and window for the rest. Unit
 * tests of the limiter on an injected clock, then floods of garbage against a real server
 * and from a misbehaving peer against a connection, on 127.0.0.1; and the cap on one host's
 * open connections.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Crypto from "node:crypto"
import * as Net from "node:net"
import { Effect, Exit, Schedule, Schema, Scope } from "effect"
import { type Captured, capturingLogs } from "../support/capturedLogs.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import { payloadCodec, type RequestEnvelope, type ReplyOutcome } from "../../src/Transport/Envelope.ts"
import { encodeFrame } from "../../src/Transport/Frame.ts"
import { LogLimiter } from "../../src/Transport/internal/LogLimiter.ts"
import { rawConnect, serverHandshake } from "../support/rawPeer.ts"
import * as Server from "../../src/Transport/Server.ts"

const host = "127.0.0.1"
const Num = payloadCodec(Schema.Struct({ n: Schema.Number }))

const doubler = (req: RequestEnvelope): Effect.Effect<ReplyOutcome> =>
  Effect.sync(() => ({ _tag: "Success", value: Num.encode({ n: Num.decode(req.payload).n * 2 }) }))

const request = (n: number): Connection.CallRequest => ({
  target: { type: "Counter", id: "1" },
  tag: "Double",
  payload: Num.encode({ n }),
  context: { correlationId: "c-1", metadata: {} },
  chain: []
})


const summaryPattern = /^transport: (\d+) more warnings from (\S+(?: hosts)?) in the last (\d+) s \(suppressed\), most often (".*")$/

/** The suppressed counts of the summary lines in `lines`. */
const summaries = (lines: ReadonlyArray<{ readonly message: string }>) =>
  lines.flatMap((line) => {
    const match = summaryPattern.exec(line.message)
    return match === null ? [] : [{ count: Number(match[1]), key: match[2]!, seconds: Number(match[3]), top: JSON.parse(match[4]!) as string }]
  })

/** A limiter on a clock the test moves, with the timer it would arm. */
const harness = (options: { readonly maxKeys?: number } = {}) => {
  const lines: Array<{ message: string; annotations: Record<string, unknown> }> = []
  const clock = { now: 0 }
  const timers: Array<{ run: () => void; millis: number; cancelled: boolean }> = []
  const limiter = new LogLimiter((message, annotations) => void lines.push({ message, annotations }), {
    now: () => clock.now,
    maxKeys: options.maxKeys,
    schedule: (run, millis) => {
      const timer = { run, millis, cancelled: false }
      timers.push(timer)
      return () => void (timer.cancelled = true)
    }
  })
  return { lines, clock, timers, limiter }
}

describe("LogLimiter", () => {
  it("logs the first 5 warnings of a host per 10 s, counts the rest, and reports them once the window ends", () => {
    const { clock, limiter, lines, timers } = harness()
    for (let i = 0; i < 12; i++) limiter.warn("10.0.0.1", i % 3 === 0 ? "transport: connection error" : "transport: dropped", { i })
    assert.deepStrictEqual(lines.map((line) => line.annotations.i), [0, 1, 2, 3, 4], "the first five, as they are")
    assert.strictEqual(limiter.pending, 7)
    assert.strictEqual(timers.length, 1, "one timer, armed by the first suppression")
    assert.strictEqual(timers[0]!.millis, 10_000)
    // Another host has its own budget.
    limiter.warn("10.0.0.2", "transport: dropped", { i: "other" })
    assert.strictEqual(lines.length, 6)
    // Still inside the window: nothing more.
    clock.now = 9_999
    limiter.warn("10.0.0.1", "transport: dropped", { i: 12 })
    assert.strictEqual(lines.length, 6)
    // The window ends: the next warning reports it, then starts a new window.
    clock.now = 10_000
    limiter.warn("10.0.0.1", "transport: dropped", { i: 13 })
    const [summary] = summaries(lines.slice(6))
    assert.deepStrictEqual(summary, { count: 8, key: "10.0.0.1", seconds: 10, top: "transport: dropped" })
    assert.deepStrictEqual(lines[6]!.annotations, { peer: "10.0.0.1", suppressed: 8, message: "transport: dropped" })
    assert.strictEqual(lines[7]!.annotations.i, 13, "a new window: logged as it is")
    assert.strictEqual(lines.length, 8)
    assert.strictEqual(limiter.pending, 0)
    // The timer armed earlier finds nothing left to report, and arms no other.
    timers[0]!.run()
    assert.strictEqual(lines.length, 8)
    assert.strictEqual(timers.length, 1)
  })

  it("a timer reports a window's count when no further warning comes; close reports what waits", () => {
    const { clock, limiter, lines, timers } = harness()
    for (let i = 0; i < 8; i++) limiter.warn("10.0.0.1", "transport: dropped", {})
    clock.now = 4_000
    for (let i = 0; i < 9; i++) limiter.warn("10.0.0.2", "transport: dropped", {})
    assert.strictEqual(timers.length, 1)
    clock.now = 10_000
    timers[0]!.run()
    assert.deepStrictEqual(summaries(lines).map((s) => [s.key, s.count]), [["10.0.0.1", 3]])
    assert.strictEqual(timers.length, 2, "re-armed for the other host's window")
    assert.strictEqual(timers[1]!.millis, 4_000)
    // Closing before that window ends reports it at once (with the time it covered).
    clock.now = 12_000
    limiter.close()
    assert.deepStrictEqual(summaries(lines).map((s) => [s.key, s.count, s.seconds]), [["10.0.0.1", 3, 10], ["10.0.0.2", 4, 8]])
    assert.isTrue(timers[1]!.cancelled)
    assert.strictEqual(limiter.windows.size, 0)
  })

  it("tracks at most maxKeys hosts; new hosts beyond share one global bucket; ended windows are forgotten", () => {
    const { clock, limiter, lines } = harness({ maxKeys: 3 })
    for (let h = 0; h < 3; h++) limiter.warn(`10.0.0.${h}`, "transport: dropped", {})
    assert.strictEqual(limiter.windows.size, 3)
    // 100 more hosts, each once: the global bucket logs 5 and counts 95.
    for (let h = 3; h < 103; h++) limiter.warn(`10.0.1.${h}`, "transport: dropped", {})
    assert.strictEqual(limiter.windows.size, 3, "the map does not grow")
    assert.strictEqual(lines.length, 3 + 5)
    assert.strictEqual(limiter.pending, 95)
    // Once the windows end, the tracked hosts are forgotten and the global count reported.
    clock.now = 10_000
    limiter.warn("10.0.2.1", "transport: dropped", {})
    assert.deepStrictEqual(summaries(lines).map((s) => [s.key, s.count]), [["other hosts", 95]])
    assert.deepStrictEqual(Array.from(limiter.windows.keys()), ["10.0.2.1"], "a new host is tracked again")
    // Under a flood from endlessly many hosts, memory stays at maxKeys windows + the bucket.
    for (let h = 0; h < 10_000; h++) limiter.warn(`10.1.${h >> 8}.${h & 255}`, "transport: dropped", {})
    assert.strictEqual(limiter.windows.size, 3)
  })
})

/**
 * Opens a raw connection, sends `bytes` (after the handshake, or instead of it), and waits
 * until the server closes it.
 */
const sendGarbage = (port: number, bytes: Buffer, handshake = true) =>
  Effect.callback<void>((resume) => {
    let socket: Net.Socket | undefined
    const send = (connected: Net.Socket) => {
      socket = connected
      connected.on("error", () => {}) // the server's destroy may reset us
      connected.once("close", () => resume(Effect.void))
      connected.resume() // reads what the server says (a refusal), so that its close is seen
      connected.write(bytes)
    }
    if (handshake) {
      rawConnect(port, { host }).then(send, () => resume(Effect.die("the handshake failed")))
    } else {
      const raw = Net.connect({ host, port }, () => send(raw))
      raw.on("error", () => {})
    }
    return Effect.sync(() => socket?.destroy())
  })

/** A frame header announcing ~4 GiB, then random bytes that are not a request (kind ≠ 1). */
const garbage = () => {
  const bytes = Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xf0]), Crypto.randomBytes(64 + Math.floor(Math.random() * 512))])
  bytes[4] = 0xee
  return bytes
}

const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die("bounded wait exceeded") }))

describe("a flood of garbage", () => {
  it.live("600 connections from one host, each dropped: at most 5 warning lines, and one summary with the rest", () => {
    const logs: Array<Captured> = []
    const connections = 600
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Server.make({ port: 0, handle: doubler }).pipe(Scope.provide(scope))
      const started = Date.now()
      yield* Effect.forEach(
        Array.from({ length: connections }, () => garbage()),
        (bytes) => bounded(sendGarbage(server.port, bytes)),
        { concurrency: 50, discard: true }
      )
      const floodMillis = Date.now() - started
      const warnings = logs.filter((log) => log.level === "Warn")
      assert.isAtMost(warnings.length, 5, `warning lines during a flood of ${connections} connections`)
      assert.deepStrictEqual(
        warnings.map((w) => w.message),
        Array(5).fill("transport: closing connection after an unanswerable frame"),
        "the first ones are logged as before"
      )
      assert.match(String(warnings[0]!.annotations.peer), /^127\.0\.0\.1:\d+$/)
      // A well-behaved peer from the same host is still served.
      const client = yield* Connection.make({ host, port: server.port })
      const reply = yield* bounded(client.call(request(21)))
      assert.strictEqual(reply._tag, "Success")
      assert.strictEqual(Num.decode((reply as { value: Uint8Array }).value).n, 42)
      // Closing the server reports the count still waiting: the lines add up to the drops.
      yield* Scope.close(scope, Exit.void)
      const all = logs.filter((log) => log.level === "Warn")
      const reported = summaries(all)
      assert.strictEqual(reported.length, 1, "one summary line")
      assert.strictEqual(reported[0]!.key, host)
      assert.strictEqual(reported[0]!.top, "transport: closing connection after an unanswerable frame")
      assert.strictEqual(all.length - reported.length + reported[0]!.count, connections, "logged + suppressed = drops")
      assert.strictEqual(all.length, 6)
      console.log(`flood: ${connections} connections in ${floodMillis} ms -> ${all.length} warning lines (${reported[0]!.count} suppressed)`)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("200 connections that send garbage instead of a handshake: each refused and closed, at most 5 lines + one summary", () => {
    const logs: Array<Captured> = []
    const connections = 200
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const server = yield* Server.make({ port: 0, handle: doubler }).pipe(Scope.provide(scope))
      yield* Effect.forEach(
        Array.from({ length: connections }, () => garbage()),
        (bytes) => bounded(sendGarbage(server.port, bytes, false)),
        { concurrency: 50, discard: true }
      )
      const warnings = logs.filter((log) => log.level === "Warn")
      assert.deepStrictEqual(warnings.map((w) => w.message), Array(5).fill("transport: handshake refused: not a Quark handshake"))
      // A well-behaved peer from the same host is still served.
      const client = yield* Connection.make({ host, port: server.port })
      assert.strictEqual(Num.decode(((yield* bounded(client.call(request(4)))) as { value: Uint8Array }).value).n, 8)
      yield* Scope.close(scope, Exit.void)
      const all = logs.filter((log) => log.level === "Warn")
      const reported = summaries(all)
      assert.strictEqual(reported.length, 1, "one summary line")
      assert.strictEqual(all.length - 1 + reported[0]!.count, connections, "logged + suppressed = refusals")
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("a host past maxConnectionsPerHost: its next connection is closed at once; one closing makes room again", () => {
    const logs: Array<Captured> = []
    const limit = 20
    return Effect.gen(function*() {
      const server = yield* Server.make({ port: 0, handle: doubler, maxConnectionsPerHost: limit })
      // `limit` silent connections, held open.
      const held = yield* Effect.acquireRelease(
        Effect.forEach(Array.from({ length: limit }), () =>
          Effect.callback<Net.Socket>((resume) => {
            const socket = Net.connect({ host, port: server.port }, () => resume(Effect.succeed(socket)))
            socket.on("error", () => {})
          })),
        (sockets) => Effect.sync(() => sockets.forEach((socket) => socket.destroy()))
      )
      yield* bounded(Effect.flatMap(server.connections, (n) => n === limit ? Effect.void : Effect.fail("not yet")).pipe(Effect.retry(Schedule.spaced("5 millis"))))
      // One more from the same host is closed by the server before anything is read.
      const refused = yield* bounded(Effect.callback<boolean>((resume) => {
        const socket = Net.connect({ host, port: server.port })
        socket.on("error", () => {})
        socket.once("close", () => resume(Effect.succeed(true)))
      }))
      assert.isTrue(refused)
      assert.strictEqual(yield* server.connections, limit)
      assert.include(logs.map((log) => log.message), "transport: refusing a connection: its host has reached maxConnectionsPerHost")
      // One of them leaves: a well-behaved connection is served again.
      held[0]!.destroy()
      yield* bounded(Effect.flatMap(server.connections, (n) => n < limit ? Effect.void : Effect.fail("not yet")).pipe(Effect.retry(Schedule.spaced("5 millis"))))
      const client = yield* Connection.make({ host, port: server.port })
      const reply = yield* bounded(client.call(request(5)))
      assert.strictEqual(Num.decode((reply as { value: Uint8Array }).value).n, 10)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("a peer that answers every connection with garbage: the reconnecting connection logs at most 5 lines + a summary", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      let accepted = 0
      const raw = yield* Effect.acquireRelease(
        Effect.callback<{ server: Net.Server; port: number; sockets: Array<Net.Socket> }>((resume) => {
          const sockets: Array<Net.Socket> = []
          const server = Net.createServer((socket) => {
            accepted++
            sockets.push(socket)
            socket.on("error", () => {})
            // A reply without a readable request id, once the handshake is done.
            serverHandshake(socket, () => socket.write(encodeFrame(Buffer.from([9, 9]))))
          })
          server.listen({ host, port: 0 }, () => resume(Effect.succeed({ server, port: (server.address() as Net.AddressInfo).port, sockets })))
        }),
        (raw) =>
          Effect.callback<void>((resume) => {
            for (const socket of raw.sockets) socket.destroy()
            raw.server.close(() => resume(Effect.void))
          })
      )
      const scope = yield* Scope.make()
      yield* Connection.make({ host, port: raw.port, reconnect: Schedule.spaced("1 millis") }).pipe(Scope.provide(scope))
      // Bounded poll: until the peer has been reconnected to 101 times (so 100 were dropped after their garbage).
      yield* bounded(Effect.suspend(() => (accepted > 100 ? Effect.void : Effect.fail("not yet"))).pipe(Effect.retry(Schedule.spaced("5 millis"))))
      yield* Scope.close(scope, Exit.void)
      const warnings = logs.filter((log) => log.level === "Warn")
      const reported = summaries(warnings)
      assert.isAtMost(warnings.length, 6, `${warnings.length} lines for ${accepted} reconnections`)
      assert.strictEqual(reported.length, 1)
      assert.strictEqual(reported[0]!.key, host)
      assert.isAtLeast(warnings.length - 1 + reported[0]!.count, 100)
      assert.include(warnings[0]!.message, "without a readable request id")
      console.log(`reconnecting: ${accepted} connections -> ${warnings.length} warning lines (${reported[0]!.count} suppressed)`)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })
})

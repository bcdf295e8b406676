/**
 * The transport's handshake: cluster id, protocol version, role and cluster secret; what a
 * server tells its handler of the peer (`PeerInfo`); the first-frame and idle timeouts,
 * driven by the `TestClock`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Net from "node:net"
import { Deferred, Effect, Fiber, Redacted, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { ActorUnavailable } from "../../src/Actor/ActorError.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import { type RequestEnvelope, writeReply } from "../../src/Transport/Envelope.ts"
import { FrameDecoder, OutputBuffer } from "../../src/Transport/Frame.ts"
import * as Handshake from "../../src/Transport/internal/Handshake.ts"
import type { PeerInfo } from "../../src/Transport/PeerInfo.ts"
import * as Server from "../../src/Transport/Server.ts"
import { type Captured, capturingLogs } from "../support/capturedLogs.ts"
import { bounded, doubler, Num, request, success } from "../support/doubler.ts"
import { serverHandshake } from "../support/rawPeer.ts"

const host = "127.0.0.1"

/** A server that doubles and records every request with the peer it came from. */
const recordingServer = (options: Partial<Server.ServerOptions<never>> = {}) =>
  Effect.gen(function*() {
    const seen: Array<PeerInfo> = []
    const server = yield* Server.make({
      port: 0,
      ...options,
      handle: (req: RequestEnvelope, peer: PeerInfo) => Effect.andThen(Effect.sync(() => seen.push(peer)), doubler(req))
    })
    return { server, seen }
  })

/** Waits (on real time, whatever the test's clock) until `ok()`. */
const until = (label: string, ok: () => boolean) =>
  Effect.promise(() =>
    new Promise<void>((resolve, reject) => {
      const deadline = Date.now() + 5_000
      const poll = () => ok() ? resolve() : Date.now() > deadline ? reject(new Error(`timed out: ${label}`)) : setTimeout(poll, 5)
      poll()
    })
  )

const messages = (logs: ReadonlyArray<Captured>) => logs.filter((log) => log.level === "Warn").map((log) => log.message)

describe("handshake: who may connect", () => {
  it.live("a peer of another cluster id is refused with one log line; nothing is decoded; its calls fail typed", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const { seen, server } = yield* recordingServer({ clusterId: "blue" })
      const connection = yield* Connection.make({ host, port: server.port, clusterId: "green", reconnect: Schedule.spaced("1 hour") })
      const error = yield* bounded(Effect.flip(connection.call(request(1))))
      assert.instanceOf(error, ActorUnavailable)
      assert.include((error as ActorUnavailable).reason, `this silo belongs to cluster "blue", not "green"`)
      assert.include((error as ActorUnavailable).reason, "configuration mismatch")
      // Later calls fail at once with the same reason, until an attempt succeeds.
      const again = yield* Effect.flip(connection.call(request(2)))
      assert.include((again as ActorUnavailable).reason, "refused")
      assert.strictEqual(seen.length, 0, "nothing decoded")
      const refusals = messages(logs).filter((m) => m === "transport: handshake refused: cluster id mismatch")
      assert.strictEqual(refusals.length, 1)
      const log = logs.find((l) => l.message === "transport: handshake refused: cluster id mismatch")!
      assert.deepInclude(log.annotations, { theirs: "green", ours: "blue" })
      assert.strictEqual(messages(logs).filter((m) => m.includes("the peer refused the connection")).length, 1)
      // The same cluster id is served.
      const good = yield* Connection.make({ host, port: server.port, clusterId: "blue" })
      assert.strictEqual(success(yield* bounded(good.call(request(4)))), 8)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("cluster secret: a silo must prove it (wrong secret refused, right one served); a client needs none; never logged", () => {
    const logs: Array<Captured> = []
    const secret = "correct horse battery staple"
    return Effect.gen(function*() {
      const { seen, server } = yield* recordingServer({ clusterSecret: Redacted.make(secret), siloId: () => "127.0.0.1:1@42" })
      const wrong = yield* Connection.make({
        host,
        port: server.port,
        role: "silo",
        siloId: () => "127.0.0.1:2@1",
        clusterSecret: "wrong horse",
        reconnect: Schedule.spaced("1 hour")
      })
      const error = yield* bounded(Effect.flip(wrong.call(request(1))))
      assert.instanceOf(error, ActorUnavailable)
      assert.include((error as ActorUnavailable).reason, "must prove the cluster secret")
      assert.include(messages(logs), "transport: handshake refused: wrong cluster secret")
      // No secret at all, claiming to be a silo: refused the same way.
      const none = yield* Connection.make({ host, port: server.port, role: "silo", reconnect: Schedule.spaced("1 hour") })
      assert.instanceOf(yield* bounded(Effect.flip(none.call(request(1)))), ActorUnavailable)
      assert.strictEqual(seen.length, 0)
      // The right secret: served, and the handler knows a silo called, and which.
      const right = yield* Connection.make({ host, port: server.port, role: "silo", siloId: () => "127.0.0.1:2@1", clusterSecret: secret })
      assert.strictEqual(success(yield* bounded(right.call(request(3)))), 6)
      assert.deepStrictEqual(seen[0], { address: seen[0]!.address, role: "silo", siloId: "127.0.0.1:2@1" })
      assert.deepStrictEqual(yield* right.server, { siloId: "127.0.0.1:1@42", generation: 42 })
      // A client: no secret needed; its role says so.
      const client = yield* Connection.make({ host, port: server.port })
      assert.strictEqual(success(yield* bounded(client.call(request(5)))), 10)
      assert.strictEqual(seen[1]!.role, "client")
      assert.isUndefined(seen[1]!.siloId)
      assert.match(seen[1]!.address, /^127\.0\.0\.1:\d+$/)
      const text = JSON.stringify(logs)
      assert.notInclude(text, secret)
      assert.notInclude(text, "wrong horse")
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("a silo with a secret refuses a server that cannot prove it", () =>
    Effect.gen(function*() {
      const { seen, server } = yield* recordingServer() // no secret
      const connection = yield* Connection.make({ host, port: server.port, role: "silo", clusterSecret: "s", reconnect: Schedule.spaced("1 hour") })
      const error = yield* bounded(Effect.flip(connection.call(request(1))))
      assert.include((error as ActorUnavailable).reason, "the peer did not prove the cluster secret")
      assert.strictEqual(seen.length, 0)
    }).pipe(Effect.scoped))

  it.live("protocol version mismatch: refused by the server (logged), and by a connection whose server speaks another", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const { seen, server } = yield* recordingServer()
      // A peer of version 2 (by hand), with a request right behind its hello.
      const frames = yield* bounded(Effect.callback<Array<Buffer>>((resume) => {
        const got: Array<Buffer> = []
        const decoder = new FrameDecoder({ onFrame: (f) => void got.push(Buffer.from(f)), onOversized: () => {} })
        const socket = Net.connect({ host, port: server.port })
        socket.on("data", (chunk: Buffer) => decoder.push(chunk))
        socket.on("error", () => {})
        socket.once("close", () => resume(Effect.succeed(got)))
        socket.write(Handshake.encode(Handshake.kindHello, { v: 2, cluster: "quark", role: "client", nonce: "AA==" }))
      }))
      assert.deepStrictEqual(frames.map((f) => f[0]), [Handshake.kindChallenge, Handshake.kindRefuse])
      assert.include(frames[1]!.toString("utf8", 1), "protocol version 2 is not supported")
      assert.include(messages(logs), "transport: handshake refused: protocol version mismatch")
      assert.strictEqual(seen.length, 0)
      // A server of version 99 (by hand): the connection refuses it.
      const raw = yield* Effect.acquireRelease(
        Effect.callback<Net.Server>((resume) => {
          const s = Net.createServer((socket) => {
            socket.on("error", () => {})
            socket.write(Handshake.encode(Handshake.kindChallenge, { v: 99, nonce: "AA==" }))
          })
          s.listen({ host, port: 0 }, () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.sync(() => s.close())
      )
      const connection = yield* Connection.make({ host, port: (raw.address() as Net.AddressInfo).port, reconnect: Schedule.spaced("1 hour") })
      const error = yield* bounded(Effect.flip(connection.call(request(1))))
      assert.include((error as ActorUnavailable).reason, "the peer speaks protocol version 99; this one speaks 1")
    }).pipe(Effect.scoped, capturingLogs(logs))
  })
})

describe("handshake: timeouts", () => {
  it.effect("a socket that sends nothing is closed after firstFrameTimeout (TestClock), and logged", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const { server } = yield* recordingServer({ firstFrameTimeout: "2 seconds" })
      const challenged = yield* Deferred.make<void>()
      let closed = false
      const socket = Net.connect({ host, port: server.port })
      socket.on("error", () => {})
      socket.once("data", () => Deferred.doneUnsafe(challenged, Effect.void)) // the server has it: it sent its challenge
      socket.once("close", () => (closed = true))
      yield* Deferred.await(challenged)
      yield* TestClock.adjust("1500 millis")
      yield* until("a tick on the event loop", () => true)
      assert.isFalse(closed, "not before the timeout")
      yield* TestClock.adjust("1 second")
      yield* until("the server closed the silent socket", () => closed)
      assert.include(messages(logs), "transport: closing a connection without a handshake within firstFrameTimeout")
      assert.strictEqual(yield* server.connections, 0)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.effect("an idle client connection is closed with goAway; the client stays idle (no reconnect loop) and reconnects on its next call", () =>
    Effect.gen(function*() {
      const { server } = yield* recordingServer({ idleTimeout: "1 minute" })
      const client = yield* Connection.make({ host, port: server.port })
      const silo = yield* Connection.make({ host, port: server.port, role: "silo" })
      assert.strictEqual(success(yield* client.call(request(1))), 2)
      assert.strictEqual(success(yield* silo.call(request(1))), 2)
      assert.strictEqual(yield* server.connections, 2)
      yield* TestClock.adjust("30 seconds")
      assert.strictEqual(yield* server.connections, 2, "not idle long enough yet")
      yield* TestClock.adjust("2 minutes")
      yield* until("the client's connection went away", () => Effect.runSync(server.connections) === 1)
      yield* until("the client is idle", () => Effect.runSync(client.status) === "idle")
      // Time passes: the idle client does not reconnect by itself; the silo peer was never closed.
      yield* TestClock.adjust("10 minutes")
      yield* until("a tick on the event loop", () => true)
      assert.strictEqual(yield* client.status, "idle")
      assert.strictEqual(yield* silo.status, "connected")
      assert.strictEqual(yield* server.connections, 1)
      // The next call reconnects and is served.
      assert.strictEqual(success(yield* client.call(request(21))), 42)
      assert.strictEqual(yield* server.connections, 2)
    }).pipe(Effect.scoped))

  it.live("calls that cross a goAway are sent again on a new connection, not lost", () =>
    Effect.gen(function*() {
      // A server (by hand) whose first connection answers the first request with goAway,
      // as a real one does when it went idle while the request was on the wire.
      const arrivals: Array<number> = []
      const raw = yield* Effect.acquireRelease(
        Effect.callback<Net.Server>((resume) => {
          let connections = 0
          const s = Net.createServer((socket) => {
            const index = connections++
            socket.on("error", () => {})
            serverHandshake(socket, () => {
              const decoder = new FrameDecoder({
                onFrame: (frame) => {
                  arrivals.push(index)
                  const id = frame.readUInt32BE(1)
                  if (index === 0) return void socket.end(Handshake.goAwayFrame)
                  const out = new OutputBuffer()
                  writeReply(out, id, { _tag: "Success", value: Num.encode({ n: 10 }) }, 1 << 20)
                  socket.write(out.take()!)
                },
                onOversized: () => {}
              })
              socket.on("data", (chunk: Buffer) => decoder.push(chunk))
            })
          })
          s.listen({ host, port: 0 }, () => resume(Effect.succeed(s)))
        }),
        (s) => Effect.sync(() => s.close())
      )
      const connection = yield* Connection.make({ host, port: (raw.address() as Net.AddressInfo).port })
      const call = yield* Effect.forkChild(connection.call(request(5)))
      const outcome = yield* bounded(Fiber.join(call))
      assert.deepStrictEqual(arrivals, [0, 1], "sent on the first connection, then again on the second")
      assert.strictEqual(success(outcome), 10)
    }).pipe(Effect.scoped))
})

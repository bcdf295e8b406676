/**
 * The per-peer connections of a silo or client: a connection to a silo that is no member
 * (it left, or a directory entry or a handoff named it) lives while calls on it wait for
 * replies, and is closed once idle; one to a silo declared dead is closed at once.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Logger } from "effect"
import { Peers } from "../../src/Cluster/internal/Peers.ts"
import * as Server from "../../src/Transport/Server.ts"

describe("peers", () => {
  it.live("non-members' connections close when idle; dead members' at once", () =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      const server = yield* Server.make({
        port: 0,
        handle: () => Effect.as(Deferred.await(gate), { _tag: "Success" as const, value: new Uint8Array(0) })
      })
      const peers = new Peers({})
      yield* Effect.addFinalizer(() => peers.close)
      const left = `127.0.0.1:${server.port}@1`
      const dead = `127.0.0.1:${server.port}@2`
      const request = { target: { type: "T", id: "x" }, tag: "M", payload: new Uint8Array(0), context: { correlationId: "", metadata: {} }, chain: [] }
      const waiting = yield* Effect.forkChild(peers.get(left).call(request))
      yield* Effect.forkChild(peers.get(dead).call(request))
      while ((yield* peers.get(left).inFlight) === 0) yield* Effect.sleep("5 millis")
      // Neither is a member any more; `dead` was declared dead.
      yield* peers.retain(new Set(), new Set([dead]))
      assert.deepStrictEqual(peers.ids, [left], "the dead member's connection closed at once; the other waits for its reply")
      yield* peers.sweep
      assert.deepStrictEqual(peers.ids, [left], "still busy")
      yield* Deferred.succeed(gate, undefined)
      const reply = yield* Fiber.join(waiting)
      assert.strictEqual(reply._tag, "Success")
      yield* peers.sweep
      assert.deepStrictEqual(peers.ids, [], "closed once idle")
    }).pipe(Effect.scoped))
})

describe("peers' logs", () => {
  it.live("what a connection logs goes to the loggers of the program that made the peers", () =>
    Effect.gen(function*() {
      const seen = yield* Deferred.make<string>()
      const recording = Logger.make((options) => {
        const message = String(options.message)
        if (message.includes("cannot connect")) Deferred.doneUnsafe(seen, Exit.succeed(message))
      })
      // A port nothing listens on: a server opened, then closed.
      const closed = yield* Effect.scoped(Effect.map(
        Server.make({ port: 0, handle: () => Effect.succeed({ _tag: "Success" as const, value: new Uint8Array(0) }) }),
        (server) => server.port
      ))
      const context = yield* Effect.context<never>().pipe(Effect.provide(Logger.layer([recording])))
      const peers = new Peers({ context })
      yield* Effect.addFinalizer(() => peers.close)
      peers.get(`127.0.0.1:${closed}@1`)
      assert.include(yield* Deferred.await(seen), "transport: cannot connect")
    }).pipe(Effect.scoped))
})

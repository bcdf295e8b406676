/**
 * Asks redirected because their activation moved to another silo keep their request
 * context (correlation id, metadata) and call chain. Two silos in one process: the first
 * gets a stand-in remote router that, once the address no longer belongs there, sends calls
 * to the second the way the real one does (`RemoteRouter.request` reads the context and
 * chain from the asker's fiber; the receiver runs the call under a `RemoteFrame`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Latch, Layer, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import type { ActorAddress } from "../src/Actor/ActorAddress.ts"
import type { RemoteRouting } from "../src/Actor/internal/RemoteRouting.ts"
import { messageEntry } from "../src/Actor/internal/HostedType.ts"
import { chainOf, CurrentTurn, emptyMetadata, RemoteFrame } from "../src/Actor/internal/Turn.ts"
import { Actor, RequestContext, Silo } from "../src/index.ts"

const Seen = Schema.Struct({
  correlationId: Schema.String,
  metadata: Schema.Record(Schema.String, Schema.String)
})
/** What the handler sees of the call's request context. */
const Whoami = Rpc.make("Whoami", { success: Seen })
/** Waits for the test's gate. */
const Hold = Rpc.make("Hold")
const Mover = Actor.make("Mover", [Whoami, Hold])

/** Asks Mover "m-1" from inside its own turn, so the ask carries a chain. */
const Relay = Rpc.make("Relay", { success: Seen })
const Front = Actor.make("Front", [Relay])

const implementations = (gate: Latch.Latch, holding: Latch.Latch) =>
  Layer.mergeAll(
    Mover.toLayer(Effect.succeed(Mover.of({
      Whoami: () =>
        Effect.map(RequestContext.current, (context) => ({
          correlationId: context.correlationId,
          metadata: { ...context.metadata }
        })),
      Hold: () => Effect.andThen(holding.open, gate.await)
    }))),
    Front.toLayer(Effect.succeed(Front.of({
      Relay: () => Effect.orDie(Effect.flatMap(Mover.ref("m-1"), (mover) => mover.Whoami()))
    })))
  )

interface Envelope {
  readonly correlationId: string
  readonly metadata: Readonly<Record<string, string>>
  readonly chain: ReadonlyArray<ActorAddress>
}

/**
 * Keeps every address on this silo until `moved` is set; then sends Mover calls to
 * `target`, encoding what the real remote router encodes, read from the asker's fiber.
 */
class StandIn implements RemoteRouting {
  moved = false
  readonly sent: Array<Envelope> = []
  readonly target: Silo.SiloShape
  constructor(target: Silo.SiloShape) {
    this.target = target
  }

  ask: RemoteRouting["ask"] = (fiber, slot, id, info, payload) => {
    if (!this.moved || slot.name !== "Mover") return undefined
    const outer = fiber.getRef(CurrentTurn)
    const envelope: Envelope = outer === undefined ?
      { correlationId: "", metadata: emptyMetadata, chain: [] } :
      { correlationId: String(outer.correlation), metadata: outer.metadata, chain: chainOf(outer) }
    this.sent.push(envelope)
    const router = this.target.router
    const frame = new RemoteFrame(envelope.correlationId, envelope.metadata, envelope.chain)
    return router.askLocal(router.slots.get(slot.name)!, id, info, payload, undefined, frame)
  }
  tell: RemoteRouting["tell"] = () => undefined
  ownsHere: RemoteRouting["ownsHere"] = (slot) => !this.moved || slot.name !== "Mover"
  removed: RemoteRouting["removed"] = () => {}
}

describe("redirected asks", () => {
  it.effect("carry the original request context and call chain to the activation's new silo", () =>
    Effect.gen(function*() {
      const gate = yield* Latch.make()
      const holding = yield* Latch.make()
      const scope = yield* Scope.make()
      const build = () =>
        Effect.map(
          Layer.buildWithScope(implementations(gate, holding).pipe(Layer.provideMerge(Silo.layer())), scope),
          (context) => ({ context, silo: Context.get(context, Silo.Silo) })
        )
      const first = yield* build()
      const second = yield* build()
      const standIn = new StandIn(second.silo)
      first.silo.router.remote = standIn

      const calls = yield* Effect.gen(function*() {
        const mover = yield* Mover.ref("m-1")
        const front = yield* Front.ref("f-1")
        // m-1 is active on the first silo and busy: the asks below wait in its mailbox.
        const held = yield* Effect.forkChild(mover.Hold())
        yield* holding.await
        const local = yield* Effect.forkChild(
          mover.Whoami().pipe(RequestContext.withRequestContext({ correlationId: "corr-a", metadata: { user: "ann" } }))
        )
        const chained = yield* Effect.forkChild(
          front.Relay().pipe(RequestContext.withRequestContext({ correlationId: "corr-c", metadata: { user: "cy" } }))
        )
        // As the server of the first silo runs a call that came from another silo.
        const router = first.silo.router
        const slot = router.slots.get("Mover")!
        const inbound = yield* Effect.forkChild(
          router.askLocal(
            slot,
            "m-1",
            messageEntry(slot.registration!, "Whoami")!,
            undefined,
            undefined,
            new RemoteFrame("corr-b", { user: "bo" }, [{ type: "Caller", id: "c-1" }])
          ) as Effect.Effect<typeof Seen.Type>
        )
        for (let i = 0; i < 100 && (yield* first.silo.activations("Mover"))[0]?.mailboxDepth !== 3; i++) {
          yield* Effect.yieldNow
        }
        assert.strictEqual((yield* first.silo.activations("Mover"))[0]?.mailboxDepth, 3, "three asks wait")
        // m-1 moves: the first silo no longer owns it and deactivates it; what waited follows it.
        standIn.moved = true
        const deactivating = yield* Effect.forkChild(first.silo.deactivate({ type: "Mover", id: "m-1" }))
        yield* gate.open
        yield* Fiber.join(held)
        assert.isTrue(yield* Fiber.join(deactivating))
        return {
          local: yield* Fiber.join(local),
          chained: yield* Fiber.join(chained),
          inbound: yield* Fiber.join(inbound)
        }
      }).pipe(Effect.provideContext(first.context), Effect.ensuring(gate.open))

      // The handlers, on the second silo, saw each call's own context.
      assert.deepStrictEqual(calls.local, { correlationId: "corr-a", metadata: { user: "ann" } })
      assert.deepStrictEqual(calls.chained, { correlationId: "corr-c", metadata: { user: "cy" } })
      assert.deepStrictEqual(calls.inbound, { correlationId: "corr-b", metadata: { user: "bo" } })
      // And the chains sent along (what deadlock detection there sees) are the originals.
      const byCorrelation = new Map(standIn.sent.map((envelope) => [envelope.correlationId, envelope]))
      assert.strictEqual(standIn.sent.length, 3)
      assert.deepStrictEqual(byCorrelation.get("corr-a")?.chain, [])
      assert.deepStrictEqual(byCorrelation.get("corr-c")?.chain, [{ type: "Front", id: "f-1" }])
      assert.deepStrictEqual(byCorrelation.get("corr-b")?.chain, [{ type: "Caller", id: "c-1" }])
      assert.deepStrictEqual(byCorrelation.get("corr-b")?.metadata, { user: "bo" })
      // Served by the second silo, no longer by the first.
      assert.deepStrictEqual((yield* second.silo.activations("Mover")).map((row) => row.address.id), ["m-1"])
      assert.deepStrictEqual(yield* first.silo.activations("Mover"), [])
      yield* Scope.close(scope, Exit.void)
    }))
})

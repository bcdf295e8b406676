/**
 * Deadlock detection when one activation has two turns parked at once, as a user meets it:
 * A's two read-only turns wait, one in B's mailbox and one in C's; C answers; B's running
 * turn then asks A for a write. A waits on B, so B waits on itself: `Deadlock [B, A, B]` at
 * once (it used to wait forever: the second parked turn overwrote, then cleared, the first
 * one's wait link). The clock never moves, so a hang fails the test instead of passing late.
 */
import { assert, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorSchema, Silo } from "../src/index.ts"
import { waitUntil } from "./fixtures/MailboxProbe.ts"

const Write = Rpc.make("Write", { success: Schema.String })
/** Asks `target` for a write; read-only, so two can run at once. */
const ReadAsk = Rpc.make("ReadAsk", { payload: { target: Schema.String }, success: Schema.String })
  .annotate(ActorSchema.ReadOnly, true)
/** Waits for its gate, then (if `then` is set) asks that actor for a write. */
const Hold = Rpc.make("Hold", {
  payload: { gate: Schema.String, then: Schema.optional(Schema.String) },
  success: Schema.String
})
const Node = Actor.make("DeadlockNode", [Write, ReadAsk, Hold])

const gates = new Map<string, Deferred.Deferred<void>>()
const gate = (name: string) => {
  let deferred = gates.get(name)
  if (deferred === undefined) gates.set(name, deferred = Deferred.makeUnsafe<void>())
  return deferred
}

const NodeLive = Node.toLayer(Effect.gen(function*() {
  const ask = (id: string) =>
    Effect.flatMap(Node.ref(id), (node) => node.Write()).pipe(
      Effect.catchTag("Deadlock", (deadlock) => Effect.succeed(`Deadlock ${deadlock.cycle.map((a) => a.id).join(",")}`)),
      Effect.orDie
    )
  return Node.of({
    Write: () => Effect.succeed("written"),
    ReadAsk: ({ target }) => ask(target),
    Hold: ({ gate: name, then }) =>
      Effect.andThen(Deferred.await(gate(name)), then === undefined ? Effect.succeed("released") : ask(then))
  })
}))

const mailboxOf = (id: string) =>
  Effect.flatMap(Silo.Silo, (silo) => silo.activations(Node.type)).pipe(
    Effect.map((all) => all.find((info) => info.address.id === id)?.mailboxDepth ?? 0)
  )

it.effect("a second parked turn does not hide the first: Deadlock [B, A, B] at once", () =>
  Effect.gen(function*() {
    gates.clear()
    const a = yield* Node.ref("a")
    const b = yield* Node.ref("b")
    const c = yield* Node.ref("c")
    const fork = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.forkChild(effect, { startImmediately: true })
    const heldB = yield* fork(b.Hold({ gate: "b", then: "a" }))
    const heldC = yield* fork(c.Hold({ gate: "c" }))
    const intoB = yield* fork(a.ReadAsk({ target: "b" }))
    const intoC = yield* fork(a.ReadAsk({ target: "c" }))
    yield* waitUntil(
      "A's two reads are parked in B and in C",
      Effect.map(Effect.all([mailboxOf("b"), mailboxOf("c")]), ([inB, inC]) => inB === 1 && inC === 1)
    )
    yield* Deferred.succeed(gate("c"), undefined)
    assert.strictEqual(yield* Fiber.join(intoC), "written", "C answered A's second read")
    assert.strictEqual(yield* Fiber.join(heldC), "released")
    yield* Deferred.succeed(gate("b"), undefined)
    // B's turn asks A, whose first read waits on B: refused at once, then everything completes.
    yield* waitUntil("B's call into A was answered at once", () => heldB.pollUnsafe() !== undefined)
    const [fromB, fromA] = yield* Effect.all([Fiber.join(heldB), Fiber.join(intoB)])
    assert.strictEqual(fromB, "Deadlock b,a,b")
    assert.strictEqual(fromA, "written")
  }).pipe(Effect.provide(Silo.layerTest(NodeLive))))


/**
 * Single activation through graceful ring changes, in-process (memory membership on the
 * TestClock, real TCP on 127.0.0.1): when a silo joins or leaves, the new owner of an
 * address activates it only after the previous owner's activation has stopped, even when
 * that deactivation takes a while. And a silo that cannot show it is still a member starts
 * no turn (its lease).
 *
 * `Held` records every activation start and end in one log; its deactivation waits on a
 * gate the test opens, so a deactivation can be held as long as the test needs.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorUnavailable, Silo } from "../../src/index.ts"
import * as Placement from "../../src/Cluster/Placement.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import { type ActivationEvent, hostedIds, overlapsIn, settleFor } from "../fixtures/ActivationLog.ts"
import { eventually } from "../fixtures/Eventually.ts"

const Where = Rpc.make("Where", { success: Schema.String })
/** Answers where it ran, once `turnGate` opens. */
const WaitThenWhere = Rpc.make("WaitThenWhere", { success: Schema.String })
/** Counts its runs. */
const Count = Rpc.make("Count", { success: Schema.Int })
const Held = Actor.make("Held", [Where, WaitThenWhere, Count])
/** The same, with the default placement named: it must hand off alike. */
const HeldNamed = Actor.make("HeldNamed", [Where, WaitThenWhere, Count], { placement: Placement.consistentHash })
/** The same, with a custom deterministic placement (the ring's owner of another key). */
const byReversedId: Placement.Placement = {
  name: "by-reversed-id",
  place: (address, view) => view.ring.owner(`reversed/${[...address.id].reverse().join("")}`),
  usesDirectory: false
}
const HeldCustom = Actor.make("HeldCustom", [Where, WaitThenWhere, Count], { placement: byReversedId })

const log: Array<ActivationEvent> = []
let gate = Deferred.makeUnsafe<void>()
let turnGate = Deferred.makeUnsafe<void>()
let counted = 0

type HeldContract = Actor.Actor<string, typeof Where | typeof WaitThenWhere | typeof Count>

const heldLayerOf = (contract: HeldContract) =>
  contract.toLayer(Effect.gen(function*() {
    const ctx = yield* ActorContext
    const silo = (yield* Cluster).self!.id
    const id = ctx.address.id
    log.push({ id, silo, kind: "start" })
    yield* Effect.addFinalizer(() =>
      Effect.andThen(Deferred.await(gate), Effect.sync(() => void log.push({ id, silo, kind: "end" })))
    )
    return contract.of({
      Where: () => Effect.succeed(silo),
      WaitThenWhere: () => Effect.as(Deferred.await(turnGate), silo),
      Count: () => Effect.sync(() => ++counted)
    })
  }))
const heldLayer = heldLayerOf(Held)

const whereIn = (contract: HeldContract) => (id: string) => Effect.flatMap(contract.ref(id), (ref) => ref.Where())
const where = whereIn(Held)

const ownerOf = (member: TestCluster.TestMember, id: string, type = "Held") =>
  member.run(Effect.flatMap(Cluster, (cluster) => cluster.ownerOf({ type, id })))

const hosted = (member: TestCluster.TestMember, type = "Held") => hostedIds(member, type)

/** No address has two activations alive at once in the log. */
const overlaps = () => overlapsIn(log)

const ids = Array.from({ length: 24 }, (_, i) => `h-${i}`)

describe("handoff on graceful ring changes", () => {
  // Every placement that is not a directory claim is deterministic, and hands off alike
  // (naming the default, or a custom one, once skipped the wait: two activations at once).
  it.effect.each([
    ["the default placement", Held],
    ["Placement.consistentHash named", HeldNamed],
    ["a custom deterministic placement", HeldCustom]
  ] as const)("a joining silo activates a moved address only after the old owner's activation stopped (%s)", ([, contract]) =>
    Effect.gen(function*() {
      log.length = 0
      gate = Deferred.makeUnsafe<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined)) // a failed check must not hang the teardown
      const cluster = yield* TestCluster.make({ silos: 1, implementations: heldLayerOf(contract) })
      const [a] = cluster.silos
      const where = whereIn(contract)
      for (const id of ids) assert.strictEqual(yield* a!.run(where(id)), a!.id)
      const client = yield* cluster.addClient
      const c = yield* cluster.addSilo
      yield* cluster.settle
      const moved: Array<string> = []
      for (const id of ids) if ((yield* ownerOf(c, id, contract.type)) === c.id) moved.push(id)
      assert.isAbove(moved.length, 0)
      // a is deactivating the moved actors, held at the gate; calls for them go to c.
      const calls = yield* Effect.forkChild(
        client.run(Effect.forEach(moved, where, { concurrency: "unbounded" }))
      )
      yield* settleFor(200)
      assert.deepStrictEqual(yield* hosted(c, contract.type), [], "c activates nothing while a still holds the addresses")
      assert.deepStrictEqual(log.filter((event) => event.silo === c.id), [])
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(calls), moved.map(() => c.id))
      assert.deepStrictEqual(overlaps(), [])
      for (const id of moved) {
        const endOnA = log.findIndex((event) => event.id === id && event.silo === a!.id && event.kind === "end")
        const startOnC = log.findIndex((event) => event.id === id && event.silo === c.id && event.kind === "start")
        assert.isAbove(startOnC, endOnA, `${id}: started on c after it ended on a`)
      }
    }).pipe(Effect.scoped))

  // A call waiting at its new owner for the previous owner's release, when the ring moves the
  // address on meanwhile (a third silo joins): once released, it follows the address to the
  // newest owner. It once activated the address where it waited, beside the newest owner's.
  it.effect("a call waiting for a handoff whose address moves on to a joining silo is served by the newest owner, never where it waited", () =>
    Effect.gen(function*() {
      log.length = 0
      gate = Deferred.makeUnsafe<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      const many = Array.from({ length: 64 }, (_, i) => `m-${i}`)
      const cluster = yield* TestCluster.make({ silos: 1, implementations: heldLayer })
      const [a] = cluster.silos
      for (const id of many) assert.strictEqual(yield* a!.run(where(id)), a!.id)
      const client = yield* cluster.addClient
      const b = yield* cluster.addSilo
      yield* cluster.settle
      const toB: Array<string> = []
      for (const id of many) if ((yield* ownerOf(b, id)) === b.id) toB.push(id)
      // a's deactivations are held: the calls wait at b for a's release.
      const calls = yield* Effect.forkChild(client.run(Effect.forEach(toB, where, { concurrency: "unbounded" })))
      yield* settleFor(200)
      assert.deepStrictEqual(yield* hosted(b), [], "b waits for a")
      const c = yield* cluster.addSilo
      yield* cluster.settle
      const toC: Array<string> = []
      for (const id of toB) if ((yield* ownerOf(b, id)) === c.id) toC.push(id)
      assert.isAbove(toC.length, 0, "some of the addresses b waits for move on to c")
      yield* Deferred.succeed(gate, undefined)
      const answers = yield* Fiber.join(calls)
      for (const [i, id] of toB.entries()) assert.strictEqual(answers[i], toC.includes(id) ? c.id : b.id, id)
      assert.deepStrictEqual((yield* hosted(b)).filter((id) => toC.includes(id)), [], "b activated none of c's")
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))

  it.effect("a silo leaving gracefully hands its addresses over: the next owner activates each after it stopped there", () =>
    Effect.gen(function*() {
      log.length = 0
      gate = Deferred.makeUnsafe<void>()
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      const cluster = yield* TestCluster.make({ silos: 2, implementations: heldLayer })
      const [a, b] = cluster.silos
      const client = yield* cluster.addClient
      for (const id of ids) yield* client.run(where(id))
      const onB = (yield* hosted(b!))
      assert.isAbove(onB.length, 0)
      const leaving = yield* Effect.forkChild(b!.stop)
      yield* eventually(Effect.map(ownerOf(client, onB[0]!), (owner) => owner === a!.id), "the client's ring dropped b")
      const calls = yield* Effect.forkChild(client.run(Effect.forEach(onB, where, { concurrency: "unbounded" })))
      yield* settleFor(200)
      assert.deepStrictEqual((yield* hosted(a!)).filter((id) => onB.includes(id)), [], "a waits for b's deactivations")
      yield* Deferred.succeed(gate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(calls), onB.map(() => a!.id))
      yield* Fiber.join(leaving)
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))
})

describe("graceful stop", () => {
  it.effect("calls in flight when a silo stops gracefully are answered, not failed", () =>
    Effect.gen(function*() {
      log.length = 0
      gate = Deferred.makeUnsafe<void>()
      turnGate = Deferred.makeUnsafe<void>()
      yield* Deferred.succeed(gate, undefined) // deactivations run freely
      yield* Effect.addFinalizer(() => Deferred.succeed(turnGate, undefined))
      const cluster = yield* TestCluster.make({ silos: 2, implementations: heldLayer })
      const [, b] = cluster.silos
      const client = yield* cluster.addClient
      let onB = ""
      for (let i = 0; onB === ""; i++) if ((yield* ownerOf(client, `w-${i}`)) === b!.id) onB = `w-${i}`
      const call = yield* Effect.forkChild(client.run(Effect.flatMap(Held.ref(onB), (ref) => ref.WaitThenWhere())))
      yield* eventually(Effect.map(hosted(b!), (rows) => rows.includes(onB)), "the call is running on b")
      const stopping = yield* Effect.forkChild(b!.stop)
      yield* eventually(Effect.map(ownerOf(client, onB), (owner) => owner !== b!.id), "b left the client's ring")
      yield* settleFor(50)
      assert.isUndefined(call.pollUnsafe(), "still waiting for its turn to finish")
      yield* Deferred.succeed(turnGate, undefined)
      assert.strictEqual(yield* Fiber.join(call), b!.id, "answered by b, after it left the membership")
      yield* Fiber.join(stopping)
    }).pipe(Effect.scoped))
})

describe("remote callers' deadlines", () => {
  it.live("a remote ask still queued when its caller's timeout passes leaves the mailbox and never runs", () =>
    Effect.gen(function*() {
      log.length = 0
      gate = Deferred.makeUnsafe<void>()
      turnGate = Deferred.makeUnsafe<void>()
      counted = 0
      yield* Deferred.succeed(gate, undefined)
      yield* Effect.addFinalizer(() => Deferred.succeed(turnGate, undefined))
      const cluster = yield* TestCluster.make({ silos: 1, implementations: heldLayer })
      const [a] = cluster.silos
      const client = yield* cluster.addClient
      const busy = yield* Effect.forkChild(client.run(Effect.flatMap(Held.ref("d-1"), (ref) => ref.WaitThenWhere())))
      yield* eventually(Effect.map(hosted(a!), (rows) => rows.includes("d-1")), "the first call is running")
      const timedOut = yield* client.run(Effect.flip(Effect.flatMap(Held.ref("d-1"), (ref) => ref.Count({ timeout: "100 millis" }))))
      assert.strictEqual(timedOut._tag, "CallTimeout")
      const depth = () =>
        a!.run(Effect.map(Effect.flatMap(Silo.Silo, (silo) => silo.activations("Held")), (rows) => rows[0]?.mailboxDepth ?? -1))
      const start = Date.now()
      while ((yield* depth()) !== 0) {
        assert.isBelow(Date.now() - start, 2_000, "the queued ask left the mailbox")
        yield* Effect.sleep("10 millis")
      }
      yield* Deferred.succeed(turnGate, undefined)
      assert.strictEqual(yield* Fiber.join(busy), a!.id)
      assert.strictEqual(yield* client.run(Effect.flatMap(Held.ref("d-1"), (ref) => ref.Count())), 1, "the timed-out ask never ran")
    }).pipe(Effect.scoped))
})

describe("the serving lease", () => {
  it.effect("no turn starts while the silo cannot show it is a member: asks fail with ActorUnavailable, nothing runs", () =>
    Effect.gen(function*() {
      log.length = 0
      gate = Deferred.makeUnsafe<void>()
      yield* Deferred.succeed(gate, undefined)
      const cluster = yield* TestCluster.make({ silos: 1, implementations: heldLayer })
      const [a] = cluster.silos
      assert.strictEqual(yield* a!.run(where("lease-1")), a!.id)
      const router = (yield* a!.run(Silo.Silo)).router
      const lease = router.lease!
      router.lease = () => false
      const refused = yield* a!.run(Effect.flip(where("lease-1")))
      assert.instanceOf(refused, ActorUnavailable)
      assert.match(refused.message, /did not run|not run/)
      const client = yield* cluster.addClient
      const remote = yield* client.run(Effect.flip(where("lease-2")))
      assert.instanceOf(remote, ActorUnavailable)
      assert.deepStrictEqual(log.filter((event) => event.id === "lease-2"), [], "nothing activated for a call that cannot run")
      router.lease = lease
      assert.strictEqual(yield* client.run(where("lease-2")), a!.id)
    }).pipe(Effect.scoped))
})


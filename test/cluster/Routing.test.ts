/**
 * Routing in a cluster, on the in-process TestCluster: several silos in this process on an
 * in-memory membership (on the TestClock) and directory, over real TCP on 127.0.0.1.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Layer, Schema, SchemaGetter } from "effect"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { Actor, ActorDefect, ActorUnavailable, CallTimeout, Deadlock, NoHostForType, PayloadTooLarge, Principal, RequestContext, Silo } from "../../src/index.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as Placement from "../../src/Cluster/Placement.ts"
import * as SiloIdentity from "../../src/Cluster/SiloIdentity.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import { ChainRecorder, chainLayer, ChainA, ChainB, step } from "../fixtures/ChainActors.ts"
import { Counter, counterLayer, Lifecycle } from "../fixtures/Counter.ts"
import { eventually } from "../fixtures/Eventually.ts"

const counter = (id: string) => Counter.ref(id)
const increment = (id: string, by = 1) => Effect.flatMap(counter(id), (ref) => ref.Increment({ by }))
const get = (id: string) => Effect.flatMap(counter(id), (ref) => ref.Get())

/** The ids of the activations a member holds. */
const hosted = (member: TestCluster.TestMember, type?: string) =>
  member.run(Effect.map(Effect.flatMap(Silo.Silo, (silo) => silo.activations(type)), (rows) => rows.map((row) => row.address.id)))

const ownerOf = (member: TestCluster.TestMember, type: string, id: string) =>
  member.run(Effect.flatMap(Cluster, (cluster) => cluster.ownerOf({ type, id })))

// An encode that counts: proves where a payload is (not) encoded.
let encodes = 0
const Counted = Schema.String.pipe(Schema.decodeTo(Schema.String, {
  decode: SchemaGetter.transform((s: string) => s),
  encode: SchemaGetter.transform((s: string) => {
    encodes++
    return s
  })
}))
const Echo = Rpc.make("Echo", { payload: { text: Counted }, success: Schema.String })
const Slow = Rpc.make("Slow", { success: Schema.String })
const Where = Rpc.make("Where", { success: Schema.String })
/** Answers the trace id of the span the handler runs under ("" without one). */
const TraceId = Rpc.make("TraceId", { success: Schema.String })
const Probe = Actor.make("Probe", [Echo, Slow, Where, TraceId])

/** Gates `Slow` turns: a test opens it, or never does. */
let slowGate = Deferred.makeUnsafe<void>()

const probeLayer = Probe.toLayer(Effect.gen(function*() {
  const cluster = yield* Cluster
  return Probe.of({
    Echo: ({ text }) => Effect.succeed(text),
    Slow: () => Effect.as(Deferred.await(slowGate), "slow"),
    Where: () => Effect.succeed(cluster.self?.id ?? "client"),
    TraceId: () => Effect.map(Effect.option(Effect.currentParentSpan), (span) => span._tag === "Some" ? span.value.traceId : "")
  })
}))

const Roam = Actor.make("Roam", [Where], { placement: Placement.random })
const roamActivations = { count: 0 }
const roamLayer = Roam.toLayer(Effect.gen(function*() {
  const cluster = yield* Cluster
  roamActivations.count++
  return Roam.of({ Where: () => Effect.succeed(cluster.self!.id) })
}))

const Worker = Actor.make("Worker", [Slow, Where], { placement: Placement.statelessWorker({ maxLocal: 3 }) })
const workerLayer = Worker.toLayer(Effect.gen(function*() {
  const cluster = yield* Cluster
  return Worker.of({
    Slow: () => Effect.as(Deferred.await(slowGate), "slow"),
    Where: () => Effect.succeed(cluster.self!.id)
  })
}))

const Unhosted = Actor.make("Unhosted", [Where])

const implementations = (lifecycle: Lifecycle, recorder: ChainRecorder) =>
  Layer.mergeAll(
    counterLayer(lifecycle),
    probeLayer,
    roamLayer,
    workerLayer,
    chainLayer("ChainA", recorder),
    chainLayer("ChainB", recorder)
  )

const start = (silos: number, config?: TestCluster.TestClusterOptions["config"]) =>
  Effect.gen(function*() {
    const lifecycle = new Lifecycle()
    const recorder = new ChainRecorder()
    const cluster = yield* TestCluster.make({ silos, implementations: implementations(lifecycle, recorder), config })
    return { cluster, lifecycle, recorder }
  })

const ids = Array.from({ length: 30 }, (_, i) => `c-${i}`)

describe("cluster routing", () => {
  it.effect("a call from any silo or a client lands on the ring's owner, and only there", () =>
    Effect.gen(function*() {
      const { cluster, lifecycle } = yield* start(3)
      const client = yield* cluster.addClient
      const members = [...cluster.silos, client]
      for (const [i, id] of ids.entries()) {
        assert.strictEqual(yield* members[i % members.length]!.run(increment(id, 2)), 2)
      }
      for (const [i, id] of ids.entries()) {
        assert.strictEqual(yield* members[(i + 1) % members.length]!.run(get(id)), 2)
      }
      const owners = new Set<string>()
      for (const id of ids) {
        const owner = yield* ownerOf(client, "Counter", id)
        owners.add(owner!)
        for (const silo of cluster.silos) {
          // Every member computes the same owner, and only the owner holds the activation.
          assert.strictEqual(yield* ownerOf(silo, "Counter", id), owner)
          assert.strictEqual((yield* hosted(silo, "Counter")).includes(id), silo.id === owner, `${id} on ${silo.id}`)
        }
        assert.strictEqual(lifecycle.activated.get(id), 1)
      }
      assert.strictEqual(owners.size, 3, "30 addresses spread over all three silos")
      assert.deepStrictEqual(yield* hosted(client), [], "a client hosts nothing")
    }).pipe(Effect.scoped))

  it.effect("a local owner is called without encoding; a remote one encodes once", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(2)
      const [a, b] = cluster.silos
      let onA: string | undefined
      let onB: string | undefined
      for (const id of ids) {
        const owner = yield* ownerOf(a!, "Probe", id)
        if (owner === a!.id) onA ??= id
        else onB ??= id
      }
      const echo = (id: string) => Effect.flatMap(Probe.ref(id), (probe) => probe.Echo({ text: "hi" }))
      encodes = 0
      assert.strictEqual(yield* a!.run(echo(onA!)), "hi")
      assert.strictEqual(encodes, 0, "no encoding for a local owner")
      assert.strictEqual(yield* a!.run(echo(onB!)), "hi")
      assert.strictEqual(encodes, 1, "one encode of the payload for a remote owner")
      assert.isTrue((yield* hosted(b!, "Probe")).includes(onB!))
    }).pipe(Effect.scoped))

  it.effect("typed errors cross silos: declared errors, defects, unknown types, timeouts, oversized payloads", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(2, { maxFrameBytes: 4096 })
      const client = yield* cluster.addClient
      const overdrawn = yield* client.run(Effect.flip(Effect.flatMap(counter("e-1"), (c) => c.Decrement({ by: 5 }))))
      assert.strictEqual(overdrawn._tag, "Overdrawn")
      assert.strictEqual((overdrawn as { by: number }).by, 5)

      const defect = yield* client.run(Effect.flip(Effect.flatMap(counter("e-1"), (c) => c.Crash({ message: "boom" }))))
      assert.instanceOf(defect, ActorDefect)
      assert.include((defect as ActorDefect).defect, "boom")

      // No silo hosts it: the client fails the call at once, without sending it.
      const unknown = yield* client.run(Effect.flip(Effect.flatMap(Unhosted.ref("u"), (u) => u.Where())))
      assert.instanceOf(unknown, NoHostForType)

      slowGate = Deferred.makeUnsafe<void>()
      const timeout = yield* client.run(Effect.flip(Effect.flatMap(Probe.ref("slow"), (p) => p.Slow({ timeout: "30 millis" }))))
      assert.instanceOf(timeout, CallTimeout)

      const big = "x".repeat(10_000)
      const tooLarge = yield* client.run(Effect.flip(Effect.flatMap(Probe.ref("big"), (p) => p.Echo({ text: big }))))
      assert.instanceOf(tooLarge, PayloadTooLarge)
      yield* Deferred.succeed(slowGate, undefined)
    }).pipe(Effect.scoped))

  it.effect("request context and deadlock detection work across silos as they do locally", () =>
    Effect.gen(function*() {
      const { cluster, recorder } = yield* start(3)
      const [a] = cluster.silos
      // Pick ids so that ChainA/x and ChainB/y live on different silos.
      const x = "x"
      let y = "y0"
      for (let i = 0; (yield* ownerOf(a!, "ChainB", y)) === (yield* ownerOf(a!, "ChainA", x)); i++) y = `y${i}`

      const path = [step("ChainB", y, { correlationId: "corr-1", metadata: { tenant: "t1" } }), step("ChainA", x)]
      const result = yield* a!.run(Effect.flatMap(ChainA.ref(x), (ref) => ref.Hop({ path })))
      // ChainA/x -> ChainB/y -> ChainA/x: a cycle through two silos is a Deadlock.
      assert.strictEqual(result, `ChainA/${x}>ChainB/${y}!Deadlock`)
      const deadlock = recorder.errors.find((e) => e.at === `ChainB/${y}`)?.error
      assert.instanceOf(deadlock, Deadlock)
      assert.deepStrictEqual(
        (deadlock as Deadlock).cycle.map((address) => `${address.type}/${address.id}`),
        [`ChainA/${x}`, `ChainB/${y}`, `ChainA/${x}`]
      )
      const seen = recorder.contextsAt(`ChainB/${y}`, "Hop")[0]!
      assert.strictEqual(seen.correlationId, "corr-1")
      assert.deepStrictEqual(seen.metadata, { tenant: "t1" })
    }).pipe(Effect.scoped))

  it.effect("request context set by the caller reaches a handler on another silo", () =>
    Effect.gen(function*() {
      const { cluster, recorder } = yield* start(2)
      const client = yield* cluster.addClient
      yield* client.run(
        Effect.flatMap(ChainB.ref("ctx"), (ref) => ref.Hop({ path: [] })).pipe(
          RequestContext.withRequestContext({ correlationId: "outside", metadata: { user: "u1" } })
        )
      )
      const seen = recorder.contextsAt("ChainB/ctx", "Hop")[0]!
      assert.strictEqual(seen.correlationId, "outside")
      // With the principal the first silo established for the client (anonymous: it has no Authentication).
      assert.deepStrictEqual(seen.metadata, { user: "u1", [Principal.metadataKey]: Principal.encode(Principal.anonymous) })
    }).pipe(Effect.scoped))

  it.effect("the caller's trace context reaches a handler on another silo", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(2)
      const client = yield* cluster.addClient
      const [traceId, seen] = yield* client.run(
        Effect.gen(function*() {
          const span = yield* Effect.currentSpan
          const probe = yield* Probe.ref("traced")
          return [span.traceId, yield* probe.TraceId()] as const
        }).pipe(Effect.withSpan("caller"))
      )
      assert.strictEqual(seen, traceId)
      // Without a span nothing is propagated.
      assert.strictEqual(yield* client.run(Effect.flatMap(Probe.ref("traced"), (p) => p.TraceId())), "")
    }).pipe(Effect.scoped))

  it.effect("one-way messages reach remote actors", () =>
    Effect.gen(function*() {
      const { cluster, recorder } = yield* start(2)
      const client = yield* cluster.addClient
      const relayed = yield* Deferred.make<string>()
      recorder.onRelayed = (result) => Deferred.succeed(relayed, result).pipe(Effect.asVoid)
      yield* client.run(Effect.flatMap(ChainA.ref("t"), (ref) => ref.tell.Relay({ path: [step("ChainB", "u")] })))
      assert.strictEqual(yield* Deferred.await(relayed), "ChainA/t>ChainB/u")
    }).pipe(Effect.scoped))

  it.effect("a new silo takes over its share: the old owners deactivate (hooks run) and calls go to it", () =>
    Effect.gen(function*() {
      const { cluster, lifecycle } = yield* start(2)
      const [a] = cluster.silos
      for (const id of ids) yield* a!.run(increment(id))
      const c = yield* cluster.addSilo
      yield* cluster.settle
      // Asked of c: a still hosts the moved actors until they finish deactivating.
      const moved: Array<string> = []
      for (const id of ids) if ((yield* ownerOf(c, "Counter", id)) === c.id) moved.push(id)
      assert.isAbove(moved.length, 0)
      yield* eventually(Effect.sync(() => moved.every((id) => lifecycle.deactivated.get(id) === 1)), "moved actors deactivated")
      for (const id of moved) {
        // In-memory state does not move (durable state would be read back); the call lands on c.
        assert.strictEqual(yield* a!.run(get(id)), 0)
        assert.isTrue((yield* hosted(c, "Counter")).includes(id))
      }
      const stayed = ids.filter((id) => !moved.includes(id))
      for (const id of stayed) assert.strictEqual(lifecycle.deactivated.get(id), undefined)
    }).pipe(Effect.scoped))

  it.effect("messages queued on an activation that moves follow it to the new owner", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(1)
      const [a] = cluster.silos
      const probes = Array.from({ length: 12 }, (_, i) => `q-${i}`)
      slowGate = Deferred.makeUnsafe<void>()
      // Each probe is busy with a Slow turn, and has an Echo waiting behind it.
      const slow = yield* Effect.forkChild(a!.run(Effect.forEach(probes, (id) => Effect.flatMap(Probe.ref(id), (p) => p.Slow()), { concurrency: "unbounded" })))
      yield* eventually(Effect.map(hosted(a!, "Probe"), (rows) => rows.length === probes.length), "all busy")
      const echoes = yield* Effect.forkChild(a!.run(Effect.forEach(probes, (id) => Effect.flatMap(Probe.ref(id), (p) => p.Echo({ text: id })), { concurrency: "unbounded" })))
      const b = yield* cluster.addSilo
      yield* cluster.settle
      const moved: Array<string> = []
      for (const id of probes) if ((yield* ownerOf(b, "Probe", id)) === b.id) moved.push(id)
      assert.isAbove(moved.length, 0)
      yield* Deferred.succeed(slowGate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(echoes), probes)
      yield* Fiber.join(slow)
      const onB = yield* hosted(b, "Probe")
      for (const id of moved) assert.isTrue(onB.includes(id), `${id} answered from b`)
    }).pipe(Effect.scoped))

  it.effect("a crashed silo is declared dead after the detection time; its actors serve again elsewhere", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(3)
      const [a, b] = cluster.silos
      let onB = "c-0"
      for (const id of ids) if ((yield* ownerOf(a!, "Counter", id)) === b!.id) onB = id
      assert.strictEqual(yield* a!.run(increment(onB)), 1)
      yield* b!.crash
      // Until b is declared dead its actors are unavailable: not delivered, or written to a
      // connection that then dropped (the outcome is unknown).
      const during = yield* a!.run(Effect.flip(get(onB)))
      assert.include(["ActorUnavailable", "OutcomeUnknown"], during._tag)
      yield* TestClock.adjust("3500 millis") // deadAfter (3 s) + one full read (500 ms)
      yield* eventually(Effect.map(ownerOf(a!, "Counter", onB), (owner) => owner !== b!.id), "b left the ring")
      // The very effect that failed, run again, follows the ring: routes are chosen per run.
      const again = yield* a!.run(counter(onB))
      const retried = again.Increment({ by: 1 })
      assert.strictEqual(yield* a!.run(retried), 1)
      assert.strictEqual(yield* a!.run(retried), 2)
    }).pipe(Effect.scoped))

  it.effect("losing a connection fails its in-flight calls with OutcomeUnknown (they were written and may have run)", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(2)
      const [a, b] = cluster.silos
      let onB = "p-0"
      for (let i = 0; (yield* ownerOf(a!, "Probe", onB)) !== b!.id; i++) onB = `p-${i}`
      slowGate = Deferred.makeUnsafe<void>()
      const call = yield* Effect.forkChild(a!.run(Effect.flatMap(Probe.ref(onB), (p) => p.Slow())))
      yield* eventually(Effect.map(hosted(b!, "Probe"), (rows) => rows.includes(onB)), "the slow call arrived")
      yield* b!.crash
      const exit = yield* Fiber.await(call)
      assert.isTrue(Exit.isFailure(exit))
      const error = Exit.isFailure(exit) ? exit.cause.reasons[0] : undefined
      assert.strictEqual((error as { error?: { _tag: string } } | undefined)?.error?._tag, "OutcomeUnknown")
      yield* Deferred.succeed(slowGate, undefined)
    }).pipe(Effect.scoped))

  it.effect("directory placement: concurrent first calls from every silo make one activation", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(3)
      const client = yield* cluster.addClient
      roamActivations.count = 0
      const members = [...cluster.silos, client]
      for (const id of ["r-1", "r-2", "r-3"]) {
        const where = yield* Effect.forEach(
          members.flatMap((member) => [member, member]),
          (member) => member.run(Effect.flatMap(Roam.ref(id), (roam) => roam.Where())),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(new Set(where).size, 1, `${id} answered from one silo: ${where.join()}`)
        const holders = []
        for (const silo of cluster.silos) if ((yield* hosted(silo, "Roam")).includes(id)) holders.push(silo.id)
        assert.deepStrictEqual(holders, [where[0]])
        assert.strictEqual(yield* ownerOf(client, "Roam", id), where[0])
      }
      assert.strictEqual(roamActivations.count, 3)
    }).pipe(Effect.scoped))

  it.effect("a directory placement whose lease is lost deactivates; the next call places it again", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(2, { directoryLease: "3 seconds" })
      const [a] = cluster.silos
      roamActivations.count = 0
      const where = yield* a!.run(Effect.flatMap(Roam.ref("lease"), (roam) => roam.Where()))
      const holder = cluster.silos.find((silo) => silo.id === where)!
      // Leases are renewed every second: still there after several.
      yield* TestClock.adjust("5 seconds")
      assert.strictEqual(yield* cluster.directory.lookup({ type: "Roam", id: "lease" }), where)
      assert.isTrue((yield* hosted(holder, "Roam")).includes("lease"))
      // The entry vanishes (another silo could now claim it): the next renewal finds out.
      yield* cluster.directory.unregister({ type: "Roam", id: "lease" }, where)
      yield* TestClock.adjust("1 second")
      yield* eventually(Effect.map(hosted(holder, "Roam"), (rows) => !rows.includes("lease")), "deactivated")
      yield* a!.run(Effect.flatMap(Roam.ref("lease"), (roam) => roam.Where()))
      assert.strictEqual(roamActivations.count, 2)
      assert.isDefined(yield* cluster.directory.lookup({ type: "Roam", id: "lease" }))
    }).pipe(Effect.scoped))

  it.effect("stateless workers run on the calling silo, up to maxLocal activations of one address", () =>
    Effect.gen(function*() {
      const { cluster } = yield* start(2)
      const [a, b] = cluster.silos
      assert.strictEqual(yield* a!.run(Effect.flatMap(Worker.ref("w"), (w) => w.Where())), a!.id)
      assert.strictEqual(yield* b!.run(Effect.flatMap(Worker.ref("w"), (w) => w.Where())), b!.id)
      slowGate = Deferred.makeUnsafe<void>()
      const slow = yield* Effect.forkChild(
        a!.run(Effect.forEach([1, 2, 3, 4, 5], () => Effect.flatMap(Worker.ref("w"), (w) => w.Slow()), { concurrency: "unbounded" }))
      )
      yield* eventually(Effect.map(hosted(a!, "Worker"), (rows) => rows.length === 3), "three workers")
      yield* Deferred.succeed(slowGate, undefined)
      assert.deepStrictEqual(yield* Fiber.join(slow), ["slow", "slow", "slow", "slow", "slow"])
      assert.strictEqual((yield* hosted(a!, "Worker")).length, 3, "never more than maxLocal")
    }).pipe(Effect.scoped))

  it.effect("a silo declared dead stops serving, deactivates everything, and joins again with a new generation", () =>
    Effect.gen(function*() {
      const { cluster, lifecycle } = yield* start(2)
      const [a, b] = cluster.silos
      let onB = "c-0"
      for (const id of ids) if ((yield* ownerOf(a!, "Counter", id)) === b!.id) onB = id
      yield* b!.run(increment(onB))
      // Its entry vanishes behind its back: at its next full read it learns it is dead.
      yield* cluster.registry.remove(b!.id)
      yield* TestClock.adjust("500 millis")
      const dead = yield* b!.run(Effect.flatMap(Cluster, (c) => c.declaredDead))
      assert.strictEqual(dead.id, b!.id)
      yield* eventually(Effect.sync(() => lifecycle.deactivated.get(onB) === 1), "its activations deactivated")
      const again = yield* b!.run(Effect.map(Cluster, (c) => c.self?.id))
      yield* eventually(Effect.map(cluster.registry.ids, (registered) => registered.length === 2), "b joined again")
      const rejoined = yield* b!.run(Effect.map(Cluster, (c) => c.self!.id))
      assert.notStrictEqual(rejoined, b!.id, `a new generation (was ${again})`)
      assert.strictEqual(SiloIdentity.parseId(rejoined)?.address, SiloIdentity.parseId(b!.id)?.address)
      yield* eventually(
        Effect.map(a!.run(Effect.flatMap(Cluster, (c) => c.members)), (members) => members.includes(rejoined) && !members.includes(b!.id)),
        "a sees the new generation only"
      )
      // In-memory state was lost with the old activation; the address serves again.
      assert.strictEqual(yield* a!.run(increment(onB)), 1)
    }).pipe(Effect.scoped))

  it.effect("with onDeclaredDead: \"stop\", a silo declared dead refuses every call and stays out", () =>
    Effect.gen(function*() {
      const { cluster, lifecycle } = yield* start(2, { onDeclaredDead: "stop" })
      const [a, b] = cluster.silos
      let onB = "c-0"
      for (const id of ids) if ((yield* ownerOf(a!, "Counter", id)) === b!.id) onB = id
      yield* b!.run(increment(onB))
      yield* cluster.registry.remove(b!.id)
      yield* TestClock.adjust("500 millis")
      assert.strictEqual((yield* b!.run(Effect.flatMap(Cluster, (c) => c.declaredDead))).id, b!.id)
      yield* eventually(Effect.sync(() => lifecycle.deactivated.get(onB) === 1), "its activations deactivated")
      const refused = yield* b!.run(Effect.flip(increment(onB)))
      assert.instanceOf(refused, ActorUnavailable)
      yield* TestClock.adjust("5 seconds")
      assert.deepStrictEqual(yield* cluster.registry.ids, [a!.id], "b did not join again")
      yield* eventually(Effect.map(ownerOf(a!, "Counter", onB), (owner) => owner === a!.id), "a owns everything")
      assert.strictEqual(yield* a!.run(increment(onB)), 1)
    }).pipe(Effect.scoped))
})

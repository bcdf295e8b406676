/**
 * Load reports, load-aware placement, the rebalancer and eviction on the in-process
 * TestCluster (memory membership and directory on the TestClock, real TCP on 127.0.0.1).
 * Each silo's CPU, event-loop and memory figures come from an injected source, so a test
 * decides which silo looks unhealthy.
 *
 * - Load reports reach every view (silos and clients) and never rebuild a ring.
 * - `Placement.leastLoaded` places most new activations on the idle silo.
 * - After a silo joins, the rebalancer moves activations to it, no more than `maxPerSecond`
 *   in any second, until both hold their share; pausing stops it; every call made during
 *   the rebalancing succeeds.
 * - A silo whose score stays under the eviction threshold drains itself; a second one does
 *   not (it would leave fewer than two silos).
 * - The default cost of a move weighs idleness against the state it carries, whose size a
 *   clustered `ActorState` notes at each read and write.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Context, Effect, Fiber, Layer, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorState, Silo } from "../../src/index.ts"
import * as Handover from "../../src/Actor/internal/Handover.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import type { RemoteRouter } from "../../src/Cluster/internal/RemoteRouter.ts"
import * as Load from "../../src/Cluster/Load.ts"
import { Migrator } from "../../src/Cluster/Migrator.ts"
import * as Placement from "../../src/Cluster/Placement.ts"
import * as Rebalancer from "../../src/Cluster/Rebalancer.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import * as ClusterClock from "../fixtures/ClusterClock.ts"
import { eventually } from "../fixtures/Eventually.ts"

// ---------------------------------------------------------------------------------------
// Fixtures

const Where = Rpc.make("Where", { success: Schema.String })
/** Placed on the calling silo: a test puts its activations where it wants them. */
const Room = Actor.make("LoadRoom", [Where], { placement: Placement.preferLocal })
/** Placed on the least loaded of two hosts drawn at random. */
const Job = Actor.make("LoadJob", [Where], { placement: Placement.leastLoaded() })

const siloId = Effect.map(Cluster, (cluster) => cluster.self!.id)
const actors = Layer.mergeAll(
  Room.toLayer(Effect.map(siloId, (silo) => Room.of({ Where: () => Effect.succeed(silo) }))),
  Job.toLayer(Effect.map(siloId, (silo) => Job.of({ Where: () => Effect.succeed(silo) })))
)

/** Each silo's rebalancer, by silo id (the test cluster's members expose only their `Silo`, `Cluster` and `Migrator`). */
const rebalancers = new Map<string, Rebalancer.RebalancerShape>()

/** Every `migrateAway` the rebalancers asked for, with the clock's time, and how many are under way. */
const batches: Array<{ readonly silo: string; readonly at: number; readonly count: number }> = []
let inFlight = 0

/** The rebalancer of the silo, seen by the test; its `Migrator` records the batches. */
const rebalancer = (options: Rebalancer.RebalancerOptions) =>
  Layer.effectDiscard(Effect.gen(function*() {
    const cluster = yield* Cluster
    rebalancers.set(cluster.self!.id, yield* Rebalancer.Rebalancer)
  })).pipe(
    Layer.provide(Rebalancer.layer(options)),
    Layer.provide(Layer.effect(
      Migrator,
      Effect.gen(function*() {
        const real = yield* Migrator
        const self = (yield* Cluster).self!.id
        return Migrator.of({
          ...real,
          migrateAway: (addresses, options) =>
            Effect.gen(function*() {
              const list = [...addresses]
              batches.push({ silo: self, at: yield* Clock.currentTimeMillis, count: list.length })
              inFlight++
              return yield* Effect.ensuring(real.migrateAway(list, options), Effect.sync(() => inFlight--))
            })
        })
      })
    ))
  )

/** A load source whose figures the test changes. */
const source = () => {
  const figures: { cpu: number } = { cpu: 0.1 }
  return { figures, source: Load.sourceOf(() => ({ cpu: figures.cpu, eventLoopDelayMillis: 1, heap: 0.2 })) }
}

const reset = Effect.sync(() => {
  rebalancers.clear()
  batches.length = 0
  inFlight = 0
})

const routing = (member: TestCluster.TestMember) => Context.get(member.context, Silo.Silo).router.remote as RemoteRouter
const routerOf = (member: TestCluster.TestMember) => Context.get(member.context, Silo.Silo).router

const count = (member: TestCluster.TestMember, type: string) =>
  member.run(Effect.map(Effect.flatMap(Silo.Silo, (silo) => silo.activations(type)), (rows) => rows.length))

const where = (contract: typeof Room | typeof Job, id: string) =>
  contract === Room ? Effect.flatMap(Room.refOrDie(id), (ref) => ref.Where()) : Effect.flatMap(Job.refOrDie(id), (ref) => ref.Where())

/** Moves the TestClock in steps; a batch of moves under way finishes before the clock moves on. */
const advance = (millis: number, step = 100) =>
  ClusterClock.advance(
    millis,
    step,
    Effect.gen(function*() {
      while (inFlight > 0) yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
    })
  )

/** Starts `n` silos, each with its own load source. */
const start = (n: number, config: Parameters<typeof TestCluster.make>[0]["config"], implementations: Layer.Layer<never, any, any>) =>
  Effect.gen(function*() {
    const cluster = yield* TestCluster.make({ silos: 0, implementations })
    const loads: Array<{ cpu: number }> = []
    const addSilo = Effect.gen(function*() {
      const { figures, source: loadSource } = source()
      loads.push(figures)
      return yield* cluster.addSiloWith({ config: { ...config, loadSource } })
    })
    for (let i = 0; i < n; i++) yield* addSilo
    yield* cluster.settle
    return { cluster, loads, addSilo }
  })

// ---------------------------------------------------------------------------------------

describe("load reports", () => {
  it.effect("reach every view, silos' and clients', and never rebuild a ring", () =>
    Effect.gen(function*() {
      yield* reset
      const { cluster } = yield* start(3, { loadReportInterval: "1 second" }, actors)
      const [a, b, c] = cluster.silos
      const client = yield* cluster.addClient
      yield* advance(1100)
      const members = [a!, b!, c!, client]
      const rings = members.map((member) => routing(member).rings)
      for (let i = 0; i < 7; i++) yield* a!.run(where(Room, `r-${i}`))
      for (let i = 0; i < 2; i++) yield* b!.run(where(Room, `r-b-${i}`))
      yield* advance(1100)
      const expected = new Map([[a!.id, 7], [b!.id, 2], [c!.id, 0]])
      for (const member of members) {
        const view = yield* member.run(Effect.flatMap(Cluster, (cluster) => cluster.view))
        assert.strictEqual(view.length, 3)
        for (const silo of view) {
          const load = Load.fromMetadata(silo.metadata)
          assert.strictEqual(load.activations, expected.get(silo.identity.id), `${member.id} sees ${silo.identity.id}`)
          assert.strictEqual(load.migratable, expected.get(silo.identity.id))
          assert.strictEqual(load.cpu, 0.1)
          // The other keys of the record are still there: one writer merges them.
          assert.strictEqual(silo.metadata["quark.types"], "LoadJob@1,LoadRoom@1")
          assert.strictEqual(silo.metadata["quark.version"], "0")
          // And the placements read the same figures.
          assert.strictEqual(routing(member).loads.get(silo.identity.id)?.activations, expected.get(silo.identity.id))
        }
      }
      members.forEach((member, i) => assert.strictEqual(routing(member).rings, rings[i], `${member.id}'s rings were not rebuilt`))
    }).pipe(Effect.scoped))

  it.effect("are off with loadReportInterval: \"off\"", () =>
    Effect.gen(function*() {
      yield* reset
      const { cluster } = yield* start(2, { loadReportInterval: "off" }, actors)
      yield* advance(6000, 500)
      const view = yield* cluster.silos[0]!.run(Effect.flatMap(Cluster, (cluster) => cluster.view))
      for (const silo of view) assert.deepStrictEqual(Object.keys(silo.metadata).filter((key) => key.startsWith("quark.load.")), [])
    }).pipe(Effect.scoped))
})

describe("Placement.leastLoaded in a cluster", () => {
  it.effect("places most new activations on the idle silo", () =>
    Effect.gen(function*() {
      yield* reset
      const { cluster } = yield* start(3, { loadReportInterval: "1 second" }, actors)
      const [a, b, c] = cluster.silos
      const client = yield* cluster.addClient
      for (let i = 0; i < 20; i++) {
        yield* a!.run(where(Room, `busy-a-${i}`))
        yield* b!.run(where(Room, `busy-b-${i}`))
      }
      yield* advance(1100)
      yield* eventually(Effect.sync(() => routing(client).loads.get(a!.id)?.activations === 20), "the client sees a's report")
      // The reports are not renewed while the jobs are placed: every placement reads a: 20, b: 20, c: 0.
      const placed = new Map<string, number>()
      for (let i = 0; i < 90; i++) {
        const silo = yield* client.run(where(Job, `job-${i}`))
        placed.set(silo, (placed.get(silo) ?? 0) + 1)
      }
      const [onA, onB, onC] = [a!, b!, c!].map((silo) => placed.get(silo.id) ?? 0)
      assert.strictEqual(onA! + onB! + onC!, 90)
      // Two of three hosts are drawn: c in two draws of three, and then it wins (about 60 of 90).
      assert.isAbove(onC!, onA!)
      assert.isAbove(onC!, onB!)
      assert.isAtLeast(onC!, 45)
    }).pipe(Effect.scoped))
})

describe("the rebalancer", () => {
  it.effect("after a silo joins, moves activations to it at no more than maxPerSecond until both hold their share; pause stops it; every call succeeds", () =>
    Effect.gen(function*() {
      yield* reset
      const maxPerSecond = 4
      // A threshold the excess never passes (200 %): the join alone starts the rebalancing.
      const implementations = Layer.mergeAll(actors, rebalancer({ maxPerSecond, interval: "5 seconds", threshold: 2 }))
      const { cluster, addSilo } = yield* start(1, { loadReportInterval: "1 second" }, implementations)
      const [a] = cluster.silos
      const ids = Array.from({ length: 24 }, (_, i) => `room-${i}`)
      for (const id of ids) assert.strictEqual(yield* a!.run(where(Room, id)), a!.id)
      yield* advance(1000)
      assert.deepStrictEqual(batches, [], "alone, a has nobody to move to")

      // Calls from a client, all through the rebalancing.
      const client = yield* cluster.addClient
      const failures: Array<string> = []
      let calls = 0
      let stop = false
      const load = yield* Effect.forkChild(Effect.gen(function*() {
        while (!stop) {
          for (const id of ids) {
            const result = yield* Effect.result(client.run(where(Room, id)))
            calls++
            if (result._tag === "Failure") failures.push(`${id}: ${String(result.failure)}`)
          }
          yield* Effect.promise(() => new Promise((resolve) => setTimeout(resolve, 1)))
        }
      }))

      const b = yield* addSilo
      yield* cluster.settle
      // A second after the join the excess is seen, a second later confirmed by b's next report
      // and the first batch moves; then one a second.
      yield* advance(2500)
      assert.strictEqual(yield* count(b!, "LoadRoom"), maxPerSecond)
      const paused = rebalancers.get(a!.id)!
      yield* paused.pause
      assert.isTrue((yield* paused.status).paused)
      yield* advance(5000, 250)
      assert.strictEqual(yield* count(b!, "LoadRoom"), maxPerSecond, "nothing moves while paused")
      yield* paused.resume
      yield* advance(6000, 250)
      assert.strictEqual(yield* count(a!, "LoadRoom"), 12)
      assert.strictEqual(yield* count(b!, "LoadRoom"), 12)
      const status = yield* paused.status
      assert.strictEqual(status.moved, 12)
      assert.strictEqual(status.failed, 0)
      assert.isFalse(status.rebalancing)
      assert.strictEqual(status.mean, 12)
      // Balanced: nothing more moves, and b (at its share) moves nothing back.
      yield* advance(11_000, 500)
      assert.strictEqual(yield* count(b!, "LoadRoom"), 12)
      assert.isTrue(batches.every((batch) => batch.silo === a!.id))

      // The bound: the moves asked for in any second.
      for (const batch of batches) {
        const within = batches.filter((other) => other.at > batch.at - 1000 && other.at <= batch.at)
        assert.isAtMost(within.reduce((sum, other) => sum + other.count, 0), maxPerSecond, `the second up to ${batch.at}`)
      }
      stop = true
      yield* Fiber.join(load)
      assert.isAbove(calls, ids.length * 3)
      assert.deepStrictEqual(failures, [])
      // Every room answers from where the directory says it lives, once each.
      for (const id of ids) {
        assert.strictEqual(yield* client.run(where(Room, id)), yield* cluster.directory.lookup({ type: "LoadRoom", id }))
      }
    }).pipe(Effect.scoped))

  it.effect("without a join, moves nothing while the skew is under the threshold, and rebalances once it passes it", () =>
    Effect.gen(function*() {
      yield* reset
      const implementations = Layer.mergeAll(actors, rebalancer({ maxPerSecond: 10, interval: "2 seconds", threshold: 0.2 }))
      const { cluster } = yield* start(2, { loadReportInterval: "1 second" }, implementations)
      const [a, b] = cluster.silos
      // b's join is compared with while both are empty: no join to answer any more.
      yield* advance(3000, 250)
      for (let i = 0; i < 11; i++) yield* a!.run(where(Room, `a-${i}`))
      for (let i = 0; i < 9; i++) yield* b!.run(where(Room, `b-${i}`))
      // a holds 11, the mean is 10: 10 % over.
      yield* advance(10_000, 250)
      assert.deepStrictEqual(batches, [])
      const under = yield* rebalancers.get(a!.id)!.status
      assert.strictEqual(under.mean, 10)
      assert.approximately(under.skew, 0.1, 1e-9)
      assert.isFalse(under.rebalancing)
      // 17 against 9: 30 % over the mean of 13, 4 to move.
      for (let i = 11; i < 17; i++) yield* a!.run(where(Room, `a-${i}`))
      yield* advance(5000, 250)
      assert.strictEqual(yield* count(a!, "LoadRoom"), 13)
      assert.strictEqual(yield* count(b!, "LoadRoom"), 13)
      assert.deepStrictEqual(batches.map((batch) => [batch.silo, batch.count]), [[a!.id, 4]])
    }).pipe(Effect.scoped))

  it.effect("moves the cheapest first: the least recently active, and never what its cost rules out", () =>
    Effect.gen(function*() {
      yield* reset
      const cost = (candidate: Rebalancer.Candidate) =>
        candidate.address.id.startsWith("pinned-") ? Infinity : Rebalancer.defaultCost(candidate)
      const implementations = Layer.mergeAll(actors, rebalancer({ maxPerSecond: 10, interval: "5 seconds", cost }))
      const { cluster, addSilo } = yield* start(1, { loadReportInterval: "1 second" }, implementations)
      const [a] = cluster.silos
      const group = (name: string) => Array.from({ length: 4 }, (_, i) => `${name}-${i}`)
      for (const id of [...group("pinned"), ...group("hot"), ...group("cold")]) yield* a!.run(where(Room, id))
      // Two passivation sweeps (every 5 s) find them all idle; then the hot ones have a turn.
      yield* advance(11_000, 500)
      for (const id of group("hot")) yield* a!.run(where(Room, id))
      const b = yield* addSilo
      yield* cluster.settle
      yield* advance(2500)
      // 12 on a, 0 on b: 6 over the mean, moved in one batch (under maxPerSecond).
      const onB = yield* b!.run(Effect.map(Effect.flatMap(Silo.Silo, (silo) => silo.activations("LoadRoom")), (rows) => rows.map((row) => row.address.id)))
      assert.strictEqual(onB.length, 6)
      assert.includeMembers(onB, group("cold"), "the cold ones first")
      assert.strictEqual(onB.filter((id) => id.startsWith("hot-")).length, 2)
      assert.isFalse(onB.some((id) => id.startsWith("pinned-")), "an infinite cost stays")
    }).pipe(Effect.scoped))

  it.effect("evicts a silo whose health stays bad: it drains, and a second one does not (it would leave fewer than two)", () =>
    Effect.gen(function*() {
      yield* reset
      const implementations = Layer.mergeAll(
        actors,
        rebalancer({ interval: "1 second", evict: { below: 0.5, for: "5 seconds" } })
      )
      const { cluster, loads } = yield* start(3, { loadReportInterval: "1 second" }, implementations)
      const [a, b, c] = cluster.silos
      for (let i = 0; i < 6; i++) yield* c!.run(where(Room, `c-${i}`))
      // Healthy for a while: nobody goes.
      yield* advance(8000, 250)
      assert.isFalse([a!, b!, c!].some((silo) => routerOf(silo).draining))
      // b and c look unhealthy (cpu 1: score 0) from their next report on.
      loads[1]!.cpu = 1
      loads[2]!.cpu = 1
      yield* advance(3000, 250)
      assert.isFalse([a!, b!, c!].some((silo) => routerOf(silo).draining), "not before `for`")
      const unhealthy = yield* Effect.forEach([b!, c!], (silo) => rebalancers.get(silo.id)!.status)
      for (const status of unhealthy) {
        assert.strictEqual(status.score, 0)
        assert.isDefined(status.unhealthySince)
      }
      yield* advance(5000, 250)
      // The worse goes first (a tie: the first by id), the other stays.
      const [first, second] = [b!, c!].sort((x, y) => (x.id < y.id ? -1 : 1))
      yield* eventually(Effect.sync(() => routerOf(first!).draining), "the first unhealthy silo drains")
      assert.isFalse(routerOf(second!).draining)
      assert.isFalse(routerOf(a!).draining)
      yield* first!.run(Effect.flatMap(Cluster, (cluster) => cluster.drained)).pipe(
        Effect.raceFirst(advance(30_000, 250).pipe(Effect.andThen(Effect.die(new Error("the drain did not finish")))))
      )
      assert.isTrue((yield* rebalancers.get(first!.id)!.status).evicted)
      yield* eventually(
        a!.run(Effect.map(Effect.flatMap(Cluster, (cluster) => cluster.members), (members) => !members.includes(first!.id))),
        "the evicted silo left every view"
      )
      // Long past `for`: the second stays, since only a would be left.
      yield* advance(10_000, 250)
      assert.isFalse(routerOf(second!).draining)
      const stays = yield* rebalancers.get(second!.id)!.status
      assert.isFalse(stays.evicted)
      assert.strictEqual(stays.score, 0)
      // Nothing was lost: c's rooms answer from the silos left.
      for (let i = 0; i < 6; i++) assert.include([a!.id, second!.id], yield* a!.run(where(Room, `c-${i}`)))
    }).pipe(Effect.scoped))
})

describe("the cost of a move", () => {
  const idle = (idleSweeps: number, stateBytes?: number): Rebalancer.Candidate => ({
    address: { type: "T", id: `${idleSweeps}-${stateBytes}` },
    busy: false,
    idleSweeps,
    handsState: false,
    stateBytes
  })

  it("defaultCost: idle before busy, then a KiB of state weighs as one sweep of idleness", () => {
    const busy = { ...idle(10), busy: true }
    assert.isAbove(Rebalancer.defaultCost(busy), Rebalancer.defaultCost(idle(0, 10 * 1024 * 1024)))
    assert.isBelow(Rebalancer.defaultCost(idle(2, 1024)), Rebalancer.defaultCost(idle(2, 64 * 1024)), "the smaller state first")
    assert.isBelow(Rebalancer.defaultCost(idle(3, 2048)), Rebalancer.defaultCost(idle(0)), "much longer idle outweighs 2 KiB")
    assert.isBelow(Rebalancer.defaultCost(idle(0)), Rebalancer.defaultCost(idle(3, 8 * 1024)), "8 KiB outweighs 3 sweeps")
  })

  const Saved = Actor.make("CostSaved", [Rpc.make("Save", { payload: { text: Schema.String } })])
  const savedLayer = Saved.toLayer(Effect.gen(function*() {
    const state = yield* ActorState.make("text", { schema: Schema.String, initial: () => "" })
    return Saved.of({ Save: ({ text }) => Effect.orDie(Effect.andThen(state.set(text), state.write)) })
  }))

  it.effect("a clustered activation's state size is its records' encoded size at their last write", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 1, implementations: savedLayer })
      const [silo] = cluster.silos
      const text = "x".repeat(5000)
      yield* silo!.run(Effect.flatMap(Saved.ref("s-1"), (saved) => saved.Save({ text })))
      const act = yield* silo!.run(Effect.map(Silo.Silo, (s) => s.router.slots.get(Saved.type)!.activations.get("s-1")!))
      assert.strictEqual(Handover.stateBytes(act), JSON.stringify(text).length)
      yield* silo!.run(Effect.flatMap(Saved.ref("s-1"), (saved) => saved.Save({ text: "short" })))
      assert.strictEqual(Handover.stateBytes(act), JSON.stringify("short").length)
    }).pipe(Effect.scoped))
})

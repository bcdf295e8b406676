/**
 * Reminders in an in-process cluster (memory membership on the TestClock, real TCP on
 * 127.0.0.1, one shared memory store): each bucket fires on one silo only, and when a silo
 * crashes its buckets move to the survivors within the failure-detection time, so every
 * reminder goes on with no tick lost and none delivered twice, except a tick that was
 * being delivered at the crash (at least once).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Silo } from "../../src/index.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import * as MemoryReminderStore from "../../src/Reminders/MemoryReminderStore.ts"
import * as Reminders from "../../src/Reminders/Reminders.ts"
import { advance } from "../fixtures/ClusterClock.ts"

const Beat = Actor.make("Beat", [Rpc.make("Tick", { payload: { n: Schema.Int } })])

interface Delivery {
  readonly id: string
  readonly due: number
  readonly silo: string
}

const deliveries: Array<Delivery> = []

const BeatLive = Beat.toLayer(Effect.gen(function*() {
  const { id } = (yield* ActorContext).address
  const silo = (yield* Cluster).self!.id
  return Beat.of({
    Tick: () =>
      Effect.map(Reminders.currentTick, (tick) => void deliveries.push({ id, due: tick!.due, silo }))
  })
}))

const store = MemoryReminderStore.make("cluster-test")
const bucketCount = 16
const implementations = Layer.mergeAll(
  BeatLive,
  Layer.effectDiscard(Layer.build(Reminders.layer({ store, bucketCount, keepInterval: "500 millis" })))
)

const ids = Array.from({ length: 40 }, (_, i) => `b-${i}`)

describe("reminders in a cluster", () => {
  it.effect("every bucket fires on one silo; a crashed silo's reminders go on elsewhere, none lost", () =>
    Effect.gen(function*() {
      deliveries.length = 0
      const cluster = yield* TestCluster.make({ silos: 3, implementations })
      const [a, b, c] = cluster.silos
      yield* cluster.settle
      for (const id of ids) {
        yield* a!.run(
          // `each`: the ticks that fell due while the crashed silo's buckets were being moved
          // all fire on the new owner (the default, `once`, would catch up with one).
          Reminders.register(Beat, id, "beat", { message: "Tick", payload: { n: 1 }, every: "1 second", missed: { each: 10 } })
        )
      }
      yield* advance(3_000)
      const silosBefore = new Set(deliveries.map((d) => d.silo))
      assert.strictEqual(silosBefore.size, 3, "the buckets are spread over the three silos")
      // Each reminder fired from one silo only, once per due time.
      for (const id of ids) {
        const mine = deliveries.filter((d) => d.id === id)
        assert.deepStrictEqual(mine.map((d) => d.due), [1_000, 2_000, 3_000], id)
        assert.strictEqual(new Set(mine.map((d) => d.silo)).size, 1, `${id} fired on one silo`)
      }

      const crashedAt = yield* Effect.clockWith((clock) => clock.currentTimeMillis)
      const victim = b!
      const victimIds = new Set(deliveries.filter((d) => d.silo === victim.id).map((d) => d.id))
      assert.isAbove(victimIds.size, 0)
      yield* victim.crash
      // Declared dead after 3 s of silence (the production timings), then the keepers of the
      // survivors activate the buckets it owned (within their 500 ms interval).
      yield* advance(8_000)
      const after = deliveries.filter((d) => d.due > crashedAt)
      for (const id of ids) {
        const dues = after.filter((d) => d.id === id).map((d) => d.due)
        // No due time lost: every second from the crash to now, each delivered (at least) once.
        const distinct = [...new Set(dues)].sort((x, y) => x - y)
        assert.deepStrictEqual(distinct, [4_000, 5_000, 6_000, 7_000, 8_000, 9_000, 10_000, 11_000], id)
        assert.strictEqual(dues.length, distinct.length, `${id}: no due time delivered twice after the crash`)
        assert.isFalse(after.some((d) => d.id === id && d.silo === victim.id), `${id}: nothing ran on the crashed silo`)
      }
      const moved = [...victimIds].filter((id) => after.some((d) => d.id === id))
      assert.strictEqual(moved.length, victimIds.size, "every reminder of the crashed silo fires on a survivor")
      for (const id of moved) {
        const silos = new Set(after.filter((d) => d.id === id).map((d) => d.silo))
        assert.isTrue([...silos].every((silo) => silo === a!.id || silo === c!.id), id)
      }
    }).pipe(Effect.scoped))

  it.effect("a joining silo takes over its share of the buckets: every due time delivered exactly once", () =>
    Effect.gen(function*() {
      deliveries.length = 0
      const cluster = yield* TestCluster.make({ silos: 2, implementations })
      const [a] = cluster.silos
      yield* cluster.settle
      for (const id of ids) {
        yield* a!.run(Reminders.register(Beat, id, "join", { message: "Tick", payload: { n: 1 }, every: "1 second" }))
      }
      yield* advance(2_000)
      const joiner = yield* cluster.addSilo
      yield* cluster.settle
      yield* advance(6_000)
      const bucketsOnJoiner = yield* joiner.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations("$reminders")))
      assert.isAbove(bucketsOnJoiner.length, 0, "the new silo fires some buckets")
      assert.isAbove(deliveries.filter((d) => d.silo === joiner.id).length, 0, "and runs some of the actors")
      for (const id of ids) {
        const dues = deliveries.filter((d) => d.id === id).map((d) => d.due)
        assert.deepStrictEqual(dues, [1_000, 2_000, 3_000, 4_000, 5_000, 6_000, 7_000, 8_000], id)
      }
    }).pipe(Effect.scoped))
})

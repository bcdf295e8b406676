/**
 * Draining a silo in-process (memory membership, real TCP on 127.0.0.1): `Cluster.drain`
 * under a steady load of calls from a client fails none of them, loses no in-memory state
 * (hashed actors are handed over on `Release`, directory-placed ones migrated), and leaves
 * the silo holding nothing, out of every view; it runs once however often it is asked. And a
 * `Release` addressed to an older incarnation at a silo's own `host:port` (a silo
 * restarted in place, asked by a peer whose view still has its predecessor) is answered at
 * once: nothing is held there.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Layer, Option, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import type { ActorAddress } from "../../src/Actor/ActorAddress.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as Control from "../../src/Cluster/internal/Control.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import * as Placement from "../../src/Cluster/Placement.ts"
import { Actor, Migration, Silo } from "../../src/index.ts"

const ids = Array.from({ length: 40 }, (_, i) => `d-${i}`)

const Increment = Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
/** Hashed (the default placement). */
const Hashed = Actor.make("DrainHashed", [Increment])
/** Placed at random and registered in the directory. */
const Placed = Actor.make("DrainPlaced", [Increment], { placement: Placement.random })
/** Its count is in memory only, and handed over when it moves (dehydrated, then rehydrated). */
const layerOf = (contract: typeof Hashed | typeof Placed) =>
  contract.toLayer(Effect.gen(function*() {
    const handed = yield* Effect.orDie(Migration.rehydrated("count", Schema.Int))
    const count = yield* Ref.make(Option.getOrElse(handed, () => 0))
    yield* Migration.onDehydrate("count", Schema.Int, Ref.get(count))
    return contract.of({ Increment: ({ by }) => Ref.updateAndGet(count, (n) => n + by) })
  }))
const implementations = Layer.mergeAll(layerOf(Hashed), layerOf(Placed))

describe("Cluster.drain", () => {
  it.live.each([
    ["hashed", Hashed],
    ["directory-placed", Placed]
  ] as const)("%s actors, under steady calls from a client: none fails, the drained silo ends holding nothing and out of every view", ([, Counter]) =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 3, implementations })
      const [first, second, third] = cluster.silos
      const client = yield* cluster.addClient
      const failures: Array<string> = []
      const acknowledged = new Map<string, number>()
      let calls = 0
      let stop = false
      const load = yield* Effect.forkChild(Effect.forEach(ids, (id) =>
        Effect.gen(function*() {
          while (!stop) {
            const result = yield* Effect.result(
              client.run(Effect.flatMap(Counter.ref(id), (counter) => counter.Increment({ by: 1 }, { timeout: "5 seconds" })))
            )
            calls++
            if (result._tag === "Failure") failures.push(`${id}: ${String(result.failure)}`)
            else {
              // Each answer is the count after this increment: one more than the last, wherever it ran.
              const expected = (acknowledged.get(id) ?? 0) + 1
              if (result.success !== expected) failures.push(`${id}: counted ${result.success}, expected ${expected}`)
              acknowledged.set(id, result.success)
            }
            yield* Effect.sleep("2 millis")
          }
        }), { concurrency: "unbounded", discard: true }))
      // Until every address has an activation somewhere, the first silo holding some.
      const held = () => first!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations()))
      while ((yield* held()).length === 0 || calls < 200) yield* Effect.sleep("10 millis")

      const drain = first!.run(Effect.flatMap(Cluster, (c) => c.drain))
      // Asked three times at once: one drain.
      yield* Effect.all([drain, drain, drain], { concurrency: "unbounded" })
      const after = calls
      while (calls < after + 200) yield* Effect.sleep("10 millis")
      stop = true
      yield* Fiber.join(load)

      assert.deepStrictEqual(failures, [], `${failures.length} of ${calls} calls failed`)
      assert.deepStrictEqual(yield* held(), [], "the drained silo holds nothing")
      for (const member of [second!, third!, client]) {
        const members = yield* member.run(Effect.flatMap(Cluster, (c) => c.members))
        assert.notInclude(members, first!.id, `${member.id}'s view dropped the drained silo`)
      }
      const others = [
        ...(yield* second!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations()))),
        ...(yield* third!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations())))
      ].map((row) => row.address.id)
      assert.sameMembers(others.filter((id) => ids.includes(id)), ids, "every address is served by the others, once")
      // `drained` completes once done, for anyone who waits on it.
      yield* first!.run(Effect.flatMap(Cluster, (c) => c.drained))
    }).pipe(Effect.scoped), 30_000)
})

describe("Cluster.drain of idle actors", () => {
  it.live("the in-memory state of hashed actors nobody calls during the drain follows them to their new owners", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations })
      const [first, second] = cluster.silos
      const client = yield* cluster.addClient
      const increment = (id: string) => client.run(Effect.flatMap(Hashed.ref(id), (counter) => counter.Increment({ by: 1 })))
      for (const id of ids) for (let n = 0; n < 3; n++) yield* increment(id)
      const held = (yield* first!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations(Hashed.type)))).map((row) => row.address.id)
      assert.isAbove(held.length, 0)
      yield* first!.run(Effect.flatMap(Cluster, (c) => c.drain))
      // The second silo activated them with their state before the drain ended (none was called).
      const adopted = (yield* second!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations(Hashed.type)))).map((row) => row.address.id)
      assert.includeMembers(adopted, held)
      for (const id of held) assert.strictEqual(yield* increment(id), 4, `${id} kept its count`)
    }).pipe(Effect.scoped), 30_000)
})

describe("Release addressed to a predecessor", () => {
  const AddressJson = Schema.fromJsonString(Schema.Array(Schema.String))
  const releaseOf = (target: string, address: ActorAddress) => ({
    requestId: 1,
    target: { type: Control.controlType, id: target },
    tag: "Release",
    payload: new TextEncoder().encode(Schema.encodeSync(AddressJson)([address.type, address.id, "127.0.0.1:9000@7"])),
    context: { correlationId: "", metadata: {} },
    chain: [],
    timeoutMillis: 1000
  })
  const hostAt = (self: string | undefined, released: Array<[ActorAddress, string | undefined]>): Control.ControlHost => ({
    self: () => self,
    address: "127.0.0.1:5000",
    reachesRegistry: () => true,
    release: (address, to) => Effect.sync(() => void released.push([address, to]))
  })
  const address = { type: "Counter", id: "c-1" }

  it.effect("an older generation at this silo's host:port is answered released at once, and nothing here is released", () =>
    Effect.gen(function*() {
      const released: Array<[ActorAddress, string | undefined]> = []
      const host = hostAt("127.0.0.1:5000@20", released)
      assert.deepStrictEqual((yield* Control.handle(host, releaseOf("127.0.0.1:5000@10", address)))._tag, "Success")
      // Before this silo joined (no id yet), any incarnation at its address is a predecessor.
      assert.deepStrictEqual((yield* Control.handle(hostAt(undefined, released), releaseOf("127.0.0.1:5000@10", address)))._tag, "Success")
      assert.deepStrictEqual(released, [])
    }))

  it.effect("this silo releases (to the asker); a newer generation, or another address, is refused", () =>
    Effect.gen(function*() {
      const released: Array<[ActorAddress, string | undefined]> = []
      const host = hostAt("127.0.0.1:5000@20", released)
      assert.strictEqual((yield* Control.handle(host, releaseOf("127.0.0.1:5000@20", address)))._tag, "Success")
      assert.deepStrictEqual(released, [[address, "127.0.0.1:9000@7"]])
      assert.strictEqual((yield* Control.handle(host, releaseOf("127.0.0.1:5000@30", address)))._tag, "Failure")
      assert.strictEqual((yield* Control.handle(host, releaseOf("127.0.0.1:5001@10", address)))._tag, "Failure")
      assert.strictEqual(released.length, 1)
    }))
})

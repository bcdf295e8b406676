import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { HashRing } from "../../src/Cluster/index.ts"
import * as Placement from "../../src/Cluster/Placement.ts"

const silos = ["a:1@1", "b:1@1", "c:1@1", "d:1@1"]
const address = fc.record({ type: fc.constantFrom("Account", "Ledger"), id: fc.string({ minLength: 1, maxLength: 20 }) })

/** A deterministic source of randomness cycling through `values`. */
const sequence = (values: ReadonlyArray<number>) => {
  let i = 0
  return () => values[i++ % values.length]
}

describe("placement policies", () => {
  it.effect("consistent hashing places on the ring's owner, needs no directory, and every silo agrees", () =>
    Effect.gen(function*() {
      const ring = yield* HashRing.make(silos.map((id) => ({ id })))
      fc.assert(fc.property(address, (addr) => {
        const owners = silos.map((self) => Placement.consistentHash.place(addr, { self, ring, random: Math.random }))
        assert.strictEqual(owners[0], ring.owner(HashRing.actorKey(addr)))
        assert.isTrue(owners.every((owner) => owner === owners[0]), "every silo computes the same owner")
      }))
      assert.isFalse(Placement.consistentHash.usesDirectory)
    }))

  it.effect("random places only on members that take activations, each of them in turn", () =>
    Effect.gen(function*() {
      const ring = yield* HashRing.make([...silos.map((id) => ({ id })), { id: "drained:1@1", weight: 0 }])
      const view = { self: "a:1@1", ring, random: sequence([0, 0.26, 0.51, 0.76, 0.99]) }
      const placed = Array.from({ length: 5 }, () => Placement.random.place({ type: "T", id: "x" }, view))
      assert.deepStrictEqual(placed, ["a:1@1", "b:1@1", "c:1@1", "d:1@1", "d:1@1"])
      assert.isTrue(Placement.random.usesDirectory)
    }))

  it.effect("prefer-local places on the calling silo when it is a member, else on the ring's owner", () =>
    Effect.gen(function*() {
      const ring = yield* HashRing.make(silos.map((id) => ({ id })))
      fc.assert(fc.property(address, fc.constantFrom(...silos), (addr, self) => {
        assert.strictEqual(Placement.preferLocal.place(addr, { self, ring, random: Math.random }), self)
        assert.strictEqual(
          Placement.preferLocal.place(addr, { self: "client:0@1", ring, random: Math.random }),
          ring.owner(HashRing.actorKey(addr))
        )
      }))
      assert.isTrue(Placement.preferLocal.usesDirectory)
    }))

  it.effect("directory placements prefer the view's preferred hosts (the caller's version), and fall back to every host", () =>
    Effect.gen(function*() {
      const ring = yield* HashRing.make(silos.map((id) => ({ id })))
      const preferred = yield* HashRing.make([{ id: "b:1@1" }, { id: "d:1@1" }])
      const view = { self: "client:0@1", ring, preferred, random: sequence([0, 0.3, 0.6, 0.99]) }
      const placed = Array.from({ length: 4 }, () => Placement.random.place({ type: "T", id: "x" }, view))
      assert.deepStrictEqual(placed, ["b:1@1", "b:1@1", "d:1@1", "d:1@1"])
      fc.assert(fc.property(address, (addr) => {
        // From a caller that does not host the type: the owner among the preferred hosts.
        assert.strictEqual(Placement.preferLocal.place(addr, view), preferred.owner(HashRing.actorKey(addr)))
        // A host places on itself, whatever the preference.
        assert.strictEqual(Placement.preferLocal.place(addr, { ...view, self: "a:1@1" }), "a:1@1")
        // Hashed: the owner on the ring of all hosts, never version-preferring.
        assert.strictEqual(Placement.consistentHash.place(addr, view), ring.owner(HashRing.actorKey(addr)))
      }))
      // Preferred hosts that take no activations (weight 0): any host.
      const drained = yield* HashRing.make([{ id: "b:1@1", weight: 0 }])
      assert.strictEqual(Placement.random.place({ type: "T", id: "x" }, { ...view, preferred: drained, random: () => 0 }), "a:1@1")
    }))

  it.effect("with no silo alive there is nowhere to place", () =>
    Effect.gen(function*() {
      const ring = yield* HashRing.make([])
      const view = { self: "a:1@1", ring, random: () => 0.5 }
      for (const policy of [Placement.consistentHash, Placement.random, Placement.preferLocal]) {
        assert.isUndefined(policy.place({ type: "T", id: "x" }, view), policy.name)
      }
    }))
})

/**
 * Membership through registry outages, on the in-memory registry and the TestClock (default
 * timings: heartbeat 500 ms, suspect 1.5 s, dead 3 s, outage grace 30 s):
 *
 * - an outage confirmed by every member extends each silo's lease up to the grace period;
 *   without confirmation a silo fences itself `deadAfter − heartbeat` after its last
 *   acknowledged heartbeat, as before;
 * - when the registry comes back with its data, nobody is declared dead for the silence;
 * - when it comes back empty (a new epoch), silos register again under the same identity,
 *   and every view (a client's too) keeps its members, then drops those that did not return
 *   once the grace has passed;
 * - an outage longer than the grace fences every silo (reason `unreachable`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import * as MemoryMembership from "../../src/Cluster/MemoryMembership.ts"
import type { MembershipEvent, MembershipShape } from "../../src/Cluster/Membership.ts"
import * as SiloIdentity from "../../src/Cluster/SiloIdentity.ts"

let port = 7000

const setup = Effect.gen(function*() {
  const registry = MemoryMembership.makeRegistry()
  const membership = () => MemoryMembership.make(registry)
  return { registry, membership }
})

/** Joins `membership` in a scope of its own; `confirm` answers the outage question. */
const joinWith = (membership: MembershipShape, confirm: () => boolean) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const identity = yield* SiloIdentity.generate("10.0.0.2", ++port)
    const registration = yield* Scope.provide(scope)(
      membership.join(identity, { confirmOutage: Effect.sync(confirm) })
    )
    return { identity, registration }
  })

const events = (membership: MembershipShape) =>
  Effect.gen(function*() {
    const log: Array<MembershipEvent> = []
    yield* Effect.forkScoped(Stream.runForEach(yield* membership.subscribe, (event) => Effect.sync(() => void log.push(event))))
    return log
  })

const ids = (membership: MembershipShape) => Effect.map(membership.members, (members) => members.map((m) => m.identity.id))

describe("registry outages (memory registry, TestClock)", () => {
  it.effect("a confirmed outage keeps every silo serving up to the grace period; nobody dies of it", () =>
    Effect.gen(function*() {
      const { membership, registry } = yield* setup
      const a = yield* membership()
      const b = yield* membership()
      const silos = [yield* joinWith(a, () => true), yield* joinWith(b, () => true)]
      const seen = yield* events(a)
      yield* TestClock.adjust(1000)
      yield* registry.outage()
      yield* TestClock.adjust(20_000)
      for (const { registration } of silos) {
        assert.isTrue(registration.leaseValid(), "the lease holds 20 s into a confirmed outage")
        assert.isFalse(registration.reachesRegistry())
        assert.strictEqual(yield* registration.status, "alive")
      }
      yield* registry.restore()
      yield* TestClock.adjust(2000)
      for (const { registration } of silos) {
        assert.isTrue(registration.leaseValid())
        assert.isTrue(registration.reachesRegistry())
      }
      yield* TestClock.adjust(60_000)
      assert.deepStrictEqual(seen.filter((event) => event._tag === "Dead"), [], "nobody was declared dead")
      assert.deepStrictEqual((yield* ids(a)).length, 2)
    }))

  it.effect("an outage nobody confirms fences a silo deadAfter − heartbeat after its last acknowledged heartbeat", () =>
    Effect.gen(function*() {
      const { membership, registry } = yield* setup
      const a = yield* membership()
      const { registration } = yield* joinWith(a, () => false)
      yield* TestClock.adjust(1000) // heartbeats at 500 and 1000 acknowledged
      yield* registry.outage()
      yield* TestClock.adjust(2499)
      assert.isTrue(registration.leaseValid())
      yield* TestClock.adjust(1)
      assert.isFalse(registration.leaseValid(), "expired at 1000 + 2500")
      yield* TestClock.adjust(1)
      assert.strictEqual((yield* registration.declaredDead).reason, "unreachable")
    }))

  it.effect("an outage longer than the grace fences every silo", () =>
    Effect.gen(function*() {
      const { membership, registry } = yield* setup
      const a = yield* membership()
      const { registration } = yield* joinWith(a, () => true)
      yield* TestClock.adjust(1000)
      yield* registry.outage()
      yield* TestClock.adjust(29_000)
      assert.isTrue(registration.leaseValid())
      yield* TestClock.adjust(1_100)
      assert.isFalse(registration.leaseValid(), "no lease past 30 s after the last acknowledged heartbeat")
      assert.strictEqual((yield* registration.declaredDead).reason, "unreachable")
    }))

  it.effect("a registry back empty: silos register again under the same id; views keep them throughout", () =>
    Effect.gen(function*() {
      const { membership, registry } = yield* setup
      const a = yield* membership()
      const b = yield* membership()
      const reader = yield* membership() // a client: reads, never joins
      const silos = [yield* joinWith(a, () => true), yield* joinWith(b, () => true)]
      const seen = yield* events(reader)
      yield* TestClock.adjust(1000)
      const before = yield* ids(reader)
      yield* registry.outage()
      yield* TestClock.adjust(5000)
      yield* registry.restore({ empty: true })
      yield* TestClock.adjust(1000)
      assert.deepStrictEqual(yield* registry.ids, silos.map((s) => s.identity.id), "both registered again")
      assert.deepStrictEqual(yield* ids(reader), before)
      yield* TestClock.adjust(60_000)
      assert.deepStrictEqual(yield* ids(reader), before)
      assert.deepStrictEqual(seen.filter((event) => event._tag !== "Joined"), [], "no member left or died")
      for (const { registration } of silos) assert.isTrue(registration.leaseValid())
    }))

  it.effect("a registry back empty: a member that does not return is dropped from every view after grace + deadAfter", () =>
    Effect.gen(function*() {
      const { membership, registry } = yield* setup
      const a = yield* membership()
      const b = yield* membership()
      const reader = yield* membership()
      yield* joinWith(a, () => true)
      const gone = yield* joinWith(b, () => true)
      yield* TestClock.adjust(1000)
      yield* registry.freeze(gone.identity.id) // b crashed during the outage: it will never heartbeat again
      yield* registry.outage()
      yield* TestClock.adjust(5000)
      yield* registry.restore({ empty: true })
      yield* TestClock.adjust(1000)
      assert.include(yield* ids(reader), gone.identity.id, "kept while it may still be serving")
      yield* TestClock.adjust(30_000)
      assert.include(yield* ids(reader), gone.identity.id)
      yield* TestClock.adjust(3_500)
      assert.notInclude(yield* ids(reader), gone.identity.id, "dropped once the grace and deadAfter passed")
      assert.strictEqual((yield* ids(reader)).length, 1)
    }))

  it.effect("after a registry-wide silence, members that stopped heartbeating are kept for the grace, then declared dead", () =>
    Effect.gen(function*() {
      const { membership, registry } = yield* setup
      const a = yield* membership()
      const b = yield* membership()
      const c = yield* membership()
      const first = yield* joinWith(a, () => true)
      const second = yield* joinWith(b, () => true)
      yield* TestClock.adjust(1000)
      // Both stop heartbeating (crashed, or paused together): the registry hears nothing.
      yield* registry.freeze(first.identity.id)
      yield* registry.freeze(second.identity.id)
      yield* TestClock.adjust(5000)
      assert.strictEqual((yield* ids(c)).length, 2, "silence is not death")
      // A new silo joins: from now on the registry hears heartbeats again.
      const third = yield* joinWith(c, () => true)
      yield* TestClock.adjust(30_000)
      assert.strictEqual((yield* ids(c)).length, 3, "kept for the grace after the silence")
      yield* TestClock.adjust(4_000)
      assert.deepStrictEqual(yield* ids(c), [third.identity.id], "then declared dead")
    }))
})

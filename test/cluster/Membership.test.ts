/**
 * Membership: one behavioural suite run against the in-memory registry (on the TestClock,
 * default timings) and against Redis (real time, short timings, bounded waits), then the
 * specifics of each.
 *
 * Every wait is `waitFor`: it checks a condition, then lets time pass one step (the memory
 * suite adjusts the TestClock; the Redis suite sleeps a few milliseconds), and fails past
 * a bound derived from the documented timing, so a measured time is both a check and the
 * latency of what it measured.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Exit, Scope, Stream } from "effect"
import { TestClock } from "effect/testing"
import { Redis } from "ioredis"
import * as ClusterSilo from "../../src/Cluster/ClusterSilo.ts"
import * as MemoryMembership from "../../src/Cluster/MemoryMembership.ts"
import {
  type MembershipEvent,
  MembershipError,
  type MembershipShape,
  type Metadata,
  NotAMember,
  type Registration,
  SiloDeclaredDead
} from "../../src/Cluster/Membership.ts"
import * as RedisMembership from "../../src/Cluster/RedisMembership.ts"
import * as SiloIdentity from "../../src/Cluster/SiloIdentity.ts"
import * as FreezableMembership from "../fixtures/FreezableMembership.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"

type Tester = typeof it.effect

/** One silo's membership (with faults of its view), and how to make it crash (stop heartbeating without leaving). */
interface TestSilo {
  readonly membership: FreezableMembership.FreezableMembership
  readonly freeze: (id: string) => Effect.Effect<void>
}

interface Harness {
  /** A new silo's membership on the shared registry, closed with the scope. */
  readonly silo: Effect.Effect<TestSilo, never, Scope.Scope>
  /** Deletes a member's entry behind everyone's back: no tombstone, no announcement. */
  readonly vanish: (id: string) => Effect.Effect<void>
}

interface Subject {
  readonly label: string
  readonly test: Tester
  readonly timings: { readonly heartbeat: number; readonly suspect: number; readonly dead: number; readonly refresh: number }
  /** Measurement tolerance (the step of `waitFor` plus, in real time, scheduling noise). */
  readonly slack: number
  /** Lets time pass one step. */
  readonly step: Effect.Effect<void>
  readonly harness: Effect.Effect<Harness, never, Scope.Scope>
}

interface Recorded {
  readonly event: MembershipEvent
  readonly at: number
}

/** Subscribes now and records every event with the time it arrived. */
const record = (membership: MembershipShape) =>
  Effect.gen(function*() {
    const log: Array<Recorded> = []
    const stream = yield* membership.subscribe
    yield* Effect.forkScoped(
      Stream.runForEach(stream, (event) => Effect.map(Clock.currentTimeMillis, (at) => void log.push({ event, at })))
    )
    return log
  })

const has = (log: ReadonlyArray<Recorded>, tag: MembershipEvent["_tag"], id: string) =>
  log.some(({ event }) => event._tag === tag && event.identity.id === id)

const find = (log: ReadonlyArray<Recorded>, tag: MembershipEvent["_tag"], id: string) =>
  log.find(({ event }) => event._tag === tag && event.identity.id === id)?.event

const memberIds = (membership: MembershipShape) =>
  Effect.map(membership.members, (members) => members.map((m) => m.identity.id))

const statusOf = (membership: MembershipShape, id: string) =>
  Effect.map(membership.members, (members) => members.find((m) => m.identity.id === id)?.status)

const metadataOf = (membership: MembershipShape, id: string) =>
  Effect.map(membership.members, (members) => members.find((m) => m.identity.id === id)?.metadata)

/** The metadata of every `Updated` event about `id`, in order. */
const updatesOf = (log: ReadonlyArray<Recorded>, id: string): Array<Metadata> =>
  log.flatMap(({ event }) => event._tag === "Updated" && event.identity.id === id ? [event.metadata] : [])

const isDone = (registration: Registration) => Effect.map(registration.status, (status) => status === "dead")

let port = 5000
const freshIdentity = (host = "10.0.0.1") => SiloIdentity.generate(host, ++port)

/** Joins in a scope of its own, so a test can close it (leave) before the test ends. */
const joinIn = (silo: TestSilo, identity: SiloIdentity.SiloIdentity, metadata?: Record<string, string>) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const registration = yield* Scope.provide(scope)(silo.membership.join(identity, { metadata }))
    return { registration, leave: Scope.close(scope, Exit.void) }
  })

export const membershipSuite = (subject: Subject) => {
  const { slack, step, test, timings } = subject

  /**
   * Waits until `condition` holds, letting time pass one step at a time; returns the time it
   * took. Fails (naming `what`) when `maxMillis` pass first.
   */
  const waitFor = (what: string, maxMillis: number, condition: Effect.Effect<boolean>) =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      while (true) {
        const now = yield* Clock.currentTimeMillis
        if (yield* condition) return now - start
        if (now - start > maxMillis) return yield* Effect.die(new Error(`${what}: not within ${maxMillis} ms`))
        yield* step
      }
    })
  /** Lets `millis` pass, step by step. */
  const pass = (millis: number) =>
    Effect.gen(function*() {
      const start = yield* Clock.currentTimeMillis
      while ((yield* Clock.currentTimeMillis) - start < millis) yield* step
    })
  const check = (condition: () => boolean) => Effect.sync(condition)
  /** An announcement reaches the others at once; a missed one within one full read. */
  const announced = timings.refresh + slack

  describe(`${subject.label}: membership`, () => {
    test("join and leave are visible to the other silos, with Joined and Left events", () =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const a = yield* harness.silo
        const b = yield* harness.silo
        const seenByB = yield* record(b.membership)
        const idA = yield* freshIdentity()
        const { leave, registration } = yield* joinIn(a, idA, { zone: "eu-1" })

        assert.include(yield* memberIds(a.membership), idA.id, "the joiner sees itself at once")
        assert.strictEqual(yield* registration.status, "alive")
        yield* waitFor("B sees A join", announced, Effect.map(memberIds(b.membership), (ids) => ids.includes(idA.id)))
        yield* waitFor("B gets Joined", announced, check(() => has(seenByB, "Joined", idA.id)))
        const joined = find(seenByB, "Joined", idA.id)
        assert.deepStrictEqual(joined?._tag === "Joined" ? joined.metadata : undefined, { zone: "eu-1" })
        const asSeen = (yield* b.membership.members).find((m) => m.identity.id === idA.id)
        assert.strictEqual(asSeen?.status, "alive")
        assert.deepStrictEqual(asSeen?.metadata, { zone: "eu-1" })
        assert.strictEqual(asSeen?.identity.host, "10.0.0.1")

        yield* leave
        assert.strictEqual(yield* registration.status, "left")
        assert.notInclude(yield* memberIds(a.membership), idA.id, "the leaver drops itself at once")
        yield* waitFor("B gets Left", announced, check(() => has(seenByB, "Left", idA.id)))
        assert.notInclude(yield* memberIds(b.membership), idA.id)
        // Beyond the death timeout nothing else happens: a member that left is not "dead".
        yield* pass(timings.dead + timings.refresh + slack)
        assert.isFalse(has(seenByB, "Dead", idA.id))
        assert.isFalse(has(seenByB, "Suspected", idA.id))
      }))

    test("a member that stops heartbeating is suspected, then declared dead, within the documented timing; it is told", () =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const a = yield* harness.silo
        const b = yield* harness.silo
        const seenByB = yield* record(b.membership)
        const idA = yield* freshIdentity()
        const idB = yield* freshIdentity()
        const { registration: regA } = yield* joinIn(a, idA)
        yield* joinIn(b, idB)
        yield* waitFor("B sees A", announced, check(() => has(seenByB, "Joined", idA.id)))

        // Crash A: no more heartbeats, no leave. (Its service keeps listening, so it can be told.)
        yield* a.freeze(idA.id)
        const suspectedAfter = yield* waitFor(
          "B suspects A",
          timings.suspect + timings.refresh + slack,
          check(() => has(seenByB, "Suspected", idA.id))
        )
        // The last heartbeat may have gone out up to one interval before the crash.
        assert.isAtLeast(suspectedAfter, timings.suspect - timings.heartbeat - slack, "not suspected early")
        assert.strictEqual(yield* statusOf(b.membership, idA.id), "suspected")
        assert.isFalse(has(seenByB, "Dead", idA.id))

        const deadAfter = suspectedAfter + (yield* waitFor(
          "B declares A dead",
          timings.dead - suspectedAfter + timings.refresh + slack,
          check(() => has(seenByB, "Dead", idA.id))
        ))
        assert.isAtLeast(deadAfter, timings.dead - timings.heartbeat - slack, "not dead early")
        assert.isAtMost(deadAfter, timings.dead + timings.refresh + slack)
        const dead = find(seenByB, "Dead", idA.id)
        assert.strictEqual(dead?._tag === "Dead" ? dead.reason : undefined, "timeout")
        assert.deepStrictEqual(yield* memberIds(b.membership), [idB.id])
        assert.strictEqual(yield* statusOf(b.membership, idB.id), "alive", "the survivor is not suspected")
        assert.isFalse(has(seenByB, "Suspected", idB.id))

        // A is told (it hears its own death at once).
        yield* waitFor("A is told", announced, isDone(regA))
        const told = yield* regA.declaredDead
        assert.instanceOf(told, SiloDeclaredDead)
        assert.strictEqual(told.id, idA.id)
        assert.strictEqual(told.reason, "timeout")
        assert.notInclude(yield* memberIds(a.membership), idA.id)
      }))

    test("the full read repairs a missed event: an entry deleted behind the cluster's back is dead, and its silo is told", () =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const a = yield* harness.silo
        const b = yield* harness.silo
        const seenByB = yield* record(b.membership)
        const idA = yield* freshIdentity()
        const { registration: regA } = yield* joinIn(a, idA)
        yield* waitFor("B sees A", announced, check(() => has(seenByB, "Joined", idA.id)))

        yield* harness.vanish(idA.id) // nothing is announced
        yield* waitFor("B's full read notices", announced, check(() => has(seenByB, "Dead", idA.id)))
        const dead = find(seenByB, "Dead", idA.id)
        assert.strictEqual(dead?._tag === "Dead" ? dead.reason : undefined, "removed")
        assert.notInclude(yield* memberIds(b.membership), idA.id)

        // A learns from its next refused heartbeat or full read, and stops heartbeating: its
        // entry is never re-created.
        yield* waitFor("A is told", timings.heartbeat + timings.refresh + slack, isDone(regA))
        assert.strictEqual((yield* regA.declaredDead).reason, "removed")
        yield* pass(3 * timings.heartbeat)
        yield* b.membership.refresh
        assert.notInclude(yield* memberIds(b.membership), idA.id)
        assert.strictEqual(seenByB.filter(({ event }) => event.identity.id === idA.id).length, 2, "Joined, Dead")
      }))

    test("a restarted silo (same host:port, new generation) is a new member; the old generation is declared dead at once", () =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const observer = yield* harness.silo
        const seen = yield* record(observer.membership)
        const before = yield* harness.silo
        const old = yield* SiloIdentity.generate("10.0.0.9", 7000)
        const { registration: regOld } = yield* joinIn(before, old)
        yield* waitFor("the old one is seen", announced, check(() => has(seen, "Joined", old.id)))
        yield* before.freeze(old.id) // kill -9

        const after = yield* harness.silo
        const restarted = yield* SiloIdentity.generate("10.0.0.9", 7000)
        assert.strictEqual(restarted.address, old.address)
        assert.isAbove(restarted.generation, old.generation)
        assert.notStrictEqual(restarted.id, old.id)
        yield* joinIn(after, restarted)

        // Long before the death timeout: the address is taken, so the old process is gone.
        yield* waitFor("the old generation is dead", announced, check(() => has(seen, "Dead", old.id)))
        const dead = find(seen, "Dead", old.id)
        assert.strictEqual(dead?._tag === "Dead" ? dead.reason : undefined, "superseded")
        yield* waitFor("the new generation joined", announced, check(() => has(seen, "Joined", restarted.id)))
        assert.include(yield* memberIds(observer.membership), restarted.id)
        assert.notInclude(yield* memberIds(observer.membership), old.id)
        yield* waitFor("the old incarnation is told", announced, isDone(regOld))
        assert.strictEqual((yield* regOld.declaredDead).reason, "superseded")
      }))

    test("an id joins once: a second join, or a rejoin after leaving or dying, fails with DuplicateSilo", () =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const a = yield* harness.silo
        const b = yield* harness.silo
        const id = yield* freshIdentity()
        const { leave } = yield* joinIn(a, id)
        const twice = yield* Effect.flip(joinIn(b, id))
        assert.strictEqual(twice._tag, "DuplicateSilo")
        yield* leave
        const again = yield* Effect.flip(joinIn(a, id))
        assert.strictEqual(again._tag, "DuplicateSilo")
        assert.include(again.message, "new generation")
      }))

    test("a silo that starts later sees the current members at once (the first full read)", () =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const a = yield* harness.silo
        const idA = yield* freshIdentity()
        yield* joinIn(a, idA, { role: "frontend" })
        const late = yield* harness.silo
        const members = yield* late.membership.members
        assert.deepStrictEqual(members.map((m) => m.identity.id), [idA.id])
        assert.deepStrictEqual(members[0].metadata, { role: "frontend" })
        assert.strictEqual(members[0].identity.generation, idA.generation)
      }))

    /** Silos A and B, A joined with `metadata`, and B's recorded events once it has seen A join. */
    const joinedAndSeen = (metadata: Record<string, string>) =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const a = yield* harness.silo
        const b = yield* harness.silo
        const seenByB = yield* record(b.membership)
        const idA = yield* freshIdentity()
        const { registration } = yield* joinIn(a, idA, metadata)
        yield* waitFor("B sees A", announced, check(() => has(seenByB, "Joined", idA.id)))
        return { a, b, idA, registration, seenByB }
      })

    test("a metadata update reaches every view by its announcement, as an Updated event; heartbeats keep it", () =>
      Effect.gen(function*() {
        const { a, b, idA, registration, seenByB } = yield* joinedAndSeen({ zone: "eu-1" })
        // From here B's full reads fail: only the announcement can tell it.
        yield* b.membership.faults.failReads(true)

        const draining = { zone: "eu-1", "quark.status": "draining" }
        yield* registration.updateMetadata(draining)
        assert.deepStrictEqual(yield* metadataOf(a.membership, idA.id), draining, "the updater sees it at once")
        yield* waitFor("B gets Updated", slack, check(() => has(seenByB, "Updated", idA.id)))
        assert.deepStrictEqual(updatesOf(seenByB, idA.id), [draining])
        assert.deepStrictEqual(yield* metadataOf(b.membership, idA.id), draining)

        // The whole record is replaced, not merged.
        yield* registration.updateMetadata({ load: "7" })
        yield* waitFor(
          "B sees the second update",
          slack,
          Effect.map(metadataOf(b.membership, idA.id), (metadata) => metadata?.load === "7")
        )
        assert.deepStrictEqual(yield* metadataOf(b.membership, idA.id), { load: "7" })

        // Heartbeats and full reads afterwards agree: nothing reverts, no further event.
        yield* b.membership.faults.failReads(false)
        yield* pass(3 * timings.heartbeat)
        yield* b.membership.refresh
        assert.deepStrictEqual(yield* metadataOf(b.membership, idA.id), { load: "7" })
        assert.deepStrictEqual(
          seenByB.filter(({ event }) => event.identity.id === idA.id).map(({ event }) => event._tag),
          ["Joined", "Updated", "Updated"]
        )
        assert.strictEqual(yield* registration.status, "alive")
      }))

    test("a lost Updated announcement is repaired by the next full read", () =>
      Effect.gen(function*() {
        const { b, idA, registration, seenByB } = yield* joinedAndSeen({ load: "0" })
        yield* b.membership.faults.loseAnnouncements(true)

        yield* registration.updateMetadata({ load: "9" })
        yield* waitFor(
          "B's full read repairs it",
          announced,
          Effect.map(metadataOf(b.membership, idA.id), (metadata) => metadata?.load === "9")
        )
        assert.deepStrictEqual(updatesOf(seenByB, idA.id), [{ load: "9" }])
        // The announcement did reach B, and was dropped: the full read is what told it.
        yield* waitFor(
          "the lost announcement is accounted for",
          announced,
          Effect.map(
            b.membership.faults.received,
            (notices) => notices.some((notice) => notice.kind === "Updated" && notice.member.identity.id === idA.id)
          )
        )
      }))

    test("a late announcement or a stale full read never undoes a newer update", () =>
      Effect.gen(function*() {
        const { b, idA, registration, seenByB } = yield* joinedAndSeen({ load: "0" })
        yield* b.membership.refresh
        const before = yield* b.membership.faults.lastRead // has A with load 0
        assert.isDefined(before)
        // B learns only from announcements, so their order alone decides (no full read in between).
        yield* b.membership.faults.failReads(true)
        const loadOfA = Effect.map(metadataOf(b.membership, idA.id), (metadata) => metadata?.load)

        yield* registration.updateMetadata({ load: "1" })
        yield* registration.updateMetadata({ load: "2" })
        yield* waitFor("B sees load 2", slack, Effect.map(loadOfA, (load) => load === "2"))
        const first = (yield* b.membership.faults.received).find((notice) =>
          notice.kind === "Updated" && notice.member.identity.id === idA.id && notice.member.metadata.load === "1"
        )
        assert.isDefined(first)
        // The first update's announcement again, late; the third's comes after it, so once B
        // shows load 3 the late one has been applied (or ignored).
        yield* b.membership.faults.redeliver(first!)
        yield* registration.updateMetadata({ load: "3" })
        yield* waitFor("B sees load 3", slack, Effect.map(loadOfA, (load) => load === "3"))
        assert.deepStrictEqual(updatesOf(seenByB, idA.id), [{ load: "1" }, { load: "2" }, { load: "3" }])

        // A full read taken before the updates, applied after them.
        yield* b.membership.faults.replayRead(before!)
        yield* b.membership.faults.failReads(false)
        yield* b.membership.refresh // applied by the time this returns (full reads run one at a time)
        assert.strictEqual(yield* loadOfA, "3")
        assert.deepStrictEqual(updatesOf(seenByB, idA.id), [{ load: "1" }, { load: "2" }, { load: "3" }])
      }))

    test("an update after leaving, or after being declared dead, fails with NotAMember", () =>
      Effect.gen(function*() {
        const harness = yield* subject.harness
        const a = yield* harness.silo
        const id = yield* freshIdentity()
        const { leave, registration } = yield* joinIn(a, id)
        yield* leave
        const afterLeave = yield* Effect.flip(registration.updateMetadata({ load: "1" }))
        assert.instanceOf(afterLeave, NotAMember)
        assert.strictEqual(afterLeave._tag === "NotAMember" ? afterLeave.status : undefined, "left")

        // Declared dead: its entry vanishes; the update (or a heartbeat before it) finds out.
        const id2 = yield* freshIdentity()
        const { registration: reg2 } = yield* joinIn(a, id2)
        yield* harness.vanish(id2.id)
        const afterDeath = yield* Effect.flip(reg2.updateMetadata({ load: "1" }))
        assert.instanceOf(afterDeath, NotAMember)
        assert.strictEqual(afterDeath._tag === "NotAMember" ? afterDeath.status : undefined, "dead")
        assert.strictEqual((yield* reg2.declaredDead).reason, "removed", "it is told it is dead")
        assert.strictEqual(yield* reg2.status, "dead")
        // The update did not bring the entry back.
        yield* a.membership.refresh
        assert.notInclude(yield* memberIds(a.membership), id2.id)
      }))
  })
}

// ---------------------------------------------------------------------------------------
// Memory (TestClock, default timings)
// ---------------------------------------------------------------------------------------

const memoryStep = 50

const memoryHarness = Effect.sync((): Harness & { readonly registry: MemoryMembership.MemoryRegistry } => {
  const registry = MemoryMembership.makeRegistry()
  return {
    registry,
    silo: Effect.map(Effect.orDie(FreezableMembership.withFreeze(MemoryMembership.make(registry))), (membership) => ({
      membership,
      freeze: (id: string) => registry.freeze(id)
    })),
    vanish: (id) => Effect.asVoid(registry.remove(id))
  }
})

membershipSuite({
  label: "memory",
  test: it.effect,
  timings: { heartbeat: 500, suspect: 1500, dead: 3000, refresh: 500 },
  slack: memoryStep,
  step: TestClock.adjust(memoryStep),
  harness: memoryHarness
})

describe("memory: specifics", () => {
  it.effect("exact timing on the TestClock: suspected at 1.5 s and dead at 3 s after the last heartbeat", () =>
    Effect.gen(function*() {
      const { registry, silo } = yield* memoryHarness
      const a = yield* silo
      const b = yield* silo
      const seen = yield* record(b.membership)
      const idA = yield* freshIdentity()
      yield* joinIn(a, idA)
      // B heartbeats throughout: a registry that hears from nobody declares nobody dead (the silence rule).
      yield* joinIn(b, yield* freshIdentity())
      // Heartbeats at 500, 1000; the full reads run at 500, 1000, 1500, ... too.
      yield* TestClock.adjust(1000)
      yield* registry.freeze(idA.id) // the last heartbeat counted was at 1000
      yield* TestClock.adjust(1499)
      assert.isFalse(has(seen, "Suspected", idA.id))
      yield* TestClock.adjust(1)
      assert.strictEqual(seen.find(({ event }) => event._tag === "Suspected")?.at, 2500)
      yield* TestClock.adjust(1499)
      assert.isFalse(has(seen, "Dead", idA.id))
      yield* TestClock.adjust(1)
      assert.strictEqual(seen.find(({ event }) => event._tag === "Dead")?.at, 4000)
    }))

  it.effect("steady heartbeats: nobody is suspected over a minute", () =>
    Effect.gen(function*() {
      const { silo } = yield* memoryHarness
      const silos = yield* Effect.forEach([1, 2, 3], () => silo)
      const seen = yield* record(silos[0].membership)
      for (const s of silos) yield* joinIn(s, yield* freshIdentity())
      yield* TestClock.adjust("1 minute")
      assert.deepStrictEqual(seen.map(({ event }) => event._tag), ["Joined", "Joined", "Joined"])
      for (const s of silos) {
        assert.deepStrictEqual((yield* s.membership.members).map((m) => m.status), ["alive", "alive", "alive"])
      }
    }))

  it.effect("a suspected member that heartbeats again recovers", () =>
    Effect.gen(function*() {
      const { registry, silo } = yield* memoryHarness
      const a = yield* silo
      const b = yield* silo
      const seen = yield* record(b.membership)
      const idA = yield* freshIdentity()
      yield* joinIn(a, idA)
      yield* registry.freeze(idA.id)
      yield* TestClock.adjust(2000)
      assert.isTrue(has(seen, "Suspected", idA.id))
      yield* registry.unfreeze(idA.id)
      yield* TestClock.adjust(1000)
      assert.isTrue(has(seen, "Recovered", idA.id))
      assert.strictEqual(yield* statusOf(b.membership, idA.id), "alive")
      yield* TestClock.adjust(10_000)
      assert.isFalse(has(seen, "Dead", idA.id))
    }))

  it.effect("a silo cut off from the registry fences itself before anyone declares it dead", () =>
    Effect.gen(function*() {
      const { registry, silo } = yield* memoryHarness
      const a = yield* silo
      const b = yield* silo
      const seen = yield* record(b.membership)
      const idA = yield* freshIdentity()
      const { registration } = yield* joinIn(a, idA)
      yield* joinIn(b, yield* freshIdentity()) // reaches the registry throughout
      yield* TestClock.adjust(1000) // heartbeats at 500 and 1000 acknowledged
      yield* registry.partition(idA.id)
      let fencedAt = -1
      yield* Effect.forkScoped(
        Effect.andThen(registration.declaredDead, Effect.map(Clock.currentTimeMillis, (now) => void (fencedAt = now)))
      )
      yield* TestClock.adjust(5000)
      // Fenced at 1000 + (3000 − 500); declared dead by B at its first full read ≥ 1000 + 3000.
      assert.strictEqual(fencedAt, 3500)
      assert.strictEqual((yield* registration.declaredDead).reason, "unreachable")
      assert.strictEqual(seen.find(({ event }) => event._tag === "Dead")?.at, 4000)
      assert.isBelow(fencedAt, seen.find(({ event }) => event._tag === "Dead")!.at)
    }))

  it.effect("a registry that started over empty gets a silo's latest metadata when it registers again, one set meanwhile too", () =>
    Effect.gen(function*() {
      const { registry, silo } = yield* memoryHarness
      const a = yield* silo
      const b = yield* silo
      const seen = yield* record(b.membership)
      const idA = yield* freshIdentity()
      const { registration } = yield* joinIn(a, idA, { load: "0" })
      yield* TestClock.adjust(1000)
      yield* registration.updateMetadata({ load: "1" })
      yield* registry.outage()
      yield* TestClock.adjust(200) // the new epoch is a later registry time
      yield* registry.restore({ empty: true })
      // Before A's next heartbeat (at 1500) registers it again: the update finds another
      // epoch, succeeds, and is published by that registration.
      yield* registration.updateMetadata({ load: "2" })
      assert.deepStrictEqual(yield* registry.ids, [])
      yield* TestClock.adjust(1000)
      assert.deepStrictEqual(yield* registry.ids, [idA.id])
      assert.deepStrictEqual(yield* metadataOf(b.membership, idA.id), { load: "2" })
      assert.deepStrictEqual(updatesOf(seen, idA.id), [{ load: "1" }, { load: "2" }])
      assert.strictEqual(yield* registration.status, "alive")
      assert.isFalse(has(seen, "Dead", idA.id) || has(seen, "Left", idA.id))
    }))

  it.effect("timings must be ordered: heartbeat < suspect < dead", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        MemoryMembership.make(MemoryMembership.makeRegistry(), { suspectAfter: "3 seconds", deadAfter: "2 seconds" })
      )
      assert.instanceOf(error, MembershipError)
      assert.strictEqual(error.operation, "configure")
    }))

  it.effect("generations increase within a process, and the id is host:port@generation", () =>
    Effect.gen(function*() {
      const first = yield* SiloIdentity.generate("::1", 4000)
      const second = yield* SiloIdentity.generate("::1", 4000)
      assert.isAbove(second.generation, first.generation)
      assert.strictEqual(second.id, `::1:4000@${second.generation}`)
      assert.deepStrictEqual(SiloIdentity.parseId(second.id), { address: "::1:4000", generation: second.generation })
    }))
})

// ---------------------------------------------------------------------------------------
// Redis (real time, short timings)
// ---------------------------------------------------------------------------------------

const run = `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
let clusters = 0
const redisTimings = { heartbeatInterval: "100 millis", suspectAfter: "400 millis", deadAfter: "800 millis", refreshInterval: "100 millis" } as const


const redisHarness = Effect.gen(function*() {
  const cluster = `membership-test-${run}-${++clusters}`
  const redis = yield* Effect.orDie(rawRedis)
  const k = RedisMembership.keys("quark-test", cluster)
  yield* Effect.addFinalizer(() =>
    Effect.promise(() => redis.del(k.members, k.heartbeats, k.gone, k.version, k.meta).catch(() => 0))
  )
  const harness: Harness & { readonly redis: Redis; readonly keys: typeof k; readonly cluster: string } = {
    redis,
    keys: k,
    cluster,
    silo: FreezableMembership.redis({ url: redisUrl, keyPrefix: "quark-test", cluster, ...redisTimings }).pipe(
      Effect.mapError((error) => unreachable("Redis", redisUrl, error)),
      Effect.orDie,
      Effect.map((membership) => ({ membership, freeze: membership.freeze }))
    ),
    vanish: (id) => Effect.promise(() => redis.multi().hdel(k.members, id).zrem(k.heartbeats, id).exec())
  }
  return harness
})

membershipSuite({
  label: "redis",
  test: it.live,
  timings: { heartbeat: 100, suspect: 400, dead: 800, refresh: 100 },
  slack: 400,
  step: Effect.sleep("10 millis"),
  harness: redisHarness
})

describe("redis: specifics", () => {
  it.live("the documented layout: a hash of members, server-time heartbeats, tombstones, a TTL", () =>
    Effect.gen(function*() {
      const { keys: k, redis, silo } = yield* redisHarness
      const a = yield* silo
      const id = yield* freshIdentity()
      const { leave } = yield* joinIn(a, id, { zone: "z" })
      const stored = yield* Effect.promise(() => redis.hget(k.members, id.id))
      assert.deepStrictEqual(JSON.parse(stored!), {
        identity: { host: id.host, port: id.port, generation: id.generation },
        metadata: { zone: "z" }
      })
      const [seconds, micros] = yield* Effect.promise(() => redis.time())
      const serverNow = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000)
      const beat = Number(yield* Effect.promise(() => redis.zscore(k.heartbeats, id.id)))
      assert.isAtMost(serverNow - beat, 300, "the heartbeat carries the server's time")
      assert.isAtLeast(serverNow - beat, 0)
      const ttl = yield* Effect.promise(() => redis.pttl(k.members))
      assert.isAbove(ttl, 50_000)
      assert.isAtMost(ttl, 60_000)
      yield* leave
      assert.isNull(yield* Effect.promise(() => redis.hget(k.members, id.id)))
      assert.isNotNull(yield* Effect.promise(() => redis.zscore(k.gone, `left:${id.id}`)))
      assert.strictEqual(yield* Effect.promise(() => redis.get(k.version)), "2")
    }))

  it.live("an update is one script: the stored metadata is replaced and the version bumped once", () =>
    Effect.gen(function*() {
      const { keys: k, redis, silo } = yield* redisHarness
      const a = yield* silo
      const id = yield* freshIdentity()
      const { registration } = yield* joinIn(a, id, { zone: "z" })
      const version = Number(yield* Effect.promise(() => redis.get(k.version)))
      yield* registration.updateMetadata({ "quark.status": "draining" })
      assert.deepStrictEqual(JSON.parse((yield* Effect.promise(() => redis.hget(k.members, id.id)))!), {
        identity: { host: id.host, port: id.port, generation: id.generation },
        metadata: { "quark.status": "draining" }
      })
      assert.strictEqual(Number(yield* Effect.promise(() => redis.get(k.version))), version + 1)
    }))

  it.live("a join nobody announced is found by the next full read", () =>
    Effect.gen(function*() {
      const { keys: k, redis, silo } = yield* redisHarness
      const b = yield* silo
      const seen = yield* record(b.membership)
      const ghost = new SiloIdentity.SiloIdentity({ host: "10.9.9.9", port: 1, generation: 42 })
      const [seconds] = yield* Effect.promise(() => redis.time())
      yield* Effect.promise(() =>
        redis.multi()
          .hset(k.members, ghost.id, JSON.stringify({ identity: { host: "10.9.9.9", port: 1, generation: 42 }, metadata: {} }))
          .zadd(k.heartbeats, Number(seconds) * 1000 + 5_000, ghost.id) // fresh for a while
          .incr(k.version)
          .exec()
      )
      const start = Date.now()
      while (!has(seen, "Joined", ghost.id)) {
        assert.isBelow(Date.now() - start, 1_000, "found within a full read")
        yield* Effect.sleep("10 millis")
      }
      assert.include((yield* b.membership.members).map((m) => m.identity.id), ghost.id)
    }))

  it.live("a registry that lost its data (a restart without persistence): silos register again as themselves; views keep them", () =>
    Effect.gen(function*() {
      const { keys: k, redis, silo } = yield* redisHarness
      const a = yield* silo
      const b = yield* silo
      const reader = yield* silo
      const seen = yield* record(reader.membership)
      const ids = [yield* freshIdentity(), yield* freshIdentity()]
      yield* joinIn(a, ids[0]!)
      yield* joinIn(b, ids[1]!)
      const joined = Date.now()
      while ((yield* reader.membership.members).length < 2) {
        assert.isBelow(Date.now() - joined, 1_000, "the reader sees both")
        yield* Effect.sleep("10 millis")
      }
      const before = (yield* reader.membership.members).map((m) => m.identity.id)
      yield* Effect.promise(() => redis.del(k.members, k.heartbeats, k.gone, k.version, k.meta))
      const start = Date.now()
      while ((yield* Effect.promise(() => redis.hlen(k.members))) < 2) {
        assert.isBelow(Date.now() - start, 1_000, "both registered again within a few heartbeats")
        yield* Effect.sleep("10 millis")
      }
      yield* Effect.sleep("1 second") // several full reads of the new registry, and deadAfter
      assert.deepStrictEqual((yield* reader.membership.members).map((m) => m.identity.id), before)
      assert.deepStrictEqual(seen.filter(({ event }) => event._tag === "Dead" || event._tag === "Left"), [])
    }))

  it.live("after a registry-wide silence, nobody is declared dead; members still silent die after the grace", () =>
    Effect.gen(function*() {
      const { cluster } = yield* redisHarness
      const membership = (grace: "1 second") =>
        FreezableMembership.redis({ url: redisUrl, keyPrefix: "quark-test", cluster, ...redisTimings, outageGrace: grace }).pipe(
          Effect.orDie
        )
      const a = yield* membership("1 second")
      const b = yield* membership("1 second")
      const ids = [yield* freshIdentity(), yield* freshIdentity()]
      yield* joinIn({ membership: a, freeze: a.freeze }, ids[0]!)
      yield* joinIn({ membership: b, freeze: b.freeze }, ids[1]!)
      const seen = yield* record(b)
      // Both stop heartbeating at once (paused together, or the registry unreachable to both).
      yield* a.freeze(ids[0]!.id)
      yield* b.freeze(ids[1]!.id)
      yield* Effect.sleep("1200 millis") // past deadAfter (800 ms): b's full reads find the registry silent
      assert.isFalse(has(seen, "Dead", ids[0]!.id), "silence is not death")
      // A new silo heartbeats: from its first beat the others have the grace (1 s) plus deadAfter.
      const c = yield* membership("1 second")
      yield* joinIn({ membership: c, freeze: c.freeze }, yield* freshIdentity())
      yield* Effect.sleep("1 second")
      assert.isFalse(has(seen, "Dead", ids[0]!.id), "kept for the grace")
      const start = Date.now()
      while (!has(seen, "Dead", ids[0]!.id)) {
        assert.isBelow(Date.now() - start, 2_000, "declared dead after the grace and deadAfter")
        yield* Effect.sleep("10 millis")
      }
    }))

  it.live("the production service carries no test method: freezing is test/fixtures/FreezableMembership.ts", () =>
    Effect.gen(function*() {
      const { cluster } = yield* redisHarness
      const membership = yield* RedisMembership.make({ url: redisUrl, keyPrefix: "quark-test", cluster, ...redisTimings }).pipe(
        Effect.mapError((error) => unreachable("Redis", redisUrl, error)),
        Effect.orDie
      )
      assert.notProperty(membership, "freeze")
      assert.notProperty(ClusterSilo, "halt")
    }))

  it.live("an unreachable server fails make with MembershipError promptly", () =>
    Effect.gen(function*() {
      const error = yield* RedisMembership.make({ url: "redis://127.0.0.1:1" }).pipe(
        Effect.scoped,
        Effect.timeout("3 seconds"),
        Effect.flip
      )
      assert.strictEqual(error._tag, "MembershipError")
      if (error._tag === "MembershipError") assert.strictEqual(error.operation, "connect")
    }))
})

/**
 * Load reports and load-aware placement, without a cluster: reading a report never throws
 * and reads back what was written; the default score's numbers; a custom score is clamped;
 * the one metadata writer merges patches so concurrent writers lose nothing, and publishes
 * again after a rejoin; `Placement.leastLoaded` takes the healthier, then the emptier, of
 * the hosts it draws, never a draining one or one outside the view, and spreads placements
 * among equals.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { HashRing } from "../../src/Cluster/index.ts"
import { MetadataPublisher } from "../../src/Cluster/internal/MetadataPublisher.ts"
import * as Load from "../../src/Cluster/Load.ts"
import type { Metadata, Registration } from "../../src/Cluster/Membership.ts"
import * as Placement from "../../src/Cluster/Placement.ts"
import type { SiloIdentity } from "../../src/Cluster/SiloIdentity.ts"

const silos = ["a:1@1", "b:1@1", "c:1@1", "d:1@1"]

/** A deterministic source of randomness cycling through `values`. */
const sequence = (values: ReadonlyArray<number>) => {
  let i = 0
  return () => values[i++ % values.length]!
}

const loadOf = (figures: Partial<Load.Load>): Load.Load => ({ ...Load.unknown, ...figures })

const figure = fc.option(fc.double({ min: 0, max: 1e12, noNaN: true }), { nil: undefined })
const figures = fc.record({
  activations: fc.option(fc.nat(), { nil: undefined }),
  migratable: fc.option(fc.nat(), { nil: undefined }),
  cpu: figure,
  eventLoopDelayMillis: figure,
  memoryBytes: fc.option(fc.nat(), { nil: undefined }),
  memoryLimitBytes: fc.option(fc.nat(), { nil: undefined }),
  heap: figure,
  sequence: fc.option(fc.nat(), { nil: undefined })
})

describe("load reports", () => {
  it("never throw on any metadata, and every figure is a finite non-negative number or unknown", () => {
    const keys = fc.constantFrom(...Object.values(Load.metadataKeys), "quark.types", "zone")
    fc.assert(fc.property(fc.dictionary(keys, fc.oneof(fc.string(), fc.constantFrom("NaN", "-1", "1e400", "Infinity", "", " 3", "0x10", "1".repeat(400)))), (metadata) => {
      const load = Load.fromMetadata(metadata)
      for (const key of ["activations", "migratable", "cpu", "eventLoopDelayMillis", "memoryBytes", "memoryLimitBytes", "heap", "sequence"] as const) {
        const value = load[key]
        assert.isTrue(value === undefined || (Number.isFinite(value) && value >= 0), `${key}: ${value}`)
      }
      const score = Load.scoreOf(Load.defaultScore, load)
      assert.isTrue(score >= 0 && score <= 1, `score ${score}`)
    }))
  })

  it("read back what was written (to the precision written), and only under quark.load.* keys", () => {
    fc.assert(fc.property(figures, (written) => {
      const metadata = Load.toMetadata(written)
      for (const key of Object.keys(metadata)) assert.isTrue(key.startsWith("quark.load."), key)
      const read = Load.fromMetadata(metadata)
      assert.strictEqual(read.activations, written.activations)
      assert.strictEqual(read.migratable, written.migratable)
      assert.strictEqual(read.sequence, written.sequence)
      if (written.cpu === undefined) assert.isUndefined(read.cpu)
      else assert.approximately(read.cpu!, written.cpu, 0.0005 + written.cpu * 1e-12)
      if (written.eventLoopDelayMillis === undefined) assert.isUndefined(read.eventLoopDelayMillis)
      else assert.approximately(read.eventLoopDelayMillis!, written.eventLoopDelayMillis, 0.05 + written.eventLoopDelayMillis * 1e-12)
      assert.isFalse(read.draining)
    }))
    // Malformed figures are unknown, the others still read.
    const load = Load.fromMetadata({ "quark.load.cpu": "lots", "quark.load.activations": "12", "quark.load.lag": "-3", "quark.status": "draining" })
    assert.deepStrictEqual(load, loadOf({ activations: 12, draining: true }))
  })

  it("the default score: healthy below every knee, the lowest resource decides, 1 when unknown", () => {
    assert.strictEqual(Load.defaultScore(Load.unknown), 1)
    assert.strictEqual(Load.defaultScore(loadOf({ cpu: 0.4, eventLoopDelayMillis: 15, heap: 0.5, activations: 1e6 })), 1)
    assert.strictEqual(Load.defaultScore(loadOf({ cpu: 0.75 })), 0.5)
    assert.strictEqual(Load.defaultScore(loadOf({ cpu: 1.5 })), 0)
    assert.strictEqual(Load.defaultScore(loadOf({ eventLoopDelayMillis: 260 })), 0.5)
    assert.strictEqual(Load.defaultScore(loadOf({ eventLoopDelayMillis: 260, cpu: 0.9 })), Load.defaultScore(loadOf({ cpu: 0.9 })))
    // Memory: the larger of resident/limit and heap/heap limit.
    assert.approximately(Load.defaultScore(loadOf({ memoryBytes: 825, memoryLimitBytes: 1000 })), 0.5, 1e-9)
    assert.approximately(Load.defaultScore(loadOf({ memoryBytes: 100, memoryLimitBytes: 1000, heap: 0.825 })), 0.5, 1e-9)
    assert.strictEqual(Load.defaultScore(loadOf({ memoryBytes: 100 })), 1, "no limit: resident memory alone says nothing")
    fc.assert(fc.property(figures, (f) => {
      const score = Load.defaultScore(loadOf(f))
      assert.isTrue(score >= 0 && score <= 1)
    }))
  })

  it("a custom score is clamped to [0, 1]; one that throws or is not a number counts as healthy", () => {
    assert.strictEqual(Load.scoreOf(() => 7, Load.unknown), 1)
    assert.strictEqual(Load.scoreOf(() => -2, Load.unknown), 0)
    assert.strictEqual(Load.scoreOf(() => Number.NaN, Load.unknown), 1)
    assert.strictEqual(Load.scoreOf(() => {
      throw new Error("boom")
    }, Load.unknown), 1)
    assert.strictEqual(Load.scoreOf((load) => 1 - (load.cpu ?? 0), loadOf({ cpu: 0.3 })), 0.7)
  })
})

// ---------------------------------------------------------------------------------------

/** A registration that records every update, and takes a few scheduler turns to apply each. */
const fakeRegistration = (id: string) => {
  const updates: Array<Metadata> = []
  let stored: Metadata = {}
  const registration = {
    identity: { id } as SiloIdentity,
    updateMetadata: (metadata: Metadata) =>
      Effect.gen(function*() {
        // A read-modify-write racing another would be visible here: the record is replaced.
        for (let i = 0; i < 5; i++) yield* Effect.yieldNow
        stored = metadata
        updates.push(metadata)
      })
  } as unknown as Registration
  return { registration, updates, stored: () => stored }
}

describe("the metadata writer", () => {
  it.effect("merges concurrent patches: no writer loses another's keys, updates go one at a time", () =>
    Effect.gen(function*() {
      const publisher = new MetadataPublisher()
      const fake = fakeRegistration("a")
      yield* publisher.attach(fake.registration, { "quark.types": "", "quark.version": "1" })
      assert.deepStrictEqual(fake.updates, [], "joining publishes nothing new")
      const results = yield* Effect.forEach([
        { "quark.types": "Room@1" },
        { "quark.status": "draining" },
        { "quark.load.activations": "3", "quark.load.cpu": "0.100" },
        { "quark.load.activations": "4" }
      ], (patch) => publisher.set(patch), { concurrency: "unbounded" })
      assert.deepStrictEqual(results, [true, true, true, true])
      assert.deepStrictEqual(fake.stored(), {
        "quark.types": "Room@1",
        "quark.version": "1",
        "quark.status": "draining",
        "quark.load.activations": "4",
        "quark.load.cpu": "0.100"
      })
      // Each update extends the previous one: applied in order, none overwritten.
      for (let i = 1; i < fake.updates.length; i++) {
        for (const key of Object.keys(fake.updates[i - 1]!)) assert.property(fake.updates[i]!, key)
      }
      assert.isFalse(yield* publisher.set({ "quark.load.activations": "4" }), "an unchanged record is not published")
      assert.isTrue(yield* publisher.set({ "quark.status": undefined }))
      assert.notProperty(fake.stored(), "quark.status")
    }))

  it.effect("keeps what it could not publish, and publishes it again after a rejoin", () =>
    Effect.gen(function*() {
      const publisher = new MetadataPublisher()
      assert.isFalse(yield* publisher.set({ "quark.load.activations": "9" }), "not joined: kept for later")
      const first = fakeRegistration("a@1")
      yield* publisher.attach(first.registration, { "quark.types": "Room@1" })
      assert.deepStrictEqual(first.stored(), { "quark.types": "Room@1", "quark.load.activations": "9" })
      yield* publisher.set({ "quark.load.activations": "10" })
      const second = fakeRegistration("a@2")
      yield* publisher.attach(second.registration, { "quark.types": "Room@1,Cart@1" })
      assert.deepStrictEqual(second.stored(), { "quark.types": "Room@1,Cart@1", "quark.load.activations": "10" })
    }))
})

// ---------------------------------------------------------------------------------------

describe("Placement.leastLoaded", () => {
  const ringOf = (members: ReadonlyArray<HashRing.Node>) => HashRing.make(members)
  const table = (loads: Record<string, Partial<Load.Load>>) => (id: string) => loads[id] === undefined ? undefined : loadOf(loads[id])

  it.effect("takes the healthier of the two drawn, then the one with fewer activations, else the first drawn", () =>
    Effect.gen(function*() {
      const ring = yield* ringOf(silos.map((id) => ({ id })))
      const policy = Placement.leastLoaded()
      const place = (loads: Record<string, Partial<Load.Load>>, random: ReadonlyArray<number>) =>
        policy.place({ type: "T", id: "x" }, { self: "a:1@1", ring, random: sequence(random), loadOf: table(loads) })
      // random 0 then 0: draws a, then b (from the three left).
      assert.strictEqual(place({ "a:1@1": { activations: 10 }, "b:1@1": { activations: 100 } }, [0, 0]), "a:1@1")
      assert.strictEqual(place({ "a:1@1": { activations: 100 }, "b:1@1": { activations: 10 } }, [0, 0]), "b:1@1")
      assert.strictEqual(place({ "a:1@1": { activations: 10, cpu: 0.95 }, "b:1@1": { activations: 100 } }, [0, 0]), "b:1@1")
      // Near-equals: within a tenth (and one) the first drawn wins, which is random.
      assert.strictEqual(place({ "a:1@1": { activations: 100 }, "b:1@1": { activations: 95 } }, [0, 0]), "a:1@1")
      assert.strictEqual(place({ "a:1@1": { activations: 100, cpu: 0.58 }, "b:1@1": { activations: 100, cpu: 0.6 } }, [0, 0]), "a:1@1")
      assert.strictEqual(place({ "a:1@1": { activations: 100, cpu: 0.7 }, "b:1@1": { activations: 100, cpu: 0.6 } }, [0, 0]), "b:1@1")
      // Unknown activations count as the mean of the drawn ones that reported.
      assert.strictEqual(place({ "a:1@1": { activations: 50 } }, [0, 0]), "a:1@1")
      assert.isTrue(policy.usesDirectory)
      assert.strictEqual(policy.name, "least-loaded")
    }))

  it.effect("never places on a draining silo or one that takes no activations, and prefers the caller's version", () =>
    Effect.gen(function*() {
      const ring = yield* ringOf([...silos.map((id) => ({ id })), { id: "zero:1@1", weight: 0 }])
      const preferred = yield* ringOf([{ id: "c:1@1" }, { id: "d:1@1" }])
      const loads = table({ "d:1@1": { draining: true, activations: 0 }, "c:1@1": { activations: 1000 } })
      fc.assert(fc.property(fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 4, maxLength: 4 }), (random) => {
        const view = { self: "a:1@1", ring, random: sequence(random), loadOf: loads }
        const chosen = Placement.leastLoaded().place({ type: "T", id: "x" }, view)
        assert.include(["a:1@1", "b:1@1", "c:1@1"], chosen)
        assert.strictEqual(Placement.leastLoaded().place({ type: "T", id: "x" }, { ...view, preferred }), "c:1@1")
      }))
      // Only draining silos left: better one of them than none.
      const onlyDraining = yield* ringOf([{ id: "d:1@1" }])
      assert.strictEqual(Placement.leastLoaded().place({ type: "T", id: "x" }, { self: "a:1@1", ring: onlyDraining, random: Math.random, loadOf: loads }), "d:1@1")
      const empty = yield* ringOf([])
      assert.isUndefined(Placement.leastLoaded().place({ type: "T", id: "x" }, { self: "a:1@1", ring: empty, random: Math.random }))
    }))

  it.effect("a host both healthier and emptier than every other is chosen whenever it is drawn", () =>
    Effect.gen(function*() {
      const ids = ["s0", "s1", "s2", "s3", "s4", "s5"]
      const ring = yield* ringOf(ids.map((id) => ({ id })))
      // Every other host is either clearly less healthy (cpu ≥ 0.7: score ≤ 0.6) or healthy with 10 or more activations.
      const other = fc.oneof(
        fc.record({ activations: fc.option(fc.nat({ max: 1000 }), { nil: undefined }), cpu: fc.double({ min: 0.7, max: 2, noNaN: true }) }),
        fc.record({ activations: fc.integer({ min: 10, max: 1000 }), cpu: fc.option(fc.double({ min: 0, max: 0.5, noNaN: true }), { nil: undefined }) })
      )
      const draws = fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 6, maxLength: 6 })
      fc.assert(fc.property(fc.array(other, { minLength: 6, maxLength: 6 }), fc.nat({ max: 5 }), draws, (others, best, random) => {
        const loads: Record<string, Partial<Load.Load>> = Object.fromEntries(ids.map((id, i) => [id, others[i]!]))
        loads[ids[best]!] = { activations: 0, cpu: 0.1 }
        const policy = Placement.leastLoaded({ choices: ids.length })
        assert.strictEqual(policy.place({ type: "T", id: "x" }, { self: "s0", ring, random: sequence(random), loadOf: table(loads) }), ids[best])
      }))
    }))

  it.effect("drawing every host, no host it passed over is healthier by more than the tolerance per comparison", () =>
    Effect.gen(function*() {
      const ids = ["s0", "s1", "s2", "s3", "s4", "s5"]
      const ring = yield* ringOf(ids.map((id) => ({ id })))
      const member = fc.record({
        activations: fc.option(fc.nat({ max: 1000 }), { nil: undefined }),
        cpu: fc.option(fc.double({ min: 0, max: 1.2, noNaN: true }), { nil: undefined })
      })
      const draws = fc.array(fc.double({ min: 0, max: 0.999999, noNaN: true }), { minLength: 6, maxLength: 6 })
      fc.assert(fc.property(fc.array(member, { minLength: 6, maxLength: 6 }), draws, (members, random) => {
        const loads = Object.fromEntries(ids.map((id, i) => [id, members[i]!]))
        const chosen = Placement.leastLoaded({ choices: ids.length }).place({ type: "T", id: "x" }, { self: "s0", ring, random: sequence(random), loadOf: table(loads) })!
        assert.include(ids, chosen)
        const score = (id: string) => Load.defaultScore(loadOf(loads[id]!))
        // A switch on activations may cost up to the tolerance (0.1) of score; there are at most n − 1 comparisons.
        assert.isAtLeast(score(chosen), Math.max(...ids.map(score)) - 0.1 * (ids.length - 1) - 1e-9)
      }))
    }))

  it.effect("with a stale report showing one idle host, it takes that host about twice its share, not always (no herd)", () =>
    Effect.gen(function*() {
      const ids = ["s0", "s1", "s2", "s3"]
      const ring = yield* ringOf(ids.map((id) => ({ id })))
      const loads = table({ s0: { activations: 100 }, s1: { activations: 100 }, s2: { activations: 100 }, s3: { activations: 0 } })
      // A fixed pseudo-random sequence: the test does not depend on luck.
      let seed = 42
      const random = () => (seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648
      const counts = new Map<string, number>()
      for (let i = 0; i < 4000; i++) {
        const chosen = Placement.leastLoaded().place({ type: "T", id: `x${i}` }, { self: "s0", ring, random, loadOf: loads })!
        counts.set(chosen, (counts.get(chosen) ?? 0) + 1)
      }
      // Drawn in 1 − C(3,2)/C(4,2) = 1/2 of the draws, and then always chosen.
      assert.approximately(counts.get("s3")! / 4000, 0.5, 0.05)
      for (const id of ["s0", "s1", "s2"]) assert.approximately(counts.get(id)! / 4000, 0.5 / 3, 0.05)
    }))

  it("refuses invalid options", () => {
    assert.throws(() => Placement.leastLoaded({ choices: 0 }))
    assert.throws(() => Placement.leastLoaded({ choices: 1.5 }))
    assert.throws(() => Placement.leastLoaded({ scoreTolerance: -1 }))
  })
})

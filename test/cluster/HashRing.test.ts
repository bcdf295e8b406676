/**
 * The consistent hash ring: unit tests, and fast-check properties over 100k keys.
 *
 * Tolerances (160 points per unit of weight; a member's share has a relative stddev
 * of about 1/√(2·160) ≈ 5.6 %). Measured over 400 random sets of 2..10 member ids:
 * worst share deviation 18.6 %, worst moved-on-add deviation 15.2 %, worst stddev
 * across members 9.2 %, and a remaining member got at least 41 % of its fair part
 * of a removed member's keys. Asserted, with margin:
 * - balance: every member's share within ±25 % of 1/N, and the stddev of the shares ≤ 12 % of 1/N;
 * - add: the keys that move are within ±20 % of 1/(N+1), and all go to the new member;
 * - remove: exactly the removed member's keys move, and every remaining member gets
 *   at least 25 % of its fair part of them (they spread, not all to one heir).
 * The properties run with a fixed seed, so a run is reproducible and never flaky.
 */
import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import * as HashRing from "../../src/Cluster/HashRing.ts"

const hasher = await Effect.runPromise(HashRing.xxhash32)
const ring = (ids: ReadonlyArray<string>): HashRing.HashRing =>
  HashRing.makeWith(hasher, ids.map((id) => ({ id })))

const keyCount = 100_000
const keys = Array.from({ length: keyCount }, (_, i) => `Type${i % 7}/${i}`)

const ownersOf = (r: HashRing.HashRing): Array<string> => keys.map((k) => r.owner(k)!)

const counts = (owners: ReadonlyArray<string>): Map<string, number> => {
  const c = new Map<string, number>()
  for (const o of owners) c.set(o, (c.get(o) ?? 0) + 1)
  return c
}

/** 2..10 distinct silo ids (N members plus `extra` more). */
const silos = (extra: number) =>
  fc.integer({ min: 2, max: 10 }).chain((n) =>
    fc.uniqueArray(fc.string({ minLength: 1, maxLength: 20 }), { minLength: n + extra, maxLength: n + extra })
      .map((ids) => ({ n, ids }))
  )

const params = { seed: 20_240_601, numRuns: 15 }

describe("HashRing", () => {
  it("pins xxHash32 to its published test vectors (every silo must hash alike)", () => {
    expect(hasher("")).toBe(0x02cc5d05)
    expect(hasher("a")).toBe(0x550d7456)
    expect(hasher("abc")).toBe(0x32d153ff)
  })

  it("pins owners, so a change of algorithm cannot slip into a rolling upgrade", () => {
    const r = ring(["silo-a", "silo-b", "silo-c"])
    const got = Array.from({ length: 12 }, (_, i) => r.owner(`Counter/${i}`))
    expect(got).toEqual(["a", "a", "a", "c", "c", "b", "c", "a", "a", "b", "c", "c"].map((s) => `silo-${s}`))
  })

  it("an empty ring owns nothing", () => {
    const r = ring([])
    expect(r.members).toEqual([])
    expect(r.owner("Counter/1")).toBeUndefined()
    expect(ring(["a"]).remove("a").owner("Counter/1")).toBeUndefined()
  })

  it("one member owns every key", () => {
    const r = ring(["only"])
    for (const k of keys.slice(0, 1000)) expect(r.owner(k)).toBe("only")
  })

  it("actorKey is Type/id", () => {
    expect(HashRing.actorKey({ type: "Counter", id: "42" })).toBe("Counter/42")
  })

  it.effect("make initializes the hasher and builds a ring", () =>
    Effect.gen(function*() {
      const r = yield* HashRing.make([{ id: "silo-a" }, { id: "silo-b" }, { id: "silo-c" }])
      expect(r.owner("Counter/5")).toBe("silo-b")
      expect(r.members.map((m) => m.id)).toEqual(["silo-a", "silo-b", "silo-c"])
    }))

  it("members are sorted by id; a repeated id replaces the earlier one", () => {
    const r = HashRing.makeWith(hasher, [{ id: "b" }, { id: "a", weight: 1 }, { id: "a", weight: 2 }])
    expect(r.members).toEqual([{ id: "a", weight: 2 }, { id: "b" }])
    expect(r.has("a")).toBe(true)
    expect(r.has("c")).toBe(false)
  })

  it("add and remove leave the old ring intact for readers holding it", () => {
    const before = ring(["a", "b", "c"])
    const owners = ownersOf(before)
    const added = before.add({ id: "d" })
    const removed = before.remove("a")
    expect(before.members.map((m) => m.id)).toEqual(["a", "b", "c"])
    expect(ownersOf(before)).toEqual(owners)
    expect(added.members.map((m) => m.id)).toEqual(["a", "b", "c", "d"])
    expect(removed.members.map((m) => m.id)).toEqual(["b", "c"])
    expect(before.remove("absent")).toBe(before)
  })

  it("weight scales a member's share; weight 0 owns nothing", () => {
    const r = HashRing.makeWith(hasher, [{ id: "big", weight: 2 }, { id: "small" }, { id: "drained", weight: 0 }])
    const c = counts(ownersOf(r))
    expect(c.get("drained")).toBeUndefined()
    expect(c.get("big")! / keyCount).toBeGreaterThan(2 / 3 * 0.85)
    expect(c.get("big")! / keyCount).toBeLessThan(2 / 3 * 1.15)
    expect(r.members.map((m) => m.id)).toEqual(["big", "drained", "small"])
  })

  it("property: each of N members owns 1/N ±25 % of 100k keys (stddev ≤ 12 %)", () => {
    fc.assert(
      fc.property(silos(0), ({ n, ids }) => {
        const c = counts(ownersOf(ring(ids)))
        const devs = ids.map((id) => (c.get(id) ?? 0) / keyCount * n - 1)
        for (const d of devs) expect(Math.abs(d)).toBeLessThanOrEqual(0.25)
        expect(Math.sqrt(devs.reduce((a, d) => a + d * d, 0) / n)).toBeLessThanOrEqual(0.12)
      }),
      params
    )
  })

  it("property: adding a member moves 1/(N+1) ±20 % of the keys, all to it", () => {
    fc.assert(
      fc.property(silos(1), ({ n, ids }) => {
        const before = ring(ids.slice(0, n))
        const newcomer = ids[n]!
        const after = before.add({ id: newcomer })
        let moved = 0
        let elsewhere = 0
        for (const k of keys) {
          const is = after.owner(k)
          if (before.owner(k) !== is) {
            moved++
            if (is !== newcomer) elsewhere++
          }
        }
        expect(elsewhere).toBe(0)
        expect(Math.abs(moved / keyCount * (n + 1) - 1)).toBeLessThanOrEqual(0.2)
      }),
      params
    )
  })

  it("property: removing a member moves only its keys, spread over the rest", () => {
    fc.assert(
      fc.property(silos(0), fc.nat(), ({ n, ids }, pick) => {
        const before = ring(ids)
        const gone = ids[pick % n]!
        const after = before.remove(gone)
        const heirs = new Map<string, number>()
        let orphans = 0
        let strays = 0
        for (const k of keys) {
          const was = before.owner(k)!
          const is = after.owner(k)!
          if (was === gone) {
            orphans++
            heirs.set(is, (heirs.get(is) ?? 0) + 1)
          } else if (is !== was) {
            strays++
          }
        }
        expect(strays).toBe(0)
        expect(heirs.has(gone)).toBe(false)
        for (const id of ids) {
          if (id !== gone) expect(heirs.get(id) ?? 0).toBeGreaterThanOrEqual(0.25 * orphans / (n - 1))
        }
      }),
      params
    )
  })

  it("property: the same members give the same owners whatever the insertion order", () => {
    fc.assert(
      fc.property(
        silos(0).chain(({ ids }) => fc.tuple(fc.shuffledSubarray(ids, { minLength: ids.length }), fc.constant(ids))),
        ([shuffled, ids]) => {
          const a = ring(ids)
          const b = ring(shuffled)
          const c = shuffled.slice(1).reduce((r, id) => r.add({ id }), ring(shuffled.slice(0, 1)))
          const d = ring([...ids, "transient"]).remove("transient")
          expect(b.members).toEqual(a.members)
          expect(c.members).toEqual(a.members)
          expect(d.members).toEqual(a.members)
          const sample = keys.slice(0, 10_000)
          const owners = sample.map((k) => a.owner(k))
          for (const other of [b, c, d]) expect(sample.map((k) => other.owner(k))).toEqual(owners)
        }
      ),
      params
    )
  })
})

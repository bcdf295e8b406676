/**
 * Benchmark of the cluster's consistent hash ring: owner lookups per second on a
 * 10-member ring (default points per member), cycling over 100k random actor keys.
 * Each round fails if any lookup returned no member.
 */
import { Effect } from "effect"
import * as HashRing from "../src/Cluster/HashRing.ts"
import { nowNs, type Variant } from "./Harness.ts"

const memberCount = 10
const keyCount = 100_000

/** Latency of every `sampleEvery`-th lookup: a lookup is ~0.1 µs, near the cost of a clock read. */
const sampleEvery = 64

/**
 * `cluster.ring.lookup`: `opsPerRound` lookups per round. Async because the
 * xxhash-wasm hasher initializes asynchronously (once). Extras: members, points
 * per member, and the relative stddev (%) of the members' shares of the keys.
 */
export const ringLookup = async (opsPerRound: number): Promise<Variant> => {
  const id = "cluster.ring.lookup"
  const ring = await Effect.runPromise(
    HashRing.make(Array.from({ length: memberCount }, (_, i) => ({ id: `silo-${i}` })))
  )
  const keys = Array.from({ length: keyCount }, (_, i) => `Type${i % 7}/${crypto.randomUUID()}`)

  const shares = new Map<string, number>()
  for (const key of keys) {
    const owner = ring.owner(key)!
    shares.set(owner, (shares.get(owner) ?? 0) + 1)
  }
  const fair = keyCount / memberCount
  const devs = ring.members.map((m) => ((shares.get(m.id) ?? 0) - fair) / fair)
  const shareStdPct = Math.sqrt(devs.reduce((a, d) => a + d * d, 0) / memberCount) * 100

  const round = async () => {
    const latenciesUs: Array<number> = []
    let missing = 0
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) {
      const key = keys[i % keyCount]!
      if (i % sampleEvery === 0) {
        const s = nowNs()
        if (ring.owner(key) === undefined) missing++
        latenciesUs.push((nowNs() - s) / 1000)
      } else if (ring.owner(key) === undefined) {
        missing++
      }
    }
    const elapsedNs = nowNs() - t0
    if (missing > 0) throw new Error(`${id}: ${missing} of ${opsPerRound} lookups returned no member`)
    return { ops: opsPerRound, elapsedNs, latenciesUs }
  }
  return {
    id,
    round,
    extra: () => ({
      members: memberCount,
      vnodesPerMember: HashRing.defaultVnodesPerWeight,
      shareStdPct: Number(shareStdPct.toFixed(1))
    })
  }
}

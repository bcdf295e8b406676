/**
 * The rebalancer's eviction: a silo whose own health score stays under `evict.below` for
 * `evict.for` drains itself (`Cluster.drain`), one silo at a time: not while another member
 * says it is draining, not when fewer than two silos would be left, and, of the unhealthy
 * silos, the least healthy first (see `Rebalancer` for the rule and why).
 *
 * @internal
 */
import { Effect } from "effect"
import type { CounterCell } from "../../Telemetry/internal/Cells.ts"
import * as Load from "../Load.ts"
import type { Member } from "../Membership.ts"

/** What the eviction reads and writes of its rebalancer's status. @internal */
export interface EvictionState {
  readonly paused: boolean
  score: number
  unhealthySince: number | undefined
  evicted: boolean
}

/** What the eviction needs of its rebalancer. @internal */
export interface EvictionHost {
  /** The health score. */
  readonly score: Load.Score
  /** Drain under `below` for `forMillis`; `undefined`: never. */
  readonly evict: { readonly below: number; readonly forMillis: number } | undefined
  readonly state: EvictionState
  /** Counts the evictions. */
  readonly evictions: CounterCell
  readonly cluster: { readonly drain: Effect.Effect<void> }
}

/**
 * The check a rebalancer runs each round: updates the silo's score (and since when it has
 * been unhealthy), and drains the silo when it is its turn to go.
 *
 * @internal
 */
export const make = (
  host: EvictionHost
): (members: ReadonlyArray<Member>, self: string, now: number) => Effect.Effect<void> => {
  const { state } = host
  /** Why the last eviction check did not drain (logged when it changes). */
  let evictionBlocked: string | undefined

  return Effect.fnUntraced(function*(members: ReadonlyArray<Member>, self: string, now: number) {
    const evict = host.evict
    const own = members.find((member) => member.identity.id === self)
    state.score = Load.scoreOf(host.score, own === undefined ? Load.unknown : Load.fromMetadata(own.metadata))
    if (evict === undefined) return
    if (state.score >= evict.below) {
      state.unhealthySince = undefined
      evictionBlocked = undefined
      return
    }
    state.unhealthySince ??= now
    if (now - state.unhealthySince < evict.forMillis || state.paused) return
    const loads = members.map((member) => ({
      id: member.identity.id,
      alive: member.status === "alive",
      load: Load.fromMetadata(member.metadata)
    }))
    const draining = loads.filter((member) => member.id !== self && member.load.draining).map((member) => member.id)
    // A suspected silo may be gone already: it does not count among those left.
    const staying = loads.filter((member) => !member.load.draining && (member.alive || member.id === self))
    const worst = staying
      .map((member) => ({ id: member.id, score: Load.scoreOf(host.score, member.load) }))
      .filter((member) => member.score < evict.below)
      .sort((a, b) => a.score - b.score || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))[0]
    const blocked = draining.length > 0 ?
      `another silo is draining (${draining.join(", ")})` :
      staying.length - 1 < 2 ?
      `it would leave ${staying.length - 1} silo(s), fewer than 2` :
      // Deferring to a less healthy silo that does not go (it runs no eviction, say) ends after another `for`.
      worst !== undefined && worst.id !== self && now - state.unhealthySince < 2 * evict.forMillis ?
      `${worst.id} is less healthy and goes first` :
      undefined
    if (blocked !== undefined) {
      if (blocked !== evictionBlocked) {
        yield* Effect.logWarning(`rebalancer: this silo is unhealthy but stays: ${blocked}`).pipe(
          Effect.annotateLogs({ silo: self, score: state.score })
        )
      }
      evictionBlocked = blocked
      return
    }
    state.evicted = true
    host.evictions.value++
    yield* Effect.logWarning(
      `rebalancer: evicting this silo: its health score stayed under ${evict.below} for ${evict.forMillis} ms; ` +
        `it drains (its activations move to the other silos)`
    ).pipe(Effect.annotateLogs({ silo: self, score: state.score }))
    yield* host.cluster.drain
  })
}

/**
 * The rebalancer's choice of what to move: the activations live migration can move (active
 * ones of directory-placed, single-worker virtual types), ranked by the rebalancer's `cost`,
 * the cheapest first. Only the first `limit` found are ranked, so a choice costs the same
 * with a million activations (see `Rebalancer`).
 *
 * @internal
 */
import { ActivationState } from "../../Actor/internal/ActivationState.ts"
import * as Handover from "../../Actor/internal/Handover.ts"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import type { Candidate } from "../Rebalancer.ts"

/** Whether `slot` holds activations live migration can move. @internal */
export const migratable = (slot: TypeSlot): boolean =>
  slot.registration !== undefined && slot.virtual && slot.maxWorkers <= 1 && slot.placement?.usesDirectory === true

/** Where the cost comes from (the rebalancer's settings). @internal */
export interface Ranking {
  readonly cost: (candidate: Candidate) => number
}

/** A cost that throws or is not a number keeps the activation where it is. */
const costOf = (ranking: Ranking, candidate: Candidate): number => {
  try {
    const value = ranking.cost(candidate)
    return typeof value === "number" && !Number.isNaN(value) ? value : Infinity
  } catch {
    return Infinity
  }
}

/**
 * The activations of `router` worth moving first: at most `limit` found, ranked by `cost`
 * (those that cost `Infinity` left out).
 *
 * @internal
 */
export const cheapest = (router: LocalRouter, ranking: Ranking, limit: number): Array<Candidate> => {
  const found: Array<Candidate> = []
  scan: for (const slot of router.slots.values()) {
    if (!migratable(slot)) continue
    for (const act of slot.activations.values()) {
      if (act.phase !== ActivationState.Active) continue
      found.push({
        address: act.address,
        busy: act.running > 0 || act.mailboxDepth > 0,
        idleSweeps: act.idleSweeps,
        handsState: Handover.hasParticipants(act),
        stateBytes: Handover.stateBytes(act)
      })
      if (found.length >= limit) break scan
    }
  }
  const costs = new Map(found.map((candidate) => [candidate, costOf(ranking, candidate)]))
  return found.filter((candidate) => costs.get(candidate)! !== Infinity).sort((a, b) => costs.get(a)! - costs.get(b)!)
}

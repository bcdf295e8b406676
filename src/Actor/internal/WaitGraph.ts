/**
 * Who waits on whom, for deadlock detection. A call that would wait on a busy activation
 * is refused with `Deadlock` when the wait would close a cycle: the caller's own chain
 * (running turns waiting inline on it, across silos too) or the `blockedOn` links (running
 * turns parked in other activations' mailboxes, one link per parked turn).
 *
 * @internal
 */
import type { ActorAddress } from "../ActorAddress.ts"
import type { Activation } from "./Activation.ts"
import { chainOf, remoteIndexOf, runningTurnOf, type Turn } from "./Turn.ts"

/** Wait-for links followed before giving up; a real cycle is far shorter. */
const maxWaitHops = 64

/**
 * The cycle a call from `outer` would close by waiting on `target`, or `undefined`. Only
 * called when `target` is busy. Two kinds of wait are followed: the caller's chain (a
 * running turn of an activation in it is waiting, inline, on the caller) and `blockedOn`
 * links (a running turn of the activation is parked in another activation's mailbox), all
 * of them, depth first. So A→B→A is found, and so is "A waits in B's mailbox while B's
 * turn calls A" even when another turn of A waits elsewhere at the same time.
 *
 * @internal
 */
export const cycleFrom = (target: Activation, outer: Turn | undefined): Array<ActorAddress> | undefined => {
  const waits: Array<ActorAddress> = []
  let seen: Set<Activation> | undefined
  const visit = (blocked: Activation): Array<ActorAddress> | undefined => {
    const start = runningTurnOf(outer, blocked)
    if (start !== undefined) {
      const chain: Array<ActorAddress> = []
      for (let t = outer; t !== undefined && t !== start; t = t.caller) {
        if (t.activation !== undefined) chain.push(t.activation.address)
      }
      chain.push(blocked.address)
      return [...chain.reverse(), ...waits, blocked.address]
    }
    // A call from another silo whose chain already passes through here waits on itself.
    const remote = remoteIndexOf(outer, blocked.address)
    if (remote >= 0) return [...chainOf(outer).slice(remote), ...waits, blocked.address]
    const next = blocked.extras?.blockedOn
    if (next === undefined || next.length === 0 || waits.length >= maxWaitHops) return undefined
    waits.push(blocked.address)
    for (const waitedOn of next) {
      if ((seen ??= new Set()).has(waitedOn)) continue
      seen.add(waitedOn)
      const cycle = visit(waitedOn)
      if (cycle !== undefined) return cycle
    }
    waits.pop()
    return undefined
  }
  return visit(target)
}

/** The activations of `chain` now wait on `target`'s mailbox (see `cycleFrom`). @internal */
export const markBlocked = (target: Activation, chain: Turn | undefined): void => {
  for (let t = chain; t !== undefined; t = t.caller) {
    if (t.activation !== undefined && t.activation !== target) (t.activation.rare.blockedOn ??= []).push(target)
  }
}

/** The parked ask left `target`'s mailbox (granted, withdrawn, refused): its chain waits there no more. @internal */
export const unmarkBlocked = (target: Activation, turn: Turn): void => {
  for (let t = turn.caller; t !== undefined; t = t.caller) {
    if (t.activation === undefined || t.activation === target) continue
    const links = t.activation.extras?.blockedOn
    const at = links === undefined ? -1 : links.lastIndexOf(target)
    if (at >= 0) links!.splice(at, 1)
  }
}

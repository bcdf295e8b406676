/**
 * Idle passivation. One sweep walks the activations instead of a timer per activation,
 * and the call path never reads the clock: a turn marks its activation active (-1), and
 * each sweep counts the sweeps that found it idle since.
 *
 * The bound: an activation is passivated between `idleTimeout` and `idleTimeout +
 * interval` after its last turn. Sweeps run every half `interval` (h): the first sweep
 * after the last turn comes within h of it and starts the count; passivation comes with
 * the n-th sweep after that, n the least with n·h ≥ idleTimeout, so at most
 * h + idleTimeout + h after the turn and never before idleTimeout. (Counting whole
 * intervals instead would allow up to idleTimeout + 2 × interval, and then some.)
 *
 * @internal
 */
import { Duration, Effect, Schedule } from "effect"
import { ActivationState } from "./ActivationState.ts"
import type { Activation } from "./Activation.ts"
import type { LocalRouter } from "./LocalRouter.ts"

/** Deactivates every activation that has been idle for its type's idle timeout; `stepMillis` apart. @internal */
export const sweep = (router: LocalRouter, stepMillis: number): void => {
  for (const slot of router.slots.values()) {
    for (const act of slot.activations.values()) {
      if (act.phase !== ActivationState.Active || act.keptAlive || act.options.idleMillis === Infinity) continue
      if (act.running > 0 || act.mailboxDepth > 0 || hasBusyDescendant(act)) {
        act.idleSweeps = -1
        continue
      }
      if (++act.idleSweeps * stepMillis >= act.options.idleMillis) act.deactivate()
    }
  }
}

/**
 * Whether a child (or a child's child) is running a turn or has messages waiting: its
 * parent is then not idle, since passivating it would stop them mid-work. Calls a child
 * served earlier do not count as its parent's activity.
 */
const hasBusyDescendant = (act: Activation): boolean => {
  const children = act.extras?.children
  if (children === undefined) return false
  for (const child of children) {
    if (child.running > 0 || child.mailboxDepth > 0 || hasBusyDescendant(child)) return true
  }
  return false
}

/** Sweeps every half `interval`, at a fixed rate, for as long as it runs (the silo forks it into its scope). @internal */
export const runSweeper = (router: LocalRouter, interval: Duration.Input): Effect.Effect<void> => {
  const stepMillis = Duration.toMillis(interval) / 2
  return Effect.sleep(stepMillis).pipe(
    Effect.andThen(Effect.repeat(Effect.sync(() => sweep(router, stepMillis)), Schedule.fixed(stepMillis))),
    Effect.asVoid
  )
}

/**
 * Idle passivation. One sweep per interval walks the activations instead of a timer per
 * activation, and the call path never reads the clock: each turn resets a count of idle
 * sweeps, and an activation idle for enough consecutive sweeps is passivated. So an
 * activation is passivated between `idleTimeout` and `idleTimeout + interval` after its
 * last turn.
 *
 * @internal
 */
import { Duration, Effect } from "effect"
import { ActivationState } from "./ActivationState.ts"
import type { LocalRouter } from "./LocalRouter.ts"

/** Deactivates every activation that has been idle for its type's idle timeout. @internal */
export const sweep = (router: LocalRouter, intervalMillis: number): void => {
  for (const slot of router.slots.values()) {
    for (const act of slot.activations.values()) {
      if (act.state !== ActivationState.Active || act.keptAlive || act.options.idleMillis === Infinity) continue
      if (act.running > 0 || act.mailboxDepth > 0) {
        act.idleSweeps = -1
        continue
      }
      if (++act.idleSweeps * intervalMillis >= act.options.idleMillis) act.deactivate()
    }
  }
}

/** Sweeps every `interval` for as long as it runs (the silo forks it into its scope). @internal */
export const runSweeper = (router: LocalRouter, interval: Duration.Input): Effect.Effect<never> => {
  const millis = Duration.toMillis(interval)
  return Effect.forever(Effect.andThen(Effect.sleep(interval), Effect.sync(() => sweep(router, millis))))
}

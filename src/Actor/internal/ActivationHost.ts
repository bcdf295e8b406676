/**
 * What an activation's state machine asks of the runtime around it. `Activation` decides
 * synchronously who may run; everything that needs a fiber, a clock or a scope goes
 * through this interface, which the local router implements. A unit test drives an
 * activation with a host that only records the calls.
 *
 * @internal
 */
import type { Effect, Exit } from "effect"
import type { CallError } from "../ActorError.ts"
import type { Activation } from "./Activation.ts"
import type { Turn } from "./Turn.ts"

/** @internal */
export interface ActivationHost {
  /** Runs `first`, a one-way turn just begun, and the one-way turns behind it, on a fiber of their own. */
  readonly startDrainer: (act: Activation, first: Turn) => void
  /** Runs a one-way turn granted beside other running turns on a fiber of its own. */
  readonly runBeside: (turn: Turn) => void
  /** The activation is deactivating and no turn runs: run its finalizers, then hand its queue on. */
  readonly finishDeactivation: (act: Activation) => void
  /** A failure was recorded: act on what must not wait for the decision (siblings to hold). */
  readonly failed: (act: Activation) => void
  /** The failed activation has settled: hand it to its supervisor. */
  readonly supervise: (act: Activation) => void
  /** Runs the activation effect of `act`, which is `Activating`, with a fresh scope. */
  readonly activate: (act: Activation, outer: Turn | undefined) => void
  /** Closes the activation's scope, waiting at most its deactivation timeout. */
  readonly closeScope: (act: Activation, exit: Exit.Exit<unknown, unknown>) => Effect.Effect<void>
  /** The activation has stopped for good (once per activation). */
  readonly stopped: (act: Activation) => void
  /** Takes the activation out of the silo: gone from its type's table, its queued calls fail with `error`. */
  readonly retire: (act: Activation, error: CallError) => void
}

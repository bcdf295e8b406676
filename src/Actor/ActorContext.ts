/**
 * What an activation knows about itself, provided to its activation effect: its address,
 * and the controls over its own lifecycle and timers.
 *
 * @since 0.1.0
 */
import { Context, type Duration, type Effect } from "effect"
import type { ActorAddress } from "./ActorAddress.ts"

/**
 * Options of a volatile timer.
 *
 * @since 0.1.0
 */
export interface TimerOptions {
  /** Wait before the first tick. Default: the period, or zero for a one-shot timer. */
  readonly dueTime?: Duration.Input | undefined
  /** Wait between the end of one tick's turn and the next tick. Absent: one tick only. */
  readonly period?: Duration.Input | undefined
  /** Whether ticks count as activity, keeping the actor from idle passivation. Default false. */
  readonly keepAlive?: boolean | undefined
}

/**
 * The controls an activation has over itself.
 *
 * @since 0.1.0
 */
export interface ActorContextShape {
  readonly address: ActorAddress
  /** Deactivates once the turns now running end; queued messages go to the next activation. */
  readonly deactivateOnIdle: Effect.Effect<void>
  /** While on, idle passivation skips this activation. */
  readonly keepAlive: (on: boolean) => Effect.Effect<void>
  /**
   * Starts (or replaces) the timer `name`. Each tick runs `tick` as a turn of this
   * activation, never beside another turn; ticks never pile up: the next is scheduled once
   * the previous turn ends. Cancelled when the activation ends.
   */
  readonly startTimer: (
    name: string,
    tick: Effect.Effect<void>,
    options?: TimerOptions
  ) => Effect.Effect<void>
  /** Cancels the timer `name`; `false` when there was none. */
  readonly cancelTimer: (name: string) => Effect.Effect<boolean>
}

/**
 * The current activation's controls. Available to the activation effect of an actor
 * implementation (and to the handlers it returns, by closure).
 *
 * @since 0.1.0
 */
export class ActorContext extends Context.Service<ActorContext, ActorContextShape>()("quark/ActorContext") {}

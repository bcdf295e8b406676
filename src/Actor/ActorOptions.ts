/**
 * Options of an actor type (given to `toLayer`) and the silo-wide defaults they fall back to.
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import type * as Supervisor from "../Supervision/Strategy.ts"

/**
 * What to do when a mailbox is full: fail the send with `MailboxFull`, or suspend the
 * sender until there is room.
 *
 * @since 0.1.0
 */
export type WhenFull = "fail" | "suspend"

/**
 * Per-type options, given to `Contract.toLayer`. Each falls back to the silo's default.
 *
 * @since 0.1.0
 */
export interface ActorTypeOptions {
  /** Passivate an activation after this long without turns. `"never"` keeps it. */
  readonly idleTimeout?: Duration.Input | "never" | undefined
  /** Messages that may wait in one activation's mailbox. */
  readonly mailboxCapacity?: number | undefined
  readonly whenFull?: WhenFull | undefined
  /** Let any call re-enter an activation that is waiting in its call chain. Default false. */
  readonly reentrant?: boolean | undefined
  /** Fail an ask with `CallTimeout` after this long. Default: no timeout for local calls. */
  readonly callTimeout?: Duration.Input | undefined
  /**
   * How long the activation effect may run. Past it the activation fails with
   * `ActivationFailed` (its waiting calls too), its scope is closed and the next call tries
   * again. Default: the silo's, 30 seconds.
   */
  readonly activationTimeout?: Duration.Input | undefined
  /**
   * How long deactivation waits for the finalizers (the activation scope's, children's).
   * Past it a warning is logged and the activation counts as stopped while they finish in
   * the background, if ever. Default: the silo's, 30 seconds.
   */
  readonly deactivationTimeout?: Duration.Input | undefined
  /** How this actor supervises the children it spawns. Default `Supervisor.oneForOne()`. */
  readonly supervisor?: Supervisor.Strategy | undefined
  /**
   * How the silo root supervises this virtual actor type's activations. Default
   * `Supervisor.resume`: a failed turn fails its call and the activation goes on.
   */
  readonly rootSupervisor?: Supervisor.Strategy | undefined
  /** `_tag`s of declared errors that are failures (go to the supervisor), not just replies. */
  readonly fatal?: ReadonlyArray<string> | undefined
}

/**
 * Silo-wide defaults for {@link ActorTypeOptions}.
 *
 * @since 0.1.0
 */
export interface ActorDefaults {
  readonly idleTimeout: Duration.Input | "never"
  readonly mailboxCapacity: number
  readonly whenFull: WhenFull
  readonly activationTimeout: Duration.Input
  readonly deactivationTimeout: Duration.Input
}

/**
 * The documented defaults: idle passivation after 1 minute (as effect/cluster's
 * `maxIdleTime`), 10,000 queued messages, fail when full, 30 seconds for an activation
 * effect and for the finalizers of a deactivation (as Orleans' `ActivationTimeout` and
 * `DeactivationTimeout`).
 *
 * @since 0.1.0
 */
export const defaultActorDefaults: ActorDefaults = {
  idleTimeout: "1 minute",
  mailboxCapacity: 10_000,
  whenFull: "fail",
  activationTimeout: "30 seconds",
  deactivationTimeout: "30 seconds"
}


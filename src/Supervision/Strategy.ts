/**
 * Supervisor strategies: which directive a failure gets (the decider), which siblings a
 * restart or stop takes along (one-for-one, all-for-one, rest-for-one), how many restarts
 * a window allows, and how long to wait before each (a `Schedule`).
 *
 * @since 0.1.0
 */
import { Duration, Effect, Schedule } from "effect"
import type { Failure } from "./Failure.ts"

/**
 * What happens to a failed actor: keep its state and go on (`resume`), rebuild it
 * (`restart`: its activation effect runs again), stop it for good (`stop`), or fail its
 * parent with this failure (`escalate`).
 *
 * @since 0.1.0
 */
export type Directive = "resume" | "restart" | "stop" | "escalate"

/**
 * Which children a restart or stop applies to: the failed one, all of the parent's
 * children, or the failed one and those spawned after it.
 *
 * @since 0.1.0
 */
export type Kind = "one-for-one" | "all-for-one" | "rest-for-one"

/**
 * @since 0.1.0
 */
export interface Strategy {
  readonly kind: Kind
  readonly decider: (failure: Failure) => Directive
  /** Restarts allowed within `within`; one more exceeds the limit. */
  readonly maxRestarts: number
  readonly within: Duration.Duration
  /** Delays before successive restarts within the window; its input is the failure. */
  readonly backoff: Schedule.Schedule<unknown, Failure>
  /** What exceeding the limit (or the backoff schedule ending) does. */
  readonly onLimit: "stop" | "escalate"
}

/**
 * Options of a strategy; each has a documented default.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Default: {@link restartDecider}. */
  readonly decider?: ((failure: Failure) => Directive) | undefined
  /** Default 10. */
  readonly maxRestarts?: number | undefined
  /** Default 1 minute. */
  readonly within?: Duration.Input | undefined
  /** Default {@link defaultBackoff}. */
  readonly backoff?: Schedule.Schedule<unknown, Failure> | undefined
  /** Default "stop". */
  readonly onLimit?: "stop" | "escalate" | undefined
}

/**
 * Restart on every failure, except a failed activation effect of a child, which stops it
 * (rebuilding something that cannot be built only burns the restart budget), as in Akka.
 *
 * @since 0.1.0
 */
export const restartDecider = (failure: Failure): Directive =>
  failure._tag === "ActivationFailed" ? "stop" : "restart"

/**
 * Exponential from 100 ms, doubling, with ±20 % jitter, capped at 10 seconds.
 *
 * @since 0.1.0
 */
export const defaultBackoff: Schedule.Schedule<unknown, Failure> = Schedule.exponential("100 millis", 2).pipe(
  Schedule.jittered,
  Schedule.modifyDelay(({ duration }) => Effect.succeed(Duration.min(duration, Duration.seconds(10))))
) as unknown as Schedule.Schedule<unknown, Failure>

const make = (kind: Kind, options: Options = {}): Strategy => ({
  kind,
  decider: options.decider ?? restartDecider,
  maxRestarts: options.maxRestarts ?? 10,
  within: Duration.fromInputUnsafe(options.within ?? "1 minute"),
  backoff: options.backoff ?? defaultBackoff,
  onLimit: options.onLimit ?? "stop"
})

/**
 * The directive applies to the failed child only. The default for children.
 *
 * @since 0.1.0
 */
export const oneForOne = (options?: Options): Strategy => make("one-for-one", options)

/**
 * A restart or stop applies to every child of the parent.
 *
 * @since 0.1.0
 */
export const allForOne = (options?: Options): Strategy => make("all-for-one", options)

/**
 * A restart or stop applies to the failed child and the children spawned after it.
 *
 * @since 0.1.0
 */
export const restForOne = (options?: Options): Strategy => make("rest-for-one", options)

/**
 * Keep the state and go on with the next message: the default at the silo root for
 * virtual actors, whose turns fail alone, as in Orleans.
 *
 * @since 0.1.0
 */
export const resume: Strategy = make("one-for-one", { decider: () => "resume" })

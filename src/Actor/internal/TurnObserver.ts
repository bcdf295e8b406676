/**
 * What the silo tells its telemetry: turns starting and ending, activations, stops and
 * supervision decisions. A silo without telemetry has no observer, and each of these
 * places costs one `undefined` check; the implementation lives in `src/Telemetry/`.
 *
 * @internal
 */
import { Context, type Effect, type Exit, type Scope, type Tracer } from "effect"
import type { Activation } from "./Activation.ts"
import type { LocalRouter } from "./LocalRouter.ts"
import type { Turn } from "./Turn.ts"

/** @internal */
export interface TurnObserver {
  /**
   * A turn starts running: returns the clock reading to hand back to `turnEnded`, and
   * records how long the turn waited in the mailbox.
   */
  turnStarted(turn: Turn): number
  /** A turn ended; `exit` is its handler's (a shared success for one-way turns). */
  turnEnded(turn: Turn, startedAt: number, exit: Exit.Exit<unknown, unknown>): void
  /**
   * With tracing on: `handled` inside the turn's span when the turn is sampled (`parent`
   * is the caller's span, if any), else `handled` itself. Undefined with tracing off.
   */
  readonly traceTurn:
    | ((turn: Turn, handled: Effect.Effect<any, any>, parent: Tracer.AnySpan | undefined) => Effect.Effect<any, any>)
    | undefined
  /**
   * With tracing on, the parent span of turns that were not sampled, so that the calls they
   * make are not sampled either (parent-based sampling, as OpenTelemetry's default).
   */
  readonly unsampled: Tracer.AnySpan | undefined
  /** The activation effect ended (`failure` says why it failed), `startedAt` as from `now`. */
  activationEnded(act: Activation, startedAt: number, failure: string | undefined): void
  /** With tracing on: the activation effect inside a span, when sampled. */
  traceActivation<A, E, R>(act: Activation, build: Effect.Effect<A, E, R>): Effect.Effect<A, E, R>
  /** An activation stopped for good. */
  stopped(act: Activation): void
  /** A supervisor decided about a failed activation. */
  supervised(act: Activation, directive: string, failureTag: string): void
  /** With tracing on: the supervisor's decision inside a span (always sampled: failures are rare). */
  traceSupervision<A, E, R>(act: Activation, decision: Effect.Effect<A, E, R>): Effect.Effect<A, E, R>
  /** The clock turns and activations are timed with (milliseconds, monotonic). */
  now(): number
}

/**
 * How a silo gets its observer: `Telemetry.layer` provides this, and the silo calls it
 * with its router once, in the silo's scope.
 *
 * @internal
 */
export const SiloObserver = Context.Reference<
  ((router: LocalRouter) => Effect.Effect<TurnObserver, never, Scope.Scope>) | undefined
>("quark/SiloObserver", { defaultValue: () => undefined })

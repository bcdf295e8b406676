/**
 * What the silo tells its telemetry: turns starting and ending, activations, stops and
 * supervision decisions. A silo without telemetry has no observer, and each of these
 * places costs one `undefined` check; the implementation lives in `src/Telemetry/`.
 *
 * @internal
 */
import { Context, type Effect, type Exit, type Scope, type Tracer } from "effect"
import type { ActorAddress } from "../ActorAddress.ts"
import type { Activation } from "./Activation.ts"
import type { LocalRouter } from "./LocalRouter.ts"
import type { Turn } from "./Turn.ts"

/** @internal */
export interface TurnObserver {
  /** Whether turns are timed (`turnStarted`/`turnEnded`); tracing alone does not time them. */
  readonly timesTurns: boolean
  /**
   * A turn starts running: returns the clock reading to hand back to `turnEnded`, and
   * records how long the turn waited in the mailbox.
   */
  turnStarted(turn: Turn): number
  /** A turn ended; `exit` is its handler's (a shared success for one-way turns). */
  turnEnded(turn: Turn, startedAt: number, exit: Exit.Exit<unknown, unknown>): void
  /**
   * With tracing on: the span of `turn`, started now, if the turn is sampled (`parent` is the
   * caller's span, if any); the caller puts it in the turn's context and ends it with
   * `endSpan`. Undefined with tracing off.
   */
  readonly startSpan: ((turn: Turn, parent: Tracer.AnySpan | undefined) => Tracer.Span | undefined) | undefined
  /** Ends a span from `startSpan` with the turn's exit (its error's tag recorded). */
  endSpan(span: Tracer.Span, turn: Turn, exit: Exit.Exit<unknown, unknown>): void
  /**
   * With tracing on: a call to another silo inside a client span when sampled (`parent` is
   * the caller's span, if any), or under the unsampled parent, so that the receiver does not
   * sample it either. Undefined with tracing off.
   */
  readonly traceCall:
    | (<A, E>(
      parent: Tracer.AnySpan | undefined,
      address: ActorAddress,
      tag: string,
      oneWay: boolean,
      call: Effect.Effect<A, E>
    ) => Effect.Effect<A, E>)
    | undefined
  /**
   * With tracing on, the parent span of turns that were not sampled, so that the calls they
   * make are not sampled either (parent-based sampling, as OpenTelemetry's default). It is
   * in every turn's base context; a caller's own span replaces it.
   */
  readonly unsampled: Tracer.AnySpan | undefined
  /**
   * With tracing on: `effect` inside a root span `name` when the sampler draws it (work that
   * starts a trace of its own, such as a reminder tick). Undefined with tracing off.
   */
  readonly traceRoot:
    | (<A, E, R>(name: string, attributes: Readonly<Record<string, unknown>>, effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>)
    | undefined
  /** The activation effect ended (`failure` says why it failed), `startedAt` as from `now`. */
  activationEnded(act: Activation, startedAt: number, failure: string | undefined): void
  /** With tracing on: the activation effect inside a span, when sampled (`parent`: the span of the call that caused it). */
  traceActivation<A, E, R>(act: Activation, build: Effect.Effect<A, E, R>, parent: Tracer.AnySpan | undefined): Effect.Effect<A, E, R>
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

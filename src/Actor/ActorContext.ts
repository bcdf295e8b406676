/**
 * What an activation knows about itself, provided to its activation effect: its address,
 * and the controls over its own lifecycle and timers.
 *
 * @since 0.1.0
 */
import { Context, type Duration, type Effect, type Scope } from "effect"
import type { Rpc } from "effect/rpc"
import type { Failure } from "../Supervision/Failure.ts"
import type { Actor, HandlersFrom } from "./Actor.ts"
import type { ActorAddress } from "./ActorAddress.ts"
import type { ActorRef, AnyActorRef } from "./ActorRef.ts"
import type { ActorTypeOptions } from "./ActorOptions.ts"
import type { Silo } from "./Silo.ts"

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
 * Options of a child actor: its name (unique among its siblings; default `Type-n`) and the
 * options of an actor type that apply to a child (its mailbox, its own `supervisor` for
 * its children, `fatal`, `callTimeout`). Its failures are decided by its parent's
 * `supervisor`; it is never passivated.
 *
 * @since 0.1.0
 */
export interface ChildOptions extends Omit<ActorTypeOptions, "idleTimeout" | "rootSupervisor"> {
  readonly name?: string | undefined
}

/**
 * Why a child actor ended, as its watchers learn it.
 *
 * @since 0.1.0
 */
export interface Termination {
  readonly address: ActorAddress
  readonly reason: string
  /** The failure that stopped it, if its supervisor stopped it. */
  readonly failure: Failure | undefined
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
   * the previous turn ends. Cancelled when the activation ends. A tick runs, like a
   * handler, with the services the implementation was built with (the `Silo` among them,
   * to call other actors), and with this `ActorContext` and the activation's `Scope`.
   */
  readonly startTimer: <R = never>(
    name: string,
    tick: Effect.Effect<void, never, R>,
    options?: TimerOptions
  ) => Effect.Effect<void, never, Exclude<R, ActorContext | Scope.Scope>>
  /** Cancels the timer `name`; `false` when there was none. */
  readonly cancelTimer: (name: string) => Effect.Effect<boolean>
  /**
   * Spawns a child actor running `build`, supervised by this actor's `supervisor`
   * strategy; it starts at once and its ref is usable at once (calls queue until it is
   * built). Its handlers see the services this actor's implementation was built with.
   */
  readonly spawn: <Type extends string, Rpcs extends Rpc.Any, E>(
    contract: Actor<Type, Rpcs>,
    build: Effect.Effect<HandlersFrom<Rpcs, Silo>, E, Scope.Scope | ActorContext | Silo>,
    options?: ChildOptions
  ) => Effect.Effect<ActorRef<Rpcs>>
  /**
   * Stops a child and its children, after its running turns; its waiting asks fail with
   * `ActorStopped`. A ref that is not one of this actor's children is a defect.
   */
  readonly stop: (child: AnyActorRef) => Effect.Effect<void>
  /**
   * Runs `onTerminated` as a turn of this actor when the child ends, with why (at once if it
   * already has). A ref that is not one of this actor's children is a defect.
   */
  readonly watch: (
    child: AnyActorRef,
    onTerminated: (termination: Termination) => Effect.Effect<void>
  ) => Effect.Effect<void>
  /**
   * Opts this activation in to showing a summary of its state to operator tools (the
   * dashboard's actor page, `quark actor`, `Silo.describe`): `summary` is called when one
   * asks, outside any turn, and its result shown as JSON. Keep it to reads of what the
   * activation holds (it may see a turn half-way, at one of its `yield*`s) and to what an
   * operator may see: it is not redacted.
   *
   * @since 0.2.0
   */
  readonly describe: (summary: () => unknown) => Effect.Effect<void>
}

/**
 * The current activation's controls. Available to the activation effect of an actor
 * implementation (and to the handlers it returns, by closure).
 *
 * @since 0.1.0
 */
export class ActorContext extends Context.Service<ActorContext, ActorContextShape>()("quark/ActorContext") {}

/**
 * The `ActorContext` an activation effect sees: an adapter from the public controls to
 * the activation's state machine, the timers and the children. One per incarnation.
 *
 * @internal
 */
import { Effect, Scope } from "effect"
import type { Rpc } from "effect/rpc"
import type { Actor, HandlersFrom } from "../Actor.ts"
import type { ActorAddress } from "../ActorAddress.ts"
import { ActorContext, type ActorContextShape, type ChildOptions, type Termination, type TimerOptions } from "../ActorContext.ts"
import type { ActorRef, AnyActorRef } from "../ActorRef.ts"
import type { Silo } from "../Silo.ts"
import type { Activation } from "./Activation.ts"
import * as Children from "./Children.ts"
import { startTimer } from "./Timer.ts"

/** @internal */
export class ActivationContext implements ActorContextShape {
  readonly activation: Activation

  constructor(activation: Activation) {
    this.activation = activation
  }

  get address(): ActorAddress {
    return this.activation.address
  }

  get deactivateOnIdle(): Effect.Effect<void> {
    return Effect.sync(() => this.activation.deactivateWhenIdle())
  }

  keepAlive(on: boolean): Effect.Effect<void> {
    return Effect.sync(() => {
      this.activation.keptAlive = on
    })
  }

  startTimer<R = never>(
    name: string,
    tick: Effect.Effect<void, never, R>,
    options?: TimerOptions
  ): Effect.Effect<void, never, Exclude<R, ActorContext | Scope.Scope>> {
    // The rest of what the tick needs comes from the implementation's services, which every
    // turn runs with (and which the activation effect that calls this has: hence `R` there).
    const withControls = tick.pipe(
      Effect.provideService(ActorContext, this),
      Effect.provideService(Scope.Scope, this.activation.scope)
    ) as Effect.Effect<void>
    return startTimer(this.activation, name, withControls, options ?? {})
  }

  cancelTimer(name: string): Effect.Effect<boolean> {
    return Effect.sync(() => this.activation.cancelTimer(name))
  }

  spawn<Type extends string, Rpcs extends Rpc.Any, E>(
    contract: Actor<Type, Rpcs>,
    build: Effect.Effect<HandlersFrom<Rpcs, Silo>, E, Scope.Scope | ActorContext | Silo>,
    options?: ChildOptions
  ): Effect.Effect<ActorRef<Rpcs>> {
    return Children.spawn(this.activation, contract as unknown as Children.Spawnable, build, options)
  }

  stop(child: AnyActorRef): Effect.Effect<void> {
    return Children.stop(child)
  }

  watch(child: AnyActorRef, onTerminated: (termination: Termination) => Effect.Effect<void>): Effect.Effect<void> {
    return Children.watch(this.activation, child, onTerminated)
  }
}

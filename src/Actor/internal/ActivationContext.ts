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

  // The controls are getters that return functions bound to this activation, so they can be
  // passed point-free (`Effect.flatMap(ref, ctx.stop)`) without a closure per activation.
  get keepAlive(): (on: boolean) => Effect.Effect<void> {
    return (on) =>
      Effect.sync(() => {
        this.activation.keptAlive = on
      })
  }

  get startTimer(): ActorContextShape["startTimer"] {
    return <R = never>(name: string, tick: Effect.Effect<void, never, R>, options?: TimerOptions) => {
      // The rest of what the tick needs comes from the implementation's services, which every
      // turn runs with (and which the activation effect that calls this has: hence `R` there).
      const withControls = tick.pipe(
        Effect.provideService(ActorContext, this),
        Effect.provideService(Scope.Scope, this.activation.scope)
      ) as Effect.Effect<void>
      return startTimer(this.activation, name, withControls, options ?? {}) as Effect.Effect<
        void,
        never,
        Exclude<R, ActorContext | Scope.Scope>
      >
    }
  }

  get cancelTimer(): (name: string) => Effect.Effect<boolean> {
    return (name) => Effect.sync(() => this.activation.cancelTimer(name))
  }

  get spawn(): ActorContextShape["spawn"] {
    return <Type extends string, Rpcs extends Rpc.Any, E>(
      contract: Actor<Type, Rpcs>,
      build: Effect.Effect<HandlersFrom<Rpcs, Silo>, E, Scope.Scope | ActorContext | Silo>,
      options?: ChildOptions
    ): Effect.Effect<ActorRef<Rpcs>> =>
      Children.spawn(this.activation, contract as unknown as Children.Spawnable, build, options)
  }

  get stop(): (child: AnyActorRef) => Effect.Effect<void> {
    return (child) => Children.stop(this.activation, child)
  }

  get watch(): (child: AnyActorRef, onTerminated: (termination: Termination) => Effect.Effect<void>) => Effect.Effect<void> {
    return (child, onTerminated) => Children.watch(this.activation, child, onTerminated)
  }

  get describe(): (summary: () => unknown) => Effect.Effect<void> {
    return (summary) =>
      Effect.sync(() => {
        this.activation.rare.describe = summary
      })
  }
}

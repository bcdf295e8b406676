/**
 * One actor type's place in a silo: its registration, resolved options, the context its
 * turns run in, and its activations by key. Refs hold the slot, so a call skips the type
 * lookup.
 *
 * @internal
 */
import { Context } from "effect"
import type { Placement } from "../../Cluster/Placement.ts"
import type { Activation } from "./Activation.ts"
import type { HostedType, ResolvedOptions } from "./HostedType.ts"
import type { LocalRouter } from "./LocalRouter.ts"

/** @internal */
export class TypeSlot {
  readonly name: string
  readonly router: LocalRouter
  registration: HostedType | undefined = undefined
  options: ResolvedOptions | undefined = undefined
  /**
   * What a turn runs with: the services the implementation's layer was built with, and no
   * preemption. The scheduler's fairness yield would park a fiber mid-turn while it holds
   * the activation, making every caller queued on it wait a whole scheduling round; a turn
   * still yields whenever it waits. Turns should be short, as in Orleans.
   */
  turnContext: Context.Context<never> = Context.empty()
  readonly activations = new Map<string, Activation>()
  /** False for a child actor's slot: a missing activation is a stopped child, not one to create. */
  virtual = true
  /** The contract's placement, once a ref or the registration has named it. */
  placement: Placement | undefined = undefined
  /** Activations one address may have here: above 1 only for stateless workers. */
  maxWorkers = 1
  /** The message tags, listed once (see `Lifecycle.missingHandler`). */
  tags: ReadonlyArray<string> | undefined = undefined
  /** The last handler table found complete: a table all activations share is checked once. */
  completeHandlers: object | undefined = undefined
  /** What the silo's telemetry keeps about this type (see `TurnObserver`). */
  observed: object | undefined = undefined

  constructor(name: string, router: LocalRouter) {
    this.name = name
    this.router = router
  }
}

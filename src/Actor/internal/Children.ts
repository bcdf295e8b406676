/**
 * Child actors: spawned by an activation, addressed only by the ref `spawn` returns,
 * living in the parent's silo and never longer than the parent's activation. A child is
 * an activation like any other (same mailbox, turns and timers); what differs is that it
 * is not virtual (once stopped, calls to it fail with `ActorStopped`), that its parent's
 * `supervisor` strategy decides its failures, and that the parent can watch it end.
 *
 * @internal
 */
import { Effect, type Scope } from "effect"
import type { Rpc } from "effect/rpc"
import type { ChildOptions, Termination } from "../ActorContext.ts"
import { formatAddress } from "../ActorAddress.ts"
import type { ActorContext } from "../ActorContext.ts"
import type { ActorRef, AnyActorRef } from "../ActorRef.ts"
import type { RefClass, RefFields } from "./RefClass.ts"
import type { Activation } from "./Activation.ts"
import { ActivationState } from "./ActivationState.ts"
import { create } from "./Lifecycle.ts"
import { TypeSlot } from "./TypeSlot.ts"
import type { Handlers, MessageEntry } from "./HostedType.ts"
import { resolveOptions } from "./HostedType.ts"
import type { Silo } from "../Silo.ts"
import { stopActivation } from "./Supervising.ts"
import { CurrentTurn, emptyMetadata, Turn, TurnKind } from "./Turn.ts"

/** What `spawn` needs of a contract. @internal */
export interface Spawnable {
  readonly type: string
  readonly messages: Readonly<Record<string, MessageEntry>>
  readonly refClass: RefClass
}

/** @internal */
export const spawn = <Rpcs extends Rpc.Any>(
  parent: Activation,
  contract: Spawnable,
  build: Effect.Effect<unknown, unknown, Scope.Scope | ActorContext | Silo>,
  options: ChildOptions | undefined
): Effect.Effect<ActorRef<Rpcs>> =>
  Effect.withFiber((fiber) => {
    if (parent.phase === ActivationState.Stopped || parent.phase === ActivationState.Deactivating) {
      return Effect.die(new Error(`${formatAddress(parent.address)} cannot spawn: it is stopping`))
    }
    const router = parent.router
    const extras = parent.rare
    const name = options?.name ?? `${contract.type}-${++extras.childNames}`
    const id = `${formatAddress(parent.address)}/${name}`
    if (extras.children?.some((child) => child.id === id)) {
      return Effect.die(new Error(`${formatAddress(parent.address)} already has a child named "${name}"`))
    }
    const slot = new TypeSlot(contract.type, router)
    slot.virtual = false
    slot.registration = {
      type: contract.type,
      messages: contract.messages,
      build: build as Effect.Effect<Handlers, unknown, Scope.Scope | ActorContext>,
      context: parent.slot.registration!.context,
      options: options ?? {}
    }
    // Children live as long as their parent allows: no idle passivation.
    slot.options = resolveOptions({ ...options, idleTimeout: "never" }, router.defaults)
    slot.turnContext = parent.slot.turnContext
    const child = create(slot, id)
    child.rare.parent = parent
    ;(extras.children ??= []).push(child)
    ;(extras.childSlots ??= new WeakSet()).add(slot)
    router.activate(child, fiber.getRef(CurrentTurn))
    return Effect.succeed(new contract.refClass(router, slot, id) as unknown as ActorRef<Rpcs>)
  })

/**
 * The live activation of `parent`'s child `ref`, `undefined` once it stopped; a ref that is
 * not one of `parent`'s children (a virtual actor, someone else's child) is a defect of the
 * caller, not something to stop or watch.
 */
const childOf = (parent: Activation, ref: AnyActorRef, operation: string): Effect.Effect<Activation | undefined> => {
  const fields = ref as unknown as Partial<RefFields>
  if (fields.slot === undefined || parent.extras?.childSlots?.has(fields.slot) !== true) {
    return Effect.die(
      new Error(`${formatAddress(parent.address)} cannot ${operation} ${formatAddress(ref.address)}: it is not its child`)
    )
  }
  return Effect.succeed(fields.slot.activations.get(fields.id!))
}

/** Stops a child (and its children), waiting for its running turns and finalizers. @internal */
export const stop = (parent: Activation, ref: AnyActorRef): Effect.Effect<void> =>
  Effect.flatMap(
    childOf(parent, ref, "stop"),
    (child) => child === undefined ? Effect.void : stopActivation(child, "stopped by its parent")
  )

const watchInfo = { tag: "watch", readOnly: false, interleave: false, keepAlive: true }

/**
 * Calls `onTerminated` as a turn of `watcher` when the child ends (at once if it already
 * has).
 *
 * @internal
 */
export const watch = (
  watcher: Activation,
  ref: AnyActorRef,
  onTerminated: (termination: Termination) => Effect.Effect<void>
): Effect.Effect<void> =>
  Effect.map(childOf(watcher, ref, "watch"), (child) => {
    const notify = (termination: Termination) => {
      if (watcher.phase === ActivationState.Stopped) return
      watcher.post(new Turn(TurnKind.Tick, watcher, undefined, undefined, emptyMetadata, watchInfo, onTerminated(termination)))
    }
    if (child === undefined) notify({ address: ref.address, reason: "it had already stopped", failure: undefined })
    else (child.rare.watchers ??= []).push(notify)
  })

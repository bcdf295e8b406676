/**
 * The local router: delivers asks and tells to activations on this silo, creating the
 * activation on first use.
 *
 * The fast path: when the activation is idle, an ask runs its turn at once in the
 * caller's own fiber — no queue, no fiber switch, no encoding. Otherwise the ask parks in
 * the mailbox and, when granted, still runs in its own fiber. Interrupting the caller
 * therefore interrupts its turn (as in effect/cluster), or withdraws it if it has not
 * started. One-way messages run on a drainer fiber that lives while the activation has
 * one-way work.
 *
 * @internal
 */
import { Context, Duration, Effect, Fiber, Predicate, References, Scheduler, Scope, Tracer } from "effect"
import { identity } from "effect/Function"
import * as Failure from "../../Supervision/Failure.ts"
import {
  ActorDefect,
  ActorStopped,
  ActorUnavailable,
  type CallError,
  CallTimeout,
  Deadlock,
  MailboxFull,
  type SendError,
  UnknownActorType
} from "../ActorError.ts"
import { Activation, ActivationState, granted } from "./Activation.ts"
import type { CallOptions } from "../CallOptions.ts"
import type { ActorDefaults } from "../ActorOptions.ts"
import {
  type MessageEntry,
  type HostedType,
  resolveOptions,
  type ResolvedOptions
} from "./HostedType.ts"
import { activate, create } from "./Lifecycle.ts"
import type { Placement } from "../../Cluster/Placement.ts"
import { CurrentTurn, type MessageInfo, RemoteFrame, Turn, TurnKind } from "./Turn.ts"

/**
 * How a clustered silo (or a client) reaches addresses it does not host. The local router
 * asks it first whenever the address has no activation here; a single silo has none.
 *
 * @internal
 */
export interface RemoteRouting {
  /**
   * The effect that delivers this ask (made on `fiber`) elsewhere, or decides where first;
   * `undefined` to run it here.
   */
  readonly ask: (
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown,
    options: CallOptions | undefined
  ) => Effect.Effect<any, any> | undefined
  /** Likewise for a one-way message. */
  readonly tell: (
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown,
    options: CallOptions | undefined
  ) => Effect.Effect<void, SendError> | undefined
  /** Whether a new activation of the address belongs on this silo now. */
  readonly ownsHere: (slot: TypeSlot, id: string) => boolean
  /** An activation left the silo. */
  readonly removed: (act: Activation) => void
}

/** One actor type's place in the router; refs hold it so a call skips the type lookup. @internal */
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

  constructor(name: string, router: LocalRouter) {
    this.name = name
    this.router = router
  }
}

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

const describeDefect = (defect: unknown): string => {
  const message = defect instanceof Error ? defect.message : String(defect)
  // A tagged error that became a defect (`orDie`) keeps its tag in the report.
  return Predicate.hasProperty(defect, "_tag") && typeof defect._tag === "string" ? `${defect._tag}: ${message}` : message
}

/** A turn refused because the silo cannot show it is still a cluster member: it did not run. @internal */
export const noLease = (act: Activation): ActorUnavailable =>
  new ActorUnavailable({ address: act.address, reason: "its silo cannot show it is still a cluster member; the message did not run" })

/** @internal */
export class LocalRouter {
  readonly slots = new Map<string, TypeSlot>()
  readonly defaults: ActorDefaults
  /** The silo's services, for fibers the router starts outside any caller (drainers, handoffs). */
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  /** Holds the watchdog timers of activations and deactivations; the silo closes it last. */
  readonly timers: Scope.Closeable = Scope.makeUnsafe()
  shuttingDown = false
  /** Set by a clustered silo or client. */
  remote: RemoteRouting | undefined = undefined
  /**
   * Set by a clustered silo: whether it can still show it is a member. No turn starts while
   * it says no (a paused silo must not serve what queued up meanwhile: another silo may
   * host those actors now).
   */
  lease: (() => boolean) | undefined = undefined

  constructor(context: Context.Context<never>, defaults: ActorDefaults) {
    this.defaults = defaults
    this.fork = Effect.runForkWith(context)
  }

  /**
   * Forks a watchdog (a sleep, then what is overdue) that ends with the silo at the latest,
   * so that a pending one keeps neither the process nor a closed silo alive.
   */
  forkTimer(effect: Effect.Effect<void>): Fiber.Fiber<void> {
    return Fiber.runIn(this.fork(effect), this.timers)
  }

  /**
   * Log annotations every turn runs under (a clustered silo adds its id, so a log line
   * written in a handler says which silo served it). Set before or after registration.
   */
  annotateTurns(annotations: Readonly<Record<string, unknown>>): void {
    this.turnAnnotations = annotations
    for (const slot of this.slots.values()) {
      if (slot.registration !== undefined) slot.turnContext = this.turnContextOf(slot.registration)
    }
  }

  private turnAnnotations: Readonly<Record<string, unknown>> | undefined = undefined

  private turnContextOf(registration: HostedType): Context.Context<never> {
    const context = Context.add(registration.context, Scheduler.PreventSchedulerYield, true)
    const extra = this.turnAnnotations
    if (extra === undefined) return context
    const current = Context.get(context, References.CurrentLogAnnotations)
    return Context.add(context, References.CurrentLogAnnotations, { ...current, ...extra })
  }

  slot(type: string): TypeSlot {
    let slot = this.slots.get(type)
    if (slot === undefined) {
      slot = new TypeSlot(type, this)
      this.slots.set(type, slot)
    }
    return slot
  }

  register(registration: HostedType): Effect.Effect<void> {
    return Effect.suspend(() => {
      const slot = this.slot(registration.type)
      if (slot.registration !== undefined) {
        return Effect.die(new Error(`actor type "${registration.type}" is registered twice in this silo`))
      }
      slot.registration = registration
      slot.placement = registration.placement
      slot.maxWorkers = registration.placement?.maxLocalActivations ?? 1
      slot.options = resolveOptions(registration.options, this.defaults)
      slot.turnContext = this.turnContextOf(registration)
      return Effect.void
    })
  }

  // ---------------------------------------------------------------------------
  // Ask

  ask(slot: TypeSlot, id: string, info: MessageEntry, payload: unknown, options?: CallOptions): Effect.Effect<any, any> {
    const remote = this.remote
    if (remote === undefined || !slot.virtual) return this.askLocal(slot, id, info, payload, options)
    // Decided when the call runs, not when it is built: a retried call follows the ring.
    return Effect.withFiber((fiber) =>
      (slot.activations.has(id) ? undefined : remote.ask(fiber, slot, id, info, payload, options)) ??
        this.askLocal(slot, id, info, payload, options)
    )
  }

  /**
   * An ask for an activation on this silo (created if absent), made from `from` (a remote
   * frame) or else from the fiber's current turn.
   */
  askLocal(
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    options?: CallOptions,
    from?: Turn
  ): Effect.Effect<any, any> {
    const call = Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => this.askIn(fiber, restore, slot, id, info, payload, options, from))
    )
    const timeout = options?.timeout ?? slot.options?.callTimeout
    if (timeout === undefined) return call
    return Effect.timeoutOrElse(call, {
      duration: timeout,
      orElse: () =>
        Effect.fail(
          new CallTimeout({ address: { type: slot.name, id }, tag: info.tag, timeoutMillis: Duration.toMillis(timeout) })
        )
    })
  }

  private askIn(
    fiber: Fiber.Fiber<unknown, unknown>,
    restore: Restore,
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    options: CallOptions | undefined,
    from: Turn | undefined
  ): Effect.Effect<any, any> {
    if (slot.options === undefined) return Effect.fail(new UnknownActorType({ type: slot.name }))
    const outer = from ?? fiber.getRef(CurrentTurn)
    const key = slot.maxWorkers === 1 ? id : pickWorker(slot, id)
    const act = slot.activations.get(key)
    if (act !== undefined && act.state === ActivationState.Active && act.admits(info, outer)) {
      const turn = Turn.message(TurnKind.Ask, act, outer, info, payload)
      act.begin(turn)
      return this.runAsk(fiber, restore, turn)
    }
    if (this.shuttingDown) return Effect.fail(siloShuttingDown(slot, id))
    if (act === undefined) {
      if (!slot.virtual) return Effect.fail(stoppedChild(slot, id))
      const created = create(slot, id, key)
      const turn = Turn.message(TurnKind.Ask, created, outer, info, payload)
      created.enqueue(turn)
      activate(created, outer)
      // A synchronous activation effect has already granted this turn (it was first).
      return turn.outcome === granted ? this.runAsk(fiber, restore, turn) : this.awaitTurn(fiber, restore, turn)
    }
    const cycle = act.cycleFrom(outer)
    if (cycle !== undefined) return Effect.fail(new Deadlock({ cycle }))
    if (act.isFull()) {
      return this.whenFull(act, options, restore, (fiber) => this.askIn(fiber, restore, slot, id, info, payload, options, from))
    }
    const turn = Turn.message(TurnKind.Ask, act, outer, info, payload)
    act.enqueue(turn)
    act.markBlocked(outer)
    return this.awaitTurn(fiber, restore, turn)
  }

  /**
   * Parks an asker until its turn is granted, it learns it never will be, or it is
   * redirected (its activation moved to another silo): then it runs the redirect instead.
   *
   * If the asker gives up first (interrupted, or its timeout fired), its turn is withdrawn.
   * The hook that withdraws it is installed while the fiber is still uninterruptible, not
   * as the callback's canceller: an interrupt that arrived while the turn was being queued
   * takes effect as `restore` is entered, before the callback would have registered one,
   * and would leave the turn queued to be granted to nobody, wedging the activation.
   */
  private awaitTurn(fiber: Fiber.Fiber<unknown, unknown>, restore: Restore, turn: Turn): Effect.Effect<any, any> {
    const parked = Effect.callback<unknown, CallError>((resume) => {
      if (turn.outcome !== undefined) return resume(turn.outcome)
      turn.resume = resume
      turn.dispatcher = fiber.currentDispatcher
    })
    // A remote caller's deadline bounds the wait in the mailbox only (so the common case, a
    // turn granted at once, pays nothing for it): past it the ask leaves, never to run.
    const frame = turn.caller
    const waitMillis = frame instanceof RemoteFrame ? frame.waitMillis : 0
    const waiting = waitMillis === 0 ? parked : Effect.timeoutOrElse(parked, {
      duration: waitMillis,
      orElse: () => Effect.fail(new CallTimeout({ address: turn.activation!.address, tag: turn.info!.tag, timeoutMillis: waitMillis }))
    })
    return Effect.flatMap(
      // The activation may have changed by a handoff, so it is looked up at cancel time.
      Effect.onExit(restore(waiting), (exit) =>
        exit._tag === "Success" ? Effect.void : Effect.sync(() => turn.activation!.cancel(turn))),
      (redirect) => redirect === undefined ? this.runAsk(fiber, restore, turn) : restore(redirect as Effect.Effect<any, any>)
    )
  }

  /**
   * Runs a granted ask in the caller's fiber. Called while uninterruptible, so the exit
   * hook that ends the turn is in place before the handler can be interrupted.
   */
  private runAsk(fiber: Fiber.Fiber<unknown, unknown>, restore: Restore, turn: Turn): Effect.Effect<any, any> {
    const act = turn.activation!
    if (this.lease !== undefined && !this.lease()) {
      act.end(turn)
      return Effect.fail(noLease(act))
    }
    const previous = fiber.context
    // The turn runs with the actor's services (captured when its layer was built), not the
    // caller's; only the caller's span goes along, so traces follow calls between actors.
    let context = Context.add(act.slot.turnContext, CurrentTurn, turn)
    const span = Context.getOrUndefined(previous, Tracer.ParentSpan)
    if (span !== undefined) context = Context.add(context, Tracer.ParentSpan, span)
    fiber.setContext(context)
    let handled: Effect.Effect<any, any>
    try {
      handled = act.handlers![turn.info!.tag](turn.payload)
    } catch (defect) {
      handled = Effect.die(defect)
    }
    if (act.options.fatal !== undefined) {
      handled = Effect.tapError(handled, (error) => Effect.sync(() => act.failIfFatal(error)))
    }
    const afterTurn = act.extras?.afterTurn
    if (afterTurn !== undefined) handled = Effect.tap(handled, () => afterTurn)
    return Effect.onExit(
      restore(Effect.catchDefect(handled, (defect) => {
        act.fail(Failure.defect(defect))
        return Effect.fail(this.defect(act, turn, defect))
      })),
      () => {
        fiber.setContext(previous)
        act.end(turn)
        return Effect.void
      }
    )
  }

  private defect(act: Activation, turn: Turn, defect: unknown): ActorDefect {
    return new ActorDefect({ address: act.address, tag: turn.info!.tag, defect: describeDefect(defect) })
  }


  /** A send found the mailbox full: fail, or wait for room and `retry` the whole send. */
  private whenFull<A, E>(
    act: Activation,
    options: CallOptions | undefined,
    restore: Restore,
    retry: (fiber: Fiber.Fiber<unknown, unknown>) => Effect.Effect<A, E>
  ): Effect.Effect<A, E | MailboxFull> {
    if ((options?.whenFull ?? act.options.whenFull) === "fail") {
      return Effect.fail(new MailboxFull({ address: act.address, capacity: act.options.capacity }))
    }
    return Effect.flatMap(restore(this.waitForRoom(act)), () => Effect.withFiber(retry))
  }

  /** Waits until the mailbox has room or the activation stops; the sender then tries again. */
  private waitForRoom(act: Activation): Effect.Effect<void> {
    return Effect.withFiber((fiber) =>
      Effect.callback<void>((resume) => {
        const dispatcher = fiber.currentDispatcher
        const wake = () => dispatcher.scheduleTask(() => resume(Effect.void), 0)
        ;(act.rare.spaceWaiters ??= []).push(wake)
        return Effect.sync(() => {
          const waiters = act.rare.spaceWaiters
          const at = waiters === undefined ? -1 : waiters.indexOf(wake)
          if (at >= 0) waiters!.splice(at, 1)
        })
      })
    )
  }

  // ---------------------------------------------------------------------------
  // Tell

  tell(slot: TypeSlot, id: string, info: MessageEntry, payload: unknown, options?: CallOptions): Effect.Effect<void, SendError> {
    const remote = this.remote
    if (remote === undefined || !slot.virtual) return this.tellLocal(slot, id, info, payload, options)
    return Effect.withFiber((fiber) =>
      (slot.activations.has(id) ? undefined : remote.tell(fiber, slot, id, info, payload, options)) ??
        this.tellLocal(slot, id, info, payload, options)
    )
  }

  /** A one-way message for an activation on this silo (created if absent); `from` as for `askLocal`. */
  tellLocal(
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    options?: CallOptions,
    from?: Turn
  ): Effect.Effect<void, SendError> {
    return Effect.withFiber((fiber) => this.tellIn(fiber, slot, id, info, payload, options, from))
  }

  private tellIn(
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    options: CallOptions | undefined,
    from: Turn | undefined
  ): Effect.Effect<void, SendError> {
    if (slot.options === undefined) return Effect.fail(new UnknownActorType({ type: slot.name }))
    if (this.shuttingDown) return Effect.fail(siloShuttingDown(slot, id))
    const outer = from ?? fiber.getRef(CurrentTurn)
    const key = slot.maxWorkers === 1 ? id : pickWorker(slot, id)
    let act = slot.activations.get(key)
    if (act === undefined) {
      if (!slot.virtual) return Effect.fail(stoppedChild(slot, id))
      act = create(slot, id, key)
      act.enqueue(Turn.message(TurnKind.Tell, act, outer, info, payload))
      activate(act, undefined)
      return Effect.void
    }
    if (act.state === ActivationState.Active && act.admits(info, undefined)) {
      act.startOneWay(Turn.message(TurnKind.Tell, act, outer, info, payload))
      return Effect.void
    }
    if (act.isFull()) {
      return this.whenFull(act, options, identity, (fiber) => this.tellIn(fiber, slot, id, info, payload, options, from))
    }
    act.enqueue(Turn.message(TurnKind.Tell, act, outer, info, payload))
    return Effect.void
  }
}

/**
 * The stateless worker of `id` a message should go to (its key in `slot.activations`): an
 * idle one, else a new one while under the maximum, else the least busy.
 */
const pickWorker = (slot: TypeSlot, id: string): string => {
  let missing: string | undefined = undefined
  let least: string | undefined = undefined
  let leastLoad = Infinity
  for (let n = 0; n < slot.maxWorkers; n++) {
    const key = n === 0 ? id : `${id}\u0000${n}`
    const act = slot.activations.get(key)
    if (act === undefined) {
      missing ??= key
      continue
    }
    const load = act.running + act.mailboxDepth
    if (load === 0 && act.state === ActivationState.Active) return key
    if (load < leastLoad) {
      least = key
      leastLoad = load
    }
  }
  return missing ?? least!
}

/** @internal */
export const siloShuttingDown = (slot: TypeSlot, id: string): ActorUnavailable =>
  new ActorUnavailable({ address: { type: slot.name, id }, reason: "the silo is shutting down" })

const stoppedChild = (slot: TypeSlot, id: string): ActorStopped =>
  new ActorStopped({ address: { type: slot.name, id }, reason: "the child actor has stopped" })


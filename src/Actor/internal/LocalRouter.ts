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
import { Clock, Context, Duration, Effect, type Exit, Fiber, FiberSet, Predicate, References, Scheduler, Scope, Tracer } from "effect"
import { identity } from "effect/Function"
import * as Failure from "../../Supervision/Failure.ts"
import {
  ActorDefect,
  type CallError,
  CallTimeout,
  Deadlock,
  MailboxFull,
  type SendError,
  UnknownActorType
} from "../ActorError.ts"
import type { Activation } from "./Activation.ts"
import { ActivationContext } from "./ActivationContext.ts"
import type { ActivationHost } from "./ActivationHost.ts"
import { ActivationState, granted } from "./ActivationState.ts"
import * as Drainer from "./Drainer.ts"
import type { CallOptions } from "../CallOptions.ts"
import type { ActorDefaults } from "../ActorOptions.ts"
import { type HostedType, type MessageEntry, resolveOptions } from "./HostedType.ts"
import * as Lifecycle from "./Lifecycle.ts"
import { noLease, siloShuttingDown, stoppedChild } from "./Refusals.ts"
import { holdAffected, supervise } from "./Supervising.ts"
import type { RefFields } from "./RefClass.ts"
import { TypeSlot } from "./TypeSlot.ts"
import { cycleFrom, markBlocked } from "./WaitGraph.ts"
import type { RemoteRouting } from "./RemoteRouting.ts"
import { CurrentTurn, type MessageInfo, RemoteFrame, Turn, TurnKind } from "./Turn.ts"
import type { TurnObserver } from "./TurnObserver.ts"
import type { Gate } from "../../Security/internal/Gate.ts"

type Restore = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

const describeDefect = (defect: unknown): string => {
  const message = defect instanceof Error ? defect.message : String(defect)
  // A tagged error that became a defect (`orDie`) keeps its tag in the report.
  return Predicate.hasProperty(defect, "_tag") && typeof defect._tag === "string" ? `${defect._tag}: ${message}` : message
}

/**
 * The router is also every activation's `ActivationHost`: the one place where the
 * synchronous state machine meets fibers, scopes and the supervisor.
 *
 * @internal
 */
export class LocalRouter implements ActivationHost {
  readonly slots = new Map<string, TypeSlot>()
  readonly defaults: ActorDefaults
  /**
   * Forks a fiber the silo owns, with the silo's services, outside any caller (drainers,
   * supervision, handoffs): those still running when the silo closes are interrupted.
   */
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  /** Holds the watchdog timers of activations and deactivations; the silo closes it last. */
  readonly timers: Scope.Closeable = Scope.makeUnsafe()
  shuttingDown = false
  /**
   * A clustered silo that is draining: it still serves what it holds while it hands it over,
   * but reports itself not ready and takes no new placements.
   */
  draining = false
  /** Set by a clustered silo or client. */
  remote: RemoteRouting | undefined = undefined
  /**
   * Set by a clustered silo: whether it can still show it is a member. No turn starts while
   * it says no (a paused silo must not serve what queued up meanwhile: another silo may
   * host those actors now).
   */
  lease: (() => boolean) | undefined = undefined
  /**
   * Told of each one-way message that failed or was lost (its turn failed, its activation
   * failed, or it was lost moving silos). Set by a dead-letter queue (`Reminders.layer` with
   * `deadLetterTells`); otherwise such messages are only logged.
   */
  lostOneWay: ((lost: LostOneWay) => Effect.Effect<void>) | undefined = undefined
  /** The silo's telemetry, if it has any (see `TurnObserver`). */
  observer: TurnObserver | undefined = undefined
  /** Set with a security service: every call passes it before its turn. */
  gate: Gate | undefined = undefined
  /** The silo's id in a cluster (the `quark.silo` turn annotation), for telemetry. */
  siloId: string | undefined = undefined

  /** Every fiber the router starts: the silo interrupts what is left of them when it closes. */
  private readonly fibers: FiberSet.FiberSet<unknown, unknown>

  /** Activations whose turns have ended, waiting for their finalizers (see `Lifecycle.finishDeactivation`). */
  deactivating: Array<Activation> = []
  deactivatingScheduled = false
  /** Told of every activation that stops for good (the silo's shutdown counts them). */
  stopListener: ((act: Activation) => void) | undefined = undefined
  /**
   * Run after each type is registered; the registration completes with it. A cluster silo
   * announces the types it hosts there, so that its layer is built only once they are published.
   */
  registered: ((registration: HostedType) => Effect.Effect<void>) | undefined = undefined

  /** The silo's start: activation times are kept relative to it (see `Activation.createdAt`). */
  readonly startedAtMillis: number

  constructor(context: Context.Context<never>, fibers: FiberSet.FiberSet<unknown, unknown>, defaults: ActorDefaults) {
    this.defaults = defaults
    this.startedAtMillis = Context.get(context, Clock.Clock).currentTimeMillisUnsafe()
    this.fibers = fibers
    this.forkUnowned = Effect.runForkWith(context)
    this.fork = (effect) => {
      const fiber = this.forkUnowned(effect)
      FiberSet.addUnsafe(this.fibers, fiber)
      return fiber
    }
  }

  /**
   * Forks what the silo must not wait for when it closes: finalizers (which cannot be
   * interrupted, and which a deactivation gives up on after its timeout) and activation
   * effects (which the activation timeout gives up on). Everything else goes to `fork`.
   */
  readonly forkUnowned: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>

  /** Forks a watchdog (a sleep, then what is overdue) that ends with the silo at the latest. */
  forkTimer(effect: Effect.Effect<void>): Fiber.Fiber<void> {
    return Fiber.runIn(this.fork(effect), this.timers)
  }

  /**
   * Log annotations every turn runs under (a clustered silo adds its id, so a log line
   * written in a handler says which silo served it). Set before or after registration.
   */
  annotateTurns(annotations: Readonly<Record<string, unknown>>): void {
    this.turnAnnotations = annotations
    const silo = annotations["quark.silo"]
    if (typeof silo === "string") this.siloId = silo
    for (const slot of this.slots.values()) {
      if (slot.registration !== undefined) slot.turnContext = this.turnContextOf(slot.registration)
    }
  }

  private turnAnnotations: Readonly<Record<string, unknown>> | undefined = undefined

  private turnContextOf(registration: HostedType): Context.Context<never> {
    let context = Context.add(registration.context, Scheduler.PreventSchedulerYield, true)
    const unsampled = this.observer?.unsampled
    if (unsampled !== undefined) context = Context.add(context, Tracer.ParentSpan, unsampled)
    const extra = this.turnAnnotations
    if (extra === undefined) return context
    const current = Context.get(context, References.CurrentLogAnnotations)
    return Context.add(context, References.CurrentLogAnnotations, { ...current, ...extra })
  }

  // ---------------------------------------------------------------------------
  // ActivationHost

  startDrainer(act: Activation, first: Turn): void {
    Drainer.startDrainer(act, first)
  }

  runBeside(turn: Turn): void {
    Drainer.runBeside(turn)
  }

  finishDeactivation(act: Activation): void {
    Lifecycle.finishDeactivation(act)
  }

  failed(act: Activation): void {
    holdAffected(act)
  }

  supervise(act: Activation): void {
    // Not on the stack of the turn that settled the activation.
    const decided = this.observer === undefined ? supervise(act) : this.observer.traceSupervision(act, supervise(act))
    this.fork(Effect.andThen(Effect.yieldNow, decided))
  }

  /** `parent`: with tracing, the span of the call that caused the activation. */
  activate(act: Activation, outer: Turn | undefined, parent?: Tracer.AnySpan): void {
    Lifecycle.activate(act, outer, new ActivationContext(act), parent)
  }

  closeScope(act: Activation, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    return Lifecycle.closeScope(act, exit)
  }

  retire(act: Activation, error: CallError): void {
    Lifecycle.retire(act, error)
  }

  stopped(act: Activation): void {
    this.observer?.stopped(act)
    this.stopListener?.(act)
  }

  // ---------------------------------------------------------------------------
  // Types

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
      return this.registered === undefined ? Effect.void : this.registered(registration)
    })
  }

  // ---------------------------------------------------------------------------
  // Finding the activation

  /**
   * The activation a message for `id` goes to here, if there is one. A ref remembers the
   * activation it reached: while that one is active it is the address's activation here,
   * and the lookup in a table of millions (cache misses) is skipped.
   */
  private existing(slot: TypeSlot, id: string, ref: RefFields | undefined): Activation | undefined {
    const remembered = ref?.activation
    if (remembered !== undefined && remembered.phase === ActivationState.Active) return remembered
    if (slot.maxWorkers !== 1) return slot.activations.get(pickWorker(slot, id))
    const act = slot.activations.get(id)
    if (ref !== undefined) ref.activation = act
    return act
  }

  /** A new activation for `id` (a stateless worker's next one, if the type has workers). */
  private create(slot: TypeSlot, id: string, ref: RefFields | undefined): Activation {
    if (slot.maxWorkers !== 1) return Lifecycle.create(slot, id, pickWorker(slot, id))
    const act = Lifecycle.create(slot, id, id)
    if (ref !== undefined) ref.activation = act
    return act
  }

  // ---------------------------------------------------------------------------
  // Ask

  ask(
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown,
    options?: CallOptions,
    ref?: RefFields
  ): Effect.Effect<any, any> {
    const remote = this.remote
    if (remote === undefined || !slot.virtual) return this.askLocal(slot, id, info, payload, options, undefined, ref)
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
    from?: Turn,
    ref?: RefFields
  ): Effect.Effect<any, any> {
    const admitted = (from: Turn | undefined) =>
      Effect.uninterruptibleMask((restore) =>
        Effect.withFiber((fiber) => this.askIn(fiber, restore, slot, id, info, payload, options, from, ref))
      )
    const gate = this.gate
    const call = gate === undefined ? admitted(from) : gate.ask(slot, id, info, payload, from, admitted)
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
    from: Turn | undefined,
    ref: RefFields | undefined
  ): Effect.Effect<any, any> {
    if (slot.options === undefined) return Effect.fail(new UnknownActorType({ type: slot.name }))
    const outer = from ?? fiber.getRef(CurrentTurn)
    const act = this.existing(slot, id, ref)
    if (act !== undefined && act.phase === ActivationState.Active && act.admits(info, outer)) {
      const turn = Turn.message(TurnKind.Ask, act, outer, info, payload)
      act.begin(turn)
      return this.runAsk(fiber, restore, turn)
    }
    if (this.shuttingDown) return Effect.fail(siloShuttingDown({ type: slot.name, id }))
    if (act === undefined) {
      if (!slot.virtual) return Effect.fail(stoppedChild({ type: slot.name, id }))
      const created = this.create(slot, id, ref)
      const turn = Turn.message(TurnKind.Ask, created, outer, info, payload)
      created.enqueue(turn)
      this.activate(created, outer, this.observer?.startSpan === undefined ? undefined : Context.getOrUndefined(fiber.context, Tracer.ParentSpan))
      // A synchronous activation effect has already granted this turn (it was first).
      return turn.outcome === granted ? this.runAsk(fiber, restore, turn) : this.awaitTurn(fiber, restore, turn)
    }
    const cycle = cycleFrom(act, outer)
    if (cycle !== undefined) return Effect.fail(new Deadlock({ cycle }))
    if (act.isFull()) {
      return this.whenFull(act, options, restore, (fiber) => this.askIn(fiber, restore, slot, id, info, payload, options, from, ref))
    }
    const turn = Turn.message(TurnKind.Ask, act, outer, info, payload)
    act.enqueue(turn)
    markBlocked(act, outer)
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
      return Effect.fail(noLease(act.address))
    }
    const previous = fiber.context
    // The turn runs with the actor's services (captured when its layer was built), not the
    // caller's; only the caller's span goes along, so traces follow calls between actors.
    let context = Context.add(act.slot.turnContext, CurrentTurn, turn)
    const span = Context.getOrUndefined(previous, Tracer.ParentSpan)
    const observer = this.observer
    const turnSpan = observer?.startSpan?.(turn, span)
    const parent = turnSpan ?? span
    if (parent !== undefined) context = Context.add(context, Tracer.ParentSpan, parent)
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
    handled = Effect.catchDefect(handled, (defect) => {
      act.fail(Failure.defect(defect))
      return Effect.fail(this.defect(act, turn, defect))
    })
    if (observer === undefined || (!observer.timesTurns && turnSpan === undefined)) {
      return Effect.onExit(restore(handled), () => {
        fiber.setContext(previous)
        act.end(turn)
        return Effect.void
      })
    }
    const startedAt = observer.timesTurns ? observer.turnStarted(turn) : 0
    return Effect.onExit(restore(handled), (exit) => {
      fiber.setContext(previous)
      if (observer.timesTurns) observer.turnEnded(turn, startedAt, exit)
      if (turnSpan !== undefined) observer.endSpan(turnSpan, turn, exit)
      act.end(turn)
      return Effect.void
    })
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

  tell(
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown,
    options?: CallOptions,
    ref?: RefFields
  ): Effect.Effect<void, SendError> {
    const remote = this.remote
    if (remote === undefined || !slot.virtual) return this.tellLocal(slot, id, info, payload, options, undefined, ref)
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
    from?: Turn,
    ref?: RefFields
  ): Effect.Effect<void, SendError> {
    // No extra closure without a gate: tells are the hottest path.
    if (this.gate === undefined) return Effect.withFiber((fiber) => this.tellIn(fiber, slot, id, info, payload, options, from, ref))
    return this.gate.tell(slot, id, info, payload, from, (from) =>
      Effect.withFiber((fiber) => this.tellIn(fiber, slot, id, info, payload, options, from, ref)))
  }

  /** A one-way turn; with tracing it keeps the sender's span, since it runs on another fiber. */
  private tellTurn(
    fiber: Fiber.Fiber<unknown, unknown>,
    act: Activation,
    outer: Turn | undefined,
    info: MessageInfo,
    payload: unknown
  ): Turn {
    const turn = Turn.message(TurnKind.Tell, act, outer, info, payload)
    if (this.observer?.startSpan !== undefined) turn.span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    return turn
  }

  private tellIn(
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    options: CallOptions | undefined,
    from: Turn | undefined,
    ref: RefFields | undefined
  ): Effect.Effect<void, SendError> {
    if (slot.options === undefined) return Effect.fail(new UnknownActorType({ type: slot.name }))
    if (this.shuttingDown) return Effect.fail(siloShuttingDown({ type: slot.name, id }))
    const outer = from ?? fiber.getRef(CurrentTurn)
    let act = this.existing(slot, id, ref)
    if (act === undefined) {
      if (!slot.virtual) return Effect.fail(stoppedChild({ type: slot.name, id }))
      act = this.create(slot, id, ref)
      act.enqueue(this.tellTurn(fiber, act, outer, info, payload))
      this.activate(act, undefined, this.observer?.startSpan === undefined ? undefined : Context.getOrUndefined(fiber.context, Tracer.ParentSpan))
      return Effect.void
    }
    if (act.phase === ActivationState.Active && act.admits(info, undefined)) {
      act.startOneWay(this.tellTurn(fiber, act, outer, info, payload))
      return Effect.void
    }
    if (act.isFull()) {
      return this.whenFull(act, options, identity, (fiber) => this.tellIn(fiber, slot, id, info, payload, options, from, ref))
    }
    act.enqueue(this.tellTurn(fiber, act, outer, info, payload))
    return Effect.void
  }
}

/** A one-way message that failed or was lost, for a dead-letter queue. @internal */
export interface LostOneWay {
  readonly address: { readonly type: string; readonly id: string }
  readonly message: MessageInfo
  /** As the handler would have received it (decoded). */
  readonly payload: unknown
  readonly reason: string
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
    if (load === 0 && act.phase === ActivationState.Active) return key
    if (load < leastLoad) {
      least = key
      leastLoad = load
    }
  }
  return missing ?? least!
}

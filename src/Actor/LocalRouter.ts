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
import { Cause, Clock, Context, Duration, Effect, Exit, type Fiber, Predicate, Scheduler, Scope } from "effect"
import { identity } from "effect/Function"
import * as Failure from "../Supervision/Failure.ts"
import { ActorContext } from "./ActorContext.ts"
import {
  ActivationFailed,
  ActorDefect,
  ActorStopped,
  ActorUnavailable,
  type CallError,
  CallTimeout,
  Deadlock,
  MailboxFull,
  type SendError,
  UnknownActorType
} from "./ActorError.ts"
import { Activation, ActivationState, granted } from "./Activation.ts"
import type { CallOptions } from "./CallOptions.ts"
import {
  type ActorDefaults,
  type Handlers,
  type Registration,
  resolveOptions,
  type ResolvedOptions
} from "./Registration.ts"
import { stopChildren, supervise } from "./Supervisor.ts"
import { CurrentTurn, type MessageInfo, Turn, TurnKind, TurnState } from "./Turn.ts"

/** One actor type's place in the router; refs hold it so a call skips the type lookup. @internal */
export class TypeSlot {
  readonly name: string
  readonly router: LocalRouter
  registration: Registration | undefined = undefined
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

/** @internal */
export class LocalRouter {
  readonly slots = new Map<string, TypeSlot>()
  readonly defaults: ActorDefaults
  /** The silo's services, for fibers the router starts outside any caller (drainers, handoffs). */
  readonly fork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  shuttingDown = false

  constructor(context: Context.Context<never>, defaults: ActorDefaults) {
    this.defaults = defaults
    this.fork = Effect.runForkWith(context)
  }

  slot(type: string): TypeSlot {
    let slot = this.slots.get(type)
    if (slot === undefined) {
      slot = new TypeSlot(type, this)
      this.slots.set(type, slot)
    }
    return slot
  }

  register(registration: Registration): Effect.Effect<void> {
    return Effect.suspend(() => {
      const slot = this.slot(registration.type)
      if (slot.registration !== undefined) {
        return Effect.die(new Error(`actor type "${registration.type}" is registered twice in this silo`))
      }
      slot.registration = registration
      slot.options = resolveOptions(registration.options, this.defaults)
      slot.turnContext = Context.add(registration.context, Scheduler.PreventSchedulerYield, true)
      return Effect.void
    })
  }

  // ---------------------------------------------------------------------------
  // Ask

  ask(slot: TypeSlot, id: string, info: MessageInfo, payload: unknown, options?: CallOptions): Effect.Effect<any, any> {
    const call = Effect.uninterruptibleMask((restore) =>
      Effect.withFiber((fiber) => this.askIn(fiber, restore, slot, id, info, payload, options))
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
    options: CallOptions | undefined
  ): Effect.Effect<any, any> {
    if (slot.options === undefined) return Effect.fail(new UnknownActorType({ type: slot.name }))
    const outer = fiber.getRef(CurrentTurn)
    const act = slot.activations.get(id)
    if (act !== undefined && act.state === ActivationState.Active && act.admits(info, outer)) {
      const turn = Turn.message(TurnKind.Ask, act, outer, info, payload)
      act.begin(turn)
      return this.runAsk(fiber, restore, turn)
    }
    if (this.shuttingDown) return Effect.fail(this.unavailable(slot, id))
    if (act === undefined) {
      if (!slot.virtual) return Effect.fail(stoppedChild(slot, id))
      const created = this.create(slot, id)
      const turn = Turn.message(TurnKind.Ask, created, outer, info, payload)
      created.enqueue(turn)
      this.activate(created, outer)
      // A synchronous activation effect has already granted this turn (it was first).
      return turn.outcome === granted ? this.runAsk(fiber, restore, turn) : this.awaitTurn(fiber, restore, turn)
    }
    const cycle = act.cycleFrom(outer)
    if (cycle !== undefined) return Effect.fail(new Deadlock({ cycle }))
    if (act.isFull()) {
      return this.whenFull(act, options, restore, (fiber) => this.askIn(fiber, restore, slot, id, info, payload, options))
    }
    const turn = Turn.message(TurnKind.Ask, act, outer, info, payload)
    act.enqueue(turn)
    act.markBlocked(outer)
    return this.awaitTurn(fiber, restore, turn)
  }

  /** Parks an asker until its turn is granted (or it learns it never will be). */
  private awaitTurn(fiber: Fiber.Fiber<unknown, unknown>, restore: Restore, turn: Turn): Effect.Effect<any, any> {
    const parked = Effect.callback<void, CallError>((resume) => {
      if (turn.outcome !== undefined) return resume(turn.outcome)
      turn.resume = resume
      turn.dispatcher = fiber.currentDispatcher
      // The activation may have changed by a handoff, so look it up at cancel time.
      return Effect.sync(() => turn.activation!.cancel(turn))
    })
    return Effect.flatMap(restore(parked), () => this.runAsk(fiber, restore, turn))
  }

  /**
   * Runs a granted ask in the caller's fiber. Called while uninterruptible, so the exit
   * hook that ends the turn is in place before the handler can be interrupted.
   */
  private runAsk(fiber: Fiber.Fiber<unknown, unknown>, restore: Restore, turn: Turn): Effect.Effect<any, any> {
    const act = turn.activation!
    const previous = fiber.context
    // The turn runs with the actor's services (captured when its layer was built), not the caller's.
    fiber.setContext(Context.add(act.slot.turnContext, CurrentTurn, turn))
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

  private unavailable(slot: TypeSlot, id: string): ActorUnavailable {
    return new ActorUnavailable({ address: { type: slot.name, id }, reason: "the silo is shutting down" })
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

  tell(slot: TypeSlot, id: string, info: MessageInfo, payload: unknown, options?: CallOptions): Effect.Effect<void, SendError> {
    return Effect.withFiber((fiber) => this.tellIn(fiber, slot, id, info, payload, options))
  }

  private tellIn(
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    options: CallOptions | undefined
  ): Effect.Effect<void, SendError> {
    if (slot.options === undefined) return Effect.fail(new UnknownActorType({ type: slot.name }))
    if (this.shuttingDown) return Effect.fail(this.unavailable(slot, id))
    const outer = fiber.getRef(CurrentTurn)
    let act = slot.activations.get(id)
    if (act === undefined) {
      if (!slot.virtual) return Effect.fail(stoppedChild(slot, id))
      act = this.create(slot, id)
      act.enqueue(Turn.message(TurnKind.Tell, act, outer, info, payload))
      this.activate(act, undefined)
      return Effect.void
    }
    if (act.state === ActivationState.Active && act.admits(info, undefined)) {
      act.startOneWay(Turn.message(TurnKind.Tell, act, outer, info, payload))
      return Effect.void
    }
    if (act.isFull()) {
      return this.whenFull(act, options, identity, (fiber) => this.tellIn(fiber, slot, id, info, payload, options))
    }
    act.enqueue(Turn.message(TurnKind.Tell, act, outer, info, payload))
    return Effect.void
  }

  // ---------------------------------------------------------------------------
  // Activation

  create(slot: TypeSlot, id: string): Activation {
    const act = new Activation(slot, id, Scope.makeUnsafe())
    slot.activations.set(id, act)
    return act
  }

  /**
   * Runs the activation effect once, on a fiber of its own so that no caller's
   * interruption can cut it short; it starts synchronously, so an activation effect that
   * does not suspend has finished (and granted the first turn) when this returns. Never
   * fails: a failure is delivered to every waiting asker as `ActivationFailed`, the partial
   * scope is closed, and the entry is removed so that the next call tries again.
   *
   * The effect runs as a frame of the call chain of the caller that caused it, so an
   * activation effect that calls back into its own caller (or itself) is a `Deadlock`.
   */
  activate(act: Activation, outer: Turn | undefined): void {
    const registration = act.slot.registration!
    const frame = Turn.activationFrame(act, outer)
    const context = Context.add(
      Context.add(Context.add(registration.context, Scope.Scope, act.scope), ActorContext, act),
      CurrentTurn,
      frame
    )
    const build = Effect.runForkWith(context)(registration.build)
    const done = (exit: Exit.Exit<Handlers, unknown>) => {
      frame.state = TurnState.Ended
      const missing = Exit.isSuccess(exit) ? missingHandler(registration, exit.value) : undefined
      if (Exit.isSuccess(exit) && missing === undefined) {
        act.activated(exit.value, Context.get(registration.context, Clock.Clock).currentTimeMillisUnsafe())
        return
      }
      const reason = missing !== undefined ?
        `the implementation has no handler for "${missing}"` :
        Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)
      // A virtual actor's first activation effect fails its callers; the effect of a child,
      // or of any restart, fails the actor, and its supervisor decides.
      const supervised = act.parent !== undefined || act.rare.incarnation > 0
      this.fork(Effect.flatMap(Scope.close(act.scope, exit), () =>
        Effect.sync(() => {
          if (!supervised) return this.failActivation(act, reason)
          act.state = ActivationState.Suspended
          act.fail(Failure.activationFailed(reason))
          act.next()
        })))
    }
    const exit = build.pollUnsafe()
    if (exit !== undefined) done(exit)
    else build.addObserver(done)
  }

  private failActivation(act: Activation, reason: string): void {
    act.state = ActivationState.Stopped
    this.remove(act)
    this.rejectQueued(act, new ActivationFailed({ address: act.address, reason }))
    act.stopped()
  }

  /** Fails every waiting ask with `error`; one-way messages are dropped (and logged). */
  rejectQueued(act: Activation, error: CallError): void {
    const failure = Effect.fail(error)
    let dropped = 0
    for (const turn of act.mailbox?.takeAll() ?? []) {
      if (turn.state !== TurnState.Queued) continue
      turn.state = TurnState.Cancelled
      if (turn.kind === TurnKind.Ask) turn.reject(failure)
      else if (turn.kind === TurnKind.Tell) dropped++
    }
    if (dropped > 0) {
      this.fork(Effect.logWarning(`${act.slot.name}/${act.id}: ${dropped} one-way message(s) dropped: ${error.message}`))
    }
  }

  /** Hands an activation whose turns have all ended, and whose failure is recorded, to its supervisor. */
  supervise(act: Activation): void {
    this.fork(Effect.andThen(Effect.yieldNow, supervise(act)))
  }

  remove(act: Activation): void {
    if (act.slot.activations.get(act.id) === act) act.slot.activations.delete(act.id)
  }

  /** Runs the finalizers of an activation whose turns have all ended, then hands its queue on. */
  finishDeactivation(act: Activation): void {
    // Yield first: this is called from the end of a turn, which is no place to run finalizers.
    this.fork(
      Effect.yieldNow.pipe(
        Effect.andThen(stopChildren(act, "its parent deactivated")),
        Effect.andThen(Scope.close(act.scope, Exit.void)),
        Effect.andThen(Effect.sync(() => this.afterStop(act)))
      )
    )
  }

  private afterStop(act: Activation): void {
    this.remove(act)
    const waiting = (act.mailbox?.takeAll() ?? []).filter((turn) =>
      turn.state === TurnState.Queued && turn.kind !== TurnKind.Tick
    )
    if (waiting.length > 0) {
      if (this.shuttingDown) {
        const failure = Effect.fail(this.unavailable(act.slot, act.id))
        for (const turn of waiting) {
          turn.state = TurnState.Cancelled
          if (turn.kind === TurnKind.Ask) turn.reject(failure)
        }
      } else if (act.slot.virtual) {
        // Messages that arrived during deactivation go, in order, to the next activation.
        const next = this.create(act.slot, act.id)
        for (const turn of waiting) {
          turn.activation = next
          next.enqueue(turn)
        }
        this.activate(next, undefined)
      }
    }
    act.stopped()
  }
}

const stoppedChild = (slot: TypeSlot, id: string): ActorStopped =>
  new ActorStopped({ address: { type: slot.name, id }, reason: "the child actor has stopped" })

const missingHandler = (registration: Registration, handlers: Handlers): string | undefined => {
  for (const tag in registration.messages) {
    if (typeof handlers[tag] !== "function") return tag
  }
  return undefined
}

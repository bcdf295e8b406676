/**
 * One activation: the in-memory incarnation of an address on this silo, as a state
 * machine. This module is the turn scheduler (who may run now, who waits, who is next),
 * the lifecycle state (see `ActivationState.ts`) and the supervision state a failure
 * leaves. It is plain synchronous bookkeeping, so that every transition happens in one
 * step, with no fiber yield between a check and the change it justifies; whatever needs a
 * fiber (running turns, finalizers, the supervisor's decision) it asks of its
 * `ActivationHost`, which the router implements. A test can drive it with a host that
 * records the calls.
 *
 * @internal
 */
import { Effect, type Fiber, Predicate, type Scope } from "effect"
import * as Failure from "../../Supervision/Failure.ts"
import type { RestartHistory } from "../../Supervision/RestartHistory.ts"
import type { ActorAddress } from "../ActorAddress.ts"
import type { Termination } from "../ActorContext.ts"
import type { ActivationHost } from "./ActivationHost.ts"
import { emptyScopeState, scopePrototype } from "./ActivationScope.ts"
import { ActivationState, granted, stateNames } from "./ActivationState.ts"
import type { Handlers, ResolvedOptions } from "./HostedType.ts"
import type { LocalRouter } from "./LocalRouter.ts"
import { Mailbox } from "./Mailbox.ts"
import { type MessageInfo, remoteIndexOf, runningTurnOf, type Turn, TurnKind, TurnState } from "./Turn.ts"
import { unmarkBlocked } from "./WaitGraph.ts"
import type { TypeSlot } from "./TypeSlot.ts"

const Flag = { Draining: 1, KeptAlive: 2, DeactivateWhenActive: 4, SuspendWhenActive: 8 } as const
const flagMask = 15
const idleShift = 4

/** @internal */
export class Extras {
  /** The scope of an incarnation after a restart (see `Activation.scope`). */
  scope: Scope.Closeable | undefined = undefined
  /** Of a stateless worker's extra activation: its key in `slot.activations` (see `key`). */
  workerKey: string | undefined = undefined
  /** A one-way turn granted while the drainer was between turns: it runs it next. */
  handed: Turn | undefined = undefined
  timers: Map<string, Fiber.Fiber<unknown, unknown>> | undefined = undefined
  /** What operator tools show of this activation's state (`ActorContext.describe`). */
  describe: (() => unknown) | undefined = undefined
  spaceWaiters: Array<() => void> | undefined = undefined
  stopWaiters: Array<() => void> | undefined = undefined
  /**
   * The activations in whose mailboxes running turns of this one are parked, once per
   * parked turn: several read-only or interleaved turns can wait at once, each elsewhere.
   */
  blockedOn: Array<Activation> | undefined = undefined
  /** Of a child actor: the activation that spawned it. */
  parent: Activation | undefined = undefined
  /** Spawned children, in spawn order. */
  children: Array<Activation> | undefined = undefined
  /** The slot of every child ever spawned (a stopped one too): what `stop` and `watch` accept. */
  childSlots: WeakSet<object> | undefined = undefined
  childNames = 0
  watchers: Array<(termination: Termination) => void> | undefined = undefined
  /** The failure waiting for the supervisor's decision. */
  failure: Failure.Failure | undefined = undefined
  supervising = false
  /** Suspended because its failure was escalated: resumes if the parent resumes. */
  escalated = false
  /**
   * Held (suspended) by the failure of this sibling, which the parent's all-for-one or
   * rest-for-one strategy is about to restart or stop together with it.
   */
  heldBy: Activation | undefined = undefined
  history: RestartHistory | undefined = undefined
  /** The last failures supervision decided on, newest last (at most 10), for operator tools. */
  failures: Array<{ readonly at: number; readonly failure: string; readonly decision: string }> | undefined = undefined
  /** Activation effects run so far: more than one after a restart. */
  incarnation = 0
  stopping = false
  settledWaiters: Array<() => void> | undefined = undefined
  /** Runs at the end of every successful turn of this incarnation, before the reply. */
  afterTurn: Effect.Effect<void> | undefined = undefined
}

/** @internal */
export class Activation {
  readonly slot: TypeSlot
  readonly id: string
  /**
   * The state of the first incarnation's scope: the activation is that scope (see
   * `ActivationScope.ts`); `scope` names the current incarnation's.
   */
  state: Scope.Closeable["state"] = emptyScopeState
  /** Where the activation is in its lifecycle (see `ActivationState.ts`). */
  phase: ActivationState = ActivationState.Activating as ActivationState
  handlers: Handlers | undefined = undefined
  /**
   * When the activation effect ended, in milliseconds after the silo started: a small
   * integer for 24 days, where the time since the epoch would be a boxed number (16 B more).
   */
  createdAt = 0
  /** Turns started and not yet ended (more than one only for read-only, reentrant or interleaved turns). */
  running = 0
  /** Of those, turns of messages that are not read-only. */
  exclusiveRunning = 0
  /** Present only while messages wait: most activations are idle most of the time. */
  mailbox: Mailbox | undefined = undefined
  /** The flags below, and in the bits above them the idle sweeps count plus one (one field, not two). */
  private flags = 1 << idleShift
  /** State few activations need, allocated on first use to keep idle activations small. */
  extras: Extras | undefined = undefined

  constructor(slot: TypeSlot, id: string, key: string) {
    this.slot = slot
    this.id = id
    if (key !== id) this.rare.workerKey = key
  }

  /** The current incarnation's scope: the activation itself, until a restart gives it another. */
  get scope(): Scope.Closeable {
    return this.extras?.scope ?? (this as unknown as Scope.Closeable)
  }
  set scope(scope: Scope.Closeable) {
    this.rare.scope = scope
  }

  /** Its key in `slot.activations`: the id, except for the extra activations of a stateless worker. */
  get key(): string {
    return this.extras?.workerKey ?? this.id
  }

  get options(): ResolvedOptions {
    return this.slot.options!
  }

  /**
   * Consecutive passivation sweeps that found the activation idle. A turn sets it to -1,
   * so counting starts at the first sweep after the turn (see `Passivation.ts`).
   */
  get idleSweeps(): number {
    return (this.flags >> idleShift) - 1
  }
  set idleSweeps(sweeps: number) {
    this.flags = (this.flags & flagMask) | ((sweeps + 1) << idleShift)
  }

  private hasFlag(flag: number): boolean {
    return (this.flags & flag) !== 0
  }
  private setFlag(flag: number, on: boolean): void {
    this.flags = on ? this.flags | flag : this.flags & ~flag
  }

  /** A drainer fiber is running this activation's one-way turns. */
  get draining(): boolean {
    return this.hasFlag(Flag.Draining)
  }
  set draining(on: boolean) {
    this.setFlag(Flag.Draining, on)
  }

  /** Exempt from idle passivation. */
  get keptAlive(): boolean {
    return this.hasFlag(Flag.KeptAlive)
  }
  set keptAlive(on: boolean) {
    this.setFlag(Flag.KeptAlive, on)
  }

  /** Suspend, not activate, once the activation effect ends (a stop or restart is waiting). */
  get suspendWhenActive(): boolean {
    return this.hasFlag(Flag.SuspendWhenActive)
  }
  set suspendWhenActive(on: boolean) {
    this.setFlag(Flag.SuspendWhenActive, on)
  }

  /** Deactivate once the running turns end. */
  get deactivateWhenActive(): boolean {
    return this.hasFlag(Flag.DeactivateWhenActive)
  }
  set deactivateWhenActive(on: boolean) {
    this.setFlag(Flag.DeactivateWhenActive, on)
  }

  get rare(): Extras {
    return this.extras ??= new Extras()
  }

  get timers(): Map<string, Fiber.Fiber<unknown, unknown>> | undefined {
    return this.extras?.timers
  }

  /** Of a child actor: the activation that spawned it. (Not `parent`: that is the scope's.) */
  get parentActor(): Activation | undefined {
    return this.extras?.parent
  }

  get host(): ActivationHost {
    return this.slot.router
  }

  /** The silo's router, for the runtime modules that fork fibers or route calls. */
  get router(): LocalRouter {
    return this.slot.router
  }

  get address(): ActorAddress {
    return { type: this.slot.name, id: this.id }
  }

  get stateName(): string {
    return stateNames[this.phase]
  }

  get mailboxDepth(): number {
    return this.mailbox === undefined ? 0 : this.mailbox.size
  }

  // ---------------------------------------------------------------------------
  // Admission

  /**
   * Whether a message may start at once on an active activation. The common case (idle,
   * nothing queued) is the first test. FIFO holds because nothing overtakes a non-empty
   * mailbox except interleaving and chain-reentrant calls, which must not wait.
   */
  admits(info: MessageInfo, outer: Turn | undefined): boolean {
    const queued = this.mailboxDepth
    if (this.running === 0) return queued === 0
    if (info.interleave) return true
    if (info.readOnly && this.exclusiveRunning === 0 && queued === 0) return true
    return this.options.reentrant &&
      (runningTurnOf(outer, this) !== undefined || remoteIndexOf(outer, this.address) >= 0)
  }

  /** Empties the mailbox, for turns that will not run here: their chains stop waiting on it. */
  takeQueued(): Array<Turn> {
    const mailbox = this.mailbox
    if (mailbox === undefined) return []
    this.mailbox = undefined
    const turns = mailbox.takeAll()
    for (const turn of turns) if (turn.kind === TurnKind.Ask) unmarkBlocked(this, turn)
    return turns
  }

  isFull(): boolean {
    return this.mailboxDepth >= this.options.capacity
  }

  // ---------------------------------------------------------------------------
  // Turns

  begin(turn: Turn): void {
    turn.state = TurnState.Running
    this.running++
    if (!turn.info!.readOnly) this.exclusiveRunning++
    if (turn.kind !== TurnKind.Tick || turn.info!.keepAlive) this.idleSweeps = -1
  }

  /** Ends a running turn and hands the activation to whatever may run next. */
  end(turn: Turn): void {
    if (turn.state !== TurnState.Running) return
    turn.state = TurnState.Ended
    this.running--
    if (!turn.info!.readOnly) this.exclusiveRunning--
    if (turn.onEnd !== undefined) turn.onEnd()
    this.next()
  }

  enqueue(turn: Turn): void {
    if (turn.queuedAt === 0 && this.router.observer !== undefined) turn.queuedAt = this.router.observer.now()
    ;(this.mailbox ??= new Mailbox()).push(turn)
  }

  /** Grants turns from the head of the mailbox for as long as they may run. */
  next(): void {
    if (this.phase === ActivationState.Deactivating) {
      if (this.running === 0) this.host.finishDeactivation(this)
      return
    }
    if (this.phase === ActivationState.Suspended) {
      if (this.running === 0) this.settled()
      return
    }
    if (this.phase !== ActivationState.Active) return
    if (this.deactivateWhenActive) {
      if (this.running === 0) this.deactivate()
      return
    }
    this.grant()
  }

  private grant(): void {
    const mailbox = this.mailbox
    if (mailbox === undefined) return
    // Askers are resumed only once the bookkeeping is done: a resumed asker may run its
    // whole turn, and end it, before `deliver` returns.
    let askers: Array<Turn> | undefined
    let turn: Turn | undefined
    while ((turn = mailbox.peek()) !== undefined) {
      const readOnly = turn.info!.readOnly
      if (this.running > 0 && !(readOnly && this.exclusiveRunning === 0)) break
      mailbox.shift()
      this.begin(turn)
      if (turn.kind === TurnKind.Ask) {
        unmarkBlocked(this, turn)
        ;(askers ??= []).push(turn)
      } else {
        this.dispatchOneWay(turn)
      }
      if (!readOnly) break
    }
    if (mailbox.size === 0 && this.mailbox === mailbox) this.mailbox = undefined
    this.wakeSenders()
    if (askers !== undefined) for (const asker of askers) asker.grant(granted)
  }

  /** Starts a one-way turn that `admits` let through. */
  startOneWay(turn: Turn): void {
    this.begin(turn)
    this.dispatchOneWay(turn)
  }

  /**
   * A one-way turn that may run beside others (read-only, interleaving) gets a fiber of
   * its own; one that runs alone goes to the drainer if one is between turns (see
   * `endOneWay`), else starts one, which goes on with the one-way turns behind it.
   */
  private dispatchOneWay(turn: Turn): void {
    if (this.running > 1) {
      this.host.runBeside(turn)
    } else if (this.draining) {
      this.rare.handed = turn
    } else {
      this.draining = true
      this.host.startDrainer(this, turn)
    }
  }

  /**
   * Ends the drainer's turn `done` and, if the message at the head of the mailbox is a
   * one-way message that may start now on its own, begins it and returns it: the drainer
   * runs it next without a round through `grant` and a new fiber. Otherwise the drainer
   * stops, and the activation goes on as after any turn.
   */
  endOneWay(done: Turn): Turn | undefined {
    if (done.state === TurnState.Running) {
      done.state = TurnState.Ended
      this.running--
      if (!done.info!.readOnly) this.exclusiveRunning--
      if (done.onEnd !== undefined) done.onEnd()
    }
    const mailbox = this.mailbox
    if (
      mailbox !== undefined && this.running === 0 && this.phase === ActivationState.Active &&
      !this.deactivateWhenActive
    ) {
      const head = mailbox.peek()
      if (head !== undefined && head.kind !== TurnKind.Ask && !head.info!.readOnly) {
        mailbox.shift()
        if (mailbox.size === 0) this.mailbox = undefined
        this.begin(head)
        this.wakeSenders()
        return head
      }
    }
    // The drainer stays on while what is granted now runs: a one-way turn granted meanwhile
    // (say behind an ask that ran at once, inline) is handed to it, not to a new drainer.
    this.next()
    const extras = this.extras
    const handed = extras?.handed
    if (handed !== undefined) {
      extras!.handed = undefined
      return handed
    }
    this.draining = false
    return undefined
  }

  /**
   * Wakes suspended senders once the mailbox has drained to half its capacity, not at the
   * first free slot: waking per slot would switch fibers on every message.
   */
  private wakeSenders(): void {
    const waiters = this.extras?.spaceWaiters
    if (waiters === undefined || waiters.length === 0) return
    const depth = this.mailboxDepth
    if (depth * 2 > this.options.capacity) return
    let room = this.options.capacity - depth
    while (room-- > 0 && waiters.length > 0) waiters.shift()!()
  }

  /**
   * Withdraws a parked asker that was interrupted (or timed out) before or just after its
   * grant: a queued turn leaves the mailbox at once, a granted one ends unrun.
   */
  cancel(turn: Turn): void {
    if (turn.state === TurnState.Queued) {
      const mailbox = this.mailbox
      if (mailbox === undefined) return
      unmarkBlocked(this, turn)
      mailbox.withdraw(turn)
      if (mailbox.size === 0) this.mailbox = undefined
      this.wakeSenders()
    } else if (turn.state === TurnState.Running) {
      this.end(turn)
    }
  }

  // ---------------------------------------------------------------------------
  // Lifecycle

  /** Called by the router once the activation effect succeeded. */
  activated(handlers: Handlers, nowMillis: number): void {
    this.handlers = handlers
    this.createdAt = nowMillis - this.router.startedAtMillis
    // A stop or restart waiting, or a child's escalation during the activation effect.
    if (this.suspendWhenActive || this.extras?.failure !== undefined) {
      this.suspendWhenActive = false
      this.phase = ActivationState.Suspended
      this.next()
      return
    }
    this.phase = ActivationState.Active
    // The message that caused the activation is served even if a deactivation was asked
    // for meanwhile; what queued behind it goes to the next activation.
    this.grant()
    if (this.deactivateWhenActive && this.running === 0) this.deactivate()
  }

  /**
   * Starts deactivation: no new turn is granted; once running turns end, the router runs
   * the finalizers. Queued messages are handed to the next activation of the address.
   */
  deactivate(): void {
    if (this.phase === ActivationState.Activating) {
      this.deactivateWhenActive = true
      return
    }
    // A suspended activation (its supervisor deciding, or a restart waiting) deactivates
    // too: the supervisor then finds it no longer suspended and leaves it alone.
    if (this.phase !== ActivationState.Active && this.phase !== ActivationState.Suspended) return
    this.deactivateWhenActive = false
    this.phase = ActivationState.Deactivating
    this.stopTimers()
    if (this.running === 0) this.host.finishDeactivation(this)
  }

  /** Registers a callback for when the activation has stopped (immediately if it has). */
  onStopped(callback: () => void): void {
    if (this.phase === ActivationState.Stopped) callback()
    else (this.rare.stopWaiters ??= []).push(callback)
  }

  stopped(): void {
    if (this.phase === ActivationState.Stopped) return
    this.phase = ActivationState.Stopped
    // A ref may still point here (see `RefFields.activation`): it must not keep the actor's state.
    this.handlers = undefined
    this.host.stopped(this)
    this.stopTimers()
    const extras = this.extras
    if (extras === undefined) return
    this.fireSettled()
    const waiters = extras.stopWaiters
    extras.stopWaiters = undefined
    if (waiters !== undefined) for (const waiter of waiters) waiter()
    const senders = extras.spaceWaiters
    extras.spaceWaiters = undefined
    if (senders !== undefined) for (const sender of senders) sender()
  }

  // ---------------------------------------------------------------------------
  // Supervision (decisions are made in Supervising.ts; this is the state they act on)

  /**
   * A turn (or the activation effect) failed: no new turns until the supervisor decides.
   * The host hears of the first failure at once, before the failed call's error is
   * returned, so that the siblings a decision will take along are held already.
   */
  fail(failure: Failure.Failure): void {
    const extras = this.rare
    const first = extras.failure === undefined
    if (first) extras.failure = failure
    if (this.phase === ActivationState.Active) this.phase = ActivationState.Suspended
    if (first) this.host.failed(this)
  }

  /**
   * Fails the activation and hands it to its supervisor at once, without waiting for its
   * running turns (a child's escalation: a running turn may be waiting on that child).
   */
  failNow(failure: Failure.Failure): void {
    this.fail(failure)
    const extras = this.rare
    if (this.phase === ActivationState.Suspended && !extras.supervising) {
      extras.supervising = true
      this.host.supervise(this)
    }
  }

  /** A declared error the type lists as fatal goes to the supervisor; the caller still gets it. */
  failIfFatal(error: unknown): void {
    const fatal = this.options.fatal
    if (fatal !== undefined && Predicate.hasProperty(error, "_tag") && fatal.has(error._tag as string)) {
      this.fail(Failure.fatalError(error))
    }
  }

  /** Grants no new turns (a supervisor is about to restart or stop this activation). */
  suspend(): void {
    if (this.phase === ActivationState.Active) this.phase = ActivationState.Suspended
    else if (this.phase === ActivationState.Activating) this.suspendWhenActive = true
  }

  /** Calls back once no turn runs and none will be granted (or the activation stopped). */
  onSettled(callback: () => void): void {
    if (
      this.phase === ActivationState.Stopped ||
      (this.phase === ActivationState.Suspended && this.running === 0)
    ) {
      callback()
    } else {
      ;(this.rare.settledWaiters ??= []).push(callback)
    }
  }

  /** Goes on with the next message (the supervisor's `resume`), and so do children suspended by escalating. */
  resume(): void {
    const extras = this.rare
    extras.failure = undefined
    extras.supervising = false
    extras.escalated = false
    extras.heldBy = undefined
    if (this.phase !== ActivationState.Suspended) return
    this.phase = ActivationState.Active
    for (const child of extras.children ?? []) if (child.extras?.escalated) child.resume()
    this.next()
  }

  /** Suspends this activation until `sibling`'s failure is decided (see `heldBy`). */
  hold(sibling: Activation): void {
    if (this.phase !== ActivationState.Active && this.phase !== ActivationState.Activating) return
    if (this.extras?.heldBy !== undefined) return
    this.rare.heldBy = sibling
    this.suspend()
  }

  /** Lets go of a hold whose decision did not take this activation along. */
  release(): void {
    const extras = this.extras
    if (extras?.heldBy === undefined) return
    extras.heldBy = undefined
    if (extras.failure === undefined && !extras.escalated) this.resume()
  }

  private settled(): void {
    const extras = this.extras
    if (extras === undefined) return
    if (extras.failure !== undefined && !extras.supervising) {
      extras.supervising = true
      this.host.supervise(this)
    }
    this.fireSettled()
  }

  private fireSettled(): void {
    const waiters = this.extras?.settledWaiters
    if (waiters === undefined) return
    this.extras!.settledWaiters = undefined
    for (const waiter of waiters) waiter()
  }

  /**
   * Adds `effect` to what runs at the end of every successful turn of this incarnation,
   * before the reply (persisted state's write-after-turn).
   */
  afterTurn(effect: Effect.Effect<void>): void {
    const extras = this.rare
    extras.afterTurn = extras.afterTurn === undefined ? effect : Effect.andThen(extras.afterTurn, effect)
  }

  /** Queues an internal one-way turn: a timer tick, a termination notice. */
  post(turn: Turn): void {
    if (this.phase === ActivationState.Active && this.admits(turn.info!, undefined)) this.startOneWay(turn)
    else this.enqueue(turn)
  }

  stopTimers(): void {
    const timers = this.extras?.timers
    if (timers === undefined) return
    this.extras!.timers = undefined
    for (const fiber of timers.values()) fiber.interruptUnsafe()
  }

  /** Deactivates once the running turns end (inside a turn the activation is busy). */
  deactivateWhenIdle(): void {
    if (this.phase === ActivationState.Active && this.running > 0) this.deactivateWhenActive = true
    else this.deactivate()
  }

  /** Cancels the timer `name`; `false` when there was none. */
  cancelTimer(name: string): boolean {
    const fiber = this.timers?.get(name)
    if (fiber === undefined) return false
    this.timers!.delete(name)
    fiber.interruptUnsafe()
    return true
  }
}
scopePrototype(Activation)

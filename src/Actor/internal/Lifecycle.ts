/**
 * The lifecycle of activations as the router drives it: creating one, running its
 * activation effect (and what a failure of it means), deactivating it and handing the
 * messages that arrived meanwhile to the next activation, rejecting what waits in a
 * mailbox that will not run.
 *
 * Neither end can hang an address: an activation effect still running after the type's
 * `activationTimeout` fails the activation, and finalizers still running after its
 * `deactivationTimeout` are left to finish in the background (with a warning) while the
 * activation counts as stopped. Only an activation effect that suspends, or finalizers
 * that do, start a watchdog timer; nothing is timed per turn.
 *
 * @internal
 */
import { Cause, Clock, Context, Duration, Effect, Exit, type Fiber, Scope, type Tracer } from "effect"
import * as Failure from "../../Supervision/Failure.ts"
import * as Attributes from "../../Telemetry/Attributes.ts"
import { ActorContext, type ActorContextShape } from "../ActorContext.ts"
import { ActivationFailed, type CallError } from "../ActorError.ts"
import { Activation } from "./Activation.ts"
import { closeIfEmpty } from "./ActivationScope.ts"
import * as Handover from "./Handover.ts"
import { ActivationState } from "./ActivationState.ts"
import type { Handlers, HostedType, MessageEntry } from "./HostedType.ts"
import { siloShuttingDown } from "./Refusals.ts"
import { stopChildren } from "./Supervising.ts"
import { CurrentTurn, Turn, TurnKind, TurnState } from "./Turn.ts"
import type { LocalRouter } from "./LocalRouter.ts"
import type { TypeSlot } from "./TypeSlot.ts"

/** A new activation of `slot`/`id`, entered under `key` (the id, but for stateless workers). */
export const create = (slot: TypeSlot, id: string, key: string = id): Activation => {
  const act = new Activation(slot, id, key)
  slot.activations.set(key, act)
  return act
}

/**
 * Runs the activation effect once, on a fiber of its own so that no caller's
 * interruption can cut it short; it starts synchronously, so an activation effect that
 * does not suspend has finished (and granted the first turn) when this returns. Never
 * fails: a failure is delivered to every waiting asker as `ActivationFailed`, the partial
 * scope is closed, and the entry is removed so that the next call tries again.
 *
 * An effect that suspends is given the type's `activationTimeout`: past it, it is
 * interrupted and the activation fails as above, without waiting for the effect to end
 * (an uninterruptible one may never), whose outcome is then ignored.
 *
 * The effect runs as a frame of the call chain of the caller that caused it, so an
 * activation effect that calls back into its own caller (or itself) is a `Deadlock`.
 */
export const activate = (
  act: Activation,
  outer: Turn | undefined,
  controls: ActorContextShape,
  parent?: Tracer.AnySpan
): void => {
  const registration = act.slot.registration!
  const frame = Turn.activationFrame(act, outer)
  const context = Context.add(
    Context.add(Context.add(registration.context, Scope.Scope, act.scope), ActorContext, controls),
    CurrentTurn,
    frame
  )
  const observer = act.router.observer
  const startedAt = observer === undefined ? 0 : observer.now()
  const build = Effect.runForkWith(context)(
    observer === undefined ? registration.build : observer.traceActivation(act, registration.build, parent)
  )
  const exit = build.pollUnsafe()
  if (exit !== undefined) return built(act, registration, frame, exit, startedAt)
  const timeout = act.options.activationTimeout
  let settled = false
  let timer: Fiber.Fiber<void> | undefined
  build.addObserver((exit) => {
    // Ignored once timed out, or once the silo's shutdown stopped the activation.
    if (settled || act.phase !== ActivationState.Activating) return
    settled = true
    timer?.interruptUnsafe()
    built(act, registration, frame, exit, startedAt)
  })
  if (!Duration.isFinite(timeout)) return
  const timedOut = Effect.sync(() => {
    if (settled || act.phase !== ActivationState.Activating) return
    settled = true
    frame.state = TurnState.Ended
    build.interruptUnsafe()
    const reason = `the activation effect timed out: it did not finish within ${Duration.format(timeout)}`
    act.router.observer?.activationEnded(act, startedAt, reason)
    failed(act, reason, Exit.interrupt())
  })
  // However the timer ends (timed out, or the silo closing after its shutdown forced the
  // activation to stop), the effect is interrupted; once it has ended, that does nothing.
  timer = act.router.forkTimer(
    Effect.ensuring(Effect.andThen(Effect.sleep(timeout), timedOut), Effect.sync(() => build.interruptUnsafe()))
  )
}

/** The activation effect ended: the activation starts serving, or it failed. */
const built = (
  act: Activation,
  registration: HostedType,
  frame: Turn,
  exit: Exit.Exit<Handlers, unknown>,
  startedAt: number
): void => {
  frame.state = TurnState.Ended
  const missing = Exit.isSuccess(exit) ? missingHandler(act.slot, exit.value) : undefined
  if (Exit.isSuccess(exit) && missing === undefined) {
    act.router.observer?.activationEnded(act, startedAt, undefined)
    act.activated(exit.value, Context.get(registration.context, Clock.Clock).currentTimeMillisUnsafe())
    return
  }
  const reason = missing !== undefined ?
    `the implementation has no handler for "${missing}"` :
    Cause.pretty((exit as Exit.Failure<unknown, unknown>).cause)
  act.router.observer?.activationEnded(act, startedAt, reason)
  failed(act, reason, exit)
}

/** Closes what a failed activation effect opened, then fails its callers or hands it to its supervisor. */
const failed = (act: Activation, reason: string, exit: Exit.Exit<unknown, unknown>): void => {
  // A virtual actor's first activation effect fails its callers; the effect of a child,
  // or of any restart, fails the actor, and its supervisor decides.
  const supervised = act.parentActor !== undefined || act.rare.incarnation > 0
  act.router.fork(Effect.andThen(
    closeScope(act, exit),
    Effect.sync(() => {
      if (act.phase === ActivationState.Stopped) return
      if (!supervised) return failActivation(act, reason)
      act.phase = ActivationState.Suspended
      act.fail(Failure.activationFailed(reason))
      act.next()
    })
  ))
}

/**
 * Closes the activation's scope (its finalizers), waiting at most the type's
 * `deactivationTimeout`; past it, logs a warning and returns while the finalizers, which
 * cannot be interrupted, go on in the background.
 *
 * @internal
 */
export const closeScope = (act: Activation, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> =>
  bounded(act, Scope.close(act.scope, exit))

/**
 * Runs `effect` on a fiber of its own and waits for it at most the type's
 * `deactivationTimeout`. A failure (a finalizer that died) is logged, not passed on: what
 * follows a close (handing the queue on, restarting) must happen all the same.
 */
const bounded = (act: Activation, effect: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.suspend(() => {
    const router = act.router
    const fiber = router.forkUnowned(effect)
    // Finalizers that do not suspend have run already: the common case needs no timer.
    const exit = fiber.pollUnsafe()
    if (exit !== undefined) return reportClose(act, exit)
    const timeout = act.options.deactivationTimeout
    return Effect.callback<void>((resume) => {
      const timer = Duration.isFinite(timeout) ?
        router.forkTimer(Effect.andThen(Effect.sleep(timeout), Effect.sync(() => resume(overdue(act, timeout))))) :
        undefined
      const unobserve = fiber.addObserver((exit) => {
        timer?.interruptUnsafe()
        resume(reportClose(act, exit))
      })
      return Effect.sync(() => {
        unobserve()
        timer?.interruptUnsafe()
      })
    })
  })

const reportClose = (act: Activation, exit: Exit.Exit<void>): Effect.Effect<void> =>
  Exit.isSuccess(exit) ? Effect.void : Effect.logWarning(`${act.slot.name}/${act.id}: finalizers failed`, exit.cause)

const overdue = (act: Activation, timeout: Duration.Duration): Effect.Effect<void> =>
  Effect.logWarning(
    `${act.slot.name}/${act.id}: finalizers still running after the deactivation timeout ` +
      `(${Duration.format(timeout)}); going on without them (they finish in the background, if ever)`
  )

const failActivation = (act: Activation, reason: string): void => {
  retire(act, new ActivationFailed({ address: act.address, reason }))
  act.stopped()
}

/** Takes `act` out of its type's table and fails what waits in its mailbox with `error`. */
export const retire = (act: Activation, error: CallError): void => {
  remove(act)
  rejectQueued(act, error)
}

/** Fails every waiting ask with `error`; one-way messages are dropped (and logged). */
export const rejectQueued = (act: Activation, error: CallError): void => {
  const failure = Effect.fail(error)
  let dropped = 0
  const lost = act.router.lostOneWay
  for (const turn of act.takeQueued()) {
    if (turn.state !== TurnState.Queued) continue
    turn.state = TurnState.Cancelled
    if (turn.kind === TurnKind.Ask) turn.reject(failure)
    else if (turn.kind === TurnKind.Tell) {
      dropped++
      if (lost !== undefined) {
        act.router.fork(lost({ address: act.address, message: turn.info!, payload: turn.payload, reason: `dropped: ${error.message}` }))
      }
    }
  }
  if (dropped > 0) {
    act.router.fork(Effect.logWarning(`${act.slot.name}/${act.id}: ${dropped} one-way message(s) dropped: ${error.message}`))
  }
}

export const remove = (act: Activation): void => {
  const key = act.key
  if (act.slot.activations.get(key) === act) {
    act.slot.activations.delete(key)
    act.router.remote?.removed(act)
  }
}

/**
 * Runs the finalizers of an activation whose turns have all ended (children first), then
 * hands its queue on; finalizers that hang are given up on after the deactivation timeout.
 */
export const finishDeactivation = (act: Activation): void => {
  // Queued, not done here: this is called from the end of a turn, which is no place to run
  // finalizers; and one fiber for the queue, not one per activation, so that a million
  // deactivations at once (a sweep after a burst, a shutdown) do not hold a million fibers.
  const router = act.router
  router.deactivating.push(act)
  if (router.deactivatingScheduled) return
  router.deactivatingScheduled = true
  router.fork(drainDeactivations(router))
}

/** Deactivations finished between yields. */
const deactivationBatch = 1024

const drainDeactivations = (router: LocalRouter): Effect.Effect<void> =>
  Effect.gen(function*() {
    yield* Effect.yieldNow
    while (router.deactivating.length > 0) {
      const batch = router.deactivating
      router.deactivating = []
      for (let i = 0; i < batch.length; i++) {
        if (i % deactivationBatch === deactivationBatch - 1) yield* Effect.yieldNow
        finishNow(batch[i]!)
      }
    }
    router.deactivatingScheduled = false
  })

/**
 * An activation with no children and nothing in its scope (no finalizer) stops at once;
 * the others run their children's stop and their finalizers on a fiber of their own,
 * bounded by the deactivation timeout.
 */
const finishNow = (act: Activation): void => {
  const children = act.extras?.children
  if ((children === undefined || children.length === 0) && closeIfEmpty(act.scope)) {
    afterStop(act)
    return
  }
  const stopping = Effect.andThen(stopChildren(act, "its parent deactivated"), Scope.close(act.scope, Exit.void))
  // With tracing, the finalizers (a state flush, say) are a span of their own, drawn as a root.
  const trace = act.router.observer?.traceRoot
  act.router.fork(
    bounded(act, trace === undefined ? stopping : trace(`quark.deactivate ${act.slot.name}`, {
      [Attributes.actorType]: act.slot.name,
      [Attributes.actorId]: act.id
    }, stopping)).pipe(
      Effect.andThen(Effect.sync(() => afterStop(act)))
    )
  )
}

const afterStop = (act: Activation): void => {
  // Stopped meanwhile: the silo's shutdown gave up waiting for the finalizers.
  if (act.phase === ActivationState.Stopped) return
  // A live migration takes over here: it dehydrates, moves the address, then finishes; so
  // does a clustered silo's hand-over of the state of an address that moved elsewhere.
  const handover = Handover.hookOf(act)
  if (handover !== undefined) return handover(act)
  if (act.router.remote !== undefined && Handover.movedAway(act)) return
  finishStop(act)
}

/**
 * The end of a stop, once the finalizers ran: the activation leaves its type's table and
 * what waits in its mailbox goes where the address lives now (see `afterStop`).
 *
 * @internal
 */
export const finishStop = (act: Activation): void => {
  if (act.phase === ActivationState.Stopped) return
  remove(act)
  const waiting = act.takeQueued().filter((turn) =>
    turn.state === TurnState.Queued && turn.kind !== TurnKind.Tick
  )
  if (waiting.length > 0) {
    if (act.slot.virtual && act.router.remote?.ownsHere(act.slot, act.id) === false) {
      // The address moved to another silo while this one deactivated (a ring change, or this
      // silo leaving the cluster on its way down): its messages follow it.
      redirect(act, waiting)
    } else if (act.router.shuttingDown) {
      const failure = Effect.fail(siloShuttingDown(act.address))
      for (const turn of waiting) {
        turn.state = TurnState.Cancelled
        if (turn.kind === TurnKind.Ask) turn.reject(failure)
      }
    } else if (act.slot.virtual) {
      // Messages that arrived during deactivation go, in order, to the next activation.
      const next = create(act.slot, act.id, act.key)
      for (const turn of waiting) {
        turn.activation = next
        next.enqueue(turn)
      }
      act.router.activate(next, undefined)
    }
  }
  act.stopped()
}

/** Routes `waiting` (taken from `act`'s mailbox) again, in order: to where the address lives now. @internal */
export const redirect = (act: Activation, waiting: ReadonlyArray<Turn>): void => {
  const router = act.router
  for (const turn of waiting) {
    turn.state = TurnState.Cancelled
    const info = turn.info as MessageEntry
    if (turn.kind === TurnKind.Ask) {
      turn.redirect(router.ask(act.slot, act.id, info, turn.payload))
    } else {
      const context = Turn.contextFrame(undefined, turn.correlation, turn.metadata)
      router.fork(
        router.tell(act.slot, act.id, info, turn.payload).pipe(
          Effect.provideService(CurrentTurn, context),
          Effect.catch((error) => {
            const logged = Effect.logWarning(`${act.slot.name}/${act.id}: one-way message lost in a move: ${error.message}`)
            const lost = router.lostOneWay
            if (lost === undefined) return logged
            const reason = `lost moving to another silo: ${error.message}`
            return Effect.andThen(logged, lost({ address: act.address, message: info, payload: turn.payload, reason }))
          })
        )
      )
    }
  }
}

/** The message a handler table lacks, if any; a table shared by every activation is checked once. */
const missingHandler = (slot: TypeSlot, handlers: Handlers): string | undefined => {
  if (handlers === slot.completeHandlers) return undefined
  const tags = slot.tags ??= Object.keys(slot.registration!.messages)
  for (let i = 0; i < tags.length; i++) {
    if (typeof handlers[tags[i]!] !== "function") return tags[i]
  }
  slot.completeHandlers = handlers
  return undefined
}

/**
 * The lifecycle of activations as the router drives it: creating one, running its
 * activation effect (and what a failure of it means), deactivating it and handing the
 * messages that arrived meanwhile to the next activation, rejecting what waits in a
 * mailbox that will not run.
 *
 * @internal
 */
import { Cause, Clock, Context, Effect, Exit, Scope } from "effect"
import * as Failure from "../Supervision/Failure.ts"
import { ActorContext } from "./ActorContext.ts"
import { ActivationFailed, type CallError } from "./ActorError.ts"
import { Activation, ActivationState } from "./Activation.ts"
import { siloShuttingDown, type TypeSlot } from "./LocalRouter.ts"
import type { Handlers, MessageEntry, Registration } from "./Registration.ts"
import { stopChildren, supervise } from "./Supervisor.ts"
import { CurrentTurn, Turn, TurnKind, TurnState } from "./Turn.ts"

/** A new activation of `slot`/`id`, entered under `key` (the id, but for stateless workers). */
export const create = (slot: TypeSlot, id: string, key: string = id): Activation => {
  const act = new Activation(slot, id, key, Scope.makeUnsafe())
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
 * The effect runs as a frame of the call chain of the caller that caused it, so an
 * activation effect that calls back into its own caller (or itself) is a `Deadlock`.
 */
export const activate = (act: Activation, outer: Turn | undefined): void => {
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
    act.router.fork(Effect.flatMap(Scope.close(act.scope, exit), () =>
      Effect.sync(() => {
        if (!supervised) return failActivation(act, reason)
        act.state = ActivationState.Suspended
        act.fail(Failure.activationFailed(reason))
        act.next()
      })))
  }
  const exit = build.pollUnsafe()
  if (exit !== undefined) done(exit)
  else build.addObserver(done)
}

const failActivation = (act: Activation, reason: string): void => {
  act.state = ActivationState.Stopped
  remove(act)
  rejectQueued(act, new ActivationFailed({ address: act.address, reason }))
  act.stopped()
}

/** Fails every waiting ask with `error`; one-way messages are dropped (and logged). */
export const rejectQueued = (act: Activation, error: CallError): void => {
  const failure = Effect.fail(error)
  let dropped = 0
  for (const turn of act.mailbox?.takeAll() ?? []) {
    if (turn.state !== TurnState.Queued) continue
    turn.state = TurnState.Cancelled
    if (turn.kind === TurnKind.Ask) turn.reject(failure)
    else if (turn.kind === TurnKind.Tell) dropped++
  }
  if (dropped > 0) {
    act.router.fork(Effect.logWarning(`${act.slot.name}/${act.id}: ${dropped} one-way message(s) dropped: ${error.message}`))
  }
}

/** Hands an activation whose turns have all ended, and whose failure is recorded, to its supervisor. */
export const superviseLater = (act: Activation): void => {
  act.router.fork(Effect.andThen(Effect.yieldNow, supervise(act)))
}

export const remove = (act: Activation): void => {
  if (act.slot.activations.get(act.key) === act) {
    act.slot.activations.delete(act.key)
    act.router.remote?.removed(act)
  }
}

/** Runs the finalizers of an activation whose turns have all ended, then hands its queue on. */
export const finishDeactivation = (act: Activation): void => {
  // Yield first: this is called from the end of a turn, which is no place to run finalizers.
  act.router.fork(
    Effect.yieldNow.pipe(
      Effect.andThen(stopChildren(act, "its parent deactivated")),
      Effect.andThen(Scope.close(act.scope, Exit.void)),
      Effect.andThen(Effect.sync(() => afterStop(act)))
    )
  )
}

const afterStop = (act: Activation): void => {
  remove(act)
  const waiting = (act.mailbox?.takeAll() ?? []).filter((turn) =>
    turn.state === TurnState.Queued && turn.kind !== TurnKind.Tick
  )
  if (waiting.length > 0) {
    if (act.router.shuttingDown) {
      const failure = Effect.fail(siloShuttingDown(act.slot, act.id))
      for (const turn of waiting) {
        turn.state = TurnState.Cancelled
        if (turn.kind === TurnKind.Ask) turn.reject(failure)
      }
    } else if (act.slot.virtual && act.router.remote?.ownsHere(act.slot, act.id) === false) {
      // The address moved to another silo while this one deactivated: its messages follow it.
      redirect(act, waiting)
    } else if (act.slot.virtual) {
      // Messages that arrived during deactivation go, in order, to the next activation.
      const next = create(act.slot, act.id, act.key)
      for (const turn of waiting) {
        turn.activation = next
        next.enqueue(turn)
      }
      activate(next, undefined)
    }
  }
  act.stopped()
}

const redirect = (act: Activation, waiting: ReadonlyArray<Turn>): void => {
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
          Effect.catch((error) => Effect.logWarning(`${act.slot.name}/${act.id}: one-way message lost in a move: ${error.message}`))
        )
      )
    }
  }
}

const missingHandler = (registration: Registration, handlers: Handlers): string | undefined => {
  for (const tag in registration.messages) {
    if (typeof handlers[tag] !== "function") return tag
  }
  return undefined
}

/**
 * Running one-way turns (tells, timer ticks, termination notices). Nobody waits on them, so
 * they run on a drainer fiber per activation that lives while the activation has one-way
 * work, one turn after another; a one-way turn granted beside others (read-only,
 * interleaving) gets a fiber of its own.
 *
 * @internal
 */
import { Cause, Context, Effect, Exit, Tracer } from "effect"
import * as Failure from "../../Supervision/Failure.ts"
import type { Activation } from "./Activation.ts"
import { CurrentTurn, type Turn, TurnKind } from "./Turn.ts"
import type { TurnObserver } from "./TurnObserver.ts"

/** One-way turns a drainer runs before it lets other fibers in. */
const drainerBatch = 256

const oneWayEffect = (turn: Turn): Effect.Effect<unknown, unknown> => {
  const act = turn.activation!
  // A clustered silo that cannot show it is still a member runs nothing (see `LocalRouter.lease`).
  const lease = act.router.lease
  if (lease !== undefined && !lease()) return Effect.void
  let handled: Effect.Effect<unknown, unknown>
  if (turn.kind === TurnKind.Tick) {
    handled = turn.payload as Effect.Effect<void>
  } else {
    try {
      handled = act.handlers![turn.info!.tag](turn.payload)
    } catch (defect) {
      handled = Effect.die(defect)
    }
  }
  const afterTurn = act.extras?.afterTurn
  return afterTurn === undefined ? handled : Effect.tap(handled, () => afterTurn)
}

/**
 * What telemetry keeps of the one-way turn running on a fiber: when it started and its
 * span, if sampled. A fiber runs one turn at a time, so one of these serves its turns in turn.
 */
class Observed {
  startedAt = 0
  span: Tracer.Span | undefined = undefined
  readonly observer: TurnObserver
  constructor(observer: TurnObserver) {
    this.observer = observer
  }

  /** Starts `turn` and returns its context: under its span, else its sender's (see `LocalRouter.runAsk`). */
  start(base: Context.Context<never>, turn: Turn): Context.Context<never> {
    const observer = this.observer
    let context = Context.add(base, CurrentTurn, turn)
    const span = this.span = observer.startSpan?.(turn, turn.span)
    const parent = span ?? turn.span
    if (parent !== undefined) context = Context.add(context, Tracer.ParentSpan, parent)
    if (observer.timesTurns) this.startedAt = observer.turnStarted(turn)
    return context
  }

  end(turn: Turn, exit: Exit.Exit<unknown, unknown>): void {
    const observer = this.observer
    if (observer.timesTurns) observer.turnEnded(turn, this.startedAt, exit)
    if (this.span !== undefined) {
      observer.endSpan(this.span, turn, exit)
      this.span = undefined
    }
  }
}

/**
 * A one-way turn has nobody to report to: a defect goes to the supervisor and the log, a
 * fatal error to the supervisor, any other failure to the debug log.
 */
const logOneWayFailure = (turn: Turn, cause: Cause.Cause<unknown>): Effect.Effect<void> => {
  const act = turn.activation!
  const where = `${act.slot.name}/${act.id}.${turn.info!.tag}`
  const defect = cause.reasons.find(Cause.isDieReason)
  const error = cause.reasons.find(Cause.isFailReason)
  let logged: Effect.Effect<void>
  if (defect !== undefined) {
    act.fail(Failure.defect(defect.defect))
    logged = Effect.logError(`${where} died in a one-way turn`, cause)
  } else {
    if (error !== undefined) act.failIfFatal(error.error)
    logged = Effect.logDebug(`${where} failed in a one-way turn`, cause)
  }
  const lost = act.router.lostOneWay
  if (lost === undefined || turn.kind !== TurnKind.Tell) return logged
  const reason = defect !== undefined ? `defect: ${String(defect.defect)}`
    : error !== undefined ? describeError(error.error)
    : "interrupted"
  return Effect.andThen(logged, lost({ address: act.address, message: turn.info!, payload: turn.payload, reason }))
}

const describeError = (error: unknown): string => {
  const tag = (error as { readonly _tag?: unknown } | null)?._tag
  const message = (error as { readonly message?: unknown } | null)?.message
  return typeof tag === "string" ? (typeof message === "string" && message !== "" ? `${tag}: ${message}` : tag) : String(error)
}

/**
 * Starts the fiber that runs an activation's one-way turns, `first` (already begun) and
 * then, one after another, each one-way turn at the head of the mailbox that may start
 * (see `Activation.endOneWay`). It yields first: a forked fiber starts synchronously, and
 * the sender should not run the turn it just sent (nor pay for a fiber per message).
 */
export const startDrainer = (act: Activation, first: Turn): void => {
  act.router.fork(drain(act, first))
}

/** Runs a one-way turn that was granted beside other running turns on a fiber of its own. */
export const runBeside = (turn: Turn): void => {
  const act = turn.activation!
  const observer = act.router.observer
  const observed = observer === undefined ? undefined : new Observed(observer)
  let ended = false
  const run = Effect.withFiber((fiber) => {
    fiber.setContext(observed === undefined ? Context.add(act.slot.turnContext, CurrentTurn, turn) : observed.start(act.slot.turnContext, turn))
    return Effect.catchCause(oneWayEffect(turn), (cause) => {
      ended = true
      observed?.end(turn, Exit.failCause(cause))
      return logOneWayFailure(turn, cause)
    })
  })
  act.router.fork(
    Effect.andThen(Effect.yieldNow, run).pipe(
      Effect.onExit(() =>
        Effect.sync(() => {
          if (!ended) observed?.end(turn, Exit.void)
          act.end(turn)
        })
      )
    )
  )
}

/**
 * The drainer's loop, written as a chain of `flatMap`s over two closures made once per
 * drainer: per message it costs the handler's effect, one continuation and the turn's
 * context. Failures are rare, so they are caught around the whole chain rather than per
 * turn: a failed turn is reported, ended, and the chain starts again from the next.
 */
const drain = (act: Activation, first: Turn): Effect.Effect<void> =>
  Effect.withFiber((fiber) => {
    const base = act.slot.turnContext
    const observer = act.router.observer
    const observed = observer === undefined ? undefined : new Observed(observer)
    let current: Turn | undefined = first
    let sinceYield = 0
    const run = (): Effect.Effect<void, unknown> => {
      const turn = current!
      fiber.setContext(observed === undefined ? Context.add(base, CurrentTurn, turn) : observed.start(base, turn))
      return Effect.flatMap(oneWayEffect(turn), next)
    }
    const next = (): Effect.Effect<void, unknown> => {
      observed?.end(current!, Exit.void)
      current = act.endOneWay(current!)
      if (current === undefined) return Effect.void
      // Turns run unpreempted (see `TypeSlot.turnContext`), so the drainer yields on its own.
      if (++sinceYield < drainerBatch) return run()
      sinceYield = 0
      return Effect.andThen(Effect.yieldNow, Effect.suspend(run))
    }
    const guarded = (): Effect.Effect<void> => Effect.catchCause(run(), onFailure)
    const onFailure = (cause: Cause.Cause<unknown>): Effect.Effect<void> => {
      observed?.end(current!, Exit.failCause(cause))
      return Effect.andThen(logOneWayFailure(current!, cause), () => {
        current = act.endOneWay(current!)
        return current === undefined ? Effect.void : guarded()
      })
    }
    // Only a forced stop interrupts a drainer; the turn it was running still ends.
    return Effect.onInterrupt(Effect.andThen(Effect.yieldNow, Effect.suspend(guarded)), () =>
      Effect.sync(() => {
        act.draining = false
        if (current !== undefined) current.activation!.end(current)
      }))
  })

/**
 * The silo's side of supervision: applies a strategy's directive to a failed activation.
 *
 * The decision path, top-down:
 * 1. A turn dies (or fails with an error the type declares fatal), or an activation effect
 *    of a child or of a restart fails. The activation grants no new turns; if its parent's
 *    all-for-one or rest-for-one strategy will restart or stop siblings along with it,
 *    those siblings are suspended too (`holdAffected`), all before the failed call gets its
 *    error, so no sibling answers from its old state afterwards. Once the failed
 *    activation's running turns have ended, it is handed here. (A child's escalation hands
 *    its parent here at once: see `escalate`.)
 * 2. The strategy is the parent's `supervisor` for a child actor, the type's
 *    `rootSupervisor` for a virtual actor. Its decider maps the failure to a directive.
 * 3. `restart` counts against the restart budget (`maxRestarts` within `within`); over
 *    it, or once the backoff schedule ends, the directive becomes `onLimit` ("stop", or
 *    "escalate" when there is a parent). A `resume` of a failed activation effect, which
 *    left nothing to resume, becomes `stop`; an `escalate` at the root becomes `stop`.
 * 4. `resume`: the activation goes on with its next message, state kept.
 *    `restart`: the affected activations (the failed one; all siblings for all-for-one;
 *    it and later siblings for rest-for-one), side by side: each stops its children
 *    (a running turn may be waiting on one), lets its running turns end, and runs its
 *    finalizers (waiting at most its `deactivationTimeout` for them); after the backoff
 *    delay its activation effect runs again. Mailboxes are kept, so queued messages
 *    reach the new incarnation in order.
 *    `stop`: the affected activations, side by side (last spawned first): children stop
 *    (deepest first), running turns end, finalizers run, waiting asks fail with
 *    `ActorStopped`, watchers are told. A virtual actor activates again on its next call.
 *    `escalate`: the child stays suspended and its parent fails with the child's failure;
 *    the parent's own supervisor decides at once (step 2, one level up), without waiting
 *    for the parent's running turns, one of which may be waiting on the child. If the
 *    parent resumes, so does the child; if it restarts or stops, its children are stopped.
 *
 * Every decision is logged with the actor, the failure and the restart count. This module
 * reaches the lifecycle (activation effects, finalizers, removal) only through the
 * activation's `ActivationHost`.
 *
 * @internal
 */
import { Clock, Duration, Effect, Exit } from "effect"
import * as Failure from "../../Supervision/Failure.ts"
import { RestartHistory } from "../../Supervision/RestartHistory.ts"
import type { Directive, Strategy } from "../../Supervision/Strategy.ts"
import { formatAddress } from "../ActorAddress.ts"
import { ActorStopped } from "../ActorError.ts"
import type { Activation } from "./Activation.ts"
import { makeActivationScope } from "./ActivationScope.ts"
import { ActivationState } from "./ActivationState.ts"

/** Decides on and applies the directive for a settled, failed activation. @internal */
export const supervise = (act: Activation): Effect.Effect<void> =>
  Effect.gen(function*() {
    const extras = act.rare
    const failure = extras.failure
    if (failure === undefined || act.phase !== ActivationState.Suspended) {
      extras.supervising = false
      releaseHeld(act)
      return
    }
    const parent = extras.parent
    const strategy = parent === undefined ? act.options.rootSupervisor : parent.options.supervisor
    let directive: Directive = strategy.decider(failure)
    if (directive === "resume" && failure._tag === "ActivationFailed") directive = "stop"
    if (directive === "escalate" && parent === undefined) directive = "stop"
    let delay = Duration.zero
    let restarts = extras.history?.count ?? 0
    let decision: string = directive
    if (directive === "restart") {
      const now = yield* Clock.currentTimeMillis
      const verdict = yield* (extras.history ??= new RestartHistory()).next(strategy, now, failure)
      restarts = verdict.count
      if (verdict._tag === "LimitExceeded") {
        directive = strategy.onLimit === "escalate" && parent !== undefined ? "escalate" : "stop"
        decision = `${directive} (restart limit exceeded)`
      } else {
        delay = verdict.delay
        decision = `restart in ${Duration.format(delay)}`
      }
    }
    yield* logDecision(act, directive, decision, failure, restarts, delay)
    // What the dashboard's actor page shows as recent errors: bounded, so a crash loop keeps ten.
    const failures = (extras.failures ??= [])
    failures.push({ at: yield* Clock.currentTimeMillis, failure: Failure.describe(failure), decision })
    if (failures.length > 10) failures.shift()
    switch (directive) {
      case "resume":
        releaseHeld(act)
        return act.resume()
      case "escalate": {
        extras.escalated = true
        // Siblings held for this failure now wait, like it, for the parent's decision.
        for (const sibling of heldBy(act)) sibling.rare.escalated = true
        // Decided at once, not when the parent's turns end: one of them may be waiting on
        // this child, which waits on the decision.
        return parent!.failNow(Failure.childEscalated(act.address, failure))
      }
      // The affected activations are handled side by side: one may be waiting on another
      // (a sibling's turn asking the failed child), and only that one's progress ends the wait.
      case "restart":
        return yield* Effect.forEach(affected(strategy, act), (target) => restart(target, delay), {
          concurrency: "unbounded",
          discard: true
        })
      case "stop":
        // Last spawned first, as a parent stops its children (when none has to wait).
        return yield* Effect.forEach(
          affected(strategy, act).reverse(),
          (target) =>
            stopActivation(
              target,
              target === act ? Failure.describe(failure) : `a sibling stopped (${strategy.kind})`,
              target === act ? failure : undefined
            ),
          { concurrency: "unbounded", discard: true }
        )
    }
  })

/** The activations a restart or stop takes along, in spawn order. */
const affected = (strategy: Strategy, act: Activation): Array<Activation> => {
  const siblings = act.parentActor?.extras?.children
  if (siblings === undefined || strategy.kind === "one-for-one") return [act]
  if (strategy.kind === "all-for-one") return [...siblings]
  return siblings.slice(Math.max(0, siblings.indexOf(act)))
}

/**
 * Suspends, at once, the siblings that the parent's strategy would restart or stop along
 * with the failed `act`: they must not serve another call from the state they are about
 * to lose. Called when the failure is recorded; released if the decision is otherwise.
 *
 * @internal
 */
export const holdAffected = (act: Activation): void => {
  const parent = act.parentActor
  const failure = act.extras?.failure
  if (parent === undefined || failure === undefined) return
  const strategy = parent.options.supervisor
  if (strategy.kind === "one-for-one") return
  const directive = strategy.decider(failure)
  if (directive !== "restart" && directive !== "stop") return
  for (const sibling of affected(strategy, act)) if (sibling !== act) sibling.hold(act)
}

const heldBy = (act: Activation): Array<Activation> =>
  (act.parentActor?.extras?.children ?? []).filter((sibling) => sibling.extras?.heldBy === act)

const releaseHeld = (act: Activation): void => {
  for (const sibling of heldBy(act)) sibling.release()
}

/** Stops granting turns and waits until the running ones have ended. */
const settle = (act: Activation): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    act.suspend()
    act.onSettled(() => resume(Effect.void))
  })

/**
 * Children first (a running turn may be waiting on one of them), then the running turns,
 * then the finalizers; after the backoff delay the activation effect runs again.
 */
const restart = (act: Activation, delay: Duration.Duration): Effect.Effect<void> =>
  Effect.gen(function*() {
    act.suspend()
    yield* stopChildren(act, "its parent restarted")
    yield* settle(act)
    // Deactivated or stopped meanwhile (a closed scope closes again as a no-op).
    if (act.phase !== ActivationState.Suspended) return
    act.stopTimers()
    yield* act.host.closeScope(act, Exit.void)
    yield* Effect.sleep(delay)
    if (act.phase !== ActivationState.Suspended) return
    const extras = act.rare
    extras.incarnation++
    extras.failure = undefined
    extras.supervising = false
    extras.escalated = false
    extras.heldBy = undefined
    extras.afterTurn = undefined
    act.scope = makeActivationScope()
    act.phase = ActivationState.Activating
    act.host.activate(act, undefined)
  })

/**
 * Stops an activation for good: its children first (deepest first), then its running
 * turns end, then its timers and finalizers; waiting asks fail with `ActorStopped`;
 * watchers are told. A virtual actor's next call activates it again. A second stop of the
 * same activation waits for the first.
 *
 * @internal
 */
export const stopActivation = (act: Activation, reason: string, failure?: Failure.Failure): Effect.Effect<void> =>
  Effect.gen(function*() {
    const extras = act.rare
    if (act.phase === ActivationState.Stopped) return
    if (extras.stopping) {
      return yield* Effect.callback<void>((resume) => act.onStopped(() => resume(Effect.void)))
    }
    extras.stopping = true
    act.suspend()
    yield* stopChildren(act, "its parent stopped")
    yield* settle(act)
    act.stopTimers()
    yield* act.host.closeScope(act, Exit.void)
    act.host.retire(act, new ActorStopped({ address: act.address, reason }))
    const siblings = extras.parent?.extras?.children
    if (siblings !== undefined) siblings.splice(siblings.indexOf(act), 1)
    const watchers = extras.watchers
    extras.watchers = undefined
    act.stopped()
    for (const watcher of watchers ?? []) watcher({ address: act.address, reason, failure })
  })

/** Stops the children of `act`, the last spawned first, each after its own children. @internal */
export const stopChildren = (act: Activation, reason: string): Effect.Effect<void> =>
  Effect.suspend(() => {
    const children = act.extras?.children
    if (children === undefined || children.length === 0) return Effect.void
    return Effect.forEach([...children].reverse(), (child) => stopActivation(child, reason), { discard: true })
  })

const logDecision = (
  act: Activation,
  directive: Directive,
  decision: string,
  failure: Failure.Failure,
  restarts: number,
  delay: Duration.Duration
): Effect.Effect<void> => {
  const message = `supervisor: ${formatAddress(act.address)}: ${decision} after ${Failure.describe(failure)}`
  const annotations = {
    actor: formatAddress(act.address),
    decision: directive,
    failure: Failure.describe(failure),
    restarts,
    delayMillis: Duration.toMillis(delay)
  }
  const log = directive === "resume" ? Effect.logInfo(message) : Effect.logWarning(message)
  act.router.observer?.supervised(act, directive, failure._tag)
  return Effect.andThen(
    Effect.annotateCurrentSpan({ "quark.supervision.directive": directive, "quark.failure": failure._tag }),
    Effect.annotateLogs(log, annotations)
  )
}

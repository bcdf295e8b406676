/**
 * Volatile timers owned by an activation. Each tick is a turn in the activation's mailbox,
 * so it never overlaps another turn; the next tick is scheduled only after the previous
 * one's turn ended, so ticks never pile up behind a slow actor.
 *
 * @internal
 */
import { Duration, Effect, type Fiber } from "effect"
import type { Activation } from "./Activation.ts"
import { ActivationState } from "./ActivationState.ts"
import type { TimerOptions } from "../ActorContext.ts"
import { emptyMetadata, Turn, TurnKind, TurnState } from "./Turn.ts"

/** @internal */
export const startTimer = (
  act: Activation,
  name: string,
  tick: Effect.Effect<void>,
  options: TimerOptions
): Effect.Effect<void> =>
  Effect.suspend(() => {
    if (act.phase !== ActivationState.Active && act.phase !== ActivationState.Activating) return Effect.void
    act.timers?.get(name)?.interruptUnsafe()
    const info = { tag: `timer:${name}`, readOnly: false, interleave: false, keepAlive: options.keepAlive ?? false }
    const period = options.period === undefined ? undefined : Duration.fromInputUnsafe(options.period)
    const dueTime = options.dueTime ?? period ?? Duration.zero
    const fire = Effect.withFiber<void>((fiber) =>
      Effect.callback<void>((resume) => {
        const turn = new Turn(TurnKind.Tick, act, undefined, undefined, emptyMetadata, info, tick)
        const dispatcher = fiber.currentDispatcher
        turn.onEnd = () => dispatcher.scheduleTask(() => resume(Effect.void), 0)
        act.post(turn)
        // A cancelled timer withdraws its tick if the tick has not started.
        return Effect.sync(() => {
          if (turn.state === TurnState.Queued) act.cancel(turn)
        })
      })
    )
    let self: Fiber.Fiber<unknown, unknown> | undefined
    const loop = period === undefined ?
      Effect.andThen(Effect.sleep(dueTime), fire) :
      Effect.andThen(Effect.sleep(dueTime), Effect.forever(Effect.andThen(fire, Effect.sleep(period))))
    const forgetWhenDone = Effect.ensuring(
      loop,
      Effect.sync(() => {
        if (self !== undefined && act.timers?.get(name) === self) act.timers!.delete(name)
      })
    )
    return Effect.map(Effect.forkIn(forgetWhenDone, act.scope), (fiber) => {
      self = fiber
      ;(act.rare.timers ??= new Map()).set(name, fiber)
    })
  })

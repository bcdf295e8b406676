/**
 * One supervised actor's restart history: the restarts inside the current window and the
 * backoff schedule's progress. The schedule starts over once a whole window has passed
 * without a restart, so a child that has been healthy for a while restarts quickly again.
 *
 * @since 0.1.0
 */
import { Duration, Effect, Exit, Schedule } from "effect"
import type { Failure } from "./Failure.ts"
import type { Strategy } from "./Strategy.ts"

type Step = (now: number, input: Failure) => Effect.Effect<[unknown, Duration.Duration], unknown>

/**
 * The verdict on one more restart: the delay before it, or the limit.
 *
 * @since 0.1.0
 */
export type Verdict =
  | { readonly _tag: "Restart"; readonly delay: Duration.Duration; readonly count: number }
  | { readonly _tag: "LimitExceeded"; readonly count: number }

/**
 * @since 0.1.0
 */
export class RestartHistory {
  private restarts: Array<number> = []
  private step: Step | undefined = undefined

  /** Restarts within the window ending at the last verdict. */
  get count(): number {
    return this.restarts.length
  }

  /** Records a restart asked for at `now` (clock millis) and returns its verdict. */
  next(strategy: Strategy, now: number, failure: Failure): Effect.Effect<Verdict> {
    return Effect.suspend(() => {
      const windowStart = now - Duration.toMillis(strategy.within)
      this.restarts = this.restarts.filter((at) => at > windowStart)
      if (this.restarts.length === 0) this.step = undefined
      if (this.restarts.length >= strategy.maxRestarts) {
        return Effect.succeed<Verdict>({ _tag: "LimitExceeded", count: this.restarts.length + 1 })
      }
      this.restarts.push(now)
      const count = this.restarts.length
      const step = this.step === undefined ?
        Effect.map(Schedule.toStep(strategy.backoff) as Effect.Effect<Step>, (step) => (this.step = step)) :
        Effect.succeed(this.step)
      return Effect.flatMap(step, (step) =>
        Effect.map(Effect.exit(step(now, failure)), (exit): Verdict =>
          // A schedule that has ended (or failed) allows no more restarts.
          Exit.isSuccess(exit) ? { _tag: "Restart", delay: exit.value[1], count } : { _tag: "LimitExceeded", count }))
    })
  }
}

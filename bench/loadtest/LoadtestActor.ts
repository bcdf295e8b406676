/**
 * The load tester's actor: its contract, shared by the load generator (which only calls it)
 * and the silos that host it (in process, or `npm run loadtest -- serve`), and its
 * implementation.
 *
 * `Work` answers the length of its payload (so the caller can check each answer) after
 * spinning for `workUs` microseconds: CPU work that holds the actor's turn and the silo's
 * event loop, as a real handler's computation would. The caller chooses it per call, so a
 * running cluster needs no restart to test another amount of work.
 */
import { Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor } from "../../src/index.ts"

export const Work = Rpc.make("Work", {
  payload: { payload: Schema.String, workUs: Schema.Int.check(Schema.isGreaterThanOrEqualTo(0)) },
  success: Schema.Int
})

export const LoadtestActor = Actor.make("quark.loadtest.Echo", [Work])

/** Busy-waits `us` microseconds: a sleep would measure the timer, not the actor. */
const spin = (us: number): void => {
  if (us <= 0) return
  const until = performance.now() + us / 1000
  while (performance.now() < until) {
    // spinning on purpose
  }
}

export const LoadtestActorLive = LoadtestActor.toLayer(
  Effect.succeed(LoadtestActor.of({
    Work: ({ payload, workUs }) =>
      Effect.sync(() => {
        spin(workUs)
        return payload.length
      })
  }))
)

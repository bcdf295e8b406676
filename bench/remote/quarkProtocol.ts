/**
 * The actor the remote benchmarks call, shared by the bench process and its silo children.
 */
import { Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor } from "../../src/index.ts"

export const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"

const Increment = Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
const Count = Rpc.make("Count", { success: Schema.Int })

/** Adds `by` and answers the new count; `Count` answers it. */
export const BenchCounter = Actor.make("BenchCounter", [Increment, Count])

export const BenchCounterLive = BenchCounter.toLayer(Effect.sync(() => {
  let count = 0
  return BenchCounter.of({
    Increment: ({ by }) => Effect.sync(() => (count += by)),
    Count: () => Effect.sync(() => count)
  })
}))

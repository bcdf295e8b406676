/**
 * Definitions shared by the two-process baselines and their child processes (kept apart
 * from the child scripts, whose import would start a server).
 */
import { Schema } from "effect"
import { Rpc, RpcGroup } from "effect/rpc"

/** The effect/rpc baseline's message: add `by`, reply with the new count. */
export const Increment = Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
export const IncrementGroup = RpcGroup.make(Increment)

/**
 * Checks a round of replies from a counter that starts at `last` and is incremented by 1 per
 * request: the replies must be exactly last+1 .. last+n, each once (in any order). Returns
 * the new last.
 */
export const checkCounts = (id: string, replies: ArrayLike<number>, last: number): number => {
  const n = replies.length
  const seen = new Uint8Array(n)
  for (let i = 0; i < n; i++) {
    const k = replies[i]! - last - 1
    if (!(k >= 0 && k < n) || seen[k] === 1) {
      throw new Error(`${id}: reply ${replies[i]} is not a fresh count in ${last + 1}..${last + n}`)
    }
    seen[k] = 1
  }
  return last + n
}

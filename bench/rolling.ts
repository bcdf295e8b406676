/**
 * `cluster.rolling-restart`: the chaos harness's `rolling` fault as a benchmark. Three silo
 * processes on a registry Redis of their own, a client depositing into persistent accounts
 * (eight workers) and reading them; each silo in turn is stopped with SIGTERM and replaced
 * by a new process on its port, twice over. Fields: `failedCalls` during the roll, `p50Us`
 * and `p99Us` of the calls during the roll, `steadyP99Us` of the calls before it once the
 * cluster had settled (the baseline, same run) and `p99VsSteady`, `seconds` the roll took. Production membership timings (dead after
 * 3 s), so a drain waits up to 3 s for its peers to let go.
 */
import { Effect } from "effect"
import { runChaos } from "../test/chaos/Chaos.ts"
import type { Variant } from "./Harness.ts"

export const rollingRestart = (): Variant => {
  const measured: Array<{ failed: number; p99Ms: number; steadyP99Ms: number; seconds: number; calls: number }> = []

  return {
    id: "cluster.rolling-restart",
    rounds: 1,
    warmup: 0,
    round: async () => {
      const result = await Effect.runPromise(
        runChaos({ timings: "default", faults: ["rolling"], deadlineMs: 300_000, keepLatencies: true })
      )
      const roll = result.faults.find((fault) => fault.fault === "rolling")
      if (roll === undefined || result.aborted !== undefined) throw new Error(`the roll did not run: ${result.aborted}`)
      const steps = roll.steps
      const seconds = steps.length === 0 ? 0 : (steps[steps.length - 1]!.atMs - steps[0]!.atMs) / 1000
      measured.push({
        failed: Object.values(roll.failuresByTag).reduce((a, b) => a + b, 0),
        p99Ms: roll.latencyP99Ms ?? 0,
        steadyP99Ms: result.baseline.latencyP99Ms ?? 0,
        seconds,
        calls: roll.calls
      })
      return {
        ops: roll.calls,
        elapsedNs: Math.max(1, seconds) * 1e9,
        latenciesUs: (roll.latenciesMs ?? []).map((ms) => ms * 1000)
      }
    },
    extra: (): Record<string, number> => {
      const last = measured[measured.length - 1]
      if (last === undefined) return {}
      return {
        failedCalls: last.failed,
        steadyP99Us: Math.round(last.steadyP99Ms * 1000),
        p99VsSteady: last.steadyP99Ms > 0 ? Math.round((last.p99Ms / last.steadyP99Ms) * 100) / 100 : 0,
        seconds: Math.round(last.seconds * 10) / 10,
        callsDuringRoll: last.calls
      }
    }
  }
}

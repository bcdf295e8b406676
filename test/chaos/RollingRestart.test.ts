/**
 * A rolling restart under load, the zero-downtime claim: three silo processes on Redis, a
 * client depositing into persistent accounts and reading them; each silo in turn is
 * stopped with SIGTERM and replaced by a new process on its port, twice over. Not one call
 * may fail (no `ActorUnavailable`, no timeout), no acknowledged deposit may be lost or
 * applied twice, no address may be served twice at once. The p99 latency during the roll
 * is reported. See `Chaos.ts` for the harness; `npm run chaos -- --faults rolling --minutes N`
 * repeats it.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import { formatFindings, formatTable, runChaos } from "./Chaos.ts"

describe("rolling restart", () => {
  it.live("each of three silos restarted in place with SIGTERM, twice, under load: zero failed calls, nothing lost, single activation", () =>
    Effect.gen(function*() {
      const result = yield* runChaos({
        timings: "short",
        faults: ["rolling"],
        cycles: 1,
        deadlineMs: 150_000,
        keepFiles: process.env.QUARK_KEEP === "1",
        log: (line) => console.log(`[rolling] ${line}`)
      }).pipe(Effect.orDie, Effect.provideService(Logger.LogToStderr, true))
      const report = `${formatTable(result)}\n\n${formatFindings(result)}`
      const roll = result.faults.find((f) => f.fault === "rolling")
      console.log(report)
      console.log(JSON.stringify({
        rollingRestart: {
          calls: roll?.calls,
          failedCalls: roll === undefined ? null : Object.values(roll.failuresByTag).reduce((a, b) => a + b, 0),
          failureReasons: roll?.failureReasons,
          p99Ms: roll?.latencyP99Ms,
          steps: roll?.steps.map((s) => s.recoveredMs)
        }
      }))

      const failed: Array<string> = []
      const expect = (ok: boolean, what: string) => {
        if (!ok) failed.push(what)
      }
      expect(result.aborted === undefined, `the run went through (aborted: ${result.aborted})`)
      expect(roll !== undefined && roll.steps.length === 6, `six restarts (${roll?.steps.length})`)
      expect(result.writes.acknowledged > 300, `the load ran (${result.writes.acknowledged} deposits acknowledged)`)
      expect(
        roll !== undefined && Object.keys(roll.failuresByTag).length === 0,
        `zero failed calls during the roll: ${JSON.stringify(roll?.failuresByTag)} ${JSON.stringify(roll?.failureReasons)}`
      )
      expect(roll !== undefined && roll.uncleanStops.length === 0, `every stop exited 0: ${JSON.stringify(roll?.uncleanStops)}`)
      expect(result.checks.singleActivation, `single activation: ${result.overlaps.length} overlaps`)
      expect(result.checks.activationLifecycle, `activation lifecycle: ${result.earlyActivations.length} early activations`)
      expect(result.checks.noStaleReads, `no stale reads: ${result.staleReads.length}`)
      expect(result.checks.writesExactlyOnce, `writes exactly once: ${result.writes.problems.length} problems`)
      expect(result.checks.noHungCalls, `no hung call: ${result.calls.hung.length} hung, ${result.calls.late.length} late`)
      assert.deepStrictEqual(failed, [], report)
    }), 240_000)
})

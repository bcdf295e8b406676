/**
 * The chaos test, short variant: three silo processes on a registry Redis of the test's
 * own and a long-lived client in this process, under a load of idempotent deposits, while
 * one round of each fault is injected (kill -9 + replacement, SIGSTOP past the death
 * timeout + SIGCONT, graceful leave + join, registry down 5 s and 20 s and restarted empty).
 * See `Chaos.ts` for the harness and the checks; `npm run chaos -- --minutes N` (chaosMain.ts) is the long
 * variant.
 *
 * It needs `redis-server` (started by the harness on a free port) and the main Redis
 * (`QUARK_REDIS_URL`): without either it fails, saying which, and never skips.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Logger } from "effect"
import { formatFindings, formatTable, runChaos } from "./Chaos.ts"

describe("chaos", () => {
  it.live("kill -9, SIGSTOP, graceful leave and join, registry outages: single activation, no lost write, no hung call, recovery", () =>
    Effect.gen(function*() {
      const result = yield* runChaos({
        timings: "short",
        cycles: 1,
        // About a minute when the cluster behaves; the bound keeps a misbehaving one within the test's timeout.
        deadlineMs: 180_000,
        log: (line) => console.log(`[chaos] ${line}`)
      }).pipe(Effect.orDie, Effect.provideService(Logger.LogToStderr, true))
      const report = `${formatTable(result)}\n\n${formatFindings(result)}`
      console.log(report)
      console.log(JSON.stringify({
        chaos: {
          durationMs: result.durationMs,
          calls: result.calls.total,
          acknowledged: result.writes.acknowledged,
          faults: result.faults.map((f) => ({
            fault: f.fault,
            windowMs: f.allSucceededMs,
            lastFailureMs: f.lastFailureMs,
            failures: f.failuresByTag,
            steps: f.steps.map((s) => s.recoveredMs)
          })),
          overlaps: result.overlaps.length,
          frozenTurnOverlaps: result.frozenTurnOverlaps.length,
          earlyActivations: result.earlyActivations.length,
          checks: result.checks
        }
      }))

      // Every check is evaluated, and all that fail are reported together.
      const failed: Array<string> = []
      const expect = (ok: boolean, what: string) => {
        if (!ok) failed.push(what)
      }
      expect(result.aborted === undefined, `the run went through every fault (aborted: ${result.aborted})`)
      expect(result.faults.length === 5, `one round of each fault (${result.faults.length})`)
      expect(result.writes.acknowledged > 500, `the load ran (${result.writes.acknowledged} deposits acknowledged)`)
      expect(result.turns.recordProblems.length === 0, "every turn belongs to a recorded activation")
      // 1. No address served by two activations at overlapping times; none activated before the previous
      // one ended or was declared dead; no stale read.
      expect(result.checks.singleActivation, `single activation: ${result.overlaps.length} overlaps`)
      expect(result.checks.activationLifecycle, `activation lifecycle: ${result.earlyActivations.length} early activations`)
      expect(result.checks.noStaleReads, `no stale reads: ${result.staleReads.length}`)
      // 2. Every acknowledged deposit stored exactly once.
      expect(result.checks.writesExactlyOnce, `writes exactly once: ${result.writes.problems.length} problems`)
      // 3. Every call ended within its timeout plus the slack.
      expect(result.checks.noHungCalls, `no hung call: ${result.calls.hung.length} hung, ${result.calls.late.length} late`)
      // 4. After each step of each fault, every account answered again within the bound.
      for (const fault of result.faults) {
        expect(fault.recovered, `${fault.fault} recovered within ${result.bounds.recoveryMs} ms: ${JSON.stringify(fault.steps)}`)
      }
      const graceful = result.faults.find((f) => f.fault === "graceful")
      expect(graceful?.gracefulExit?.code === 0, `a silo stopped with SIGTERM exits 0 (${JSON.stringify(graceful?.gracefulExit)})`)
      assert.deepStrictEqual(failed, [], report)
    }), 300_000)
})

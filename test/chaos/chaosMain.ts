/**
 * The long chaos run: `npm run chaos -- --minutes N [--production-timings] [--faults kill,pause,...] [--keep]`
 *
 * Repeats the fault cycle (kill -9 + replacement, SIGSTOP/SIGCONT, graceful leave + join,
 * registry Redis down 5 s and 20 s, restarted empty) for N minutes (default 10; at least
 * one cycle) under the harness's load, then prints the command line, a markdown table per
 * kind of fault, the checks with their evidence, and writes the whole result as JSON to
 * `--json <path>` (default: `quark-chaos-<run>.json` in the temporary directory). The run's
 * directory (turn logs, silo logs) is kept if a check failed or with `--keep`.
 * Exits 1 if a check failed, 2 if the run could not start.
 *
 * `--production-timings` runs every process with the membership's production defaults
 * (dead 3 s after the last heartbeat) instead of the test's short ones (dead after 1.2 s).
 */
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Logger } from "effect"
import { type FaultKind, allFaults, formatFindings, formatTable, runChaos } from "./Chaos.ts"

const argv = process.argv.slice(2)
const flag = (name: string) => argv.includes(`--${name}`)
const value = (name: string) => {
  const i = argv.indexOf(`--${name}`)
  return i >= 0 ? argv[i + 1] : undefined
}
const minutes = Number(value("minutes") ?? "10")
if (!Number.isFinite(minutes) || minutes < 0) {
  process.stderr.write("usage: npm run chaos -- --minutes N [--production-timings] [--faults kill,pause,graceful,rolling,registry-5s,registry-20s] [--keep] [--json path]\n")
  process.exit(2)
}
const faults = value("faults")?.split(",").filter((f): f is FaultKind => f === "rolling" || (allFaults as ReadonlyArray<string>).includes(f))
const command = `npm run chaos -- ${argv.join(" ")}`.trim()

const program = runChaos({
  timings: flag("production-timings") ? "default" : "short",
  durationMs: minutes * 60_000,
  faults,
  keepFiles: flag("keep"),
  log: (line) => process.stderr.write(`${line}\n`)
}).pipe(
  Effect.map((result) => {
    const out = [
      `Command: \`${command}\` (${result.timings} membership timings; ${result.cycles} cycles in ${(result.durationMs / 60_000).toFixed(1)} min; ` +
      `${result.calls.total} calls, ${result.writes.acknowledged} deposits acknowledged; run ${result.run})`,
      "",
      formatTable(result),
      "",
      formatFindings(result)
    ].join("\n")
    process.stdout.write(`${out}\n`)
    const jsonPath = value("json") ?? Path.join(Os.tmpdir(), `quark-chaos-${result.run}.json`)
    Fs.writeFileSync(jsonPath, JSON.stringify(result, null, 2))
    process.stdout.write(`\nfull result: ${jsonPath}${result.directory === undefined ? "" : `; logs in ${result.directory}`}\n`)
    return Object.values(result.checks).every(Boolean) ? 0 : 1
  }),
  Effect.catchTag("ChaosSetupError", (error) =>
    Effect.sync(() => {
      process.stderr.write(`chaos: could not run: ${error.reason}\n`)
      return 2
    })),
  // The client's own logs (lost connections while silos die) go to stderr with the progress lines.
  Effect.provideService(Logger.LogToStderr, true)
)

Effect.runPromise(program).then(
  (code) => process.exit(code),
  (error) => {
    process.stderr.write(`chaos: ${String(error)}\n`)
    process.exit(3)
  }
)

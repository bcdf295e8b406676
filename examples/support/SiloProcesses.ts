/**
 * What the multi-process examples share: running each silo as a child process of the example,
 * so that a silo can be killed (`kill -9`) and the others, in their own processes, go on. A
 * silo says `ready <silo id>` on stdout once it serves, writes its logs to stderr, and may
 * report more on stdout, one line each, for the example to read.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Readline from "node:readline"
import { Effect, Schema } from "effect"

export interface SiloProcess {
  readonly label: string
  readonly id: string
  readonly child: ChildProcess
  /** How it ended (`exit <code>` or the signal's name), once its output is all read. */
  readonly ended: Promise<string>
}

export class SiloFailed extends Schema.TaggedError<SiloFailed>()("SiloFailed", { label: Schema.String, reason: Schema.String }) {}

export interface SiloProcessesOptions {
  /** The silo's program, a path, run with this process's Node and flags (`--conditions=…`). */
  readonly script: string
  /** After the script, e.g. the cluster's name. */
  readonly args: ReadonlyArray<string>
  /** Each stdout line after `ready`, with the silo's label; without it, those lines are dropped. */
  readonly onLine?: (label: string, line: string) => void
}

export const isRunning = (silo: SiloProcess) => silo.child.exitCode === null && silo.child.signalCode === null

/** Starts and stops the silos of one example; any still running when the example exits are killed. */
export const siloProcesses = ({ args, onLine, script }: SiloProcessesOptions) => {
  // Also on a crash or `process.exit`, where no scope closes: no silo outlives the example.
  const running = new Set<ChildProcess>()
  process.on("exit", () => running.forEach((child) => child.kill("SIGKILL")))

  /** Starts a silo and waits for its `ready <id>` line; stops it (if still running) when the scope closes. */
  const start = (label: string) =>
    Effect.acquireRelease(
      Effect.callback<SiloProcess, SiloFailed>((resume) => {
        // The silo's stdin stays open for its whole life: when this process dies, it closes and the silo exits.
        const child = spawn(process.execPath, [...process.execArgv, script, ...args], { stdio: ["pipe", "pipe", "pipe"] })
        running.add(child)
        // "close", not "exit": every line the silo wrote has been read by then.
        const ended = new Promise<string>((resolve) =>
          child.once("close", (code, signal) => {
            running.delete(child)
            resolve(signal ?? `exit ${code}`)
          })
        )
        Readline.createInterface({ input: child.stderr! }).on("line", (line) => console.error(`    [silo ${label}] ${line}`))
        let ready = false
        Readline.createInterface({ input: child.stdout! }).on("line", (line) => {
          if (ready) return onLine?.(label, line)
          ready = true
          const match = /^ready (\S+)$/.exec(line)
          resume(match === null ?
            Effect.fail(new SiloFailed({ label, reason: `unexpected output: ${line}` })) :
            Effect.succeed({ label, id: match[1]!, child, ended }))
        })
        void ended.then((how) => resume(Effect.fail(new SiloFailed({ label, reason: `${how} before it was ready` }))))
        return Effect.sync(() => child.kill("SIGKILL")) // interrupted while starting
      }).pipe(
        Effect.timeoutOrElse({
          duration: "20 seconds",
          orElse: () => Effect.fail(new SiloFailed({ label, reason: "not ready after 20 s" }))
        })
      ),
      (silo) => Effect.asVoid(stop(silo))
    )

  /** SIGTERM (a graceful stop: leave, deactivate, close), SIGKILL if that takes over 10 s; how it ended. */
  const stop = (silo: SiloProcess) =>
    Effect.promise(() => {
      if (isRunning(silo)) {
        silo.child.kill("SIGTERM")
        const timer = setTimeout(() => silo.child.kill("SIGKILL"), 10_000)
        void silo.ended.then(() => clearTimeout(timer))
      }
      return silo.ended
    })

  return { start, stop }
}

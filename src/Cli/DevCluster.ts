/**
 * `quark cluster start` and `quark cluster stop`: a cluster for development on this
 * machine, made of N processes of the project's silo program (`src/silo.ts` by convention,
 * as `quark new` writes it), joined through Redis.
 *
 * Each silo is run with this Node and the environment `QUARK_REDIS_URL`, `QUARK_CLUSTER`
 * (the cluster's name), `QUARK_ENDPOINTS_PORT` (0: a free port) and `QUARK_SILO` (its label,
 * `silo-1`…); it must print `ready <silo id> <endpoints url>` on stdout once it serves. Its
 * output is copied here line by line, prefixed with its label (`[silo-2] …`; stderr to
 * stderr). Once every silo is ready, the state file (`.quark/cluster.json`: the pids and the
 * endpoints URL of each) is written, and `start` stays in the foreground until SIGINT
 * (Ctrl-C) or SIGTERM (what `stop` sends it), then stops the silos gracefully (SIGTERM,
 * SIGKILL after 10 s) and removes the state file. A silo that exits on its own (drained) is
 * taken out of the state file; when none is left, `start` ends.
 *
 * @since 0.2.0
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import * as Readline from "node:readline"
import { Effect } from "effect"
import { CommandFailed, NotFound } from "./Errors.ts"
import * as State from "./State.ts"

/** @since 0.2.0 */
export interface StartOptions {
  readonly cwd: string
  readonly silos: number
  readonly redis: string
  readonly cluster: string
  readonly script: string
  /** How long a silo may take to print `ready` (default 30 s). */
  readonly readyTimeoutMillis?: number | undefined
}

interface Running {
  readonly label: string
  readonly child: ChildProcess
  readonly ended: Promise<number | string>
  id?: string
  url?: string
}

const out = (line: string) => void process.stdout.write(`${line}\n`)
const err = (line: string) => void process.stderr.write(`${line}\n`)

const spawnSilo = (options: StartOptions, label: string): Running => {
  const child = spawn(process.execPath, [...process.execArgv, options.script], {
    cwd: options.cwd,
    stdio: ["ignore", "pipe", "pipe"],
    // Its own process group: Ctrl-C reaches this process only, which stops the silos once, in order.
    detached: true,
    env: {
      ...process.env,
      QUARK_REDIS_URL: options.redis,
      QUARK_CLUSTER: options.cluster,
      QUARK_ENDPOINTS_PORT: "0",
      QUARK_SILO: label
    }
  })
  // "close", not "exit": every line it wrote has been copied by then.
  const ended = new Promise<number | string>((resolve) => child.once("close", (code, signal) => resolve(signal ?? code ?? 0)))
  Readline.createInterface({ input: child.stderr! }).on("line", (line) => err(`[${label}] ${line}`))
  return { label, child, ended }
}

/** Resolves with `[id, url]` at the silo's `ready` line; rejects if it ends or says something else first. */
const whenReady = (silo: Running, timeoutMillis: number) =>
  new Promise<readonly [string, string]>((resolve, reject) => {
    let ready = false
    const timer = setTimeout(() => reject(new Error(`${silo.label} not ready after ${timeoutMillis / 1000} s`)), timeoutMillis)
    Readline.createInterface({ input: silo.child.stdout! }).on("line", (line) => {
      out(`[${silo.label}] ${line}`)
      if (ready) return
      const match = /^ready (\S+) (https?:\/\/\S+)$/.exec(line)
      if (match === null) return // output before `ready` is only copied
      ready = true
      clearTimeout(timer)
      resolve([match[1]!, match[2]!])
    })
    void silo.ended.then((how) => {
      clearTimeout(timer)
      reject(new Error(`${silo.label} ended (${how}) before it was ready`))
    })
  })

const stopAll = (silos: ReadonlyArray<Running>) =>
  Promise.all(silos.map((silo) => {
    if (silo.child.exitCode === null && silo.child.signalCode === null) {
      silo.child.kill("SIGTERM")
      const timer = setTimeout(() => silo.child.kill("SIGKILL"), 10_000)
      void silo.ended.then(() => clearTimeout(timer))
    }
    return silo.ended
  }))

/**
 * Runs the dev cluster until it is stopped; exit code 0 when stopped (or when every silo
 * ended on its own with 0).
 *
 * @since 0.2.0
 */
export const start = (options: StartOptions): Effect.Effect<number, CommandFailed | NotFound> =>
  Effect.gen(function*() {
    const running = yield* State.read(options.cwd)
    if (running !== undefined && State.isAlive(running.pid)) {
      return yield* new CommandFailed({
        message: `a dev cluster (${running.cluster}) already runs from here (pid ${running.pid}): \`quark cluster stop\` first`
      })
    }
    const script = path.resolve(options.cwd, options.script)
    if (!fs.existsSync(script)) {
      return yield* new NotFound({ message: `no silo program at ${options.script}: give --script, or run this in a project made by \`quark new\`` })
    }
    const spec = { ...options, script }
    return yield* Effect.tryPromise({
      try: () => supervise(spec),
      catch: (cause) => new CommandFailed({ message: (cause as Error).message })
    })
  })

const supervise = async (options: StartOptions): Promise<number> => {
  const silos = Array.from({ length: options.silos }, (_, i) => spawnSilo(options, `silo-${i + 1}`))
  // Also on a crash of this process: no silo outlives it.
  const killAll = () => silos.forEach((silo) => silo.child.kill("SIGKILL"))
  process.once("exit", killAll)
  let stopping: Promise<unknown> | undefined
  const stop = () => (stopping ??= stopAll(silos))
  const onSignal = () => void stop()
  process.once("SIGINT", onSignal)
  process.once("SIGTERM", onSignal)
  try {
    const timeout = options.readyTimeoutMillis ?? 30_000
    const started = await Promise.race([
      Promise.all(silos.map((silo) => whenReady(silo, timeout))),
      new Promise<never>((_, reject) => process.once("SIGINT", () => reject(new Error("interrupted while starting"))))
    ]).catch(async (error: Error) => {
      await stop()
      throw error
    })
    started.forEach(([id, url], i) => Object.assign(silos[i]!, { id, url }))
    const state = (): State.ClusterState => ({
      pid: process.pid,
      cluster: options.cluster,
      redis: options.redis,
      silos: silos.filter((silo) => silo.child.exitCode === null && silo.child.signalCode === null)
        .map((silo) => ({ label: silo.label, pid: silo.child.pid!, id: silo.id!, url: silo.url! }))
    })
    await Effect.runPromise(State.write(options.cwd, state()))
    out(`cluster ${options.cluster}: ${silos.length} silo${silos.length === 1 ? "" : "s"} ready (${State.stateFile(".")}); ` +
      "Ctrl-C or `quark cluster stop` stops them")
    const outcomes = await Promise.all(silos.map((silo) =>
      silo.ended.then(async (how) => {
        if (stopping === undefined) {
          out(`[${silo.label}] ended (${how})`)
          await Effect.runPromise(State.write(options.cwd, state()))
        }
        return how
      })
    ))
    if (stopping !== undefined) out(`cluster ${options.cluster}: stopped`)
    return stopping !== undefined || outcomes.every((how) => how === 0) ? 0 : 1
  } finally {
    process.off("SIGINT", onSignal)
    process.off("SIGTERM", onSignal)
    process.off("exit", killAll)
    await Effect.runPromise(State.remove(options.cwd))
  }
}

const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

/**
 * Stops the dev cluster started from `cwd`: SIGTERM to its `start` process (which stops
 * the silos) and to each silo, waits for them to exit (SIGKILL after `timeoutMillis`), and
 * removes the state file. `NotFound` when none runs from here. What was stopped.
 *
 * @since 0.2.0
 */
export const stop = (cwd: string, timeoutMillis = 20_000): Effect.Effect<State.ClusterState, NotFound> =>
  Effect.gen(function*() {
    const state = yield* State.read(cwd)
    if (state === undefined) return yield* new NotFound({ message: `no dev cluster runs from ${cwd} (no ${State.stateFile(".")})` })
    const pids = [state.pid, ...state.silos.map((silo) => silo.pid)]
    const signal = (pid: number, name: NodeJS.Signals) => {
      try {
        process.kill(pid, name)
      } catch {
        // gone already
      }
    }
    yield* Effect.promise(async () => {
      // Through `start` when it runs (a second SIGTERM could cut a silo's graceful stop short).
      const owner = State.isAlive(state.pid) ? [state.pid] : state.silos.map((silo) => silo.pid)
      owner.forEach((pid) => signal(pid, "SIGTERM"))
      const deadline = Date.now() + timeoutMillis
      while (pids.some(State.isAlive) && Date.now() < deadline) await sleep(100)
      pids.filter(State.isAlive).forEach((pid) => signal(pid, "SIGKILL"))
    })
    yield* State.remove(cwd)
    return state
  })

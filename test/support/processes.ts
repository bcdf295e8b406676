/**
 * What the tests that run silos as child processes share: the Node binary that runs them,
 * spawning one that speaks the silo line protocol, stopping it and waiting for its exit,
 * bounded polls, and the watchdog that kills what a killed test leaves behind.
 *
 * The protocol (see `test/cluster/process/siloProcess.ts`, the silos' side): stdout carries
 * one line per event, `ready <silo id>` and `members <id>,<id>,...` for every silo plus
 * lines of each test's own; logs go to stderr. A silo stops when its stdin closes, so it
 * never outlives the test process.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { Effect, type Scope } from "effect"

const repo = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "..")

/**
 * The children run TypeScript directly, which needs Node ≥ 22.18 (or ≥ 23.6). Vitest may
 * run on an older node (`node_modules/.bin/vitest` starts the machine's `node`): then the
 * `node` devDependency runs them.
 */
export const nodeBinary: string = (() => {
  const [major = 0, minor = 0] = process.versions.node.split(".").map(Number)
  if (major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18)) return process.execPath
  const bundled = Path.join(repo, "node_modules", "node", "bin", "node")
  if (!Fs.existsSync(bundled)) throw new Error(`node ${process.versions.node} cannot run TypeScript and ${bundled} is missing`)
  return bundled
})()

// ---------------------------------------------------------------------------------------
// A silo process
// ---------------------------------------------------------------------------------------

export interface ChildExit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  /** When the test saw it (`SpawnOptions.now`). */
  readonly at: number
}

/** A silo child process, as its protocol lines and its exit describe it. */
export interface SiloChild {
  readonly child: ChildProcess
  /** Its silo id, from its last `ready` line. */
  id: string | undefined
  /** Its ring, from its last `members` line. */
  members: ReadonlyArray<string> | undefined
  exit: ChildExit | undefined
  /** The last lines of its stderr (`SpawnOptions.stderrLines`), for failure messages. */
  readonly stderr: Array<string>
}

export interface SpawnOptions<S> {
  /** Added to this process's environment. */
  readonly env?: Readonly<Record<string, string>> | undefined
  /** How many stderr lines `stderr` keeps (default 40). */
  readonly stderrLines?: number | undefined
  /** A file that gets every stderr line, for a run whose logs are kept. */
  readonly stderrFile?: string | undefined
  /** The clock of `exit.at` (default `Date.now`). */
  readonly now?: (() => number) | undefined
  /** Every stdout line, once `id` and `members` are updated: the test's own lines. */
  readonly onLine?: ((line: string, silo: S) => void) | undefined
  /** After `exit` is set. */
  readonly onExit?: ((silo: S) => void) | undefined
}

/**
 * Starts `node <main> ...args` with piped stdio and follows its protocol. `fields` are the
 * test's own (an index, a label, state its `onLine` keeps): the answer is one object `S`,
 * so the test's handlers and the parsing here see the same one.
 */
export const spawnSiloChild = <S extends SiloChild = SiloChild>(
  main: string,
  args: ReadonlyArray<string>,
  fields: Omit<S, keyof SiloChild>,
  options: SpawnOptions<S> = {}
): S => {
  const child = spawn(nodeBinary, [main, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...options.env }
  })
  const base: SiloChild = { child, id: undefined, members: undefined, exit: undefined, stderr: [] }
  const silo = Object.assign(fields, base) as S
  Readline.createInterface({ input: child.stdout! }).on("line", (line) => {
    if (line.startsWith("ready ")) silo.id = line.slice(6)
    else if (line.startsWith("members ")) silo.members = line.slice(8).split(",").filter((id) => id !== "")
    options.onLine?.(line, silo)
  })
  const stderrLines = options.stderrLines ?? 40
  const stderrFile = options.stderrFile === undefined ? undefined : Fs.createWriteStream(options.stderrFile)
  Readline.createInterface({ input: child.stderr! }).on("line", (line) => {
    stderrFile?.write(`${line}\n`)
    silo.stderr.push(line)
    if (silo.stderr.length > stderrLines) silo.stderr.shift()
  })
  child.on("exit", (code, signal) => {
    silo.exit = { code, signal, at: (options.now ?? Date.now)() }
    stderrFile?.end()
    options.onExit?.(silo)
  })
  child.stdin!.on("error", () => {}) // writing to a dead child's stdin
  return silo
}

/**
 * For a failure's message: each silo's label, id and exit, then the last `lines` lines of
 * its stderr.
 */
export const siloLogs = <S extends SiloChild>(silos: ReadonlyArray<S>, label: (silo: S) => string, lines = 15): string =>
  silos.map((s) => `${label(s)} ${s.id ?? "(not ready)"} exit=${JSON.stringify(s.exit ?? null)}\n  ${s.stderr.slice(-lines).join("\n  ")}`)
    .join("\n")

const hasExited = (child: ChildProcess) => child.exitCode !== null || child.signalCode !== null

/**
 * Sends `signal` unless the child has exited, and completes once it has. `continueFirst`
 * sends SIGCONT before: a SIGTERM to a stopped process waits until it runs again.
 */
export const signalAndWait = (child: ChildProcess, signal: NodeJS.Signals, options: { readonly continueFirst?: boolean } = {}) =>
  Effect.callback<void>((resume) => {
    if (hasExited(child)) return resume(Effect.void)
    child.once("exit", () => resume(Effect.void))
    if (options.continueFirst === true) child.kill("SIGCONT")
    child.kill(signal)
  })

/** Waits for the child's exit, at most `millis`: whether it exited. */
export const exitWithin = (child: ChildProcess, millis: number) =>
  Effect.callback<boolean>((resume) => {
    if (hasExited(child)) return resume(Effect.succeed(true))
    const timer = setTimeout(() => resume(Effect.succeed(false)), millis)
    child.once("exit", () => {
      clearTimeout(timer)
      resume(Effect.succeed(true))
    })
  })

/** Closes the child's stdin (a silo then stops gracefully); SIGKILL if it has not exited within `graceMillis`. */
export const closeAndWait = (child: ChildProcess, graceMillis: number) =>
  Effect.gen(function*() {
    child.stdin!.end()
    if (!(yield* exitWithin(child, graceMillis))) {
      child.kill("SIGKILL")
      yield* exitWithin(child, graceMillis)
    }
  })

// ---------------------------------------------------------------------------------------
// Polls
// ---------------------------------------------------------------------------------------

export interface PollOptions {
  /** Between two polls, in ms (default 10). */
  readonly every?: number | undefined
  /** The clock (default `Date.now`; `nowMillis` for a test that logs on the monotonic one). */
  readonly now?: (() => number) | undefined
}

/**
 * Polls `condition` until it holds: the ms from the start to the poll that saw it; `null`
 * once a poll that started past `maxMillis` did not.
 */
export const pollUntil = <R>(maxMillis: number, condition: Effect.Effect<boolean, never, R>, options: PollOptions = {}) =>
  Effect.gen(function*() {
    const now = options.now ?? Date.now
    const start = now()
    while (true) {
      const at = now()
      if (yield* condition) return at - start
      if (at - start > maxMillis) return null
      yield* Effect.sleep(`${options.every ?? 10} millis`)
    }
  })

export interface WaitOptions extends PollOptions {
  /** Before each poll: why to give up at once (a silo that exited), or undefined. */
  readonly abort?: (() => string | undefined) | undefined
  /** Appended to a failure's message: the silos' state and logs. */
  readonly describe?: (() => string) | undefined
}

/**
 * {@link pollUntil}, dying with `what` (and `describe`) past `maxMillis` or when `abort`
 * says so: real processes need real time, so a test waits for a condition, never for a
 * fixed time.
 */
export const waitFor = <R>(what: string, maxMillis: number, condition: Effect.Effect<boolean, never, R>, options: WaitOptions = {}) =>
  Effect.gen(function*() {
    const details = () => (options.describe === undefined ? "" : `\n${options.describe()}`)
    const abort = options.abort
    const guarded = abort === undefined ? condition : Effect.suspend(() => {
      const reason = abort()
      return reason === undefined ? condition : Effect.die(new Error(`${what}: ${reason}${details()}`))
    })
    const took = yield* pollUntil(maxMillis, guarded, options)
    if (took === null) return yield* Effect.die(new Error(`${what}: not within ${maxMillis} ms${details()}`))
    return took
  })

// ---------------------------------------------------------------------------------------
// Around the children
// ---------------------------------------------------------------------------------------

/** Whether Linux says the process is stopped (`T` in /proc/<pid>/stat); `undefined` without /proc. */
export const isStopped = (pid: number): boolean | undefined => {
  try {
    const stat = Fs.readFileSync(`/proc/${pid}/stat`, "utf8")
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("T")
  } catch {
    return undefined
  }
}

/** A port free on every one of `hosts` (tried 20 times). */
export const freePort = (hosts: ReadonlyArray<string> = ["127.0.0.1"]): Effect.Effect<number> =>
  Effect.promise(async () => {
    for (let attempt = 0; attempt < 20; attempt++) {
      const port = await new Promise<number>((resolve, reject) => {
        const server = Net.createServer()
        server.once("error", reject)
        server.listen(0, hosts[0], () => {
          const port = (server.address() as Net.AddressInfo).port
          server.close(() => resolve(port))
        })
      })
      const free = await Promise.all(hosts.slice(1).map((host) =>
        new Promise<boolean>((resolve) => {
          const server = Net.createServer()
          server.once("error", () => resolve(false))
          server.listen(port, host, () => server.close(() => resolve(true)))
        })
      ))
      if (free.every(Boolean)) return port
    }
    throw new Error(`no port free on ${hosts.join(", ")}`)
  })

export interface Watchdog {
  /** Kill `pid` if this process goes away. */
  readonly watch: (pid: number | undefined) => void
  /** `pid` is gone: leave it alone. */
  readonly forget: (pid: number | undefined) => void
}

/**
 * For the life of the scope, a small process that SIGKILLs the pids it watches when this
 * process goes away, however it goes (its stdin closes then): a killed test leaves no silo
 * behind that it had stopped with SIGSTOP (a running silo stops by itself when its stdin
 * closes), nor a redis-server it started.
 */
export const startWatchdog: Effect.Effect<Watchdog, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(
    Effect.sync(() => {
      const script = `const pids = new Set()
let buf = ''
process.stdin.on('data', (d) => { buf += d; let i; while ((i = buf.indexOf('\\n')) >= 0) { const l = buf.slice(0, i); buf = buf.slice(i + 1); if (l.startsWith('-')) pids.delete(l.slice(1)); else pids.add(l) } })
process.stdin.on('close', () => { for (const p of pids) { try { process.kill(Number(p), 'SIGKILL') } catch {} } process.exit(0) })`
      const child = spawn(nodeBinary, ["-e", script], { stdio: ["pipe", "ignore", "ignore"] })
      child.stdin!.on("error", () => {})
      return child
    }),
    (child) => Effect.sync(() => child.stdin!.end())
  ),
  (child): Watchdog => ({
    watch: (pid) => void (pid !== undefined && child.stdin!.write(`${pid}\n`)),
    forget: (pid) => void (pid !== undefined && child.stdin!.write(`-${pid}\n`))
  })
)

/** Whether a Redis server answers PING on the port. */
export const pingRedis = (port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = Net.connect({ host: "127.0.0.1", port })
    let buffer = ""
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once("error", () => done(false))
    socket.once("connect", () => socket.write("PING\r\n"))
    socket.on("data", (data) => {
      buffer += data.toString()
      if (buffer.includes("\r\n")) done(buffer.startsWith("+PONG"))
    })
  })

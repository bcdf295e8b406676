/**
 * Child Node processes for the two-process benchmarks (servers, silos, runners).
 *
 * Parent side: `spawnPeer` starts a `.ts` script with this process's own Node binary (Node 24
 * strips the types), forwards the child's stderr (and any stdout line other than the ready
 * line) to our stderr, prefixed with its label, and resolves once the child prints
 * `ready <port>` or `ready {json}` (the JSON must hold a numeric `port`).
 *
 * Child side: `announceReady` prints that line; `onParentGone` runs a callback (by default
 * exit) when the parent goes away.
 *
 * A child never outlives the bench process: the parent holds the child's stdin open and the
 * child exits when it closes (which the OS does however the parent dies, kill -9 included);
 * besides, an 'exit' handler of the parent SIGKILLs every child still running.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"

export interface PeerOptions {
  /** The script to run: a path or a `file:` URL (e.g. `new URL("./x.ts", import.meta.url)`). */
  readonly script: string | URL
  readonly args?: ReadonlyArray<string>
  /** Added to (and overriding) this process's environment. */
  readonly env?: Readonly<Record<string, string>>
  /** Node options placed before the script (e.g. `["--expose-gc"]`). */
  readonly execArgv?: ReadonlyArray<string>
  /** How long to wait for the ready line; default 15 s. The child is killed on timeout. */
  readonly readyTimeoutMs?: number
  /** Prefix of the forwarded output lines; default the script's file name. */
  readonly label?: string
  /** Sees the stdout lines after the ready line first; those it returns true for are not forwarded. */
  readonly onLine?: (line: string) => boolean
}

export interface Peer {
  /** The port from the ready line. */
  readonly port: number
  /** The ready line's JSON object (`{ port }` for a plain `ready <port>`). */
  readonly info: Readonly<Record<string, unknown>>
  readonly pid: number
  /** Sends a signal (default SIGTERM); a no-op once the child has exited. */
  readonly kill: (signal?: NodeJS.Signals) => void
  /** The child's exit code, or null when a signal ended it. Never rejects. */
  readonly exited: Promise<number | null>
  /**
   * Ends the child and waits for its exit: closes its stdin (a graceful stop, see
   * `onParentGone`), then SIGTERM after `graceMs` (default 3 s), then SIGKILL.
   */
  readonly dispose: (graceMs?: number) => Promise<void>
}

const live = new Set<ChildProcess>()
let exitHookInstalled = false

const installExitHook = () => {
  if (exitHookInstalled) return
  exitHookInstalled = true
  process.on("exit", () => {
    for (const child of live) child.kill("SIGKILL")
  })
}

const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref())

export const spawnPeer = (options: PeerOptions): Promise<Peer> => {
  installExitHook()
  const script = typeof options.script === "string" ? options.script : fileURLToPath(options.script)
  const label = options.label ?? script.split("/").pop()!
  const child = spawn(process.execPath, [...(options.execArgv ?? []), script, ...(options.args ?? [])], {
    stdio: ["pipe", "pipe", "pipe"],
    env: { ...process.env, ...options.env }
  })
  live.add(child)
  let exitCode: number | null | undefined
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => {
      live.delete(child)
      exitCode = code
      resolve(code)
    })
    child.once("error", (err) => {
      process.stderr.write(`[${label}] spawn error: ${err.message}\n`)
      live.delete(child)
      exitCode = null
      resolve(null)
    })
  })
  child.stdin!.on("error", () => {}) // EPIPE once the child is gone
  Readline.createInterface({ input: child.stderr! }).on("line", (line) => process.stderr.write(`[${label}] ${line}\n`))

  const kill = (signal: NodeJS.Signals = "SIGTERM") => {
    if (exitCode === undefined) child.kill(signal)
  }
  const dispose = async (graceMs = 3000) => {
    if (exitCode !== undefined) return
    child.stdin!.end()
    if ((await Promise.race([exited.then(() => true), delay(graceMs).then(() => false)])) === false) {
      kill("SIGTERM")
      if ((await Promise.race([exited.then(() => true), delay(graceMs).then(() => false)])) === false) kill("SIGKILL")
    }
    await exited
  }

  return new Promise<Peer>((resolve, reject) => {
    let ready = false
    const timeoutMs = options.readyTimeoutMs ?? 15_000
    const timer = setTimeout(() => {
      if (ready) return
      ready = true
      kill("SIGKILL")
      reject(new Error(`${label}: no ready line within ${timeoutMs} ms`))
    }, timeoutMs)
    void exited.then((code) => {
      clearTimeout(timer)
      if (ready) return
      ready = true
      reject(new Error(`${label}: exited with ${code ?? "a signal"} before it was ready`))
    })
    Readline.createInterface({ input: child.stdout! }).on("line", (line) => {
      if (ready || !line.startsWith("ready ")) {
        if (ready && options.onLine?.(line) === true) return
        process.stderr.write(`[${label}] ${line}\n`)
        return
      }
      const rest = line.slice("ready ".length).trim()
      let info: Record<string, unknown>
      try {
        info = rest.startsWith("{") ? JSON.parse(rest) : { port: Number(rest) }
      } catch {
        info = {}
      }
      const port = info.port
      ready = true
      clearTimeout(timer)
      if (typeof port !== "number" || !Number.isInteger(port) || port <= 0) {
        kill("SIGKILL")
        reject(new Error(`${label}: bad ready line ${JSON.stringify(line)}`))
        return
      }
      resolve({ port, info, pid: child.pid!, kill, exited, dispose })
    })
  })
}

// ---------------------------------------------------------------------------------------
// child side

/** Prints the ready line the parent waits for: `ready <port>`, or `ready {json}` with a `port`. */
export const announceReady = (info: number | { readonly port: number; readonly [key: string]: unknown }): void => {
  process.stdout.write(typeof info === "number" ? `ready ${info}\n` : `ready ${JSON.stringify(info)}\n`)
}

/**
 * Runs `stop` when the parent closes our stdin (its `dispose`) or dies, and on SIGTERM /
 * SIGINT; exits once it settles (at the latest after `timeoutMs`, default 5 s). Keeps the
 * event loop alive while stdin is open.
 */
export const onParentGone = (stop: () => unknown = () => {}, timeoutMs = 5000): void => {
  let stopping = false
  const run = () => {
    if (stopping) return
    stopping = true
    setTimeout(() => process.exit(1), timeoutMs).unref()
    Promise.resolve()
      .then(stop)
      .then(
        () => process.exit(0),
        (err) => {
          process.stderr.write(`stop failed: ${String(err)}\n`)
          process.exit(1)
        }
      )
  }
  process.stdin.on("end", run)
  process.stdin.on("close", run)
  process.stdin.on("error", run)
  process.stdin.resume()
  process.once("SIGTERM", run)
  process.once("SIGINT", run)
}

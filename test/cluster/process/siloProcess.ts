/**
 * What the silo processes of the multi-process tests share (the mains in this folder,
 * `test/fixtures/tracedSiloMain.ts`, `test/chaos/siloMain.ts`; the test's side is
 * `test/support/processes.ts`).
 *
 * Each is a child of a test and speaks a line protocol on stdout (`write`): `ready <silo id>`
 * once it serves, `members <id>,<id>,...` whenever its ring changes (`reportMembers`), plus
 * lines of its own. Logs go to stderr (`runSilo`), so stdout carries the protocol only. It
 * never outlives the test: it stops when its stdin closes (`stdinClosed`, or
 * `stopRequests` for one that SIGTERM stops too), and a stop that hangs exits 4.
 *
 * Importing this module does nothing: `migrationSiloMain.ts` is imported by its test too.
 */
import * as Readline from "node:readline"
import { type Duration, Effect, Logger, type Scope } from "effect"
import type { Redis } from "ioredis"
import type { ClusterShape } from "../../../src/Cluster/index.ts"
import { connect } from "../../../src/Persistence/RedisConnection.ts"

/** Says how to call the main and exits 2. */
export function usage(text: string): never {
  process.stderr.write(`usage: ${text}\n`)
  process.exit(2)
}

/** The `--name value` pairs of the command line, by name (without the dashes). */
export const flagArguments = (): ReadonlyMap<string, string> => {
  const args = new Map<string, string>()
  const argv = process.argv.slice(2)
  for (let i = 0; i + 1 < argv.length; i += 2) args.set(argv[i]!.replace(/^--/, ""), argv[i + 1]!)
  return args
}

/** One protocol line on stdout. */
export const write = (line: string): Effect.Effect<void> => Effect.sync(() => void process.stdout.write(`${line}\n`))

/**
 * Completes when stdin closes (the test process ended it, or died), passing `onLine` the
 * lines that came before (the test's commands).
 */
export const stdinClosed = (onLine: (line: string) => void = () => {}): Effect.Effect<void> =>
  Effect.callback<void>((resume) => {
    const done = () => {
      // A graceful shutdown that hangs must not keep the process alive.
      setTimeout(() => process.exit(4), 5_000).unref()
      resume(Effect.void)
    }
    const lines = Readline.createInterface({ input: process.stdin })
    lines.on("line", onLine)
    lines.once("close", done)
    process.stdin.once("close", done)
  })

export type StopReason = "SIGTERM" | "stdin closed"

/**
 * For a silo that SIGTERM stops too: listens for SIGTERM and reads stdin from now on
 * (passing `onLine` its lines), and answers an effect that completes with the first reason
 * to stop, at once if there already is one. Call it first thing: a SIGTERM before the silo's
 * scope exists must not kill the process the default way. The silo then calls
 * {@link exitIfStopHangs}.
 */
export const stopRequests = (onLine: (line: string) => void = () => {}): Effect.Effect<StopReason> => {
  let terminated = false
  let closed = false
  let stop: ((reason: StopReason) => void) | undefined
  process.on("SIGTERM", () => {
    terminated = true
    stop?.("SIGTERM")
  })
  const onClose = () => {
    closed = true
    stop?.("stdin closed")
  }
  const lines = Readline.createInterface({ input: process.stdin })
  lines.on("line", onLine)
  lines.once("close", onClose)
  process.stdin.once("close", onClose)
  return Effect.callback<StopReason>((resume) => {
    if (terminated) return resume(Effect.succeed("SIGTERM"))
    if (closed) return resume(Effect.succeed("stdin closed"))
    stop = (reason) => resume(Effect.succeed(reason))
  })
}

/** A graceful stop that hangs must not keep the process alive: exits 4 after `millis`. */
export const exitIfStopHangs = (millis: number): void => {
  setTimeout(() => {
    process.stderr.write(`graceful stop took over ${millis / 1000} s: exiting 4\n`)
    process.exit(4)
  }, millis).unref()
}

/**
 * Prints the ring whenever it changes (`members ...`), checking every `every`. With
 * `onIdChange`, also calls it whenever the silo's own id changes (declared dead, it joined
 * again as a new generation), before the ring of that round.
 */
export const reportMembers = (
  cluster: ClusterShape,
  options: {
    readonly every?: Duration.Input | undefined
    readonly onIdChange?: ((previous: string | undefined, id: string | undefined) => Effect.Effect<void>) | undefined
  } = {}
) =>
  Effect.gen(function*() {
    let lastId = cluster.self?.id
    let last = ""
    while (true) {
      if (options.onIdChange !== undefined) {
        const id = cluster.self?.id
        if (id !== lastId) {
          const previous = lastId
          lastId = id
          yield* options.onIdChange(previous, id)
        }
      }
      const members = (yield* cluster.members).join(",")
      if (members !== last) {
        last = members
        yield* write(`members ${members}`)
      }
      yield* Effect.sleep(options.every ?? "20 millis")
    }
  })

/**
 * A Redis connection of the silo's own (beside the library's), for the test's records:
 * retried like the library's; `what` names it in the error.
 */
export const connectRedis = (url: string, connectionName: string, what: string): Effect.Effect<Redis, Error, Scope.Scope> =>
  connect<Redis, Error>(
    url,
    { connectionName, retry: { stepMillis: 50, capMillis: 500 } },
    (reason) => new Error(`${what} at ${url}: ${reason}`)
  )

/**
 * Runs the silo's main with its logs on stderr, then exits: 1 if it failed (the cause on
 * stderr), else 0 after `onStopped`.
 */
export const runSilo = <E>(main: Effect.Effect<void, E>, onStopped: () => void = () => {}): void => {
  Effect.runPromiseExit(Effect.provideService(main, Logger.LogToStderr, true)).then((exit) => {
    if (exit._tag === "Failure") {
      process.stderr.write(`silo failed: ${String(exit.cause)}\n`)
      process.exit(1)
    }
    onStopped()
    process.exit(0)
  })
}

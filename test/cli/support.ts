/**
 * Running the `quark` CLI in tests: in process (`runCli`: the command line of `Main`, its
 * output captured, its exit code answered), or as the executable it is (`runBin`: Node
 * running src/Cli/bin.ts in a child process, as the package's bin runs dist/Cli/bin.js).
 */
import { NodeServices } from "@effect/platform-node"
import { Console, Effect } from "effect"
import { spawn } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { run } from "../../src/Cli/Main.ts"

export const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
export const bin = path.join(repo, "src", "Cli", "bin.ts")

export interface CliResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

/** The CLI in this process, its Console captured. */
export const runCli = (...args: ReadonlyArray<string>): Effect.Effect<CliResult> =>
  Effect.gen(function*() {
    const out: Array<string> = []
    const err: Array<string> = []
    const console: Console.Console = {
      ...globalThis.console,
      log: (...xs: ReadonlyArray<unknown>) => void out.push(xs.map(String).join(" ")),
      error: (...xs: ReadonlyArray<unknown>) => void err.push(xs.map(String).join(" "))
    }
    const code = yield* run(args, "test").pipe(Effect.provideService(Console.Console, console), Effect.provide(NodeServices.layer))
    return { code, stdout: out.join("\n"), stderr: err.join("\n") }
  })

/** The CLI as a process (this Node, so TypeScript runs as is), in `cwd`. */
export const runBin = (
  args: ReadonlyArray<string>,
  options: { readonly cwd?: string; readonly env?: Record<string, string> } = {}
): Promise<CliResult> =>
  new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd: options.cwd ?? repo,
      env: { ...process.env, NODE_NO_WARNINGS: "1", ...options.env },
      stdio: ["ignore", "pipe", "pipe"]
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => void (stdout += chunk))
    child.stderr.on("data", (chunk) => void (stderr += chunk))
    child.once("error", reject)
    child.once("close", (code) => resolve({ code: code ?? -1, stdout, stderr }))
  })

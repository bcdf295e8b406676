#!/usr/bin/env node
/**
 * The `quark` executable (the package's `bin`, built to `dist/Cli/bin.js`): runs the
 * command line of `Main` with Node's services and exits with its code.
 *
 * @since 0.2.0
 */
import { createRequire } from "node:module"
import { NodeServices } from "@effect/platform-node"
import { Effect } from "effect"
import { run } from "./Main.ts"

const version: string = (() => {
  try {
    return (createRequire(import.meta.url)("../../package.json") as { readonly version: string }).version
  } catch {
    return "unknown"
  }
})()

Effect.runPromise(run(process.argv.slice(2), version).pipe(Effect.provide(NodeServices.layer))).then(
  (code) => void (process.exitCode = code),
  (error: unknown) => {
    process.stderr.write(`quark: ${String(error)}\n`)
    process.exitCode = 1
  }
)

/**
 * The local benchmarks of this checkout against those of an earlier commit, in one process,
 * rounds interleaved: what a change did to the code path it left alone (for example, that a
 * silo without telemetry runs as fast as before telemetry existed).
 *
 *   node --expose-gc bench/against.ts <commit> [--ops=1000000]
 *
 * The commit is checked out in a temporary git worktree (sharing this checkout's
 * node_modules), its `bench/local.ts` imported beside ours; both run `local.ask.sequential`,
 * `local.ask.concurrent` and `local.tell`, and the ratios are ours over theirs. The worktree
 * is removed at the end.
 */
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath, pathToFileURL } from "node:url"
import { printResults, runInterleaved, type Variant } from "./Harness.ts"
import * as Ours from "./local.ts"

type Disposable = Variant & { readonly dispose: () => Promise<void> }
type LocalBench = {
  readonly askSequential: (ops: number) => Promise<Disposable>
  readonly askConcurrent: (ops: number) => Promise<Disposable>
  readonly tell: (ops: number) => Promise<Disposable>
}

const commit = process.argv.slice(2).find((arg) => !arg.startsWith("--"))
if (commit === undefined) {
  console.error("usage: node --expose-gc bench/against.ts <commit> [--ops=1000000]")
  process.exit(2)
}
const opsArg = process.argv.find((arg) => arg.startsWith("--ops="))
const ops = opsArg === undefined ? 1_000_000 : Number(opsArg.slice("--ops=".length))

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const tree = fs.mkdtempSync(path.join(os.tmpdir(), "quark-against-"))
execFileSync("git", ["-C", repo, "worktree", "add", "--detach", tree, commit], { stdio: "ignore" })
try {
  fs.symlinkSync(path.join(repo, "node_modules"), path.join(tree, "node_modules"))
  const theirs = (await import(pathToFileURL(path.join(tree, "bench", "local.ts")).href)) as LocalBench
  const renamed = (variant: Disposable): Disposable => ({ ...variant, id: `${commit}:${variant.id}` })
  const variants: Array<Disposable> = [
    renamed(await theirs.askSequential(ops)),
    await Ours.askSequential(ops),
    renamed(await theirs.askConcurrent(ops / 5)),
    await Ours.askConcurrent(ops / 5),
    renamed(await theirs.tell(ops * 2)),
    await Ours.tell(ops * 2)
  ]
  const results = await runInterleaved(variants, { rounds: 7, warmup: 3 })
  printResults(results, {
    json: process.argv.includes("--json"),
    ratios: ["local.ask.sequential", "local.ask.concurrent", "local.tell"].map((id) => [id, `${commit}:${id}`] as const)
  })
  for (const variant of variants) await variant.dispose()
} finally {
  execFileSync("git", ["-C", repo, "worktree", "remove", "--force", tree], { stdio: "ignore" })
}

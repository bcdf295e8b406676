/**
 * The docs cannot drift: every TypeScript block in README.md and docs/ is compiled, every
 * program among them is run, every test among them passes, every `npm run` names a script
 * that exists, and every relative link points at a file that exists.
 *
 * How a block is treated is written in its info string (see `fixtures/MarkdownBlocks.ts`):
 * ```` ```ts ```` compiles, ```` ```ts run ```` also runs (and matches a ```` ```text output ````
 * block after it), ```` ```ts test ```` also runs with vitest, and ```` ```ts no-run ```` is a
 * program that cannot end on its own (a silo that serves until SIGTERM): compiled only.
 *
 * Each block is written to `.docs-check/` at the repository root (inside the package, so
 * `import … from "quark"` resolves to src/ through the `quark-source` condition, as in
 * examples/), and all are compiled in one `tsc` run with the repository's options.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import {
  type CodeBlock,
  codeBlocks,
  expectedOutput,
  isTypeScript,
  looksLikeProgram,
  npmScripts,
  relativeLinks
} from "./fixtures/MarkdownBlocks.ts"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
// QUARK_DOCS=docs/cluster.md checks one file (in a directory of its own, so several such runs
// can go on at once while a page is written).
const only = process.env["QUARK_DOCS"]
const outDir = path.join(repo, only === undefined ? ".docs-check" : `.docs-check-${only.replace(/[^\w]/g, "_")}`)

const markdownFiles = (): Array<string> => {
  if (only !== undefined) return [only]
  const docs = path.join(repo, "docs")
  const found = ["README.md"]
  const walk = (dir: string): void => {
    for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
      const full = path.join(dir, entry.name)
      if (entry.isDirectory()) walk(full)
      else if (entry.name.endsWith(".md")) found.push(path.relative(repo, full))
    }
  }
  if (fs.existsSync(docs)) walk(docs)
  return found.sort()
}

interface ExtractedBlock {
  readonly source: string
  readonly block: CodeBlock
  readonly index: number
  /** Path of the written file, relative to the repository. */
  readonly file: string
  readonly output: string | undefined
}

const extract = (): Array<ExtractedBlock> => {
  fs.rmSync(outDir, { recursive: true, force: true })
  fs.mkdirSync(outDir, { recursive: true })
  const extracted: Array<ExtractedBlock> = []
  for (const source of markdownFiles()) {
    const blocks = codeBlocks(fs.readFileSync(path.join(repo, source), "utf8"))
    blocks.forEach((block, index) => {
      if (!isTypeScript(block)) return
      const stem = source.replace(/\.md$/, "").replace(/[/\\]/g, "_")
      const name = `${stem}_L${block.line}${block.meta.includes("test") ? ".test" : ""}.ts`
      fs.writeFileSync(path.join(outDir, name), block.code)
      extracted.push({ source, block, index, file: path.join(path.basename(outDir), name), output: expectedOutput(blocks, index) })
    })
  }
  fs.writeFileSync(
    path.join(outDir, "tsconfig.json"),
    JSON.stringify({
      extends: "../tsconfig.json",
      // A snippet may define what it does not use (a contract shown beside its caller).
      compilerOptions: { noUnusedLocals: false, noUnusedParameters: false },
      include: ["./*.ts"]
    }, null, 2)
  )
  fs.writeFileSync(
    path.join(outDir, "vitest.config.ts"),
    [
      `import { defineConfig } from "vitest/config"`,
      `export default defineConfig({`,
      `  resolve: { conditions: ["quark-source"] },`,
      `  ssr: { resolve: { conditions: ["quark-source"] } },`,
      `  test: { root: ${JSON.stringify(outDir)}, include: ["*.test.ts"], testTimeout: 30_000 }`,
      `})`,
      ``
    ].join("\n")
  )
  return extracted
}

const where = (b: ExtractedBlock): string => `${b.source}:${b.block.line}`

const node = process.execPath
const env: NodeJS.ProcessEnv = { ...process.env, NODE_NO_WARNINGS: "1" }
// Vitest colours its output whenever FORCE_COLOR is set, whatever its value.
const plainEnv: NodeJS.ProcessEnv = { ...env, NO_COLOR: "1" }
delete plainEnv["FORCE_COLOR"]

describe("docs", () => {
  const blocks = extract()

  it("has TypeScript blocks in README.md and in docs/", () => {
    if (only !== undefined) return assert.isAtLeast(blocks.length, 1, `${only} has a TypeScript block`)
    assert.isAtLeast(blocks.filter((b) => b.source === "README.md").length, 1)
    assert.isAtLeast(blocks.filter((b) => b.source.startsWith("docs/")).length, 1)
  })

  it("marks every program: a block that starts itself is `run` (or `no-run`)", () => {
    const unmarked = blocks.filter((b) =>
      looksLikeProgram(b.block.code) && !["run", "no-run", "test"].some((m) => b.block.meta.includes(m))
    )
    assert.deepStrictEqual(unmarked.map(where), [], "mark these ```ts run (or ```ts no-run when it serves forever)")
    const misplaced = blocks.filter((b) => b.output !== undefined && !b.block.meta.includes("run"))
    assert.deepStrictEqual(misplaced.map(where), [], "a ```text output block follows only a ```ts run block")
  })

  it("every TypeScript block compiles", () => {
    const tsc = path.join(repo, "node_modules", "typescript", "bin", "tsc")
    const result = spawnSync(node, [tsc, "-p", path.join(outDir, "tsconfig.json"), "--pretty", "false"], {
      cwd: repo,
      encoding: "utf8",
      env
    })
    // Point each error at the Markdown line it comes from.
    const byFile = new Map(blocks.map((b) => [b.file, b]))
    const errors = (result.stdout + result.stderr).split("\n").filter((l) => l.trim() !== "").map((line) => {
      const m = /^(\.docs-check[^/]*\/[^(]+)\((\d+),(\d+)\): (.*)$/.exec(line)
      const b = m === null ? undefined : byFile.get(m[1]!)
      return b === undefined ? line : `${b.source}:${b.block.line + Number(m![2]) - 1}: ${m![4]}`
    })
    assert.deepStrictEqual(errors, [], `docs code does not compile:\n${errors.join("\n")}\n`)
    assert.strictEqual(result.status, 0)
  }, 120_000)

  const programs = blocks.filter((b) => b.block.meta.includes("run"))
  for (const program of programs) {
    it(`runs the program at ${where(program)}`, () => {
      const result = spawnSync(node, ["--conditions=quark-source", program.file], {
        cwd: repo,
        encoding: "utf8",
        env,
        timeout: 60_000
      })
      assert.strictEqual(
        result.status,
        0,
        `${where(program)} exited with ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`
      )
      if (program.output !== undefined) assert.strictEqual(result.stdout.trim(), program.output.trim())
    }, 70_000)
  }

  const tests = blocks.filter((b) => b.block.meta.includes("test"))
  if (tests.length > 0) {
    it(`passes the tests in ${[...new Set(tests.map((t) => t.source))].join(", ")}`, () => {
      const vitest = path.join(repo, "node_modules", "vitest", "vitest.mjs")
      const result = spawnSync(
        node,
        ["--conditions=quark-source", vitest, "run", "--config", path.join(outDir, "vitest.config.ts")],
        { cwd: repo, encoding: "utf8", env: plainEnv, timeout: 120_000 }
      )
      assert.strictEqual(result.status, 0, `docs tests failed:\n${result.stdout}\n${result.stderr}`)
      // Every test file ran and passed, none was skipped.
      const files = /Test Files\s+(.*)/.exec(result.stdout)?.[1] ?? ""
      assert.strictEqual(files.trim().replace(/\s*\(.*$/, ""), `${tests.length} passed`, result.stdout)
      assert.notMatch(/Tests\s+(.*)/.exec(result.stdout)?.[1] ?? "skipped", /failed|skipped|todo/, result.stdout)
    }, 150_000)
  }

  it("every `npm run` in a shell block names a script of package.json", () => {
    const scripts = (JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
      readonly scripts: Record<string, string>
    }).scripts
    const missing: Array<string> = []
    let used = 0
    for (const source of markdownFiles()) {
      for (const block of codeBlocks(fs.readFileSync(path.join(repo, source), "utf8"))) {
        if (!["sh", "bash", "shell", "console"].includes(block.language)) continue
        for (const name of npmScripts(block.code)) {
          used++
          if (!Object.hasOwn(scripts, name)) missing.push(`${source}:${block.line}: npm run ${name}`)
        }
      }
    }
    if (only === undefined) assert.isAtLeast(used, 1)
    assert.deepStrictEqual(missing, [])
  })

  it("every relative link points at a file that exists", () => {
    const broken: Array<string> = []
    for (const source of markdownFiles()) {
      for (const target of relativeLinks(fs.readFileSync(path.join(repo, source), "utf8"))) {
        if (target === "") continue
        if (!fs.existsSync(path.resolve(repo, path.dirname(source), decodeURIComponent(target)))) {
          broken.push(`${source}: ${target}`)
        }
      }
    }
    assert.deepStrictEqual(broken, [])
  })
})


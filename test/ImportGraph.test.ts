/**
 * The run-time import graph of src/: what Node loads when a module is imported.
 *
 * Every .ts file under src/ is read and its static `import … from`, `export … from` and
 * side-effect `import "…"` statements are parsed (comments are stripped first, so an
 * import in a doc comment is not one). Type-only imports are left out: `import type …`,
 * `import type * as …` and `export type … from`. Only relative specifiers are followed
 * (packages are not part of the graph).
 *
 * One rule is stricter than /work/shared/hooks/runtime-cycles.mjs (every edge that script
 * counts is an edge here too): an import whose every named specifier is `type X`
 * (`import { type A } from "./a.ts"`, or `import {} from`) counts as a run-time import,
 * because it is one. Measured with Node 24's type stripping, which runs this repo (and what
 * `verbatimModuleSyntax` asks of tsc): it becomes `import {} from "./a.ts"`, and `a.ts` is
 * evaluated; only `import type { A }` is erased. Messages mark such imports; the fix is to
 * write them `import type`. (src/ has none today, so both rules give the same graph.)
 *
 * Checks:
 * - no run-time import cycle among the modules of src/ (each cycle found is listed);
 * - the contract module `src/Actor/Actor.ts` loads no runtime: its run-time closure holds
 *   only the contract modules (`Actor`, `ActorRef`, `ActorSchema`, `ActorError`,
 *   `ActorAddress`), the leaves `Actor/internal/SiloTag.ts`, `Actor/internal/RefClass.ts` and
 *   `Actor/internal/SystemContract.ts` (the `Silo` tag, the ref class builder, a symbol: no
 *   runtime behind any) and `Supervision/*`; anything
 *   else is reported with the chain of imports that reaches it.
 *
 * Each check is also run on a synthetic graph that breaks it, so it is known to fail.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")
const srcRoot = path.join(repo, "src")

// ---------------------------------------------------------------------------------------
// Parsing
// ---------------------------------------------------------------------------------------

/**
 * How an import statement binds: `"type"` is erased; `"runtime"` and `"inline-type"` (only
 * `type X` specifiers, or none: Node still loads the module) are loaded at run time.
 */
type ImportKind = "runtime" | "type" | "inline-type"

interface ImportStatement {
  readonly specifier: string
  readonly kind: ImportKind
}

/**
 * The source with comments replaced by spaces (line breaks kept), strings and template
 * literals left as they are. A `'` or `"` string ends at the end of its line at the latest,
 * so a quote inside a regex literal cannot mislead the scan past that line.
 */
export const stripComments = (source: string): string => {
  let out = ""
  let i = 0
  const n = source.length
  while (i < n) {
    const c = source[i]!
    const next = source[i + 1]
    if (c === "/" && next === "/") {
      while (i < n && source[i] !== "\n") {
        out += " "
        i++
      }
    } else if (c === "/" && next === "*") {
      out += "  "
      i += 2
      while (i < n && !(source[i] === "*" && source[i + 1] === "/")) {
        out += source[i] === "\n" ? "\n" : " "
        i++
      }
      if (i < n) {
        out += "  "
        i += 2
      }
    } else if (c === "\"" || c === "'" || c === "`") {
      // Strings (template literals without nested templates in `${}`, enough for import scanning).
      out += c
      i++
      while (i < n && source[i] !== c && (c === "`" || source[i] !== "\n")) {
        if (source[i] === "\\") {
          out += source[i]!
          i++
        }
        if (i < n) out += source[i]!
        i++
      }
      if (i < n && source[i] === c) {
        out += c
        i++
      }
    } else {
      out += c
      i++
    }
  }
  return out
}

const ident = String.raw`[A-Za-z_$][\w$]*`
// The clause between `import`/`export` and `from`: a default, a namespace, named bindings,
// or a default with one of the other two; `export *` and `export * as X` too.
const clause = String.raw`(?:${ident}\s*,\s*(?:\{[^}]*\}|\*\s*as\s+${ident})|\{[^}]*\}|\*(?:\s*as\s+${ident})?|${ident})`
const fromStatement = new RegExp(
  String.raw`(?:^|[;\n}])\s*(?:import|export)\s+(type\s+)?(${clause})\s*from\s*(["'])([^"'\n]+)\3`,
  "g"
)
const sideEffectStatement = /(?:^|[;\n}])\s*import\s*(["'])([^"'\n]+)\1/g

/** The import and export-from statements of a module's source. */
export const parseImports = (source: string): Array<ImportStatement> => {
  const code = stripComments(source)
  const found: Array<{ readonly at: number; readonly statement: ImportStatement }> = []
  for (const m of code.matchAll(fromStatement)) {
    const typeKeyword = m[1] !== undefined
    const bindings = m[2]!.trim()
    const specifier = m[4]!
    // (`import type from "x"`, a default binding named `type`, matches without the keyword.)
    let kind: ImportKind
    if (typeKeyword) kind = "type"
    else {
      const braces = /^\{([^}]*)\}$/.exec(bindings)
      const names = braces === null ? undefined : braces[1]!.split(",").map((s) => s.trim()).filter((s) => s !== "")
      // `{}` and `{ type A, type B }`: no binding, but the module is still loaded.
      kind = names !== undefined && names.every((name) => /^type\s/.test(name)) ? "inline-type" : "runtime"
    }
    found.push({ at: m.index!, statement: { specifier, kind } })
  }
  for (const m of code.matchAll(sideEffectStatement)) {
    found.push({ at: m.index!, statement: { specifier: m[2]!, kind: "runtime" } })
  }
  return found.sort((a, b) => a.at - b.at).map((f) => f.statement)
}

// ---------------------------------------------------------------------------------------
// The graph
// ---------------------------------------------------------------------------------------

/** Module → the modules it loads at run time (paths relative to src/, with `/`). */
type Graph = ReadonlyMap<string, ReadonlyArray<string>>

const listTs = (dir: string): Array<string> =>
  fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name)
    if (entry.isDirectory()) return listTs(full)
    return entry.name.endsWith(".ts") ? [full] : []
  })

const relative = (file: string): string => path.relative(srcRoot, file).split(path.sep).join("/")

const resolve = (from: string, specifier: string): string => {
  const target = path.resolve(path.dirname(from), specifier)
  if (target.endsWith(".ts")) return target
  if (fs.existsSync(`${target}.ts`)) return `${target}.ts`
  return path.join(target, "index.ts")
}

interface SourceGraph {
  readonly runtime: Graph
  /** The edges `from -> to` that come only from `import { type A }`-style imports. */
  readonly inlineTypeEdges: ReadonlySet<string>
  readonly files: ReadonlyArray<string>
  /** The packages (bare specifiers, `node:` builtins included) each module loads at run time. */
  readonly packages: ReadonlyMap<string, ReadonlySet<string>>
}

const edgeKey = (from: string, to: string): string => `${from} -> ${to}`

const buildGraph = (): SourceGraph => {
  const files = listTs(srcRoot).sort()
  const runtime = new Map<string, Array<string>>()
  const inline = new Set<string>()
  const loaded = new Set<string>()
  const packages = new Map<string, Set<string>>()
  for (const file of files) {
    const from = relative(file)
    const edges: Array<string> = []
    const used = new Set<string>()
    packages.set(from, used)
    for (const statement of parseImports(fs.readFileSync(file, "utf8"))) {
      if (statement.kind === "type") continue
      if (!statement.specifier.startsWith(".")) {
        used.add(packageName(statement.specifier))
        continue
      }
      const target = relative(resolve(file, statement.specifier))
      if (!edges.includes(target)) edges.push(target)
      ;(statement.kind === "inline-type" ? inline : loaded).add(edgeKey(from, target))
    }
    runtime.set(from, edges)
  }
  const inlineTypeEdges = new Set([...inline].filter((edge) => !loaded.has(edge)))
  return { runtime, inlineTypeEdges, files: files.map(relative), packages }
}

/** `effect/rpc` → `effect`, `@effect/sql-pg/PgClient` → `@effect/sql-pg`, `node:net` stays. */
const packageName = (specifier: string): string => {
  const parts = specifier.split("/")
  return specifier.startsWith("@") ? parts.slice(0, 2).join("/") : parts[0]!
}

/** Every package loaded by `root`'s run-time closure, each with a chain that loads it. */
export const packagesInClosure = (
  graph: Graph,
  packages: ReadonlyMap<string, ReadonlySet<string>>,
  root: string
): Map<string, ReadonlyArray<string>> => {
  const parent = new Map<string, string | undefined>([[root, undefined]])
  const queue = [root]
  const found = new Map<string, ReadonlyArray<string>>()
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q]!
    for (const name of packages.get(v) ?? []) {
      if (found.has(name)) continue
      const chain = [v]
      while (parent.get(chain[0]!) !== undefined) chain.unshift(parent.get(chain[0]!)!)
      found.set(name, chain)
    }
    for (const w of graph.get(v) ?? []) {
      if (parent.has(w)) continue
      parent.set(w, v)
      queue.push(w)
    }
  }
  return found
}

/**
 * The cycles of a graph: for every strongly connected component with more than one module
 * (or a module importing itself), the shortest cycle through each of its modules, without
 * repeats. Every module on a cycle is on at least one listed cycle.
 */
export const findCycles = (graph: Graph): Array<ReadonlyArray<string>> => {
  // Tarjan's strongly connected components (iterative enough for a source tree: recursion depth ≤ modules).
  let index = 0
  const indices = new Map<string, number>()
  const low = new Map<string, number>()
  const onStack = new Set<string>()
  const stack: Array<string> = []
  const components: Array<Array<string>> = []
  const connect = (v: string): void => {
    indices.set(v, index)
    low.set(v, index)
    index++
    stack.push(v)
    onStack.add(v)
    for (const w of graph.get(v) ?? []) {
      if (!indices.has(w)) {
        if (!graph.has(w)) continue
        connect(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, indices.get(w)!))
      }
    }
    if (low.get(v) === indices.get(v)) {
      const component: Array<string> = []
      let w: string
      do {
        w = stack.pop()!
        onStack.delete(w)
        component.push(w)
      } while (w !== v)
      components.push(component)
    }
  }
  for (const v of [...graph.keys()].sort()) if (!indices.has(v)) connect(v)

  const cycles: Array<ReadonlyArray<string>> = []
  const seen = new Set<string>()
  for (const component of components) {
    const members = new Set(component)
    const selfLoop = component.length === 1 && (graph.get(component[0]!) ?? []).includes(component[0]!)
    if (component.length < 2 && !selfLoop) continue
    for (const start of [...component].sort()) {
      // Shortest path start → … → start inside the component (breadth first).
      const parent = new Map<string, string>()
      const queue = [start]
      let closing: string | undefined
      search: for (let q = 0; q < queue.length; q++) {
        const v = queue[q]!
        for (const w of graph.get(v) ?? []) {
          if (!members.has(w)) continue
          if (w === start) {
            closing = v
            break search
          }
          if (!parent.has(w)) {
            parent.set(w, v)
            queue.push(w)
          }
        }
      }
      if (closing === undefined) continue
      const cycle = [closing]
      while (cycle[0] !== start) cycle.unshift(parent.get(cycle[0]!)!)
      // The same cycle found from another of its modules: keep it once (smallest rotation).
      const rotations = cycle.map((_, i) => [...cycle.slice(i), ...cycle.slice(0, i)].join(" -> "))
      const key = rotations.sort()[0]!
      if (seen.has(key)) continue
      seen.add(key)
      cycles.push([...cycle, start])
    }
  }
  return cycles
}

/**
 * The modules reachable from `root` that `allowed` refuses, each with the chain of imports
 * (shortest, from `root`) that loads it.
 */
export const forbiddenInClosure = (
  graph: Graph,
  root: string,
  allowed: (module: string) => boolean
): Array<ReadonlyArray<string>> => {
  const parent = new Map<string, string | undefined>([[root, undefined]])
  const queue = [root]
  const offenders: Array<ReadonlyArray<string>> = []
  for (let q = 0; q < queue.length; q++) {
    const v = queue[q]!
    if (!allowed(v)) {
      const chain = [v]
      while (parent.get(chain[0]!) !== undefined) chain.unshift(parent.get(chain[0]!)!)
      offenders.push(chain)
      continue // what it loads in turn is its own business; report the first step out
    }
    for (const w of graph.get(v) ?? []) {
      if (parent.has(w)) continue
      parent.set(w, v)
      queue.push(w)
    }
  }
  return offenders
}

/** One chain a line; an edge due only to `import { type X }` is drawn `-(import { type … })->`. */
const formatChains = (chains: ReadonlyArray<ReadonlyArray<string>>, inlineTypeEdges: ReadonlySet<string>): string =>
  chains.map((chain) =>
    "  " + chain.map((module, i) =>
      i === 0 ? module : `${inlineTypeEdges.has(edgeKey(chain[i - 1]!, module)) ? " -(import { type … })-> " : " -> "}${module}`
    ).join("")
  ).join("\n")

// ---------------------------------------------------------------------------------------
// The contract rule
// ---------------------------------------------------------------------------------------

const contractRoot = "Actor/Actor.ts"
const contractModules: ReadonlySet<string> = new Set([
  "Actor/Actor.ts",
  "Actor/ActorRef.ts",
  "Actor/ActorSchema.ts",
  "Actor/ActorError.ts",
  "Actor/ActorAddress.ts",
  "Actor/internal/SiloTag.ts",
  "Actor/internal/RefClass.ts",
  "Actor/internal/SystemContract.ts"
])
const contractAllows = (module: string): boolean => contractModules.has(module) || module.startsWith("Supervision/")

// ---------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------

describe("import graph: the checks themselves", () => {
  it("parses every form of import and export-from, leaving type-only ones out", () => {
    const statements = parseImports(`
      import { Effect } from "effect"
      import * as A from "./a.ts"
      import B, { c } from "./b.ts"
      import type { T } from "./t.ts"
      import type * as TT from "./tt.ts"
      import { type X, type Y } from "./x.ts"
      import {} from "./empty.ts"
      import {
        type M,
        n
      } from "./mixed.ts"
      export * from "./star.ts"
      export * as NS from "./ns.ts"
      export { e, type F } from "./e.ts"
      export type { G } from "./g.ts"
      import "./side-effect.ts"
      // import { commented } from "./line-comment.ts"
      /* import { Blocked } from "./block-comment.ts" */
      /**
       * import { Doc } from "./doc-comment.ts"
       */
      const s = "import { inString } from './string.ts'"
      const quote = /["]/
      import { afterRegex } from "./after-regex.ts"
      export const x = 1; import D from "./after-semicolon.ts"
    `)
    const byKind = (kind: ImportKind) => statements.filter((s) => s.kind === kind).map((s) => s.specifier)
    assert.deepStrictEqual(byKind("runtime"), [
      "effect",
      "./a.ts",
      "./b.ts",
      "./mixed.ts",
      "./star.ts",
      "./ns.ts",
      "./e.ts",
      "./side-effect.ts",
      "./after-regex.ts",
      "./after-semicolon.ts"
    ])
    assert.deepStrictEqual(byKind("type"), ["./t.ts", "./tt.ts", "./g.ts"])
    assert.deepStrictEqual(byKind("inline-type"), ["./x.ts", "./empty.ts"])
  })

  it("finds a cycle, and every cycle of a component, in a synthetic graph", () => {
    const graph: Graph = new Map([
      ["a.ts", ["b.ts"]],
      ["b.ts", ["c.ts", "d.ts"]],
      ["c.ts", ["a.ts"]],
      ["d.ts", ["b.ts"]],
      ["e.ts", ["e.ts"]],
      ["f.ts", ["a.ts"]]
    ])
    const cycles = findCycles(graph).map((cycle) => cycle.join(" -> "))
    assert.includeMembers(cycles, ["a.ts -> b.ts -> c.ts -> a.ts", "b.ts -> d.ts -> b.ts", "e.ts -> e.ts"])
    assert.isFalse(cycles.some((cycle) => cycle.includes("f.ts")), "f.ts is on no cycle")
    assert.deepStrictEqual(findCycles(new Map([["a.ts", ["b.ts"]], ["b.ts", []]])), [])
  })

  it("reports a forbidden module in a closure with the chain that loads it", () => {
    const graph: Graph = new Map([
      ["Actor/Actor.ts", ["Actor/ActorRef.ts", "Supervision/Strategy.ts"]],
      ["Actor/ActorRef.ts", ["Actor/internal/SiloTag.ts", "Actor/Silo.ts"]],
      ["Actor/Silo.ts", ["Actor/internal/LocalRouter.ts"]],
      ["Supervision/Strategy.ts", []],
      ["Actor/internal/SiloTag.ts", []]
    ])
    const offenders = forbiddenInClosure(graph, contractRoot, contractAllows)
    assert.deepStrictEqual(offenders, [["Actor/Actor.ts", "Actor/ActorRef.ts", "Actor/Silo.ts"]])
    assert.strictEqual(
      formatChains(offenders, new Set([edgeKey("Actor/ActorRef.ts", "Actor/Silo.ts")])),
      "  Actor/Actor.ts -> Actor/ActorRef.ts -(import { type … })-> Actor/Silo.ts"
    )
  })
})

describe("import graph of src/", () => {
  const { files, inlineTypeEdges, packages, runtime } = buildGraph()
  const typeOnlyHint = "; an import drawn -(import { type … })-> still loads its module under Node: write it `import type`"

  it("is read: every module, with its run-time imports", () => {
    assert.isAtLeast(files.length, 40)
    assert.include(runtime.get("index.ts") ?? [], "Actor/index.ts")
    for (const [module, targets] of runtime) {
      for (const target of targets) assert.include(files, target, `${module} imports ${target}, which does not exist`)
    }
  })

  it("has no run-time import cycle", () => {
    const cycles = findCycles(runtime)
    assert.deepStrictEqual(
      cycles.map((cycle) => cycle.join(" -> ")),
      [],
      `run-time import cycles under src/ (make one side's import \`import type\`, or move the shared part to a leaf module${typeOnlyHint}):\n${
        formatChains(cycles, inlineTypeEdges)
      }\n`
    )
  })

  it("the contract module src/Actor/Actor.ts loads no runtime", () => {
    const offenders = forbiddenInClosure(runtime, contractRoot, contractAllows)
    assert.deepStrictEqual(
      offenders.map((chain) => chain.join(" -> ")),
      [],
      `src/${contractRoot} loads, at run time, modules outside the contract (allowed: ${
        [...contractModules].join(", ")
      }, Supervision/*${typeOnlyHint}):\n${formatChains(offenders, inlineTypeEdges)}\n`
    )
  })

  it("each package entry point loads only the packages it is for", () => {
    // What a user's import pulls in: `quark` must load nothing but effect, so a contract or a
    // single-silo program never loads a socket or a database driver; each driver loads only
    // from the subpath named for it.
    const expected: Record<string, ReadonlyArray<string>> = {
      ".": ["effect"],
      "./cluster": ["effect", "node:crypto", "node:fs", "node:net", "node:tls", "xxhash-wasm"],
      "./cluster/redis": ["effect", "ioredis"],
      "./transport": ["effect", "node:crypto", "node:fs", "node:net", "node:tls"],
      "./persistence/redis": ["effect", "ioredis"],
      "./persistence/pg": ["@effect/sql-pg", "effect"],
      "./testing": ["effect", "node:crypto", "node:fs", "node:net", "node:tls", "xxhash-wasm"],
      "./telemetry/node": ["@effect/platform-node", "effect", "node:http", "node:module", "node:perf_hooks", "xxhash-wasm"],
      // The lint plugin: nothing at import (eslint is a type; Babel loads on first parse).
      "./eslint": []
    }
    const manifest = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
      readonly exports: Record<string, string | Record<string, string>>
    }
    const entries = Object.entries(manifest.exports).filter(([subpath]) => subpath !== "./package.json")
    assert.deepStrictEqual(entries.map(([subpath]) => subpath).sort(), Object.keys(expected).sort())
    for (const [subpath, target] of entries) {
      assert.isObject(target, `exports["${subpath}"] has conditions`)
      const source = (target as Record<string, string>)["quark-source"]!
      assert.match(source, /^\.\/src\/.+\.ts$/, `exports["${subpath}"]["quark-source"]`)
      const root = source.slice("./src/".length)
      assert.include(files, root, `exports["${subpath}"] points at src/${root}, which does not exist`)
      const built = root.replace(/\.ts$/, "")
      assert.deepStrictEqual(target, {
        "quark-source": source,
        types: `./dist/${built}.d.ts`,
        default: `./dist/${built}.js`
      })
      const loaded = packagesInClosure(runtime, packages, root)
      assert.deepStrictEqual(
        [...loaded.keys()].sort(),
        [...expected[subpath]!].sort(),
        `"quark${subpath.slice(1)}" loads:\n${[...loaded].map(([name, chain]) => `  ${name} via ${chain.join(" -> ")}`).join("\n")}`
      )
    }
  })
})

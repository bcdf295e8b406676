/**
 * Quark as a user gets it: `npm pack`, installed from the tarball into a fresh project with
 * only `effect` (and Node's types) beside it, type-checked with a plain tsconfig (no
 * `allowImportingTsExtensions`, no custom conditions) and run with Node, on the oldest Node
 * that `engines` claims (22.19.0, installed into the project from the npm registry) and on the
 * Node 24 that runs this suite. A program that imports only `quark` type-checks without Node's
 * types (`types: []`); the cluster subpaths are Node-only and their types name `Buffer`.
 *
 * The program uses `quark` (a local silo), `quark/testing` (two silos over loopback TCP, so the
 * transport and the hash ring load), and checks that `quark/persistence/redis` needs `ioredis`,
 * an optional peer the fresh project did not install: the core never loads it.
 */
import { assert, describe, it } from "@effect/vitest"
import { execFileSync, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { fileURLToPath } from "node:url"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..", "..")
const manifest = JSON.parse(fs.readFileSync(path.join(repo, "package.json"), "utf8")) as {
  readonly name: string
  readonly private?: boolean
  readonly engines: { readonly node: string }
  readonly peerDependencies: Record<string, string>
  readonly devDependencies: Record<string, string>
}
const oldestNode = /^>=(\d+\.\d+\.\d+)$/.exec(manifest.engines.node)?.[1]
const npm = process.platform === "win32" ? "npm.cmd" : "npm"

const program = `import { Console, Effect, Layer, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, Silo } from "quark"
import { TestCluster } from "quark/testing"

const Greeter = Actor.make("Greeter", [
  Rpc.make("Greet", { payload: { name: Schema.String }, success: Schema.String })
])

const GreeterLive = Greeter.toLayer(Effect.gen(function*() {
  const count = yield* Ref.make(0)
  return Greeter.of({
    Greet: ({ name }) => Effect.map(Ref.updateAndGet(count, (n) => n + 1), (n) => \`hello \${name} #\${n}\`)
  })
}))

const local = Effect.gen(function*() {
  const greeter = yield* Greeter.refOrDie("g-1")
  yield* greeter.Greet({ name: "a" })
  return yield* greeter.Greet({ name: "b" })
}).pipe(Effect.provide(GreeterLive.pipe(Layer.provideMerge(Silo.layer()))))

const cluster = Effect.gen(function*() {
  const { silos } = yield* TestCluster.make({ silos: 2, implementations: GreeterLive })
  yield* silos[0]!.run(Effect.flatMap(Greeter.refOrDie("g-2"), (g) => g.Greet({ name: "a" })))
  return yield* silos[1]!.run(Effect.flatMap(Greeter.refOrDie("g-2"), (g) => g.Greet({ name: "b" })))
}).pipe(Effect.scoped)

const redisStore = Effect.promise(() =>
  import("quark/persistence/redis").then(() => "loaded", (e: { readonly code?: string }) => e.code ?? "failed")
)

Effect.runPromise(Effect.gen(function*() {
  yield* Console.log(\`local: \${yield* local}\`)
  yield* Console.log(\`cluster: \${yield* cluster}\`)
  yield* Console.log(\`quark/persistence/redis without ioredis: \${yield* redisStore}\`)
}))
`

/** Only the core entry: needs no types but effect's. */
const coreProgram = `import { Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, type CallError, Silo } from "quark"

const Echo = Actor.make("Echo", [Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })])
const EchoLive = Echo.toLayer(Effect.succeed(Echo.of({ Echo: ({ text }) => Effect.succeed(text) })))
export const echo: Effect.Effect<string, CallError, Silo.Silo> = Effect.flatMap(Echo.refOrDie("e"), (e) => e.Echo({ text: "hi" }))
export const layer = EchoLive
`

const expected = [
  "local: hello b #2",
  "cluster: hello b #2",
  "quark/persistence/redis without ioredis: ERR_MODULE_NOT_FOUND"
].join("\n")

const run = (command: string, args: ReadonlyArray<string>, cwd: string): string => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", env: { ...process.env, NODE_NO_WARNINGS: "1" }, timeout: 180_000 })
  assert.strictEqual(
    result.status,
    0,
    `${command} ${args.join(" ")} exited with ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`
  )
  return result.stdout
}

describe("the packed package", () => {
  it("declares what a published package needs", () => {
    assert.isUndefined(manifest.private, "not private")
    assert.isDefined(oldestNode, `engines.node is ">=x.y.z" (${manifest.engines.node})`)
    assert.strictEqual(manifest.peerDependencies["effect"], `^${manifest.devDependencies["effect"]}`)
  })

  it("installs into a fresh project, type-checks with a plain tsconfig, and runs on the oldest and newest Node", () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "quark-pack-"))
    try {
      const tarball = run(npm, ["pack", "--silent", "--pack-destination", dir], repo).trim().split("\n").at(-1)!
      const files = execFileSync("tar", ["tzf", path.join(dir, tarball)], { encoding: "utf8" }).split("\n")
      for (const file of ["package/dist/index.js", "package/dist/index.d.ts", "package/dist/index.d.ts.map", "package/dist/testing.js", "package/LICENSE", "package/README.md"]) {
        assert.include(files, file)
      }
      const shipped = (prefix: string) => files.filter((f) => f.startsWith(`package/${prefix}`))
      for (const prefix of ["test/", "bench/", "examples/", ".ci/", "tsconfig", "vitest.config", ".docs-check"]) {
        assert.deepStrictEqual(shipped(prefix), [], `the tarball ships ${prefix}`)
      }

      const project = path.join(dir, "project")
      fs.mkdirSync(project)
      fs.writeFileSync(path.join(project, "package.json"), JSON.stringify({ name: "fresh", private: true, type: "module" }))
      fs.writeFileSync(
        path.join(project, "tsconfig.json"),
        JSON.stringify({
          compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: ["node"] },
          include: ["main.ts"]
        })
      )
      fs.writeFileSync(
        path.join(project, "tsconfig.core.json"),
        JSON.stringify({
          compilerOptions: { target: "ES2022", module: "NodeNext", moduleResolution: "NodeNext", strict: true, noEmit: true, types: [] },
          include: ["core.ts"]
        })
      )
      fs.writeFileSync(path.join(project, "main.ts"), program)
      fs.writeFileSync(path.join(project, "core.ts"), coreProgram)
      run(npm, [
        "install", "--no-audit", "--no-fund", "--prefer-offline",
        path.join(dir, tarball), `effect@${manifest.devDependencies["effect"]}`, `node@${oldestNode}`,
        `@types/node@${manifest.devDependencies["@types/node"]}`
      ], project)
      const installed = fs.readdirSync(path.join(project, "node_modules"))
      assert.notInclude(installed, "ioredis", "an optional peer is not installed")
      assert.notInclude(installed, "@effect", "nothing from @effect/* is needed")

      // The repository's TypeScript, but the project's own plain tsconfig.
      const tsc = path.join(repo, "node_modules", "typescript", "bin", "tsc")
      run(process.execPath, [tsc, "-p", "tsconfig.json"], project)
      run(process.execPath, [tsc, "-p", "tsconfig.core.json"], project)

      const oldNode = path.join(project, "node_modules", "node", "bin", "node")
      assert.strictEqual(run(oldNode, ["--version"], project).trim(), `v${oldestNode}`)
      assert.strictEqual(run(oldNode, ["main.ts"], project).trim(), expected, `on Node ${oldestNode}`)
      assert.strictEqual(run(process.execPath, ["main.ts"], project).trim(), expected, `on Node ${process.version}`)
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 300_000)
})

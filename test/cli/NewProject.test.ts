/**
 * `quark new` end to end, as a user gets it: the repository packed (`npm pack`, which builds
 * dist/), a project made by the CLI with the tarball as its `quark` dependency, installed
 * from the npm registry (`npm install`), and its own scripts run: `npm test` passes; the
 * installed bin (`node_modules/.bin/quark`, the built dist/Cli/bin.js) adds an actor and
 * `npm test` still passes, with the new actor's test among them; `npm start` serves a local
 * silo that `quark status` reads. Node 24 (this one) is first on the PATH, so npm's scripts
 * run with it.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn, spawnSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { repo, runBin } from "./support.ts"

const env = {
  ...process.env,
  PATH: `${path.dirname(process.execPath)}${path.delimiter}${process.env["PATH"] ?? ""}`,
  NODE_NO_WARNINGS: "1"
}

const run = (command: string, args: ReadonlyArray<string>, cwd: string): string => {
  const result = spawnSync(command, args, { cwd, encoding: "utf8", env, timeout: 180_000 })
  assert.strictEqual(result.status, 0, `${command} ${args.join(" ")} exited with ${result.status ?? result.signal}:\n${result.stdout}\n${result.stderr}`)
  return result.stdout + result.stderr
}

describe("quark new", () => {
  it("makes a project that installs from the packed tarball, passes its test, takes an actor, and starts", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "quark-new-"))
    try {
      const tarball = path.join(dir, run("npm", ["pack", "--silent", "--pack-destination", dir], repo).trim().split("\n").at(-1)!)
      const made = await runBin(["new", "app", "--quark", `file:${tarball}`], { cwd: dir })
      assert.strictEqual(made.code, 0, made.stderr)
      const app = path.join(dir, "app")
      for (const file of ["package.json", "src/actors/index.ts", "src/silo.ts", "src/main.ts", "test/Counter.test.ts"]) {
        assert.isTrue(fs.existsSync(path.join(app, file)), file)
      }
      // A second `new` into the same directory writes nothing: exit 1.
      assert.strictEqual((await runBin(["new", "app"], { cwd: dir })).code, 1)

      run("npm", ["install", "--no-audit", "--no-fund", "--prefer-offline"], app)
      assert.match(run("npm", ["test"], app), /\bpass 1\b/)

      const quark = path.join(app, "node_modules", ".bin", "quark")
      const added = spawnSync(quark, ["add", "actor", "Greeter"], { cwd: app, encoding: "utf8", env })
      assert.strictEqual(added.status, 0, added.stderr)
      assert.include(fs.readFileSync(path.join(app, "src/actors/index.ts"), "utf8"), "GreeterLive,")
      const tested = run("npm", ["test"], app)
      assert.match(tested, /\bpass 2\b/)
      assert.include(tested, "Greeter answers Hello")
      // The same actor again: its files exist, nothing is written.
      assert.strictEqual(spawnSync(quark, ["add", "actor", "Greeter"], { cwd: app, env }).status, 1)

      // npm start: a local silo with its endpoints; the installed bin reads its status.
      const started = spawn("npm", ["start"], { cwd: app, env: { ...env, QUARK_ENDPOINTS_PORT: "0" }, detached: true })
      try {
        const url = await new Promise<string>((resolve, reject) => {
          let seen = ""
          const timer = setTimeout(() => reject(new Error(`npm start: no endpoints after 20 s:\n${seen}`)), 20_000)
          started.stdout.on("data", (chunk) => {
            seen += chunk
            const match = /endpoints at (http:\/\/\S+)/.exec(seen)
            if (match !== null) {
              clearTimeout(timer)
              resolve(match[1]!)
            }
          })
          started.stderr.on("data", (chunk) => void (seen += chunk))
        })
        const status = spawnSync(quark, ["status", "--url", url], { cwd: app, encoding: "utf8", env })
        assert.strictEqual(status.status, 0, status.stderr)
        assert.match(status.stdout, /^activations +\d+ \(.*Counter 1\b/m)
      } finally {
        process.kill(-started.pid!, "SIGTERM")
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true })
    }
  }, 180_000)
})

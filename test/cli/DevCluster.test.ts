/**
 * `quark cluster start` / `stop` and the operation commands against the dev cluster, as
 * processes: a project made by `quark new` (its dependencies linked to this repository's,
 * `quark` to its sources, so no install), two processes of its `src/silo.ts` joined through
 * Redis (QUARK_REDIS_URL; never skipped), their logs prefixed by silo; the state file
 * listing each silo's endpoints; `quark status` and `quark actor` finding the cluster
 * through it (no `--url`); `quark drain silo-2` draining that silo, which exits and leaves
 * the state file; `quark cluster stop` stopping the rest (exit 0; again: exit 3).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { Redis } from "ioredis"
import { spawn } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import * as State from "../../src/Cli/State.ts"
import { deleteMatching, newRunId } from "../support/redisKeys.ts"
import { bin, repo, runBin } from "./support.ts"

const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
const sleep = (millis: number) => new Promise((resolve) => setTimeout(resolve, millis))

const until = async <A>(what: string, probe: () => A | undefined, timeoutMillis = 20_000): Promise<A> => {
  const deadline = Date.now() + timeoutMillis
  for (;;) {
    const value = probe()
    if (value !== undefined) return value
    if (Date.now() > deadline) throw new Error(`not within ${timeoutMillis} ms: ${what}`)
    await sleep(100)
  }
}

describe("quark cluster", () => {
  it("starts a dev cluster of the project's silos, operates it, drains one silo and stops", async () => {
    const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null })
    await redis.connect().catch((cause) => {
      throw new Error(`Redis at ${redisUrl} is needed (QUARK_REDIS_URL): ${cause}`)
    })
    const name = `quark-cli-test-${newRunId()}`
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "quark-cluster-"))
    const app = path.join(dir, "app")
    let start: ReturnType<typeof spawn> | undefined
    try {
      assert.strictEqual((await runBin(["new", "app"], { cwd: dir })).code, 0)
      // The project's dependencies, linked: quark to this repository (run from its sources).
      fs.mkdirSync(path.join(app, "node_modules"))
      fs.symlinkSync(repo, path.join(app, "node_modules", "quark"))
      for (const dep of ["effect", "@effect", "ioredis"]) fs.symlinkSync(path.join(repo, "node_modules", dep), path.join(app, "node_modules", dep))

      let output = ""
      start = spawn(process.execPath, ["--conditions=quark-source", bin, "cluster", "start", "--silos", "2", "--name", name, "--redis", redisUrl], {
        cwd: app,
        env: { ...process.env, NODE_NO_WARNINGS: "1" },
        stdio: ["ignore", "pipe", "pipe"]
      })
      start.stdout!.on("data", (chunk) => void (output += chunk))
      start.stderr!.on("data", (chunk) => void (output += chunk))
      const exited = new Promise<number | null>((resolve) => start!.once("close", (code) => resolve(code)))

      await until(`2 silos ready:\n${output}`, () => output.includes(`cluster ${name}: 2 silos ready`) || undefined, 40_000)
      assert.match(output, /^\[silo-1\] ready \S+ http:\/\/127\.0\.0\.1:\d+$/m)
      assert.match(output, /^\[silo-2\] ready \S+ http:\/\/127\.0\.0\.1:\d+$/m)
      const state = Effect.runSync(State.read(app))!
      assert.deepStrictEqual(state.silos.map((silo) => silo.label), ["silo-1", "silo-2"])
      assert.strictEqual(state.pid, start.pid)

      // A second start from the same directory is refused.
      assert.strictEqual((await runBin(["cluster", "start"], { cwd: app })).code, 1)

      const status = await runBin(["status"], { cwd: app })
      assert.strictEqual(status.code, 0, status.stderr)
      assert.match(status.stdout, /^MEMBER +STATUS +SHARE +LABEL +ENDPOINTS$/m)
      for (const silo of state.silos) assert.match(status.stdout, new RegExp(`${silo.label} +${silo.url.replace(/[.]/g, "\\.")}$`, "m"))
      const members = JSON.parse((await runBin(["status", "--json"], { cwd: app })).stdout)
      assert.strictEqual(members.cluster.members.length, 2)

      const actor = JSON.parse((await runBin(["actor", "Counter/a", "--json"], { cwd: app })).stdout)
      assert.include(state.silos.map((silo) => silo.id), actor.owner)
      assert.deepStrictEqual(actor.reminders, [])
      assert.strictEqual((await runBin(["actors"], { cwd: app })).code, 0)
      assert.strictEqual((await runBin(["dlq", "list"], { cwd: app })).code, 0)

      const drained = await runBin(["drain", "silo-2"], { cwd: app })
      assert.strictEqual(drained.code, 0, drained.stderr)
      assert.match(drained.stdout, /silo-2: \S+ is draining/)
      await until("silo-2 out of the state file", () => {
        return Effect.runSync(State.read(app))?.silos.length === 1 || undefined
      })
      assert.match(output, /^\[silo-2\] ended \(0\)$/m)
      assert.strictEqual((await runBin(["drain", "silo-2"], { cwd: app })).code, 3)

      const stopped = await runBin(["cluster", "stop"], { cwd: app })
      assert.strictEqual(stopped.code, 0, stopped.stderr)
      assert.match(stopped.stdout, new RegExp(`stopped cluster ${name} \\(silo-1\\)`))
      assert.strictEqual(await exited, 0)
      assert.isFalse(fs.existsSync(State.stateFile(app)))
      for (const silo of state.silos) assert.isFalse(State.isAlive(silo.pid), `${silo.label} still runs`)
      assert.strictEqual((await runBin(["cluster", "stop"], { cwd: app })).code, 3)
    } finally {
      if (start?.exitCode === null) start.kill("SIGKILL")
      fs.rmSync(dir, { recursive: true, force: true })
      await deleteMatching(redis, `*${name}*`)
      await redis.quit()
    }
  }, 90_000)
})

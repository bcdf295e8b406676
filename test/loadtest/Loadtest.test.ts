/**
 * `npm run loadtest` as a user runs it: the CLI (`bench/loadtest/main.ts`) as a real child
 * process.
 *
 * - Against the in-memory silo, open loop at 500/s for 1 s: the JSON it writes has every
 *   scheduled call (rate × duration), all successful, percentiles in order.
 * - Bad arguments exit 2, with a message.
 * - Against a real cluster: one `serve` process (a cluster silo on Redis membership, under a
 *   key prefix of this run only), then the client, closed loop with 4 callers for 1 s: no
 *   error. Then a run whose every call times out (the silo spins 10 ms per call, the client
 *   waits 2 ms): it exits 1 and counts them under `CallTimeout`. SIGTERM stops the silo
 *   gracefully (exit 0). Needs Redis (QUARK_REDIS_URL): without one the test fails.
 *
 * No sleeps: the silo's readiness is its `ready` line on stdout.
 */
import { afterAll, assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import type { LoadtestResult } from "../../bench/loadtest/main.ts"
import { redisUrl, unreachable } from "../persistence/services.ts"
import { nodeBinary } from "../support/processes.ts"
import { deleteMatching, newRunId } from "../support/redisKeys.ts"

const here = Path.dirname(fileURLToPath(import.meta.url))
const repo = Path.resolve(here, "..", "..")
const main = Path.join(repo, "bench", "loadtest", "main.ts")

const started = new Set<ChildProcess>()
const spawnCli = (args: ReadonlyArray<string>): ChildProcess => {
  const child = spawn(nodeBinary, ["--conditions=quark-source", main, ...args], {
    cwd: repo,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, NODE_NO_WARNINGS: "1" }
  })
  started.add(child)
  child.once("exit", () => started.delete(child))
  return child
}
process.once("exit", () => started.forEach((child) => child.kill("SIGKILL")))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs the CLI to its end (killed past `timeoutMs`). */
const runCli = (args: ReadonlyArray<string>, timeoutMs = 20_000): Promise<Run> =>
  new Promise((resolve) => {
    const child = spawnCli(args)
    let stdout = ""
    let stderr = ""
    child.stdout!.on("data", (chunk: Buffer) => void (stdout += chunk.toString()))
    child.stderr!.on("data", (chunk: Buffer) => void (stderr += chunk.toString()))
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs)
    child.once("close", (code) => {
      clearTimeout(timer)
      resolve({ code, stdout, stderr })
    })
  })

const tempDir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-loadtest-"))
let files = 0
const tempJson = () => Path.join(tempDir, `result-${files++}.json`)
afterAll(() => Fs.rmSync(tempDir, { recursive: true, force: true }))
const readResult = (file: string): LoadtestResult => JSON.parse(Fs.readFileSync(file, "utf8")) as LoadtestResult

const assertOrdered = (r: LoadtestResult) => {
  const l = r.latencyMs
  const chain = [l.min, l.p50, l.p95, l.p99, l.p999, l.max]
  for (let i = 1; i < chain.length; i++) {
    assert.isAtMost(chain[i - 1]!, chain[i]!, `min ≤ p50 ≤ p95 ≤ p99 ≤ p999 ≤ max: ${chain.join(" ")}`)
  }
  assert.isAbove(l.min, 0, "a call takes some time")
}

describe("npm run loadtest", () => {
  it("in memory, open loop at 500/s for 1 s: every scheduled call sent and answered, percentiles in order", async () => {
    const json = tempJson()
    const run = await runCli(["--duration", "1s", "--warmup", "300ms", "--rate", "500", "--actors", "50", "--json", json])
    assert.strictEqual(run.code, 0, `${run.stdout}\n${run.stderr}`)
    const r = readResult(json)
    assert.strictEqual(r.schemaVersion, 1)
    assert.deepStrictEqual(r.target, { kind: "memory" })
    assert.strictEqual(r.mode, "open-loop")
    assert.strictEqual(r.targetRate, 500)
    assert.strictEqual(r.actors, 50)
    assert.strictEqual(r.durationMs, 1000)
    // The schedule is fixed: the window holds rate × duration calls, all sent however late.
    assert.approximately(r.sent, 500, 1)
    assert.strictEqual(r.ok, r.sent)
    assert.strictEqual(r.failed, 0)
    assert.deepStrictEqual(r.errors, {})
    assert.isAtLeast(r.elapsedMs, 1000)
    assert.isAtMost(r.throughput, 501)
    assert.isAtLeast(r.throughput, 250, "half the rate at least, even on a loaded machine")
    assert.isNotNull(r.maxScheduleLagMs)
    assertOrdered(r)
    assert.match(run.stdout, /throughput\s+\d+/)
    assert.match(run.stdout, /p50 [\d.]+ +p95 [\d.]+ +p99 [\d.]+ +p999 [\d.]+ +max [\d.]+/)
    assert.match(run.stdout, /errors\s+none/)
  })

  it("bad arguments exit 2", async () => {
    const [both, zero, unknown, duration] = await Promise.all([
      runCli(["--rate", "10", "--concurrency", "2", "--duration", "100ms"]),
      runCli(["--actors", "0"]),
      runCli(["--no-such-flag"]),
      runCli(["--duration", "ten seconds"])
    ])
    assert.strictEqual(both.code, 2, both.stderr)
    assert.include(both.stderr, "not both")
    assert.strictEqual(zero.code, 2, zero.stderr)
    assert.include(zero.stderr, "Invalid value for flag --actors: \"0\"")
    assert.strictEqual(unknown.code, 2, unknown.stderr)
    assert.strictEqual(duration.code, 2, duration.stderr)
  })

  it("against a cluster: a serve process on Redis, a client run with no errors, a run whose calls time out exits 1", async () => {
    // A key prefix of this run only: no other test's (or run's) silos are in this cluster.
    const keyPrefix = `quark-lt-${newRunId()}`
    const redis = new Redis(redisUrl, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
    redis.on("error", () => {})
    await redis.connect().catch((cause) => Promise.reject(unreachable("Redis", redisUrl, cause)))
    const cluster = ["--redis", redisUrl, "--key-prefix", keyPrefix]
    const server = spawnCli(["serve", ...cluster])
    const serverErr: Array<string> = []
    Readline.createInterface({ input: server.stderr! }).on("line", (line) => void serverErr.push(line))
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      server.once("exit", (code, signal) => resolve({ code, signal }))
    )
    try {
      const ready = await new Promise<string>((resolve, reject) => {
        Readline.createInterface({ input: server.stdout! }).once("line", resolve)
        void exited.then((how) => reject(new Error(`serve exited (${JSON.stringify(how)}) before it was ready:\n${serverErr.join("\n")}`)))
        setTimeout(() => reject(new Error(`serve not ready within 15 s:\n${serverErr.join("\n")}`)), 15_000).unref()
      })
      assert.match(ready, /^ready 127\.0\.0\.1:\d+@\d+ /)

      const json = tempJson()
      const run = await runCli([...cluster, "--concurrency", "4", "--duration", "1s", "--warmup", "300ms", "--json", json])
      assert.strictEqual(run.code, 0, `${run.stdout}\n${run.stderr}`)
      const r = readResult(json)
      assert.strictEqual(r.target.kind, "cluster")
      assert.strictEqual(r.target.kind === "cluster" ? r.target.silos : 0, 1)
      assert.strictEqual(r.mode, "closed-loop")
      assert.strictEqual(r.concurrency, 4)
      assert.strictEqual(r.failed, 0)
      assert.deepStrictEqual(r.errors, {})
      assert.isAbove(r.ok, 0)
      assert.strictEqual(r.ok, r.sent)
      assertOrdered(r)

      const failing = tempJson()
      const timedOut = await runCli([
        ...cluster,
        ...["--concurrency", "2", "--duration", "100ms", "--warmup", "0s", "--actors", "4"],
        ...["--work-us", "10000", "--call-timeout", "2ms", "--json", failing]
      ])
      assert.strictEqual(timedOut.code, 1, `${timedOut.stdout}\n${timedOut.stderr}`)
      const f = readResult(failing)
      assert.isAbove(f.failed, 0)
      assert.strictEqual(f.errors["CallTimeout"], f.failed)
      assert.strictEqual(f.ok + f.failed, f.sent)
      assert.match(timedOut.stdout, /errors\s+CallTimeout \d+/)

      server.kill("SIGTERM")
      assert.deepStrictEqual(await exited, { code: 0, signal: null }, serverErr.join("\n"))
    } finally {
      if (server.exitCode === null && server.signalCode === null) server.kill("SIGKILL")
      await deleteMatching(redis, `${keyPrefix}:*`)
      redis.disconnect()
    }
  })
})

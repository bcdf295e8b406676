/**
 * A hostile client against a real silo process, while a well-behaved client keeps calling.
 *
 * One silo (`test/cluster/process/siloMain.ts`: Redis membership with the production
 * timings, directory and state, hosting the account of the multi-process test) in its own
 * process; a hostile process (`test/cluster/process/hostileMain.ts`) that for
 * `QUARK_HOSTILE_SECONDS` (default 8; `npm run hostile` runs 30; `QUARK_HOSTILE_MODES`
 * picks the attacks) sends random bytes instead of handshakes, every kind of bad frame
 * after one, holds 200 slow connections and floods requests without reading a reply; and
 * this test process, a `ClusterClient` depositing into 20 accounts from 8 fibers the whole
 * time. It runs with the chaos tests, one file at a time: it takes the machine's cores for
 * its duration, which would slow the timing-bound tests of a file running beside it.
 *
 * What must hold:
 * - every deposit the well-behaved client makes succeeds (none fails, none times out) and
 *   the balances are exactly what was deposited;
 * - the silo keeps running, and its resident memory stays under {@link maxResidentMiB}
 *   (read from /proc every 100 ms);
 * - what the hostile peer sends cannot flood the silo's log: at most
 *   {@link maxLogLinesPer10s} lines per 10 s of attack (the transport's per-host limiter).
 *
 * The figures (console.log, `hostile` JSON): connections and bytes the hostile process
 * sent, the client's calls and latency percentiles, the silo's resident memory before and at
 * its peak, and its log lines.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Effect, Fiber, Layer } from "effect"
import type { Silo } from "../../src/index.ts"
import { type Cluster, ClusterClient } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { closeAndWait, nodeBinary, signalAndWait, type SiloChild, siloLogs, spawnSiloChild, waitFor } from "../support/processes.ts"
import { cleanupRun, newRunId } from "../support/redisKeys.ts"
import { Account } from "../cluster/process/Account.ts"

const processDir = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "..", "cluster", "process")
const attackSeconds = Number(process.env.QUARK_HOSTILE_SECONDS ?? "8")
/** Which attacks run (see `hostileMain.ts`); `QUARK_HOSTILE_MODES=garbage` is the random bytes alone. */
const modes = process.env.QUARK_HOSTILE_MODES ?? "garbage,frames,slow,unread"
/**
 * The silo's resident memory bound: the heap limit below, plus what lives outside the heap
 * (socket and reply buffers, which the transport's caps bound: frames ≤ 16 MiB, a
 * connection's buffered replies ≤ 64 MiB before it stops reading, 1,024 connections per
 * host), plus the runtime. An idle silo of this test sits at about 155 MiB.
 */
const maxResidentMiB = 512
/**
 * The silo's V8 heap limit (`--max-old-space-size`): what the silo retains must fit, or it
 * dies of an out-of-memory error (and the test fails). Resident memory alone would not
 * tell retained memory from garbage V8 has not collected yet: under this allocation rate
 * an unbounded heap grows to several hundred MiB before a major collection.
 */
const heapLimitMiB = 192
/** The limiter logs 5 lines per host and 10 s, plus a summary: a few sources, some margin. */
const maxLogLinesPer10s = 60

const runPrefix = "quark-hostile-"
const keyPrefix = `${runPrefix}${newRunId()}`
const clusterName = "hostile"
const accounts = Array.from({ length: 20 }, (_, i) => `acct-${i}`)

/** Resident memory of `pid` in MiB (VmRSS of /proc/<pid>/status), or undefined once it is gone. */
const residentMiB = (pid: number): number | undefined => {
  try {
    const status = Fs.readFileSync(`/proc/${pid}/status`, "utf8")
    const match = /^VmRSS:\s+(\d+) kB/m.exec(status)
    return match === null ? undefined : Number(match[1]) / 1024
  } catch {
    return undefined
  }
}

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!

describe("hostile input against a silo process", () => {
  it.live(`${attackSeconds} s of hostile input (${modes}): a well-behaved client's calls all succeed, memory and logs stay bounded`, () =>
    Effect.gen(function*() {
      const redis = yield* Effect.orDie(rawRedis)
      yield* cleanupRun(redis, runPrefix, keyPrefix)
      const logFile = Path.join(Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-hostile-")), "silo.stderr.log")
      const silo = yield* Effect.acquireRelease(
        Effect.sync(() =>
          spawnSiloChild<SiloChild>(Path.join(processDir, "siloMain.ts"), [keyPrefix, clusterName, "default"], {}, {
            env: { QUARK_REDIS_URL: redisUrl, NODE_OPTIONS: `--max-old-space-size=${heapLimitMiB}` },
            stderrFile: logFile
          })
        ),
        (s) => signalAndWait(s.child, "SIGKILL")
      )
      const describeSilo = () => siloLogs([silo], () => "silo")
      yield* waitFor("the silo starts", 20_000, Effect.sync(() => silo.id !== undefined), { describe: describeSilo })
      const port = Number(silo.id!.split("@")[0]!.split(":").pop())

      const client: Context.Context<Silo.Silo | Cluster> = yield* Layer.build(
        ClusterClient.layer({ requestTimeout: "5 seconds" }).pipe(
          Layer.provide(RedisMembership.layer({ url: redisUrl, keyPrefix, cluster: clusterName }))
        )
      ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)), Effect.orDie)
      const deposit = (id: string, depositId: string) =>
        Effect.provideContext(Effect.flatMap(Account.ref(id), (account) => account.Deposit({ depositId, amount: 1 })), client)

      // Warm up: every account active, the client connected.
      for (const id of accounts) yield* deposit(id, `${id}-warm`)
      const deposited = new Map(accounts.map((id) => [id, 1]))
      yield* Effect.sleep("500 millis") // let the silo settle after activating (a baseline, not a wait for a condition)
      const baselineMiB = residentMiB(silo.child.pid!)!
      const logLinesBefore = Fs.readFileSync(logFile, "utf8").split("\n").length

      // The attack and the calls, side by side.
      let peakMiB = baselineMiB
      const sampler = yield* Effect.forkScoped(Effect.forever(Effect.andThen(
        Effect.sync(() => {
          const now = residentMiB(silo.child.pid!)
          if (now !== undefined && now > peakMiB) peakMiB = now
        }),
        Effect.sleep("100 millis")
      )))
      const hostile = spawn(nodeBinary, [Path.join(processDir, "hostileMain.ts"), String(port), String(attackSeconds), modes], {
        stdio: ["pipe", "pipe", "pipe"]
      })
      yield* Effect.addFinalizer(() => closeAndWait(hostile, 1_000))
      let hostileOut = ""
      hostile.stdout!.on("data", (chunk) => (hostileOut += String(chunk)))
      let hostileErr = ""
      hostile.stderr!.on("data", (chunk) => (hostileErr = (hostileErr + String(chunk)).slice(-4_000)))
      const hostileExit = Effect.callback<number | null>((resume) => {
        if (hostile.exitCode !== null) return resume(Effect.succeed(hostile.exitCode))
        hostile.once("exit", (code) => resume(Effect.succeed(code)))
      })

      const latencies: Array<number> = []
      const failures: Array<string> = []
      let attacking = true
      const caller = (worker: number) =>
        Effect.gen(function*() {
          for (let n = 0; attacking; n++) {
            const id = accounts[(worker * 7 + n) % accounts.length]!
            const started = performance.now()
            const result = yield* Effect.result(deposit(id, `${id}-w${worker}-${n}`))
            latencies.push(performance.now() - started)
            if (result._tag === "Failure") failures.push(`${id}: ${String(result.failure)}`)
            else deposited.set(id, deposited.get(id)! + 1)
          }
        })
      const callers = yield* Effect.forkChild(Effect.forEach([0, 1, 2, 3, 4, 5, 6, 7], caller, { concurrency: "unbounded", discard: true }))
      const code = yield* hostileExit.pipe(Effect.timeout(`${attackSeconds + 30} seconds`), Effect.orDie)
      attacking = false
      yield* Fiber.join(callers)
      yield* Fiber.interrupt(sampler)
      assert.strictEqual(code, 0, `the hostile process exited ${code}: ${hostileErr}`)
      const statsLine = hostileOut.split("\n").find((line) => line.startsWith("stats "))
      assert.isDefined(statsLine, `the hostile process reported: ${hostileOut} ${hostileErr}`)
      const stats = JSON.parse(statsLine!.slice("stats ".length)) as Record<string, number>

      // The silo is alive and answers, with every deposit in place.
      assert.isUndefined(silo.exit, `the silo exited\n${describeSilo()}`)
      assert.deepStrictEqual(failures.slice(0, 10), [], `${failures.length} of ${latencies.length} calls failed`)
      for (const id of accounts) {
        const balance = yield* Effect.provideContext(Effect.flatMap(Account.ref(id), (account) => account.Balance()), client)
        assert.strictEqual(balance, deposited.get(id), `balance of ${id}`)
      }
      const logLines = Fs.readFileSync(logFile, "utf8").split("\n").length - logLinesBefore
      const sorted = [...latencies].sort((a, b) => a - b)
      const figures = {
        seconds: attackSeconds,
        modes,
        hostile: stats,
        calls: latencies.length,
        failed: failures.length,
        p50Ms: Math.round(percentile(sorted, 0.5) * 10) / 10,
        p99Ms: Math.round(percentile(sorted, 0.99) * 10) / 10,
        maxMs: Math.round(percentile(sorted, 1) * 10) / 10,
        residentMiB: { before: Math.round(baselineMiB), peak: Math.round(peakMiB) },
        siloLogLines: logLines
      }
      console.log(JSON.stringify({ hostile: figures }))
      assert.isAbove(stats.connections!, 50, "the hostile process did attack")
      assert.isAbove(latencies.length, 100, "the client kept calling")
      assert.isBelow(peakMiB, maxResidentMiB, `peak resident memory of the silo (MiB): ${JSON.stringify(figures)}`)
      assert.isAtMost(logLines, Math.ceil(attackSeconds / 10 + 1) * maxLogLinesPer10s, `silo log lines during the attack\n${describeSilo()}`)
    }).pipe(Effect.scoped), 120_000 + attackSeconds * 1_000)
})

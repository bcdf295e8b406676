/**
 * The chaos harness: a cluster of silo processes (`siloMain.ts`) under a load of
 * idempotent deposits from one long-lived `ClusterClient` (this process), while faults are
 * injected in turn; then the checks of the cluster's guarantees (`Analysis.ts`).
 *
 * **Setup.** The membership registry and the directory live on a `redis-server` this
 * harness starts on a free port of 127.0.0.1 (no persistence), so that it can kill it and
 * start it again empty. The accounts' state and the activation records live on the main
 * Redis (`QUARK_REDIS_URL`) under a key prefix of their own per run, so acknowledged writes
 * survive the registry's restarts.
 *
 * **Load.** `workers` fibers each deposit into the accounts in turn, one deposit at a time:
 * a deposit has a unique id and is retried under that same id after any error (the account
 * applies an id once), until acknowledged. A prober reads every account's balance about
 * four times a second. Every call has a timeout (`callTimeoutMs`). Each cycle of faults
 * uses fresh accounts, so the state records (which list the applied ids) stay small.
 *
 * **Faults**, in this order, each once the cluster has settled (every silo serving, the
 * client, every silo and the registry agreeing on the members, every account answering):
 * - `kill`: kill -9 of the silo owning the most accounts; once its accounts answer
 *   elsewhere, a replacement process joins;
 * - `pause`: SIGSTOP of the silo owning the most accounts until its accounts answer
 *   elsewhere and for at least twice the death timeout, then SIGCONT: it was declared dead
 *   meanwhile, and must stop serving (then rejoin under a new generation);
 * - `graceful`: SIGTERM of the silo owning the most accounts (it must leave the cluster
 *   and exit 0), then a new silo joins;
 * - `registry-5s`, `registry-20s`: the registry's Redis killed, and started again empty on
 *   the same port after 5 s / 20 s.
 * After each step the harness waits (bounded) for the views to agree and every account to
 * answer again. Then a silo declared dead that has not rejoined, one that is no member any
 * more, or one that exited on its own is reported and replaced (a `repair` step), so that
 * the next fault meets a full cluster.
 *
 * **Checks** (afterwards; see `Analysis.ts` for the exact rules):
 * 1. single activation: no address served by two activations at overlapping times, from
 *    every silo process's turn log (reads included); and no read older than an
 *    acknowledged write (a balance below the sum of the deposits acknowledged before the
 *    call started; balances only grow), nor above what was ever deposited.
 * 2. writes: every acknowledged deposit is in the final stored state exactly once, read
 *    from the main Redis; no id twice, none never issued; balance = sum of applied deposits.
 * 3. no call hung: every call ended (success or typed error) within its timeout plus
 *    `hangSlackMs`.
 * 4. recovery: after each step of each fault every account answered successfully again
 *    within `recoveryMs`, through the same client: per account, its first success after its
 *    last failure following the step, before the next step. Per fault the result gives the
 *    unavailability window (from the injection to the last failed call, and to the moment
 *    every account had succeeded again) and the failed calls by error tag.
 *
 * Every time is {@link nowMillis}, one monotonic clock shared by all processes of the machine.
 */
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Readline from "node:readline"
import { fileURLToPath } from "node:url"
import { type Cause, Context, Effect, Exit, Fiber, Layer, Option, Predicate, Schema } from "effect"
import { Redis } from "ioredis"
import { type Silo } from "../../src/index.ts"
import { Cluster, ClusterClient } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { RedisStore } from "../../src/Persistence/redis.ts"
import {
  addToSpans,
  allAnsweredAt,
  type CallRecord,
  checkActivationRecords,
  checkWrites,
  type EarlyActivation,
  failures,
  findEarlyActivations,
  findOverlaps,
  median,
  type Overlap,
  overlapCandidates,
  type Pause,
  percentile,
  type ServingSpan,
  type WriteProblem
} from "./Analysis.ts"
import { freePort, isStopped, pingRedis, pollUntil, type SiloChild, spawnSiloChild, startWatchdog } from "../support/processes.ts"
import { deleteAbandonedRuns, deleteKeys, newRunId } from "../support/redisKeys.ts"
import { type ActivationStart, activationKeys, ChaosAccount, nowMillis, outcomeOf, parseTurn, type TurnRecord } from "./ChaosAccount.ts"
import { timingMillisOf, timingsOf, type TimingsName } from "./timings.ts"

// ---------------------------------------------------------------------------------------
// Options and results
// ---------------------------------------------------------------------------------------

export type FaultKind = "kill" | "pause" | "graceful" | "rolling" | "registry-5s" | "registry-20s"

export const allFaults: ReadonlyArray<FaultKind> = ["kill", "pause", "graceful", "registry-5s", "registry-20s"]

export interface ChaosOptions {
  /** Membership timings of every process: `short` (dead after 1.2 s, the default) or `default` (production). */
  readonly timings?: TimingsName | undefined
  /** Fault cycles to run (default 1); with `durationMs`, cycles repeat until it has passed (at least one). */
  readonly cycles?: number | undefined
  readonly durationMs?: number | undefined
  /**
   * No fault is started after this long (ms from the start); the run then stops as if
   * aborted, so a misbehaving cluster cannot make the run exceed its caller's timeout.
   */
  readonly deadlineMs?: number | undefined
  /** The faults of a cycle, in order (default the five of `allFaults`; `rolling` is run on its own). */
  readonly faults?: ReadonlyArray<FaultKind> | undefined
  readonly silos?: number | undefined
  readonly accounts?: number | undefined
  readonly workers?: number | undefined
  /** Timeout of every call (default 2,000 ms). */
  readonly callTimeoutMs?: number | undefined
  /** The main Redis (state and activation records). Default `QUARK_REDIS_URL`, else 127.0.0.1:6379. */
  readonly stateRedisUrl?: string | undefined
  /** Progress lines (default: none). */
  readonly log?: ((line: string) => void) | undefined
  /** Keep every call's latency in the fault results (`latenciesMs`), for benchmarks. */
  readonly keepLatencies?: boolean | undefined
  /** Keep the run's directory (turn logs, silo logs) even if every check passes. */
  readonly keepFiles?: boolean | undefined
}

export interface OverlapReport extends Overlap {
  /** The fault window it happened in (by the later activation's first turn). */
  readonly window: string
  readonly description: string
}

export interface StaleRead {
  readonly account: string
  readonly window: string
  readonly kind: "deposit" | "read"
  /** Run-relative ms. */
  readonly start: number
  readonly end: number
  readonly value: number
  /** The sum of the deposits acknowledged before the call started. */
  readonly floor: number
  /** The sum of every deposit issued (acknowledged or not) when the answer came. */
  readonly ceiling: number
  readonly silo: string
  readonly activation: string
  readonly description: string
}

export interface EarlyActivationReport extends EarlyActivation {
  readonly window: string
  readonly description: string
}

export interface WriteProblemReport extends WriteProblem {
  /** The fault window of the deposit's first attempt. */
  readonly window: string
}

export interface StepResult {
  readonly step: string
  /** Run-relative ms. */
  readonly atMs: number
  /** From the step to every account having answered after its last failure (before the next step); null: not by then. */
  readonly recoveredMs: number | null
  /**
   * From the step to the client, every serving silo and the registry agreeing on the
   * members; null: not within the bound; undefined: not waited for (the registry's kill).
   */
  readonly viewsAgreedMs: number | null | undefined
}

export interface FaultResult {
  readonly fault: FaultKind
  readonly cycle: number
  readonly steps: ReadonlyArray<StepResult>
  /** From the injection to the end of the last failed call in the fault's window (null: none failed). */
  readonly lastFailureMs: number | null
  /** From the injection to the moment every account had succeeded after its last failure in the window (null: some never did). */
  readonly allSucceededMs: number | null
  readonly calls: number
  readonly failuresByTag: Readonly<Record<string, number>>
  /** The most frequent `<tag>: <reason>` of the failed calls (ids and addresses elided), with counts. */
  readonly failureReasons: ReadonlyArray<string>
  /** Silos replaced after this fault: declared dead and not rejoined, no member any more, or exited on their own. */
  readonly replaced: ReadonlyArray<string>
  /** Silos stopped with SIGTERM that did not exit 0 within 25 s (`graceful`, `rolling`). */
  readonly uncleanStops: ReadonlyArray<string>
  /** The 99th percentile of the window's call latencies (ms). */
  readonly latencyP99Ms: number | null
  /** Every call's latency (ms), with `keepLatencies`. */
  readonly latenciesMs?: ReadonlyArray<number> | undefined
  /** For `graceful` (and the last stop of `rolling`): how the stopped process ended, and how long after the SIGTERM. */
  readonly gracefulExit?: { readonly code: number | null; readonly signal: string | null; readonly ms: number } | undefined
  /** Overlaps that break single activation. */
  readonly overlaps: number
  /** Overlaps that are only a turn frozen across a SIGSTOP (see `findOverlaps`), not counted as violations. */
  readonly frozenTurnOverlaps: number
  /** Activations that began before the previous one of their address had ended or been declared dead. */
  readonly earlyActivations: number
  readonly staleReads: number
  readonly lostWrites: number
  readonly duplicatedWrites: number
  /** Check 4 for this fault: every step recovered within the bound. */
  readonly recovered: boolean
}

export interface ChaosResult {
  readonly run: string
  readonly timings: TimingsName
  readonly bounds: { readonly recoveryMs: number; readonly hangSlackMs: number; readonly callTimeoutMs: number }
  readonly durationMs: number
  readonly cycles: number
  readonly faults: ReadonlyArray<FaultResult>
  /** Calls and failures before the first fault. */
  readonly baseline: {
    readonly calls: number
    readonly failuresByTag: Readonly<Record<string, number>>
    /** Of the calls once the cluster had settled at the start (steady state). */
    readonly latencyP99Ms: number | null
  }
  /** Overlaps that break single activation. */
  readonly overlaps: ReadonlyArray<OverlapReport>
  /** Overlaps that are only a turn frozen across a SIGSTOP, with the new owner activated after the death (not violations). */
  readonly frozenTurnOverlaps: ReadonlyArray<OverlapReport>
  /** Activations that began before the previous one of their address had ended or its silo been declared dead. */
  readonly earlyActivations: ReadonlyArray<EarlyActivationReport>
  /** The SIGSTOPs: when the process was seen stopped, continued, and declared dead (run-relative ms). */
  readonly pauses: ReadonlyArray<{ readonly pid: number; readonly stoppedMs: number; readonly continuedMs: number; readonly declaredDeadMs: number | null }>
  readonly staleReads: ReadonlyArray<StaleRead>
  readonly writes: {
    readonly issued: number
    readonly acknowledged: number
    readonly unacknowledged: number
    readonly problems: ReadonlyArray<WriteProblemReport>
  }
  readonly calls: {
    readonly total: number
    readonly hung: ReadonlyArray<string>
    readonly late: ReadonlyArray<string>
    readonly maxOverrunMs: number
  }
  readonly turns: { readonly total: number; readonly activations: number; readonly recordProblems: ReadonlyArray<string> }
  readonly processes: ReadonlyArray<{
    readonly index: number
    readonly pid: number | undefined
    readonly ids: ReadonlyArray<string>
    readonly deaths: ReadonlyArray<string>
    readonly exit: string
  }>
  /** Set if the run stopped early (the cluster could not be brought back). */
  readonly aborted: string | undefined
  readonly checks: {
    readonly singleActivation: boolean
    readonly activationLifecycle: boolean
    readonly noStaleReads: boolean
    readonly writesExactlyOnce: boolean
    readonly noHungCalls: boolean
    readonly recoveredAfterEachFault: boolean
  }
  /** The run's directory (turn logs, silo logs), if kept. */
  readonly directory: string | undefined
}

/** The harness could not start (a missing service): distinct from a check that failed. */
export class ChaosSetupError extends Schema.TaggedError<ChaosSetupError>()("ChaosSetupError", {
  reason: Schema.String
}) {}

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

const siloMain = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "siloMain.ts")

interface SiloProcess extends SiloChild {
  readonly index: number
  /** Every id it served under (`ready` lines), in order. */
  readonly ids: Array<string>
  /** `dead`: it said its current incarnation was declared dead and has not rejoined yet. */
  status: "starting" | "serving" | "dead" | "stopping" | "exited"
  paused: boolean
  deadAt: number | undefined
  readonly deaths: Array<string>
  /** The harness stopped or killed it on purpose. */
  expectedExit: boolean
  /** A new process was started in its place. */
  replaced: boolean
  readonly exited: Promise<void>
}

/** A failed call's reason (its error's `reason` or message), with ids, addresses and numbers elided so that reasons group. */
const reasonOf = (cause: Cause.Cause<unknown>): string => {
  const error = cause.reasons.find((r) => r._tag === "Fail")
  const value: unknown = error?._tag === "Fail" ? error.error : cause.reasons[0]?._tag === "Die" ? cause.reasons[0].defect : undefined
  const text = Predicate.hasProperty(value, "reason") && typeof value.reason === "string" ?
    value.reason :
    value instanceof Error ? value.message : String(value ?? "")
  return text.replace(/\d+\.\d+\.\d+\.\d+:\d+(@\d+)?/g, "<silo>").replace(/ChaosAccount\/\S+/g, "<address>").replace(/\d+/g, "N")
    .slice(0, 160)
}

const sleepMs = (ms: number) => Effect.sleep(`${Math.max(0, Math.round(ms))} millis`)

// ---------------------------------------------------------------------------------------
// The run
// ---------------------------------------------------------------------------------------

interface Deposit {
  readonly id: string
  readonly account: string
  readonly amount: number
  readonly firstAttempt: number
  acknowledged: boolean
  attempts: number
}

interface WindowSummary {
  readonly steps: ReadonlyArray<StepResult>
  readonly lastFailureMs: number | null
  readonly allSucceededMs: number | null
  readonly calls: number
  readonly failuresByTag: Readonly<Record<string, number>>
  readonly latencyP99Ms: number | null
  readonly latenciesMs: ReadonlyArray<number> | undefined
}

interface Window {
  /** `<tag>: <reason>` of its failed calls, with counts (at most 50 distinct). */
  readonly reasons: Map<string, number>
  readonly name: string
  readonly fault: FaultKind | undefined
  readonly cycle: number
  readonly start: number
  end: number
  readonly steps: Array<{ step: string; at: number; viewsAgreedMs: number | null | undefined }>
  /** Its calls (by end time) until it is closed; then only their summary is kept. */
  calls: Array<CallRecord>
  summary: WindowSummary | undefined
  readonly replaced: Array<string>
  gracefulExit: { code: number | null; signal: string | null; ms: number } | undefined
  readonly uncleanStops: Array<string>
}

/** Key prefix of this harness's runs on the main Redis; runs older than `abandonedAfterMs` are deleted. */
const runPrefix = "quark-chaos-"
const abandonedAfterMs = 6 * 3_600_000

/**
 * Runs the chaos test and answers its figures and checks. Fails with `ChaosSetupError`
 * only if it cannot start (no redis-server, main Redis unreachable, silos that never
 * start); a cluster that misbehaves is reported in the result, never thrown.
 */
export const runChaos = (options: ChaosOptions = {}): Effect.Effect<ChaosResult, ChaosSetupError> =>
  Effect.scoped(run(options))

const run = Effect.fnUntraced(function*(options: ChaosOptions) {
  const timingsName: TimingsName = options.timings ?? "short"
  const timings = timingMillisOf(timingsName)
  const targetSilos = options.silos ?? 3
  const accountCount = options.accounts ?? 40
  const workerCount = options.workers ?? 8
  const callTimeoutMs = options.callTimeoutMs ?? 2_000
  const stateUrl = options.stateRedisUrl ?? process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
  const log = options.log ?? (() => {})
  const faults = options.faults ?? allFaults
  const cyclesWanted = options.cycles ?? 1

  /** Scheduling noise on a loaded 2-core machine. */
  const slackMs = 3_000
  /**
   * Every account must answer again within this of each step: the death timeout plus a
   * full read (the failover), two call timeouts (a call sent just before the step, then its
   * retry) and the slack. Short timings: 8.4 s; production: 10.5 s.
   */
  const recoveryBoundMs = timings.dead + timings.refresh + 2 * callTimeoutMs + slackMs
  /** A call must end within its timeout plus this. */
  const hangSlackMs = 1_000
  /** The harness interrupts a call this long after its timeout (and counts it as hung). */
  const guardMs = callTimeoutMs + 10_000
  /** A deposit not acknowledged for this long is given up (left unacknowledged). */
  const abandonMs = 120_000
  const startupBoundMs = 40_000
  const settleBoundMs = 40_000
  const pauseBetweenFaultsMs = timingsName === "short" ? 2_000 : 4_000
  /** A paused silo stays paused at least this long: well past the death timeout. */
  const minPauseMs = 2 * timings.dead + timings.refresh

  const runId = newRunId()
  const keyPrefix = `${runPrefix}${runId}`
  const clusterName = "chaos"
  const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-chaos-"))
  const t0 = nowMillis()
  const rel = (t: number) => Math.round(t - t0)
  const say = (line: string) => log(`[${(rel(nowMillis()) / 1000).toFixed(1)}s] ${line}`)
  say(`run ${runId}, timings ${timingsName}, files in ${directory}`)

  // --- The main Redis -------------------------------------------------------------------
  const stateRedis = yield* Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const redis = new Redis(stateUrl, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
        let lastError: unknown
        redis.on("error", (error) => void (lastError = error))
        await redis.connect().catch((cause) => Promise.reject(lastError ?? cause))
        return redis
      },
      catch: (cause) =>
        new ChaosSetupError({
          reason: `the main Redis at ${stateUrl} is unreachable (${String(cause)}). ` +
            "Start it (see .ci/run) or point QUARK_REDIS_URL at one."
        })
    }),
    (redis) => Effect.promise(() => redis.quit().then(() => undefined, () => redis.disconnect()))
  )
  // Runs killed before their cleanup leave keys without expiry behind.
  yield* deleteAbandonedRuns(stateRedis, runPrefix, abandonedAfterMs)
  yield* Effect.addFinalizer(() => deleteKeys(stateRedis, `${keyPrefix}*`))

  // --- The registry's Redis -------------------------------------------------------------
  const watchdog = yield* startWatchdog
  const registryPort = yield* freePort()
  const registryUrl = `redis://127.0.0.1:${registryPort}`
  let registry: ChildProcess | undefined
  const registryLog = Fs.openSync(Path.join(directory, "registry-redis.log"), "a")
  yield* Effect.addFinalizer(() => Effect.sync(() => Fs.closeSync(registryLog)))
  const startRegistry = Effect.gen(function*() {
    const child = spawn(
      "redis-server",
      ["--port", String(registryPort), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
      { stdio: ["ignore", registryLog, registryLog] }
    )
    const failed = new Promise<string>((resolve) => {
      child.once("error", (error) => resolve(String(error)))
      child.once("exit", (code, signal) => resolve(`exited (${signal ?? code}) before answering`))
    })
    watchdog.watch(child.pid)
    child.once("exit", () => watchdog.forget(child.pid))
    registry = child
    const started = nowMillis()
    while (true) {
      const outcome = yield* Effect.promise(() =>
        Promise.race([failed.then((reason) => ({ reason })), pingRedis(registryPort).then((ok) => ({ ok }))])
      )
      if ("reason" in outcome) {
        return yield* new ChaosSetupError({
          reason: outcome.reason.includes("ENOENT") ?
            "redis-server is not installed: the chaos test starts a registry server of its own (apt-get install redis-server)" :
            `the registry's redis-server on port ${registryPort} ${outcome.reason} (see ${directory}/registry-redis.log)`
        })
      }
      if (outcome.ok) return
      if (nowMillis() - started > 10_000) {
        return yield* new ChaosSetupError({ reason: `the registry's redis-server on port ${registryPort} did not answer within 10 s` })
      }
      yield* sleepMs(20)
    }
  })
  const killRegistry = Effect.promise(() => {
    const child = registry
    registry = undefined
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return Promise.resolve()
    return new Promise<void>((resolve) => {
      child.once("exit", () => resolve())
      child.kill("SIGKILL")
    })
  })
  yield* startRegistry
  yield* Effect.addFinalizer(() => killRegistry)
  /** A connection of the harness's own to the registry, to see who is registered there. */
  const registryView = yield* Effect.acquireRelease(
    Effect.sync(() => {
      const redis = new Redis(registryUrl, { enableOfflineQueue: false, maxRetriesPerRequest: 0, retryStrategy: () => 100 })
      redis.on("error", () => {})
      return redis
    }),
    (redis) => Effect.sync(() => redis.disconnect())
  )
  const membershipKeys = RedisMembership.keys(keyPrefix, clusterName)
  /** The ids registered now; `undefined` while the registry does not answer. */
  const registered = Effect.promise(() =>
    registryView.hkeys(membershipKeys.members).then((ids) => ids as ReadonlyArray<string> | undefined, () => undefined)
  )

  /**
   * When the registry declared `id` dead: its tombstone's score (the registry's clock, Redis
   * `TIME`: this machine's wall clock) on the monotonic clock; `undefined` if not found.
   */
  /** Silo id → when the registry declared it dead (monotonic), as far as its tombstones were read. */
  const declaredDeadAt = new Map<string, number>()
  const findDeath = async (id: string) => {
    const gone = await registryView.zrange(membershipKeys.gone, "0", "-1", "WITHSCORES").catch(() => [] as Array<string>)
    const offset = Date.now() - nowMillis()
    for (let i = 0; i + 1 < gone.length; i += 2) {
      if (gone[i]!.endsWith(`:${id}`) && !gone[i]!.startsWith("left:")) {
        const at = Number(gone[i + 1]) - offset
        declaredDeadAt.set(id, at)
        return at
      }
    }
    return undefined
  }
  const deathOf = (id: string) => Effect.promise(() => findDeath(id))

  // --- Silo processes -------------------------------------------------------------------
  const silos: Array<SiloProcess> = []
  /** A new silo process, on `port` (default: any free port). */
  const spawnSilo = (port = 0) => {
    const index = silos.length
    let exited!: () => void
    const silo = spawnSiloChild<SiloProcess>(siloMain, [
      "--membership",
      registryUrl,
      "--state",
      stateUrl,
      "--prefix",
      keyPrefix,
      "--cluster",
      clusterName,
      "--log-dir",
      directory,
      "--timings",
      timingsName,
      "--port",
      String(port)
    ], {
      index,
      ids: [],
      status: "starting",
      paused: false,
      deadAt: undefined,
      deaths: [],
      expectedExit: false,
      replaced: false,
      exited: new Promise<void>((resolve) => (exited = resolve))
    }, {
      stderrLines: 30,
      stderrFile: Path.join(directory, `silo-${index}.stderr.log`),
      now: nowMillis,
      onLine: (line, silo) => {
        const at = nowMillis()
        if (line.startsWith("ready ")) {
          silo.ids.push(silo.id!)
          if (silo.status !== "stopping" && silo.status !== "exited") silo.status = "serving"
          silo.deadAt = undefined
          say(`silo #${index} (pid ${silo.child.pid}) serves as ${silo.id}`)
        } else if (line.startsWith("dead ")) {
          void findDeath(line.split(" ")[1]!)
          silo.deaths.push(`${line.slice(5)} (at ${rel(at)} ms)`)
          if (silo.status === "serving") silo.status = "dead"
          silo.deadAt = at
          say(`silo #${index} declared dead: ${line.slice(5)}`)
        } else if (line === "stopping") {
          silo.status = "stopping"
        }
      },
      onExit: (silo) => {
        watchdog.forget(silo.child.pid)
        silo.status = "exited"
        if (!silo.expectedExit) say(`silo #${index} exited on its own (${silo.exit?.signal ?? silo.exit?.code})`)
        exited()
      }
    })
    // A silo exits when its stdin closes, but not while it is stopped (SIGSTOP): the watchdog kills it then.
    watchdog.watch(silo.child.pid)
    silos.push(silo)
    return silo
  }
  const running = () => silos.filter((s) => s.status !== "exited")
  /** Stops a silo with `how`; SIGKILL if it has not exited 25 s later. */
  const stopSilo = (silo: SiloProcess, how: "SIGTERM" | "SIGKILL") =>
    Effect.promise(async () => {
      silo.expectedExit = true
      if (silo.status === "exited") return
      if (silo.paused) {
        silo.child.kill("SIGCONT")
        silo.paused = false
      }
      silo.child.kill(how)
      const timer = setTimeout(() => silo.child.kill("SIGKILL"), 25_000)
      await silo.exited
      clearTimeout(timer)
    })
  yield* Effect.addFinalizer(() => Effect.forEach(silos, (s) => stopSilo(s, "SIGKILL"), { discard: true }))
  const describeSilos = () =>
    silos.map((s) =>
      `silo #${s.index} pid ${s.child.pid} ${s.status} ${s.id ?? "(no id)"} exit=${JSON.stringify(s.exit ?? null)}\n    ${
        s.stderr.slice(-8).join("\n    ")
      }`
    ).join("\n")

  /** Waits for a started silo's first `ready`; one that exits or takes too long fails. */
  const awaitReady = (silo: SiloProcess) =>
    Effect.gen(function*() {
      if ((yield* pollUntil(startupBoundMs, Effect.sync(() => silo.status !== "starting"), { now: nowMillis })) === null) {
        return yield* new ChaosSetupError({ reason: `silo #${silo.index} not ready after ${startupBoundMs} ms\n${describeSilos()}` })
      }
      if (silo.status === "exited") {
        return yield* new ChaosSetupError({ reason: `silo #${silo.index} exited while starting\n${describeSilos()}` })
      }
    })

  for (let i = 0; i < targetSilos; i++) spawnSilo()
  yield* Effect.forEach([...silos], awaitReady, { discard: true })

  // --- The long-lived client ------------------------------------------------------------
  const client: Context.Context<Silo.Silo | Cluster> = yield* Layer.build(
    ClusterClient.layer({ requestTimeout: `${callTimeoutMs} millis` }).pipe(
      Layer.provide(RedisMembership.layer({ url: registryUrl, keyPrefix, cluster: clusterName, ...timingsOf(timingsName) }))
    )
  ).pipe(Effect.mapError((error) => new ChaosSetupError({ reason: `the client could not start: ${String(error)}` })))
  const cluster = Context.get(client, Cluster)
  const asClient = <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster>) => Effect.provideContext(effect, client)

  // --- Bookkeeping ----------------------------------------------------------------------
  const newWindow = (name: string, fault: FaultKind | undefined, cycle: number): Window => ({
    name,
    fault,
    cycle,
    start: nowMillis(),
    end: Infinity,
    steps: [],
    calls: [],
    reasons: new Map(),
    summary: undefined,
    replaced: [],
    gracefulExit: undefined,
    uncleanStops: []
  })
  const baseline = newWindow("baseline", undefined, 1)
  /** When the cluster had settled at the start. */
  let settledAt = Infinity
  const windows: Array<Window> = [baseline]
  let window = baseline
  const windowAt = (t: number): Window => {
    for (let i = windows.length - 1; i >= 0; i--) if (windows[i]!.start <= t) return windows[i]!
    return baseline
  }
  /** Ends the current window: summarizes its calls (per step, when every account answered again) and drops them. */
  const closeWindow = () => {
    const w = window
    // The baseline's latency is the steady state's: from when the cluster had settled at the start.
    const latencies = w.calls.filter((c) => w !== baseline || c.start >= settledAt).map((c) => c.end - c.start)
    w.end = nowMillis()
    const windowAccounts = accountsOf(w.cycle)
    const failed = failures(w.calls, w.start, w.end)
    const allSucceeded = allAnsweredAt(w.calls, windowAccounts, w.start, w.end)
    w.summary = {
      steps: w.steps.map((s, i) => {
        const answered = allAnsweredAt(w.calls, windowAccounts, s.at, w.steps[i + 1]?.at ?? w.end)
        return {
          step: s.step,
          atMs: rel(s.at),
          recoveredMs: answered === undefined ? null : Math.round(answered - s.at),
          viewsAgreedMs: s.viewsAgreedMs
        }
      }),
      lastFailureMs: failed.last === undefined ? null : Math.round(failed.last - w.start),
      allSucceededMs: allSucceeded === undefined ? null : Math.round(allSucceeded - w.start),
      calls: w.calls.length,
      failuresByTag: failed.byTag,
      latencyP99Ms: percentile(latencies, 0.99),
      latenciesMs: options.keepLatencies === true ? latencies : undefined
    }
    w.calls = []
  }
  const deposits: Array<Deposit> = []
  const pauses: Array<Pause> = []
  const acknowledgedSum = new Map<string, number>()
  const issuedSum = new Map<string, number>()
  const staleReads: Array<StaleRead> = []
  const hung: Array<string> = []
  const late: Array<string> = []
  let maxOverrunMs = 0
  let totalCalls = 0
  let cycle = 1
  const accountsOf = (c: number) => Array.from({ length: accountCount }, (_, i) => `c${c}-a${i}`)
  let accounts = accountsOf(cycle)
  const allAccounts: Array<string> = [...accounts]

  /** For the waits: per account, since `trackSince`, the end of its last failure and of its last success started since. */
  let trackSince = nowMillis()
  const lastFailureEnd = new Map<string, number>()
  const lastSuccessEnd = new Map<string, number>()
  const track = (since: number) => {
    trackSince = since
    lastFailureEnd.clear()
    lastSuccessEnd.clear()
  }
  const allRecovered = () => accounts.every((a) => (lastSuccessEnd.get(a) ?? -Infinity) > (lastFailureEnd.get(a) ?? -Infinity))

  const record = (call: CallRecord) => {
    totalCalls++
    windowAt(call.end).calls.push(call)
    if (call.outcome === "ok") {
      if (call.start >= trackSince) lastSuccessEnd.set(call.account, Math.max(lastSuccessEnd.get(call.account) ?? -Infinity, call.end))
    } else if (call.end >= trackSince) {
      lastFailureEnd.set(call.account, Math.max(lastFailureEnd.get(call.account) ?? -Infinity, call.end))
    }
    const overrun = call.end - call.start - callTimeoutMs
    maxOverrunMs = Math.max(maxOverrunMs, overrun)
    if (call.outcome === "Hung" || overrun > hangSlackMs) {
      const what = `${call.kind} on ${call.account} at ${rel(call.start)} ms took ${Math.round(call.end - call.start)} ms (${call.outcome})`
      ;(call.outcome === "Hung" ? hung : late).push(what)
    }
  }

  type Served = { readonly balance: number; readonly silo: string; readonly activation: string }
  type Ref = Effect.Success<ReturnType<typeof ChaosAccount.ref>>
  /** One call through the client, recorded, its answer checked against the acknowledged deposits; never fails. */
  const timedCall = (account: string, kind: "deposit" | "read", send: (ref: Ref) => Effect.Effect<Served, unknown>) =>
    Effect.gen(function*() {
      const floor = acknowledgedSum.get(account) ?? 0
      const start = nowMillis()
      const exit = yield* Effect.exit(
        Effect.timeoutOption(asClient(Effect.flatMap(ChaosAccount.ref(account), send)), `${guardMs} millis`)
      )
      const end = nowMillis()
      let outcome: string
      let value: Served | undefined
      if (Exit.isFailure(exit)) outcome = outcomeOf(exit.cause)
      else if (Option.isNone(exit.value)) outcome = "Hung"
      else {
        outcome = "ok"
        value = exit.value.value
      }
      record({ account, kind, start, end, outcome })
      if (Exit.isFailure(exit)) {
        const reasons = windowAt(end).reasons
        const key = `${outcome}: ${reasonOf(exit.cause)}`
        if (reasons.has(key) || reasons.size < 50) reasons.set(key, (reasons.get(key) ?? 0) + 1)
      }
      if (value !== undefined) {
        const ceiling = issuedSum.get(account) ?? 0
        if (value.balance < floor || value.balance > ceiling) {
          staleReads.push({
            account,
            window: windowAt(start).name,
            kind,
            start: rel(start),
            end: rel(end),
            value: value.balance,
            floor,
            ceiling,
            silo: value.silo,
            activation: value.activation,
            description: `${kind} of ${account} [${rel(start)}, ${rel(end)}] ms answered ${value.balance} from ${value.silo} ` +
              `(activation ${value.activation}), but ${
                value.balance < floor ? `${floor} had been acknowledged before it started` : `only ${ceiling} was ever deposited`
              }`
          })
        }
      }
      return outcome
    })

  // --- The load -------------------------------------------------------------------------
  let stopping = false
  let stopDeadline = Infinity
  const timeout = `${callTimeoutMs} millis` as const
  const worker = (w: number) =>
    Effect.gen(function*() {
      for (let n = 0; !stopping; n++) {
        const account = accounts[(w * 7 + n * 11) % accounts.length]!
        const deposit: Deposit = {
          id: `w${w}-${n}`,
          account,
          amount: 1 + ((w + n) % 9),
          firstAttempt: nowMillis(),
          acknowledged: false,
          attempts: 0
        }
        deposits.push(deposit)
        issuedSum.set(account, (issuedSum.get(account) ?? 0) + deposit.amount)
        while (true) {
          deposit.attempts++
          const outcome = yield* timedCall(
            account,
            "deposit",
            (ref) => ref.Deposit({ depositId: deposit.id, amount: deposit.amount }, { timeout })
          )
          if (outcome === "ok") {
            deposit.acknowledged = true
            acknowledgedSum.set(account, (acknowledgedSum.get(account) ?? 0) + deposit.amount)
            break
          }
          const now = nowMillis()
          if (now - deposit.firstAttempt > abandonMs || now > stopDeadline) break
          // The same id again: the account applies it once, whatever became of this attempt.
          yield* sleepMs(25)
        }
        yield* sleepMs(5)
      }
    })
  const prober = Effect.gen(function*() {
    while (!stopping) {
      yield* Effect.forEach(accounts, (account) => timedCall(account, "read", (ref) => ref.Balance({ timeout })), {
        concurrency: "unbounded",
        discard: true
      })
      yield* sleepMs(250)
    }
  })
  const loadFibers: Array<Fiber.Fiber<void>> = []
  for (let w = 0; w < workerCount; w++) loadFibers.push(yield* Effect.forkScoped(worker(w)))
  loadFibers.push(yield* Effect.forkScoped(prober))

  // --- Waiting for the cluster ----------------------------------------------------------
  const serving = () => silos.filter((s) => s.status === "serving" && !s.paused)
  const sameSet = (a: ReadonlyArray<string> | undefined, b: ReadonlyArray<string>) =>
    a !== undefined && a.length === b.length && b.every((id) => a.includes(id))
  /** The client, every serving silo and the registry see exactly the serving silos, and no silo waits to rejoin. */
  const viewsAgree = Effect.gen(function*() {
    const ids = serving().map((s) => s.id!)
    if (ids.length === 0 || silos.some((s) => s.status === "dead" && !s.paused)) return false
    if (!sameSet(yield* cluster.members, ids) || !serving().every((s) => sameSet(s.members, ids))) return false
    return sameSet(yield* registered, ids)
  })
  /** Polls every 20 ms until `condition` holds; the ms it took, or `null` after `maxMs`. */
  const waitUntil = (maxMs: number, condition: Effect.Effect<boolean>) => pollUntil(maxMs, condition, { every: 20, now: nowMillis })
  /** A step of the current fault: recorded, then the harness waits (bounded) for the views to agree and every account to answer. */
  const step = (name: string, at: number = nowMillis()) =>
    Effect.gen(function*() {
      say(name)
      track(at)
      const agreed = yield* waitUntil(Math.max(0, at + recoveryBoundMs - nowMillis()), viewsAgree)
      const viewsAgreedMs = agreed === null ? null : Math.round(nowMillis() - at)
      window.steps.push({ step: name, at, viewsAgreedMs })
      const recovered = yield* waitUntil(Math.max(0, at + recoveryBoundMs - nowMillis()), Effect.sync(allRecovered))
      say(`  views ${viewsAgreedMs === null ? "did NOT agree" : `agreed after ${viewsAgreedMs} ms`}, ${
        recovered === null ?
          `accounts did NOT all answer within ${recoveryBoundMs} ms` :
          `every account answered ${Math.round(nowMillis() - at)} ms after`
      }`)
    })
  /** The serving silo owning the most current accounts, as the client sees the ring. */
  const busiest = Effect.gen(function*() {
    const counts = new Map<string, number>()
    for (const id of accounts) {
      const owner = yield* cluster.ownerOf({ type: ChaosAccount.type, id })
      if (owner !== undefined) counts.set(owner, (counts.get(owner) ?? 0) + 1)
    }
    return serving().reduce((best, s) => (counts.get(s.id!) ?? 0) > (counts.get(best.id!) ?? 0) ? s : best, serving()[0]!)
  })
  /**
   * Replaces the silos that are out of the cluster: declared dead and not rejoined within
   * the recovery bound of their death, no member of the client's view (nor printing that
   * they were declared dead) within the bound, or exited on their own; then waits for the
   * cluster to settle. `false` if it could not.
   */
  const repairAndSettle = Effect.gen(function*() {
    const outOfCluster = (s: SiloProcess, members: ReadonlyArray<string>) =>
      !s.replaced && !s.paused && (s.status === "dead" || (s.status === "exited" && !s.expectedExit) ||
        (s.status === "serving" && !members.includes(s.id!)))
    const deadline = Math.max(...silos.map((s) => (s.deadAt ?? 0) + recoveryBoundMs), nowMillis() + 1_000)
    yield* waitUntil(
      Math.max(0, deadline - nowMillis()),
      Effect.map(cluster.members, (members) => !silos.some((s) => outOfCluster(s, members)))
    )
    const members = yield* cluster.members
    const doomed = silos.filter((s) => outOfCluster(s, members))
    for (const s of doomed) {
      const what = s.status === "dead" ?
        `#${s.index} ${s.id}: declared dead, not rejoined` :
        s.status === "exited" ?
        `#${s.index} ${s.id}: exited on its own (${s.exit?.signal ?? s.exit?.code})` :
        `#${s.index} ${s.id}: serving, but no member of the client's view`
      window.replaced.push(what)
      say(`replacing silo ${what}`)
      s.replaced = true
    }
    yield* Effect.forEach(doomed, (s) => stopSilo(s, "SIGTERM"), { discard: true, concurrency: "unbounded" })
    while (running().length < targetSilos) {
      const fresh = spawnSilo()
      if (Exit.isFailure(yield* Effect.exit(awaitReady(fresh)))) return false
      yield* step(`repair: new silo #${fresh.index} ${fresh.id} ready`)
    }
    track(nowMillis())
    const settled = yield* waitUntil(
      settleBoundMs,
      Effect.map(viewsAgree, (agree) => agree && serving().length === targetSilos && allRecovered())
    )
    if (settled === null) say(`the cluster did not settle within ${settleBoundMs} ms:\n${describeSilos()}`)
    return settled !== null
  })

  // --- The faults -----------------------------------------------------------------------
  const joinNewSilo = (label: string) =>
    Effect.gen(function*() {
      const silo = spawnSilo()
      if (Exit.isFailure(yield* Effect.exit(awaitReady(silo)))) {
        say(`${label}: the new silo did not start`)
        return
      }
      yield* step(`${label}: silo #${silo.index} ${silo.id} ready`)
    })

  /** SIGTERM, then its exit (SIGKILL past 25 s), recorded as the window's `gracefulExit`; when it was sent. */
  const terminate = (victim: SiloProcess) =>
    Effect.gen(function*() {
      victim.expectedExit = true
      const at = nowMillis()
      victim.child.kill("SIGTERM")
      const stopped = yield* waitUntil(25_000, Effect.sync(() => victim.status === "exited"))
      if (stopped === null) yield* stopSilo(victim, "SIGKILL")
      window.gracefulExit = {
        code: victim.exit?.code ?? null,
        signal: victim.exit?.signal ?? null,
        ms: Math.round((victim.exit?.at ?? nowMillis()) - at)
      }
      return at
    })

  const inject = (fault: FaultKind) =>
    Effect.gen(function*() {
      switch (fault) {
        case "kill": {
          const victim = yield* busiest
          victim.expectedExit = true
          const at = nowMillis()
          victim.child.kill("SIGKILL")
          yield* Effect.promise(() => victim.exited)
          yield* step(`kill -9 silo #${victim.index} ${victim.id}`, at)
          yield* deathOf(victim.id!)
          yield* joinNewSilo("replacement")
          return
        }
        case "pause": {
          const victim = yield* busiest
          const pid = victim.child.pid!
          const id = victim.id!
          victim.paused = true
          const at = nowMillis()
          victim.child.kill("SIGSTOP")
          // From the moment it is seen stopped, it runs nothing (without /proc: from before the signal).
          let stopped = at
          const seen = yield* waitUntil(1_000, Effect.sync(() => isStopped(pid) !== false))
          if (seen !== null && isStopped(pid) === true) stopped = nowMillis()
          yield* step(`SIGSTOP silo #${victim.index} ${id}`, at)
          yield* sleepMs(at + minPauseMs - nowMillis())
          const resumed = nowMillis()
          victim.child.kill("SIGCONT")
          victim.paused = false
          // It learns it was declared dead (and says so), then rejoins under a new id.
          yield* step(`SIGCONT silo #${victim.index} after ${Math.round(resumed - at)} ms`, resumed)
          pauses.push({ pid, stopped, continued: resumed, declaredDead: yield* deathOf(id) })
          return
        }
        case "graceful": {
          const victim = yield* busiest
          const at = yield* terminate(victim)
          yield* step(`SIGTERM silo #${victim.index} ${victim.id} (exited ${JSON.stringify(window.gracefulExit)})`, at)
          yield* joinNewSilo("joining")
          return
        }
        case "rolling": {
          // Every silo in turn, twice: SIGTERM, wait for its exit, start its successor on its port.
          for (let round = 1; round <= 2; round++) {
            for (const victim of serving()) {
              victim.replaced = true
              const port = Number(victim.id!.slice(victim.id!.lastIndexOf(":") + 1, victim.id!.lastIndexOf("@")))
              const at = yield* terminate(victim)
              if (victim.exit?.code !== 0) {
                window.uncleanStops.push(`silo #${victim.index} ${victim.id}: ${JSON.stringify(window.gracefulExit)}`)
                say(`silo #${victim.index} did not stop cleanly: ${JSON.stringify(window.gracefulExit)}`)
              }
              const successor = spawnSilo(port)
              if (Exit.isFailure(yield* Effect.exit(awaitReady(successor)))) {
                say(`rolling: the successor of silo #${victim.index} did not start`)
                return
              }
              yield* step(`rolling ${round}: silo #${victim.index} replaced by #${successor.index} ${successor.id}`, at)
            }
          }
          return
        }
        case "registry-5s":
        case "registry-20s": {
          const outageMs = fault === "registry-5s" ? 5_000 : 20_000
          const at = nowMillis()
          yield* killRegistry
          window.steps.push({ step: "registry Redis killed", at, viewsAgreedMs: undefined })
          say("registry Redis killed")
          yield* sleepMs(at + outageMs - nowMillis())
          yield* startRegistry
          yield* step(`registry Redis restarted empty after ${Math.round(nowMillis() - at)} ms`)
          return
        }
      }
    })

  // --- The run --------------------------------------------------------------------------
  let aborted: string | undefined
  say("waiting for the cluster to settle")
  if (!(yield* repairAndSettle)) aborted = "the cluster did not settle at the start"
  settledAt = nowMillis()
  let cyclesRun = 0
  while (aborted === undefined) {
    if (options.durationMs === undefined ? cyclesRun >= cyclesWanted : cyclesRun > 0 && nowMillis() - t0 >= options.durationMs) break
    if (cyclesRun > 0) {
      // Fresh accounts for each cycle (the previous ones passivate when idle).
      cycle++
      accounts = accountsOf(cycle)
      allAccounts.push(...accounts)
      if (!(yield* repairAndSettle)) {
        aborted = `the cluster did not settle at the start of cycle ${cycle}`
        break
      }
    }
    cyclesRun++
    for (const fault of faults) {
      if (options.deadlineMs !== undefined && nowMillis() - t0 > options.deadlineMs) {
        aborted = `the deadline (${options.deadlineMs} ms) passed before ${fault}#${cycle}`
        break
      }
      yield* sleepMs(pauseBetweenFaultsMs)
      closeWindow()
      window = newWindow(`${fault}#${cycle}`, fault, cycle)
      windows.push(window)
      yield* inject(fault)
      if (!(yield* repairAndSettle)) {
        aborted = `the cluster could not be brought back after ${window.name}`
        break
      }
    }
  }
  if (aborted !== undefined) say(`ABORTED: ${aborted}`)

  // --- Stop the load, then the silos ----------------------------------------------------
  yield* sleepMs(pauseBetweenFaultsMs)
  say("stopping the load")
  stopping = true
  stopDeadline = nowMillis() + 15_000
  for (const fiber of loadFibers) {
    if (Option.isNone(yield* Effect.timeoutOption(Fiber.join(fiber), "40 seconds"))) {
      hung.push("a load fiber did not finish within 40 s of the stop")
      yield* Fiber.interrupt(fiber)
    }
  }
  closeWindow()
  // Turns of calls that timed out may still run (nothing cancels them on the silo): let them end.
  yield* sleepMs(callTimeoutMs)
  yield* Effect.forEach(running(), (s) => stopSilo(s, "SIGTERM"), { discard: true, concurrency: "unbounded" })

  // --- Check 1: single activation, from the turn logs -----------------------------------
  // Two passes over the logs, so that a long run's turns need not all be in memory: every
  // activation's span first, then the turns of the activations whose spans overlap.
  const forEachTurn = (f: (turn: TurnRecord) => void) =>
    Effect.promise(async () => {
      for (const file of Fs.readdirSync(directory).filter((name) => name.startsWith("turns-"))) {
        for await (const line of Readline.createInterface({ input: Fs.createReadStream(Path.join(directory, file)) })) {
          const turn = line === "" ? undefined : parseTurn(line)
          if (turn !== undefined) f(turn)
        }
      }
    })
  const spans = new Map<string, ServingSpan>()
  let turnCount = 0
  yield* forEachTurn((turn) => {
    turnCount++
    addToSpans(spans, turn)
  })
  const candidates = overlapCandidates(spans.values())
  const candidateTurns: Array<TurnRecord> = []
  if (candidates.size > 0) yield* forEachTurn((turn) => candidates.has(turn.activation) && void candidateTurns.push(turn))
  const fmt = (i: { readonly start: number; readonly end: number }) => `[${rel(i.start)}, ${rel(i.end)}] ms`
  const keys = activationKeys(keyPrefix)
  const starts = new Map(
    Object.entries(yield* Effect.promise(() => stateRedis.hgetall(keys.starts))).map(([k, v]) => [k, JSON.parse(v) as ActivationStart])
  )
  const ends = new Map(Object.entries(yield* Effect.promise(() => stateRedis.hgetall(keys.ends))).map(([k, v]) => [k, Number(v)]))
  const recordProblems = checkActivationRecords(spans.values(), starts, ends)
  const allOverlaps: Array<OverlapReport> = findOverlaps(candidateTurns, pauses, (a) => starts.get(a)?.start).map((o) => ({
    ...o,
    window: windowAt(o.witness.second.start).name,
    description: `${o.address}: activation ${o.first.activation} on ${o.first.silo} (pid ${o.first.pid}) served ${
      fmt(o.first)
    } (${o.first.turns} turns), activation ${o.second.activation} on ${o.second.silo} (pid ${o.second.pid}) served ${
      fmt(o.second)
    } (${o.second.turns} turns): ${o.kind}, ${o.second.activation}'s ${o.witness.second.tag} ${fmt(o.witness.second)} and ${
      o.first.activation
    }'s ${o.witness.first.tag} ${fmt(o.witness.first)} (${o.witness.first.outcome})`
  }))
  const overlaps = allOverlaps.filter((o) => o.kind !== "turn frozen across a pause")
  const frozenTurnOverlaps = allOverlaps.filter((o) => o.kind === "turn frozen across a pause")

  // --- Check 1c: activation lifecycle, from the activation records -----------------------
  const lives = [...starts].map(([activation, s]) => ({ activation, address: s.address, silo: s.silo, start: s.start, end: ends.get(activation) }))
  const ms1 = (t: number) => (t - t0).toFixed(1)
  const lifeText = (l: { activation: string; silo: string; start: number; end: number | undefined }) =>
    `${l.activation} on ${l.silo} [${ms1(l.start)}, ${l.end === undefined ? "no end" : ms1(l.end)}] ms`
  const earlyActivations: Array<EarlyActivationReport> = findEarlyActivations(lives, (silo) => declaredDeadAt.get(silo)).map((e) => ({
    ...e,
    window: windowAt(e.second.start).name,
    description: `${e.address}: activation ${lifeText(e.second)} began ${
      e.first.end === undefined ? "" : `${(e.first.end - e.second.start).toFixed(1)} ms `
    }before activation ${lifeText(e.first)} had ended${
      e.firstDeclaredDead === undefined ? "" : ` (its silo was declared dead only later, at ${ms1(e.firstDeclaredDead)} ms)`
    }`
  }))

  // --- Check 2: every acknowledged deposit stored exactly once ---------------------------
  const stored = new Map<string, { balance: number; applied: Array<string> } | undefined>()
  for (const account of allAccounts) {
    const data = yield* Effect.promise(() =>
      stateRedis.hget(RedisStore.redisKey(keyPrefix, "state", { type: ChaosAccount.type, id: account, record: "account" }), "data")
    )
    stored.set(account, data === null ? undefined : JSON.parse(data) as { balance: number; applied: Array<string> })
  }
  const depositById = new Map(deposits.map((d) => [d.id, d]))
  const problems: Array<WriteProblemReport> = checkWrites(deposits, stored).map((p) => {
    const d = depositById.get(p.depositId)
    return {
      ...p,
      window: d === undefined ? "?" : windowAt(d.firstAttempt).name,
      detail: d === undefined ? p.detail : `${p.detail} (first tried at ${rel(d.firstAttempt)} ms, ${d.attempts} attempts)`
    }
  })
  const acknowledgedCount = deposits.filter((d) => d.acknowledged).length

  // --- Per fault --------------------------------------------------------------------------
  const faultResults: Array<FaultResult> = windows.filter((w) => w.fault !== undefined).map((w) => {
    const { steps, lastFailureMs, allSucceededMs, calls, failuresByTag, latencyP99Ms, latenciesMs } = w.summary!
    const inWindow = (t: number) => t >= w.start && t < w.end
    const windowProblems = problems.filter((p) => p.window === w.name)
    // The registry's kill is not a step to recover from: the cluster should keep serving through it.
    const checked = steps.filter((s) => s.step !== "registry Redis killed")
    return {
      fault: w.fault!,
      cycle: w.cycle,
      steps,
      lastFailureMs,
      allSucceededMs,
      calls,
      failuresByTag,
      latencyP99Ms,
      latenciesMs,
      failureReasons: [...w.reasons].sort((a, b) => b[1] - a[1]).slice(0, 6).map(([reason, n]) => `${reason} (${n})`),
      replaced: w.replaced,
      gracefulExit: w.gracefulExit,
      uncleanStops: w.uncleanStops,
      overlaps: overlaps.filter((o) => inWindow(o.witness.second.start)).length,
      frozenTurnOverlaps: frozenTurnOverlaps.filter((o) => inWindow(o.witness.second.start)).length,
      earlyActivations: earlyActivations.filter((e) => inWindow(e.second.start)).length,
      staleReads: staleReads.filter((s) => s.window === w.name).length,
      lostWrites: windowProblems.filter((p) => p.problem === "lost").length,
      duplicatedWrites: windowProblems.filter((p) => p.problem === "duplicated").length,
      recovered: checked.length > 0 && checked.every((s) => s.recoveredMs !== null && s.recoveredMs <= recoveryBoundMs)
    }
  })

  const checks = {
    singleActivation: overlaps.length === 0,
    activationLifecycle: earlyActivations.length === 0,
    noStaleReads: staleReads.length === 0,
    writesExactlyOnce: problems.length === 0,
    noHungCalls: hung.length === 0 && late.length === 0,
    recoveredAfterEachFault: aborted === undefined && faultResults.length > 0 && faultResults.every((f) => f.recovered)
  }
  const keep = options.keepFiles === true || !Object.values(checks).every(Boolean) || recordProblems.length > 0
  if (!keep) Fs.rmSync(directory, { recursive: true, force: true })
  say(`done: ${JSON.stringify(checks)}${keep ? `; files kept in ${directory}` : ""}`)

  return {
    run: runId,
    timings: timingsName,
    bounds: { recoveryMs: recoveryBoundMs, hangSlackMs, callTimeoutMs },
    durationMs: Math.round(nowMillis() - t0),
    cycles: cyclesRun,
    faults: faultResults,
    baseline: {
      calls: baseline.summary!.calls,
      failuresByTag: baseline.summary!.failuresByTag,
      latencyP99Ms: baseline.summary!.latencyP99Ms
    },
    overlaps,
    frozenTurnOverlaps,
    earlyActivations,
    pauses: pauses.map((p) => ({
      pid: p.pid,
      stoppedMs: rel(p.stopped),
      continuedMs: rel(p.continued),
      declaredDeadMs: p.declaredDead === undefined ? null : rel(p.declaredDead)
    })),
    staleReads,
    writes: {
      issued: deposits.length,
      acknowledged: acknowledgedCount,
      unacknowledged: deposits.length - acknowledgedCount,
      problems
    },
    calls: { total: totalCalls, hung, late, maxOverrunMs: Math.round(maxOverrunMs) },
    turns: { total: turnCount, activations: spans.size, recordProblems },
    processes: silos.map((s) => ({
      index: s.index,
      pid: s.child.pid,
      ids: s.ids,
      deaths: s.deaths,
      exit: s.exit === undefined ? "running" : `${s.exit.signal ?? s.exit.code}`
    })),
    aborted,
    checks,
    directory: keep ? directory : undefined
  } satisfies ChaosResult
})

// ---------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------

const seconds = (ms: number | null | undefined) => (ms === null || ms === undefined ? "never" : `${(ms / 1000).toFixed(2)} s`)

/**
 * The markdown table of a run, one row per kind of fault: the unavailability window (from
 * the injection until every account had answered after its last failure; in brackets,
 * until the last failed call), the failed calls by error, overlaps, stale reads,
 * lost/duplicated writes, and the rounds in which every step recovered within the bound.
 */
export const formatTable = (result: ChaosResult): string => {
  const rows: Array<string> = [
    "| fault | rounds | unavailability window: max, median (to the last failed call: max, median) | failed calls by error | overlaps (+ frozen turns) | early activations | stale reads | lost / duplicated writes | recovered within bound |",
    "|---|---:|---|---|---:|---:|---:|---|---:|"
  ]
  for (const kind of [...new Set(result.faults.map((f) => f.fault))]) {
    const rounds = result.faults.filter((f) => f.fault === kind)
    const windows = rounds.map((f) => f.allSucceededMs).filter((w): w is number => w !== null)
    const lasts = rounds.map((f) => f.lastFailureMs).filter((w): w is number => w !== null)
    const errors: Record<string, number> = {}
    for (const f of rounds) for (const [tag, n] of Object.entries(f.failuresByTag)) errors[tag] = (errors[tag] ?? 0) + n
    const errorText = Object.entries(errors).sort((a, b) => b[1] - a[1]).map(([tag, n]) => `${tag} ${n}`).join(", ") || "none"
    const windowText = windows.length < rounds.length ?
      `never, in ${rounds.length - windows.length} of ${rounds.length} rounds` :
      `${seconds(Math.max(...windows))}, ${seconds(median(windows))}`
    const lastText = lasts.length === 0 ? "no failed call" : `${seconds(Math.max(...lasts))}, ${seconds(median(lasts))}`
    const sum = (pick: (f: FaultResult) => number) => rounds.reduce((n, f) => n + pick(f), 0)
    rows.push(
      `| ${kind} | ${rounds.length} | ${windowText} (${lastText}) | ${errorText} | ${sum((f) => f.overlaps)}${
        sum((f) => f.frozenTurnOverlaps) > 0 ? ` (+ ${sum((f) => f.frozenTurnOverlaps)})` : ""
      } | ${sum((f) => f.earlyActivations)} | ${sum((f) => f.staleReads)} | ${
        sum((f) => f.lostWrites)
      } / ${sum((f) => f.duplicatedWrites)} | ${rounds.filter((f) => f.recovered).length}/${rounds.length} |`
    )
  }
  return rows.join("\n")
}

/** The checks with their evidence (the first `limit` items of each), and every fault's steps. */
export const formatFindings = (result: ChaosResult, limit = 10): string => {
  const c = result.checks
  const list = (items: ReadonlyArray<string>) =>
    items.slice(0, limit).map((s) => `   - ${s}`).concat(items.length > limit ? [`   - ... and ${items.length - limit} more`] : [])
  const lines = [
    `1. single activation: ${c.singleActivation ? "pass" : `FAIL, ${result.overlaps.length} overlaps`} ` +
    `(${result.turns.total} turns of ${result.turns.activations} activations)`,
    ...list(result.overlaps.map((o) => `[${o.window}] ${o.description}`)),
    `   overlaps that are only a turn frozen across a SIGSTOP (not violations): ${result.frozenTurnOverlaps.length}`,
    ...list(result.frozenTurnOverlaps.map((o) => `[${o.window}] ${o.description}`)),
    ...result.pauses.map((p) =>
      `   pause of pid ${p.pid}: seen stopped at ${p.stoppedMs} ms, continued at ${p.continuedMs} ms, declared dead at ${
        p.declaredDeadMs ?? "(no tombstone found)"
      } ms`
    ),
    `   activation lifecycle (none began before the previous one of its address ended or was declared dead): ${
      c.activationLifecycle ? "pass" : `FAIL, ${result.earlyActivations.length}`
    }`,
    ...list(result.earlyActivations.map((e) => `[${e.window}] ${e.description}`)),
    `   no stale reads: ${c.noStaleReads ? "pass" : `FAIL, ${result.staleReads.length}`}`,
    ...list(result.staleReads.map((s) => `[${s.window}] ${s.description}`)),
    `2. writes exactly once: ${c.writesExactlyOnce ? "pass" : `FAIL, ${result.writes.problems.length} problems`} ` +
    `(${result.writes.acknowledged} deposits acknowledged, ${result.writes.unacknowledged} not)`,
    ...list(result.writes.problems.map((p) => `[${p.window}] ${p.problem}: ${p.detail}`)),
    `3. no call hung: ${c.noHungCalls ? "pass" : `FAIL, ${result.calls.hung.length} hung, ${result.calls.late.length} late`} ` +
    `(${result.calls.total} calls; the longest overran its ${result.bounds.callTimeoutMs} ms timeout by ${result.calls.maxOverrunMs} ms)`,
    ...list([...result.calls.hung.map((h) => `hung: ${h}`), ...result.calls.late.map((l) => `late: ${l}`)]),
    `4. every account answering within ${result.bounds.recoveryMs} ms of each step: ${c.recoveredAfterEachFault ? "pass" : "FAIL"}`
  ]
  for (const f of result.faults) {
    lines.push(
      `   - ${f.fault}#${f.cycle}${f.recovered ? "" : " (NOT recovered)"}: window ${seconds(f.allSucceededMs)} (last failed call ${
        seconds(f.lastFailureMs)
      }), ${f.calls} calls, failed ${JSON.stringify(f.failuresByTag)}${
        f.failureReasons.length === 0 ? "" : ` [${f.failureReasons.join("; ")}]`
      }${
        f.gracefulExit === undefined ? "" : `, graceful exit ${JSON.stringify(f.gracefulExit)}`
      }${f.replaced.length > 0 ? `, replaced: ${f.replaced.join("; ")}` : ""}`
    )
    for (const s of f.steps) {
      lines.push(`     - at ${s.atMs} ms ${s.step}: every account answered ${
        s.recoveredMs === null ? "NOT before the next step" : `after ${s.recoveredMs} ms`
      }${
        s.viewsAgreedMs === undefined ? "" : `, views agreed ${s.viewsAgreedMs === null ? "NOT within the bound" : `after ${s.viewsAgreedMs} ms`}`
      }`)
    }
  }
  if (result.aborted !== undefined) lines.push(`ABORTED: ${result.aborted}`)
  if (result.turns.recordProblems.length > 0) {
    lines.push(`harness consistency: ${result.turns.recordProblems.length} turns disagree with the activation records`)
    lines.push(...list(result.turns.recordProblems))
  }
  lines.push(`baseline (before the first fault): ${result.baseline.calls} calls, failed ${JSON.stringify(result.baseline.failuresByTag)}`)
  lines.push(
    `processes: ${
      result.processes.map((p) => `#${p.index} pid ${p.pid} ${p.ids.length} incarnation(s), deaths [${p.deaths.join("; ")}], exit ${p.exit}`)
        .join(" | ")
    }`
  )
  return lines.join("\n")
}

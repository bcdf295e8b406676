/**
 * `npm run loadtest`: a load tester for Quark.
 *
 *   npm run loadtest -- [--actors N] [--rate R | --concurrency C] [--duration 10s]
 *                       [--warmup 1s] [--payload-bytes B] [--work-us U] [--json FILE]
 *                       [--redis URL [--cluster NAME] [--key-prefix P]]
 *   npm run loadtest -- serve --redis URL [--port P] [--host H] [--cluster NAME] [--key-prefix P]
 *
 * Asks `LoadtestActor.Work` of N actors (round robin), either open loop (`--rate`: calls
 * start on a fixed schedule whatever the answers do, and each latency is measured from the
 * call's intended start, which corrects coordinated omission) or closed loop
 * (`--concurrency`: C callers, each starting its next call when the last one answered).
 * The target is an in-memory silo in this process, or, with `--redis`, a running cluster
 * reached through a `ClusterClient` (Redis membership) whose silos host the actor type:
 * `serve` runs such a silo.
 *
 * Prints throughput, errors by tag and the latency percentiles (an HDR-style histogram,
 * `Histogram.ts`), and with `--json` writes them as JSON (`schemaVersion: 1`).
 * Exit code: 0 when every measured call succeeded, 1 if any failed (or the run could not
 * start), 2 on bad arguments. `serve` prints `ready <silo id> ...` on stdout once it has
 * joined, and exits 0 on SIGTERM / SIGINT after a graceful leave.
 */
import { NodeRuntime, NodeServices } from "@effect/platform-node"
import {
  Cause,
  Console,
  Duration,
  Effect,
  Exit,
  FiberSet,
  FileSystem,
  Layer,
  Logger,
  Option,
  Runtime,
  Schema
} from "effect"
import { CliError, Command, Flag } from "effect/cli"
import { Silo } from "../../src/index.ts"
import { Cluster, ClusterClient, ClusterSilo } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { Histogram } from "./Histogram.ts"
import { LoadtestActor, LoadtestActorLive } from "./LoadtestActor.ts"

// --- Errors ------------------------------------------------------------------------------

/** Flags that parse but do not make sense together (exit 2). */
class BadArguments extends Schema.TaggedError<BadArguments>()("BadArguments", { reason: Schema.String }) {
  // Printed plainly by the program (see the end), not as a stack trace by runMain.
  override readonly [Runtime.errorReported] = false
  override get message(): string {
    return this.reason
  }
}

/** The run could not start: no Redis, no silo (exit 1). */
class RunFailed extends Schema.TaggedError<RunFailed>()("RunFailed", { reason: Schema.String }) {
  override readonly [Runtime.errorReported] = false
  override get message(): string {
    return this.reason
  }
}

/** The run completed, but some calls failed (exit 1); the report is already printed. */
class CallsFailed extends Schema.TaggedError<CallsFailed>()("CallsFailed", { failed: Schema.Int }) {
  override readonly [Runtime.errorReported] = false
  override get message(): string {
    return `${this.failed} calls failed`
  }
}

// --- Flags -------------------------------------------------------------------------------

const shortDuration = /^(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)$/
const unitMillis: Record<string, number> = { us: 1e-3, "µs": 1e-3, ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }

/** `10s`, `500ms`, `1.5m`, or anything `Duration` reads (`"10 seconds"`); never negative or infinite. */
const parseDuration = (input: string): Option.Option<Duration.Duration> => {
  const short = shortDuration.exec(input.trim())
  const parsed = short !== null
    ? Option.some(Duration.millis(Number(short[1]) * unitMillis[short[2]!]!))
    : Duration.fromInput(input.trim() as Duration.Input)
  return Option.filter(parsed, (d) => Duration.isFinite(d) && Duration.toMillis(d) >= 0)
}

const durationFlag = (name: string, fallback: string, description: string) =>
  Flag.String(name).pipe(
    Flag.withDefault(fallback),
    Flag.filterMap(parseDuration, (s) => `a duration such as 10s, 500ms or "2 minutes", got "${s}"`),
    Flag.withDescription(`${description} (default ${fallback})`)
  )

const atLeast = (min: number) => (n: number): Option.Option<number> => n >= min ? Option.some(n) : Option.none()

const intFlag = (name: string, fallback: number, min: number, description: string) =>
  Flag.Int(name).pipe(
    Flag.withDefault(fallback),
    Flag.filterMap(atLeast(min), (n) => `an integer ≥ ${min}, got ${n}`),
    Flag.withDescription(`${description} (default ${fallback})`)
  )

/** Where the cluster is: shared by the load run (`--redis` makes it a cluster client) and `serve`. */
const clusterFlags = {
  redis: Flag.String("redis").pipe(
    Flag.optional,
    Flag.withDescription("Run against the cluster registered in this Redis (through a cluster client) instead of an in-memory silo; `serve` needs it")
  ),
  cluster: Flag.String("cluster").pipe(
    Flag.withDefault("loadtest"),
    Flag.withDescription("The cluster's name: silos and clients with the same name and key prefix meet (default loadtest)")
  ),
  keyPrefix: Flag.String("key-prefix").pipe(
    Flag.withDefault("quark"),
    Flag.withDescription("The first segment of every Redis key of the cluster (default quark)")
  )
}

const loadFlags = {
  actors: intFlag("actors", 100, 1, "How many actors the calls go to, round robin"),
  rate: Flag.Finite("rate").pipe(
    Flag.filterMap((r) => r > 0 ? Option.some(r) : Option.none(), (r) => `a positive number, got ${r}`),
    Flag.optional,
    Flag.withDescription(
      "Open loop: start this many asks per second on a fixed schedule, whatever the answers do. " +
        "Each latency is measured from the call's intended start, not from when it was sent, so a stall " +
        "counts against every call it delayed (coordinated omission corrected)"
    )
  ),
  concurrency: Flag.Int("concurrency").pipe(
    Flag.filterMap(atLeast(1), (n) => `an integer ≥ 1, got ${n}`),
    Flag.optional,
    Flag.withDescription("Closed loop: this many callers, each asking again as soon as answered (default 16 when no --rate)")
  ),
  duration: durationFlag("duration", "10s", "How long to measure: 10s, 500ms, 2m, \"10 seconds\""),
  warmup: durationFlag("warmup", "1s", "How long to run the same load before measuring (activations, JIT)"),
  payloadBytes: intFlag("payload-bytes", 16, 0, "Size of each call's string payload"),
  workUs: intFlag("work-us", 0, 0, "CPU work (busy wait, microseconds) the actor does per call"),
  callTimeout: durationFlag("call-timeout", "10s", "A call not answered within this fails with CallTimeout"),
  maxInFlight: intFlag(
    "max-in-flight",
    10_000,
    1,
    "Open loop: the most calls outstanding at once; past it the schedule waits (latency still counts from the intended start)"
  ),
  json: Flag.String("json").pipe(Flag.optional, Flag.withDescription("Also write the result to this file as JSON"))
}

// --- The result --------------------------------------------------------------------------

/** What `--json` writes; the human report prints the same fields. */
export interface LoadtestResult {
  readonly schemaVersion: 1
  readonly startedAt: string
  readonly target:
    | { readonly kind: "memory" }
    | { readonly kind: "cluster"; readonly redis: string; readonly cluster: string; readonly keyPrefix: string; readonly silos: number }
  readonly mode: "open-loop" | "closed-loop"
  readonly actors: number
  /** Asks per second asked for (open loop), else null. */
  readonly targetRate: number | null
  /** Callers (closed loop), else null. */
  readonly concurrency: number | null
  readonly durationMs: number
  readonly warmupMs: number
  readonly payloadBytes: number
  readonly workUs: number
  /** Calls started in the measured window. */
  readonly sent: number
  /** Of those, answered correctly. */
  readonly ok: number
  readonly failed: number
  /** Failed calls by error `_tag` (`WrongAnswer`: answered, but not the payload's length). */
  readonly errors: Readonly<Record<string, number>>
  /** From the window's start to the answer of its last call (at least `durationMs`). */
  readonly elapsedMs: number
  /** `ok` per second of `elapsedMs`. */
  readonly throughput: number
  /** `sent` per second of `durationMs`: what the generator achieved (compare with `targetRate`). */
  readonly achievedRate: number
  /** Open loop: the latest a call was sent after its intended start; null in closed loop. */
  readonly maxScheduleLagMs: number | null
  /** Of the successful calls: open loop from the intended start, closed loop from the send. */
  readonly latencyMs: {
    readonly min: number
    readonly mean: number
    readonly p50: number
    readonly p95: number
    readonly p99: number
    readonly p999: number
    readonly max: number
  }
}

interface LoadPlan {
  readonly actors: number
  readonly mode: { readonly _tag: "open"; readonly rate: number; readonly maxInFlight: number } | {
    readonly _tag: "closed"
    readonly concurrency: number
  }
  readonly durationMs: number
  readonly warmupMs: number
  readonly payloadBytes: number
  readonly workUs: number
  readonly callTimeout: Duration.Duration
}

/** Tallies of the measured window; the histogram holds nanoseconds. */
interface Tally {
  sent: number
  ok: number
  readonly errors: Map<string, number>
  /** When the window's last call was answered (`performance.now()`). */
  lastAnswer: number
  /** From the window's start to its last answer, at least the window's length. */
  elapsedMs: number
  maxLag: number
  readonly latency: Histogram
}

const errorTag = (cause: Cause.Cause<{ readonly _tag: string }>): string =>
  Option.match(Cause.findErrorOption(cause), {
    onSome: (error) => error._tag,
    onNone: () => Cause.hasDies(cause) ? "Defect" : "Interrupted"
  })

/**
 * Runs the plan against the actors of the `Silo` in context (in memory, or a cluster
 * client's). Timing uses `performance.now()` (monotonic, sub-microsecond), not the Effect
 * clock: what is measured is wall time.
 */
const runLoad = (plan: LoadPlan): Effect.Effect<Tally, never, Silo.Silo> =>
  Effect.gen(function*() {
    const refs = yield* Effect.forEach(
      Array.from({ length: plan.actors }, (_, i) => `a${i}`),
      (id) => LoadtestActor.refOrDie(id)
    )
    const payload = "x".repeat(plan.payloadBytes)
    const options = { timeout: plan.callTimeout }
    const tally: Tally = { sent: 0, ok: 0, errors: new Map(), lastAnswer: 0, elapsedMs: 0, maxLag: 0, latency: new Histogram() }

    const t0 = performance.now()
    const windowStart = t0 + plan.warmupMs
    const end = windowStart + plan.durationMs

    /** One ask; measured (from `startedAt`) when it belongs to the window. */
    const ask = (n: number, startedAt: number, measured: boolean) =>
      Effect.map(Effect.exit(refs[n % refs.length]!.Work({ payload, workUs: plan.workUs }, options)), (exit) => {
        if (!measured) return
        const now = performance.now()
        if (now > tally.lastAnswer) tally.lastAnswer = now
        const tag = Exit.isSuccess(exit) ? (exit.value === payload.length ? undefined : "WrongAnswer") : errorTag(exit.cause)
        if (tag === undefined) {
          tally.ok++
          tally.latency.record((now - startedAt) * 1e6)
        } else {
          tally.errors.set(tag, (tally.errors.get(tag) ?? 0) + 1)
        }
      })

    if (plan.mode._tag === "open") {
      const { maxInFlight, rate } = plan.mode
      const intervalMs = 1000 / rate
      const inFlight = yield* FiberSet.make<void>()
      let outstanding = 0
      const done = Effect.sync(() => void outstanding--)
      for (let n = 0;; n++) {
        // The schedule is fixed in advance: call n is due at t0 + n / rate. A late generator
        // sends at once (and catches up), never skips: every due call is sent.
        const intended = t0 + n * intervalMs
        if (intended >= end) break
        let now = performance.now()
        while (now < intended) {
          // Timers have millisecond granularity and fire up to a millisecond late, which
          // would count as latency of every call: sleep only while well ahead, then yield
          // (setImmediate: I/O and the actors run in between) until the call is due.
          if (intended - now > 2) yield* Effect.sleep(Duration.millis(intended - now - 1.5))
          else yield* Effect.yieldNow
          now = performance.now()
        }
        while (outstanding >= maxInFlight) {
          yield* Effect.sleep("1 millis")
          now = performance.now()
        }
        const measured = intended >= windowStart
        if (measured) {
          tally.sent++
          if (now - intended > tally.maxLag) tally.maxLag = now - intended
        }
        outstanding++
        yield* FiberSet.run(inFlight, Effect.ensuring(ask(n, intended, measured), done))
      }
      yield* FiberSet.awaitEmpty(inFlight)
    } else {
      let next = 0
      const caller = Effect.gen(function*() {
        while (true) {
          // Yield between calls, as independent clients interleave: a fiber that never yields
          // is preempted every 2,048 operations, in the middle of a call, for a whole round
          // of the other callers, and that round would be the tail measured (bench/local.ts).
          yield* Effect.yieldNow
          const start = performance.now()
          if (start >= end) return
          const measured = start >= windowStart
          if (measured) tally.sent++
          yield* ask(next++, start, measured)
        }
      })
      yield* Effect.forEach(Array.from({ length: plan.mode.concurrency }), () => caller, {
        concurrency: "unbounded",
        discard: true
      })
    }
    tally.elapsedMs = Math.max(tally.lastAnswer, end) - windowStart
    return tally
  }).pipe(Effect.scoped)

/** Nanoseconds to milliseconds, to the nearest 0.1 µs (finer digits would be clock noise). */
const ms = (ns: number): number => Math.round(ns / 100) / 10_000

const toResult = (
  plan: LoadPlan,
  tally: Tally,
  target: LoadtestResult["target"],
  startedAt: string
): LoadtestResult => {
  const h = tally.latency
  const failed = [...tally.errors.values()].reduce((a, b) => a + b, 0)
  return {
    schemaVersion: 1,
    startedAt,
    target,
    mode: plan.mode._tag === "open" ? "open-loop" : "closed-loop",
    actors: plan.actors,
    targetRate: plan.mode._tag === "open" ? plan.mode.rate : null,
    concurrency: plan.mode._tag === "closed" ? plan.mode.concurrency : null,
    durationMs: plan.durationMs,
    warmupMs: plan.warmupMs,
    payloadBytes: plan.payloadBytes,
    workUs: plan.workUs,
    sent: tally.sent,
    ok: tally.ok,
    failed,
    errors: Object.fromEntries([...tally.errors].sort(([a], [b]) => a.localeCompare(b))),
    elapsedMs: Math.round(tally.elapsedMs * 1000) / 1000,
    throughput: Math.round((tally.ok / (tally.elapsedMs / 1000)) * 10) / 10,
    achievedRate: Math.round((tally.sent / (plan.durationMs / 1000)) * 10) / 10,
    maxScheduleLagMs: plan.mode._tag === "open" ? Math.round(tally.maxLag * 1000) / 1000 : null,
    latencyMs: {
      min: ms(h.min),
      mean: ms(h.mean),
      p50: ms(h.percentile(50)),
      p95: ms(h.percentile(95)),
      p99: ms(h.percentile(99)),
      p999: ms(h.percentile(99.9)),
      max: ms(h.max)
    }
  }
}

/** Three significant digits, without exponent notation. */
const fmt = (x: number): string => x >= 100 ? x.toFixed(0) : Number(x.toPrecision(3)).toString()

const report = (r: LoadtestResult): string => {
  const target = r.target.kind === "memory"
    ? "in-memory silo"
    : `cluster "${r.target.cluster}" (${r.target.silos} silo${r.target.silos === 1 ? "" : "s"}, ${r.target.redis})`
  const load = r.mode === "open-loop" ? `open loop at ${r.targetRate}/s` : `closed loop, ${r.concurrency} callers`
  const errors = Object.entries(r.errors)
  const l = r.latencyMs
  return [
    `quark load test: ${target}, ${r.actors} actors, ${load}, ${r.durationMs / 1000}s after ${r.warmupMs / 1000}s warmup, ` +
    `${r.payloadBytes}-byte payload, ${r.workUs} µs work`,
    `  sent        ${r.sent} (${fmt(r.achievedRate)}/s` +
    (r.targetRate === null ? ")" : `; target ${r.targetRate}/s; sent at most ${fmt(r.maxScheduleLagMs ?? 0)} ms late)`),
    `  throughput  ${fmt(r.throughput)} ok/s (${r.ok} ok in ${fmt(r.elapsedMs / 1000)} s)`,
    `  errors      ${errors.length === 0 ? "none" : errors.map(([tag, n]) => `${tag} ${n}`).join(", ")}`,
    `  latency ms  p50 ${fmt(l.p50)}  p95 ${fmt(l.p95)}  p99 ${fmt(l.p99)}  p999 ${fmt(l.p999)}  max ${fmt(l.max)}` +
    `  (min ${fmt(l.min)}, mean ${fmt(l.mean)}${r.mode === "open-loop" ? ", from intended start" : ""})`
  ].join("\n")
}

/** The URL without its password, for output. */
const redactUrl = (url: string): string => {
  try {
    const parsed = new URL(url)
    if (parsed.password !== "") parsed.password = "***"
    return parsed.toString()
  } catch {
    return url
  }
}

// --- Targets -----------------------------------------------------------------------------

/** Starting a cluster member or client failed: said plainly (exit 1), not as a stack trace. */
const startFailed = (url: string) => (error: { readonly _tag: string; readonly message: string }) =>
  new RunFailed({
    reason: error._tag === "MembershipError" ? `Redis membership at ${redactUrl(url)}: ${error.message}` : error.message
  })

/** Waits (up to 10 s) until the client sees a silo: how many it sees. */
const awaitSilos = (url: string, cluster: string, keyPrefix: string) =>
  Effect.gen(function*() {
    const { members } = yield* Cluster
    const deadline = performance.now() + 10_000
    while (true) {
      const silos = (yield* members).length
      if (silos > 0) return silos
      if (performance.now() > deadline) {
        return yield* new RunFailed({
          reason: `no silo in cluster "${cluster}" (key prefix "${keyPrefix}") at ${redactUrl(url)}; ` +
            `start some with: npm run loadtest -- serve --redis ${url} --cluster ${cluster} --key-prefix ${keyPrefix}`
        })
      }
      yield* Effect.sleep("50 millis")
    }
  })

// --- Commands ----------------------------------------------------------------------------

/** Set by `serve`: a signal is then its normal stop (exit 0), not an interrupted run (130). */
let serving = false

const loadtest = Command.make("loadtest", loadFlags).pipe(
  Command.withSharedFlags(clusterFlags),
  Command.withDescription(
    "Load-test Quark: ask N actors at a target rate (open loop, coordinated omission corrected) or " +
      "concurrency (closed loop), against an in-memory silo or a running cluster (--redis); prints " +
      "throughput, errors and latency percentiles, and with --json writes them as JSON"
  ),
  Command.withHandler(Effect.fn(function*(flags) {
    if (Option.isSome(flags.rate) && Option.isSome(flags.concurrency)) {
      return yield* new BadArguments({ reason: "give --rate (open loop) or --concurrency (closed loop), not both" })
    }
    const durationMs = Duration.toMillis(flags.duration)
    if (durationMs <= 0) return yield* new BadArguments({ reason: "--duration must be positive" })
    const plan: LoadPlan = {
      actors: flags.actors,
      mode: Option.match(flags.rate, {
        onSome: (rate) => ({ _tag: "open" as const, rate, maxInFlight: flags.maxInFlight }),
        onNone: () => ({ _tag: "closed" as const, concurrency: Option.getOrElse(flags.concurrency, () => 16) })
      }),
      durationMs,
      warmupMs: Duration.toMillis(flags.warmup),
      payloadBytes: flags.payloadBytes,
      workUs: flags.workUs,
      callTimeout: flags.callTimeout
    }
    const startedAt = new Date().toISOString()

    const result = yield* Option.match(flags.redis, {
      onNone: () =>
        Effect.map(
          runLoad(plan).pipe(Effect.provide(LoadtestActorLive.pipe(Layer.provideMerge(Silo.layer())))),
          (tally) => toResult(plan, tally, { kind: "memory" }, startedAt)
        ),
      onSome: (url) =>
        Effect.gen(function*() {
          const silos = yield* awaitSilos(url, flags.cluster, flags.keyPrefix)
          const tally = yield* runLoad(plan)
          return toResult(plan, tally, {
            kind: "cluster",
            redis: redactUrl(url),
            cluster: flags.cluster,
            keyPrefix: flags.keyPrefix,
            silos
          }, startedAt)
        }).pipe(
          Effect.provide(
            ClusterClient.layer().pipe(
              Layer.provide(RedisMembership.layer({ url, cluster: flags.cluster, keyPrefix: flags.keyPrefix }))
            )
          ),
          Effect.catchTag("MembershipError", (error) => Effect.fail(startFailed(url)(error)))
        )
    })

    yield* Console.log(report(result))
    if (Option.isSome(flags.json)) {
      const file = flags.json.value
      const fs = yield* FileSystem.FileSystem
      yield* fs.writeFileString(file, `${JSON.stringify(result, null, 2)}\n`).pipe(
        Effect.mapError((error) => new RunFailed({ reason: `cannot write ${file}: ${error.message}` }))
      )
    }
    if (result.failed > 0) return yield* new CallsFailed({ failed: result.failed })
  }))
)

const serve = Command.make("serve", {
  port: intFlag("port", 0, 0, "The port to listen on, 0 for any free port"),
  host: Flag.String("host").pipe(Flag.withDefault("127.0.0.1"), Flag.withDescription("The address to listen on and be reached at (default 127.0.0.1)"))
}).pipe(
  Command.withDescription(
    "Run a cluster silo hosting the load test's actor, a member of the cluster in --redis; prints " +
      "`ready <silo id>` once it serves, and leaves gracefully on SIGTERM / Ctrl-C"
  ),
  Command.withHandler(Effect.fn(function*({ host, port }) {
    const { cluster, keyPrefix, redis } = yield* loadtest
    if (Option.isNone(redis)) return yield* new BadArguments({ reason: "serve needs --redis <url>" })
    const url = redis.value
    serving = true
    // A graceful stop that hangs must not leave the process behind.
    const exitSoon = () => void setTimeout(() => process.exit(4), 15_000).unref()
    process.once("SIGTERM", exitSoon)
    process.once("SIGINT", exitSoon)
    const SiloLive = LoadtestActorLive.pipe(
      Layer.provideMerge(ClusterSilo.layer({ host, port })),
      Layer.provide(RedisMembership.layer({ url, cluster, keyPrefix }))
    )
    return yield* Effect.gen(function*() {
      const { self } = yield* Cluster
      yield* Console.log(`ready ${self!.id} (cluster "${cluster}", key prefix "${keyPrefix}", ${redactUrl(url)}; stop with SIGTERM or Ctrl-C)`)
      return yield* Effect.never
    }).pipe(
      Effect.provide(SiloLive),
      Effect.catchTag(["MembershipError", "ServerError", "DuplicateSilo"], (error) => Effect.fail(startFailed(url)(error)))
    )
  }))
)

const cli = loadtest.pipe(
  Command.withSubcommands([serve]),
  Command.run({ version: "0.1.0" })
)

/** 2 for bad arguments (the CLI's own parse errors included), 1 for a failed run, 0 for `serve` stopped by a signal. */
const teardown: Runtime.Teardown = (exit, onExit) => {
  if (Exit.isFailure(exit)) {
    const error = Cause.findErrorOption(exit.cause)
    if (Option.isSome(error)) {
      const e = error.value
      if (e instanceof BadArguments) return onExit(2)
      if (CliError.isCliError(e) && !(e._tag === "ShowHelp" && e.errors.length === 0)) return onExit(2)
      if (e instanceof CallsFailed || e instanceof RunFailed) return onExit(1)
    }
    if (serving && Cause.hasInterruptsOnly(exit.cause)) return onExit(0)
  }
  Runtime.defaultTeardown(exit, onExit)
}

cli.pipe(
  // The errors of our own are printed here, plainly; anything else is reported by runMain.
  Effect.tapError((error) =>
    error instanceof BadArguments || error instanceof RunFailed ? Console.error(`loadtest: ${error.message}`) : Effect.void
  ),
  Effect.provide(NodeServices.layer),
  Effect.provideService(Logger.LogToStderr, true),
  NodeRuntime.runMain({ teardown })
)

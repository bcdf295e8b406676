/**
 * `npm run bench` runs every benchmark and prints a table with ratios to the baselines;
 * `npm run bench -- --json` prints one JSON object per line instead. `--quick` runs fewer,
 * smaller rounds (a smoke check, not a measurement); `--only=remote,baseline.raw-net` runs
 * the benchmarks whose ids start with those prefixes.
 *
 * The benchmarks come in groups (local runtime, the million-actor local ones, persistence,
 * transport in one process, two processes, the effect/cluster baselines, failover), each
 * with its baselines. Each group runs in a fresh process of its own, one after the other,
 * its variants' rounds interleaved (A B C A B C ...) so that machine noise hits them alike.
 * A fresh process per group keeps one group's code from shaping how V8 compiles another's
 * (measured: the remote client ran a quarter slower with the local and one-process
 * transport benchmarks in its process), as in production, where a silo runs no benchmarks.
 * The million-actor groups (`local.activate.million`, `local.ask.spread*`) are apart so
 * that their large heaps do not slow the other local variants' GC. The effect/cluster
 * baselines get a group of their own because their runtimes work in the background all the
 * time (runner and shard upkeep on PostgreSQL): sharing a process and its child processes
 * with them slowed every other variant of the two-process group by 25–40 %, the raw socket
 * baseline too. The two-process benchmarks (bench/remote/) start their server sides as
 * child processes before the rounds and stop them after.
 */
import { spawnSync } from "node:child_process"
import { fileURLToPath } from "node:url"
import { effectClusterAsk, plainCall, queueAsk } from "./baselines.ts"
import { type BenchResult, printResults, runInterleaved, type Variant } from "./Harness.ts"
import { activate, activateMillion, askConcurrent, askSequential, askSpread, tell } from "./local.ts"
import { journalAppend, stateRead, stateWrite } from "./persistence.ts"
import * as DashboardBench from "./dashboard.ts"
import * as Migrate from "./migrate.ts"
import * as RemindersBench from "./reminders.ts"
import * as Remote from "./remote/baselines.ts"
import * as Quark from "./remote/quark.ts"
import { ringLookup } from "./ring.ts"
import { rollingRestart } from "./rolling.ts"
import { Telemetry } from "../src/index.ts"
import { effectRpcPipelined, rawPipelined, rawSequential, transportPipelined, transportSequential } from "./transport.ts"
import * as Stores from "./stores.ts"
import * as StreamsBench from "./streams.ts"

const json = process.argv.includes("--json")
const quick = process.argv.includes("--quick")
const scale = quick ? 0.05 : 1
const ops = (n: number) => Math.max(100, Math.round(n * scale))
const rounds = quick ? 2 : 7
const warmup = 1
// --quick: 5,000 reminders at a 2 s period (2,500 ticks a second), one measured period, one round.
const reminderLag = { reminders: ops(100_000), periodMs: quick ? 2_000 : 10_000, periods: quick ? 1 : 2, rounds: quick ? 1 : 3 }

// Streams: events per round, and deliveries a producer lets be in flight (see bench/streams.ts).
const streamPublish = { events: ops(300_000), inFlight: 1_000 }
const streamPublishRedis = { events: ops(50_000), inFlight: 2_000 }
const streamFanout = { events: Math.max(20, Math.round(200 * scale)), inFlight: 5_000 }

type Made = Variant & { readonly dispose?: () => Promise<void> }

type Group =
  | "local"
  | "local-million"
  | "local-spread"
  | "local-spread-100k"
  | "persistence"
  | "transport"
  | "remote"
  | "effect-cluster"
  | "failover"
  | "cluster-migrate"
  | "reminders-lag"
  | "reminders-register"
  | "reminders-idle"
  | "rolling"
  | "streams"
  | "streams-redis"
  | "dashboard"

/** Every benchmark by id and group, built only when selected (several start child processes). */
const benchmarks: ReadonlyArray<readonly [string, Group, () => Made | Promise<Made>]> = [
  ["baseline.plain-call", "local", () => plainCall(ops(1_000_000))],
  ["baseline.queue-ask", "local", () => queueAsk(ops(100_000))],
  ["baseline.effect-cluster.ask", "effect-cluster", () => effectClusterAsk(ops(20_000))],
  ["local.ask.sequential", "local", () => askSequential(ops(1_000_000))],
  // Telemetry's cost: the same loop with metrics, and with spans sampled at 1 % and 100 %
  // (effect's native tracer: the spans are made and ended; exporting them is batched off the turn).
  ["local.ask.sequential.metrics", "local", () =>
    askSequential(ops(1_000_000), "local.ask.sequential.metrics", Telemetry.layer({ logs: false }))],
  ["local.ask.sequential.traced-1pct", "local", () =>
    askSequential(ops(1_000_000), "local.ask.sequential.traced-1pct", Telemetry.layer({ metrics: false, logs: false, tracing: { sampleRatio: 0.01 } }))],
  ["local.ask.sequential.traced-100pct", "local", () =>
    askSequential(ops(1_000_000), "local.ask.sequential.traced-100pct", Telemetry.layer({ metrics: false, logs: false, tracing: { sampleRatio: 1 } }))],
  ["local.ask.concurrent", "local", () => askConcurrent(ops(200_000))],
  // Issue 17: local.ask.concurrent (with the metric catalog) without and with the dashboard
  // served and polled every 100 ms (ten open pages); rounds of a second or more, so each
  // spans several overview rebuilds.
  ["dashboard.ask.concurrent.off", "dashboard", () => DashboardBench.askConcurrent(ops(1_000_000), false)],
  ["dashboard.ask.concurrent.served", "dashboard", () => DashboardBench.askConcurrent(ops(1_000_000), true)],
  ["local.tell", "local", () => tell(ops(2_000_000))],
  ["local.activate", "local", () => activate(ops(100_000))],
  // A million live activations, each group in a process of its own: its heap (GC) must not
  // weigh on the other local variants, nor one million-actor variant's on another.
  ["local.activate.million", "local-million", () => activateMillion(ops(1_000_000))],
  ["local.ask.spread", "local-spread", () => askSpread("local.ask.spread", ops(1_000_000), ops(300_000))],
  ["local.ask.spread.100k", "local-spread-100k", () => askSpread("local.ask.spread.100k", ops(100_000), ops(300_000))],
  ["state.write.memory", "persistence", () => stateWrite("state.write.memory", Stores.memory, ops(200_000))],
  // Issue 16: encryption at rest, against the plain memory store in the same run.
  ["state.write.memory.encrypted", "persistence", () => stateWrite("state.write.memory.encrypted", Stores.memoryEncrypted, ops(200_000))],
  ["state.read.memory", "persistence", () => stateRead("state.read.memory", Stores.memory, ops(200_000))],
  ["state.read.memory.encrypted", "persistence", () => stateRead("state.read.memory.encrypted", Stores.memoryEncrypted, ops(200_000))],
  ["state.write.redis", "persistence", () => stateWrite("state.write.redis", Stores.redis, ops(100_000))],
  ["journal.append.redis", "persistence", () => journalAppend("journal.append.redis", Stores.redis, ops(100_000))],
  ["state.write.pg", "persistence", () => stateWrite("state.write.pg", Stores.pg, ops(50_000))],
  ["journal.append.pg", "persistence", () => journalAppend("journal.append.pg", Stores.pg, ops(50_000))],
  ["cluster.ring.lookup", "local", () => ringLookup(ops(100_000))],
  ["transport.ask.sequential", "transport", () => transportSequential(ops(5_000))],
  ["loopback.raw-net.sequential", "transport", () => rawSequential(ops(5_000))],
  ["transport.ask.pipelined", "transport", () => transportPipelined(ops(50_000))],
  ["loopback.raw-net.pipelined", "transport", () => rawPipelined(ops(50_000))],
  ["loopback.effect-rpc.pipelined", "transport", () => effectRpcPipelined(ops(20_000))],
  // Issue 16: the same asks over mutual TLS, against plain TCP in the same run.
  ["transport.ask.sequential.tls", "transport", () => transportSequential(ops(5_000), true)],
  ["transport.ask.pipelined.tls", "transport", () => transportPipelined(ops(50_000), true)],
  // Two processes: the server side in a child process on 127.0.0.1 (bench/remote/).
  ["remote.ask.sequential", "remote", () => Quark.remoteAskSequential(ops(5_000))],
  ["remote.ask.pipelined", "remote", () => Quark.remoteAskPipelined(ops(100_000))],
  ["remote.tell", "remote", () => Quark.remoteTell(ops(200_000))],
  ["baseline.raw-net.sequential", "remote", () => Remote.rawSequential(ops(5_000))],
  ["baseline.raw-net.pipelined", "remote", () => Remote.rawPipelined(ops(200_000))],
  ["baseline.effect-rpc.pipelined", "remote", () => Remote.effectRpcPipelined(ops(15_000))],
  ["baseline.effect-cluster.remote", "effect-cluster", () => Remote.effectClusterRemote(ops(3_500))],
  ["cluster.failover", "failover", () => Quark.clusterFailover()],
  // Live migration (two silos and a client in one process): moves per second, and the
  // latency a call arriving mid-migration adds to a plain call.
  ["cluster.migrate.dehydrated", "cluster-migrate", () => Migrate.migrateDehydrated(ops(2_000))],
  ["cluster.migrate.store", "cluster-migrate", () => Migrate.migrateStore(ops(2_000))],
  ["cluster.migrate.call-plain", "cluster-migrate", () => Migrate.callPlain(ops(500))],
  ["cluster.migrate.call-mid-migration", "cluster-migrate", () => Migrate.callMidMigration(ops(500))],
  // Issue 14: three silo processes restarted in place with SIGTERM, twice, under load (test/chaos's `rolling`).
  ["cluster.rolling-restart", "rolling", () => rollingRestart()],
  // Reminders (issue 12). Lag: fresh silo per round on the real clock, 10,000 ticks a second
  // (100,000 reminders, 10 s period), beside timers at the same rate and due times.
  ["reminders.lag.memory", "reminders-lag", () => RemindersBench.lag("reminders.lag.memory", RemindersBench.memory, reminderLag)],
  ["reminders.lag.redis", "reminders-lag", () => RemindersBench.lag("reminders.lag.redis", RemindersBench.redis, reminderLag)],
  ["reminders.lag.set-timeout", "reminders-lag", () => RemindersBench.lagSetTimeout(reminderLag)],
  ["reminders.lag.effect-sleep", "reminders-lag", () => RemindersBench.lagEffectSleep(reminderLag)],
  ["reminders.register.redis", "reminders-register", () => RemindersBench.register("reminders.register.redis", RemindersBench.redis, ops(20_000))],
  ["reminders.register.redis.store-put", "reminders-register", () => RemindersBench.storePut("reminders.register.redis.store-put", RemindersBench.redis, ops(20_000))],
  ["reminders.register.pg", "reminders-register", () => RemindersBench.register("reminders.register.pg", RemindersBench.pg, ops(10_000))],
  ["reminders.register.pg.store-put", "reminders-register", () => RemindersBench.storePut("reminders.register.pg.store-put", RemindersBench.pg, ops(10_000))],
  // A heap of its own: 100,000 reminders held by the silo.
  ["reminders.idle", "reminders-idle", () => RemindersBench.idle(ops(100_000))],
  // Streams: events published and delivered to one implicit subscriber per stream (100
  // streams), and one stream to 1,000 durable subscribers, each beside tells doing the same.
  // Redis in a process of its own (its connections and JSON path apart from the memory one's).
  ["stream.publish.memory", "streams", () => StreamsBench.publishMemory(streamPublish)],
  ["stream.publish.memory.baseline-tell", "streams", () => StreamsBench.publishTell(streamPublish)],
  ["stream.fanout", "streams", () => StreamsBench.fanout(streamFanout)],
  ["stream.fanout.baseline-tell", "streams", () => StreamsBench.fanoutTell(streamFanout)],
  ["stream.publish.redis", "streams-redis", () => StreamsBench.publishRedis(streamPublishRedis)],
  ["stream.publish.redis.baseline-xadd-xreadgroup", "streams-redis", () => StreamsBench.redisRaw(streamPublishRedis)]
]

// `--only=a,b` runs the benchmarks whose id starts with one of the prefixes.
const onlyArg = process.argv.find((arg) => arg.startsWith("--only="))
const only = onlyArg?.slice("--only=".length).split(",")
const selected = benchmarks.filter(([id]) => only === undefined || only.some((prefix) => id.startsWith(prefix)))

// `--group=g` (internal): run one group here and print its results, one JSON object a line.
const resultMark = "bench-result "
const groupArg = process.argv.find((arg) => arg.startsWith("--group="))?.slice("--group=".length)
if (groupArg !== undefined) {
  const variants: Array<Made> = []
  try {
    for (const [, group, make] of selected) if (group === groupArg) variants.push(await make())
    for (const result of await runInterleaved(variants, { rounds, warmup })) console.log(`${resultMark}${JSON.stringify(result)}`)
  } finally {
    for (const variant of variants) await variant.dispose?.()
  }
  process.exit(0)
}

const results: Array<BenchResult> = []
for (const group of new Set(selected.map(([, group]) => group))) {
  const child = spawnSync(
    process.execPath,
    [...process.execArgv, fileURLToPath(import.meta.url), ...process.argv.slice(2), `--group=${group}`],
    { stdio: ["ignore", "pipe", "inherit"], encoding: "utf8", maxBuffer: 64 * 1024 * 1024 }
  )
  if (child.status !== 0) throw new Error(`benchmark group ${group} failed (exit ${child.status ?? child.signal})`)
  for (const line of child.stdout.split("\n")) {
    if (line.startsWith(resultMark)) results.push(JSON.parse(line.slice(resultMark.length)))
    else if (line.length > 0) console.error(line)
  }
}

const measured = new Set(results.map((result) => result.id))
printResults(results, {
  json,
  ratios: ([
    ["local.ask.sequential", "baseline.effect-cluster.ask"],
    ["local.ask.sequential", "baseline.queue-ask"],
    ["local.ask.concurrent", "baseline.effect-cluster.ask"],
    ["local.tell", "baseline.queue-ask"],
    ["local.ask.sequential", "baseline.plain-call"],
    ["local.ask.sequential.metrics", "local.ask.sequential"],
    ["local.ask.sequential.traced-1pct", "local.ask.sequential"],
    ["local.ask.sequential.traced-100pct", "local.ask.sequential"],
    ["local.tell", "baseline.plain-call"],
    ["local.ask.spread", "local.ask.sequential"],
    ["local.ask.spread.100k", "local.ask.sequential"],
    ["local.activate.million", "local.activate"],
    ["transport.ask.pipelined", "loopback.effect-rpc.pipelined"],
    ["transport.ask.pipelined", "loopback.raw-net.pipelined"],
    ["transport.ask.sequential", "loopback.raw-net.sequential"],
    ["transport.ask.sequential.tls", "transport.ask.sequential"],
    ["transport.ask.pipelined.tls", "transport.ask.pipelined"],
    // two processes against one (what a second event loop and core give each baseline)
    ["baseline.raw-net.sequential", "loopback.raw-net.sequential"],
    ["baseline.raw-net.pipelined", "loopback.raw-net.pipelined"],
    ["baseline.effect-rpc.pipelined", "loopback.effect-rpc.pipelined"],
    // the two-process baselines among themselves
    ["baseline.raw-net.pipelined", "baseline.effect-rpc.pipelined"],
    ["baseline.effect-cluster.remote", "baseline.effect-rpc.pipelined"],
    // Quark across two processes
    ["remote.ask.pipelined", "baseline.raw-net.pipelined"],
    ["remote.ask.pipelined", "baseline.effect-cluster.remote"],
    ["remote.ask.pipelined", "baseline.effect-rpc.pipelined"],
    ["remote.ask.sequential", "baseline.raw-net.sequential"],
    // Encryption at rest against the plain memory store
    ["state.write.memory.encrypted", "state.write.memory"],
    ["state.read.memory.encrypted", "state.read.memory"],
    // Reminders.register against the store's own put of the same records
    ["reminders.register.redis", "reminders.register.redis.store-put"],
    ["reminders.register.pg", "reminders.register.pg.store-put"],
    // Live migration: store-backed moves against handed-over ones; calls mid-migration against plain
    ["cluster.migrate.store", "cluster.migrate.dehydrated"],
    ["cluster.migrate.call-mid-migration", "cluster.migrate.call-plain"],
    // Streams against tells (or raw Redis) doing the same deliveries
    ["stream.publish.memory", "stream.publish.memory.baseline-tell"],
    ["stream.publish.redis", "stream.publish.redis.baseline-xadd-xreadgroup"],
    ["stream.publish.redis", "stream.publish.memory"],
    ["stream.fanout", "stream.fanout.baseline-tell"],
    // The dashboard open against the same silo without it
    ["dashboard.ask.concurrent.served", "dashboard.ask.concurrent.off"]
  ] as const).filter(([id, base]) => measured.has(id) && measured.has(base))
})

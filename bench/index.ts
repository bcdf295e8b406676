/**
 * `npm run bench` runs every benchmark in one process and one run, interleaving rounds of
 * the variants (A B C A B C ...) so that machine noise hits all of them alike, and prints a
 * table with ratios to the baselines; `npm run bench -- --json` prints one JSON object per
 * line instead. `--quick` runs fewer, smaller rounds (a smoke check, not a measurement);
 * `--only=remote,baseline.raw-net` runs the benchmarks whose ids start with those prefixes.
 * The two-process baselines (bench/remote/) run their server side in child processes,
 * started before the rounds and stopped after them.
 */
import { effectClusterAsk, plainCall, queueAsk } from "./baselines.ts"
import { printResults, runInterleaved, type Variant } from "./Harness.ts"
import { activate, askConcurrent, askSequential, tell } from "./local.ts"
import { journalAppend, stateWrite } from "./persistence.ts"
import * as Remote from "./remote/baselines.ts"
import * as Quark from "./remote/quark.ts"
import { ringLookup } from "./ring.ts"
import { effectRpcPipelined, rawPipelined, rawSequential, transportPipelined, transportSequential } from "./transport.ts"
import * as Stores from "./stores.ts"

const json = process.argv.includes("--json")
const quick = process.argv.includes("--quick")
const scale = quick ? 0.05 : 1
const ops = (n: number) => Math.max(100, Math.round(n * scale))
const rounds = quick ? 2 : 7
const warmup = 1

type Made = Variant & { readonly dispose?: () => Promise<void> }

/** Every benchmark by id, built only when selected (several start child processes). */
const benchmarks: ReadonlyArray<readonly [string, () => Made | Promise<Made>]> = [
  ["baseline.plain-call", () => plainCall(ops(1_000_000))],
  ["baseline.queue-ask", () => queueAsk(ops(100_000))],
  ["baseline.effect-cluster.ask", () => effectClusterAsk(ops(20_000))],
  ["local.ask.sequential", () => askSequential(ops(1_000_000))],
  ["local.ask.concurrent", () => askConcurrent(ops(200_000))],
  ["local.tell", () => tell(ops(2_000_000))],
  ["local.activate", () => activate(ops(100_000))],
  ["state.write.memory", () => stateWrite("state.write.memory", Stores.memory, ops(200_000))],
  ["state.write.redis", () => stateWrite("state.write.redis", Stores.redis, ops(100_000))],
  ["journal.append.redis", () => journalAppend("journal.append.redis", Stores.redis, ops(100_000))],
  ["state.write.pg", () => stateWrite("state.write.pg", Stores.pg, ops(50_000))],
  ["journal.append.pg", () => journalAppend("journal.append.pg", Stores.pg, ops(50_000))],
  ["cluster.ring.lookup", () => ringLookup(ops(100_000))],
  ["transport.ask.sequential", () => transportSequential(ops(5_000))],
  ["loopback.raw-net.sequential", () => rawSequential(ops(5_000))],
  ["transport.ask.pipelined", () => transportPipelined(ops(50_000))],
  ["loopback.raw-net.pipelined", () => rawPipelined(ops(50_000))],
  ["loopback.effect-rpc.pipelined", () => effectRpcPipelined(ops(20_000))],
  // Two processes: the server side in a child process on 127.0.0.1 (bench/remote/).
  ["remote.ask.sequential", () => Quark.remoteAskSequential(ops(5_000))],
  ["remote.ask.pipelined", () => Quark.remoteAskPipelined(ops(100_000))],
  ["remote.tell", () => Quark.remoteTell(ops(200_000))],
  ["baseline.raw-net.sequential", () => Remote.rawSequential(ops(5_000))],
  ["baseline.raw-net.pipelined", () => Remote.rawPipelined(ops(200_000))],
  ["baseline.effect-rpc.pipelined", () => Remote.effectRpcPipelined(ops(15_000))],
  ["baseline.effect-cluster.remote", () => Remote.effectClusterRemote(ops(3_500))],
  ["cluster.failover", () => Quark.clusterFailover()]
]

// `--only a,b` runs the benchmarks whose id starts with one of the prefixes.
const onlyArg = process.argv.find((arg) => arg.startsWith("--only="))
const only = onlyArg?.slice("--only=".length).split(",")
const selected = benchmarks.filter(([id]) => only === undefined || only.some((prefix) => id.startsWith(prefix)))
const variants: Array<Made> = []
for (const [, make] of selected) variants.push(await make())

try {
  const results = await runInterleaved(variants, { rounds, warmup })
  const measured = new Set(results.map((result) => result.id))
  printResults(results, {
    json,
    ratios: ([
      ["local.ask.sequential", "baseline.effect-cluster.ask"],
      ["local.ask.sequential", "baseline.queue-ask"],
      ["local.ask.concurrent", "baseline.effect-cluster.ask"],
      ["local.tell", "baseline.queue-ask"],
      ["local.ask.sequential", "baseline.plain-call"],
      ["transport.ask.pipelined", "loopback.effect-rpc.pipelined"],
      ["transport.ask.pipelined", "loopback.raw-net.pipelined"],
      ["transport.ask.sequential", "loopback.raw-net.sequential"],
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
      ["remote.ask.sequential", "baseline.raw-net.sequential"]
    ] as const).filter(([id, base]) => measured.has(id) && measured.has(base))
  })
} finally {
  for (const variant of variants) await variant.dispose?.()
}

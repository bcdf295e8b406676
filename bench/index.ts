/**
 * `npm run bench` runs every benchmark in one process and one run, interleaving rounds of
 * the variants (A B C A B C ...) so that machine noise hits all of them alike, and prints a
 * table with ratios to the baselines; `npm run bench -- --json` prints one JSON object per
 * line instead. `--quick` runs fewer, smaller rounds (a smoke check, not a measurement).
 */
import { effectClusterAsk, plainCall, queueAsk } from "./baselines.ts"
import { printResults, runInterleaved } from "./Harness.ts"
import { activate, askConcurrent, askSequential, tell } from "./local.ts"
import { journalAppend, stateWrite } from "./persistence.ts"
import { ringLookup } from "./ring.ts"
import { effectRpcPipelined, rawPipelined, rawSequential, transportPipelined, transportSequential } from "./transport.ts"
import * as Stores from "./stores.ts"

const json = process.argv.includes("--json")
const quick = process.argv.includes("--quick")
const scale = quick ? 0.05 : 1
const ops = (n: number) => Math.max(100, Math.round(n * scale))
const rounds = quick ? 2 : 7
const warmup = 1

const disposables = [
  await queueAsk(ops(100_000)),
  await effectClusterAsk(ops(20_000)),
  await askSequential(ops(1_000_000)),
  await askConcurrent(ops(200_000)),
  await tell(ops(2_000_000)),
  await stateWrite("state.write.memory", Stores.memory, ops(200_000)),
  await stateWrite("state.write.redis", Stores.redis, ops(100_000)),
  await journalAppend("journal.append.redis", Stores.redis, ops(100_000)),
  await stateWrite("state.write.pg", Stores.pg, ops(50_000)),
  await journalAppend("journal.append.pg", Stores.pg, ops(50_000)),
  await transportSequential(ops(5_000)),
  await rawSequential(ops(5_000)),
  await transportPipelined(ops(50_000)),
  await rawPipelined(ops(50_000)),
  await effectRpcPipelined(ops(20_000))
]
const variants = [plainCall(ops(1_000_000)), ...disposables, activate(ops(100_000)), await ringLookup(ops(100_000))]

try {
  const results = await runInterleaved(variants, { rounds, warmup })
  printResults(results, {
    json,
    ratios: [
      ["local.ask.sequential", "baseline.effect-cluster.ask"],
      ["local.ask.sequential", "baseline.queue-ask"],
      ["local.ask.concurrent", "baseline.effect-cluster.ask"],
      ["local.tell", "baseline.queue-ask"],
      ["local.ask.sequential", "baseline.plain-call"],
      ["transport.ask.pipelined", "baseline.effect-rpc.pipelined"],
      ["transport.ask.pipelined", "baseline.raw-net.pipelined"],
      ["transport.ask.sequential", "baseline.raw-net.sequential"]
    ]
  })
} finally {
  for (const d of disposables) await d.dispose()
}

/**
 * CPU time per remote call on each side, the client (this process) and the silo (a child
 * process, siloServer.ts), round by round. On a shared machine throughput swings with what
 * else runs, while the CPU a call costs each side moves much less, so this is the figure to
 * compare versions by (alternate the runs; look at the minimum and the median).
 *
 * `node bench/remote/cpuPerCall.ts [rounds] [pipelined|sequential]`: pipelined is
 * `remote.ask.pipelined` (100 callers, 1,000 calls each per round), sequential one caller
 * (10,000 calls per round, with its p50 latency). Needs Redis (QUARK_REDIS_URL).
 */
import { Effect, Layer, ManagedRuntime } from "effect"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as ClusterClient from "../../src/Cluster/ClusterClient.ts"
import * as RedisMembership from "../../src/Cluster/RedisMembership.ts"
import { nowNs, percentile } from "../Harness.ts"
import { pipelinedRound } from "./baselines.ts"
import { spawnPeer } from "./Peer.ts"
import { BenchCounter, redisUrl } from "./quarkProtocol.ts"

const rounds = Number(process.argv[2] ?? 10)
const sequential = process.argv[3] === "sequential"
const cluster = `bench-cpu-${process.pid}-${Date.now()}`

let siloCpu: ((micros: number) => void) | undefined
const peer = await spawnPeer({
  script: new URL("./siloServer.ts", import.meta.url),
  args: [cluster],
  label: "silo",
  onLine: (line) => {
    if (!line.startsWith("cpu ")) return false
    siloCpu?.(Number(line.slice(4)))
    return true
  }
})
const readSiloCpu = () =>
  new Promise<number>((resolve) => {
    siloCpu = resolve
    peer.kill("SIGUSR2")
  })

const runtime = ManagedRuntime.make(ClusterClient.layer().pipe(Layer.provide(RedisMembership.layer({ url: redisUrl, cluster }))))
try {
  await runtime.runPromise(Effect.gen(function*() {
    const view = yield* Cluster
    while ((yield* view.members).length < 1) yield* Effect.sleep("10 millis")
  }))
  const ref = await runtime.runPromise(BenchCounter.ref("bench"))
  const call = ref.Increment({ by: 1 })
  const calls = sequential ? 10_000 : 100_000
  const sequentialRound = Effect.gen(function*() {
    const latenciesUs: Array<number> = []
    for (let i = 0; i < calls; i++) {
      const s = nowNs()
      yield* call
      latenciesUs.push((nowNs() - s) / 1000)
    }
    return latenciesUs.sort((a, b) => a - b)[calls >> 1]!
  })
  const round = (): Promise<number | undefined> =>
    sequential ? runtime.runPromise(sequentialRound) : runtime.runPromise(Effect.as(pipelinedRound(call, calls / 100), undefined))

  for (let i = 0; i < 3; i++) await round() // warm-up
  const client: Array<number> = []
  const silo: Array<number> = []
  const rates: Array<number> = []
  const p50s: Array<number> = []
  let siloBefore = await readSiloCpu()
  for (let i = 0; i < rounds; i++) {
    const cpu = process.cpuUsage()
    const t0 = nowNs()
    const p50 = await round()
    const elapsedNs = nowNs() - t0
    const used = process.cpuUsage(cpu)
    const siloNow = await readSiloCpu()
    client.push((used.user + used.system) / calls)
    silo.push((siloNow - siloBefore) / calls)
    siloBefore = siloNow
    rates.push(calls / (elapsedNs / 1e9))
    if (p50 !== undefined) p50s.push(p50)
  }
  const sorted = (xs: Array<number>) => [...xs].sort((a, b) => a - b)
  const show = (xs: Array<number>, digits = 2) =>
    `min ${sorted(xs)[0]!.toFixed(digits)} median ${percentile(sorted(xs), 50).toFixed(digits)}`
  console.log(`${sequential ? "sequential" : "pipelined"}, ${rounds} rounds of ${calls} calls`)
  console.log(`  client CPU µs/call: ${show(client)}`)
  console.log(`  silo CPU µs/call:   ${show(silo)}`)
  console.log(`  calls/s:            ${show(rates, 0)}`)
  if (sequential) console.log(`  p50 µs:             ${show(p50s, 1)}`)
} finally {
  await runtime.dispose()
  await peer.dispose()
}

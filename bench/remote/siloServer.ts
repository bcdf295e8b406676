/**
 * Child process of the remote benchmarks: one Quark silo (ClusterSilo on Redis membership,
 * cluster name from argv) hosting `BenchCounter`. Prints `ready {"port", "id"}` once it has
 * joined; stops gracefully when the parent goes away. On SIGUSR2 it prints `cpu <µs>`, its
 * CPU time so far (see cpuPerCall.ts).
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as ClusterSilo from "../../src/Cluster/ClusterSilo.ts"
import * as RedisMembership from "../../src/Cluster/RedisMembership.ts"
import { announceReady, onParentGone } from "./Peer.ts"
import { BenchCounterLive, redisUrl } from "./quarkProtocol.ts"

const cluster = process.argv[2]!
const scope = Scope.makeUnsafe()
const layer = BenchCounterLive.pipe(
  Layer.provideMerge(ClusterSilo.layer()),
  Layer.provide(RedisMembership.layer({ url: redisUrl, cluster }))
)
const context = await Effect.runPromise(Layer.buildWithScope(layer, scope))
const self = Context.get(context, Cluster).self!
// `cpuPerCall.ts` asks for this process's CPU time (user + system, µs) with SIGUSR2.
process.on("SIGUSR2", () => {
  const { system, user } = process.cpuUsage()
  process.stdout.write(`cpu ${user + system}\n`)
})
announceReady({ port: self.port, id: self.id })
onParentGone(() => Effect.runPromise(Scope.close(scope, Exit.void)))

/**
 * One silo of the rolling-upgrade test, as its own process:
 *
 *   QUARK_UPGRADE_CONTRACT=v1|v2 node test/cluster/process/upgradeSiloMain.ts <keyPrefix> <cluster> <port>
 *
 * A `ClusterSilo` on 127.0.0.1:<port> (0: any free port) with Redis membership and state,
 * hosting version 1 or 2 of `UpAccount` (see `UpgradeAccount.ts`) and announcing the
 * application version `1.0.0` or `2.0.0`. Every key it writes starts with `keyPrefix`; the
 * membership timings are those of `Account.ts`.
 *
 * stdout carries the protocol only, one line each: `ready <silo id>` once it has joined
 * and its types are announced; `members <id>,...` whenever its ring changes. Logs go to
 * stderr. SIGTERM (or stdin closing, so it never outlives the test) stops it gracefully
 * (the silo's drain: it leaves, hands its activations over, answers what is in flight);
 * then it exits 0. A stop that takes over 20 s exits 4.
 */
import { Effect, Layer } from "effect"
import { Stores } from "../../../src/index.ts"
import { Cluster, ClusterSilo } from "../../../src/Cluster/index.ts"
import { RedisMembership } from "../../../src/Cluster/redis.ts"
import { RedisStore } from "../../../src/Persistence/redis.ts"
import { redisUrl as url } from "../../persistence/services.ts"
import { timings } from "./Account.ts"
import { exitIfStopHangs, reportMembers, runSilo, stopRequests, usage, write } from "./siloProcess.ts"
import { AccountV1Live, AccountV2Live, storeName } from "./UpgradeAccount.ts"

// First thing: a SIGTERM before the scope exists must not kill the process the default way.
const stopRequested = stopRequests()

const [keyPrefix, clusterName, portText] = process.argv.slice(2)
const contract = process.env.QUARK_UPGRADE_CONTRACT
const port = Number(portText)
if (keyPrefix === undefined || clusterName === undefined || !Number.isInteger(port) || (contract !== "v1" && contract !== "v2")) {
  usage("QUARK_UPGRADE_CONTRACT=v1|v2 upgradeSiloMain.ts <keyPrefix> <cluster> <port>")
}

const SiloLive = (contract === "v1" ? AccountV1Live : AccountV2Live).pipe(
  Layer.provideMerge(ClusterSilo.layer({ host: "127.0.0.1", port, version: contract === "v1" ? "1.0.0" : "2.0.0" })),
  Layer.provide(RedisMembership.layer({ url, keyPrefix, cluster: clusterName, ...timings })),
  Layer.provide(Stores.layer(RedisStore.make(storeName, { url, keyPrefix })))
)

const main = Effect.gen(function*() {
  const cluster = yield* Cluster
  yield* write(`ready ${cluster.self!.id}`)
  yield* Effect.forkScoped(reportMembers(cluster))
  const why = yield* stopRequested
  yield* Effect.logInfo(`${why}: stopping gracefully`)
  exitIfStopHangs(20_000)
}).pipe(
  Effect.annotateLogs({ pid: process.pid, contract }),
  Effect.provide(SiloLive),
  Effect.scoped
)

runSilo(main)

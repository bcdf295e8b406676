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
import { Effect, Layer, Logger } from "effect"
import { Stores } from "../../../src/index.ts"
import { Cluster, type ClusterShape, ClusterSilo } from "../../../src/Cluster/index.ts"
import { RedisMembership } from "../../../src/Cluster/redis.ts"
import { RedisStore } from "../../../src/Persistence/redis.ts"
import { timings } from "./Account.ts"
import { AccountV1Live, AccountV2Live, storeName } from "./UpgradeAccount.ts"

// A SIGTERM before the scope exists must not kill the process the default way.
let terminate: (() => void) | undefined
let terminateRequested = false
process.on("SIGTERM", () => {
  terminateRequested = true
  terminate?.()
})

const [keyPrefix, clusterName, portText] = process.argv.slice(2)
const contract = process.env.QUARK_UPGRADE_CONTRACT
const port = Number(portText)
if (keyPrefix === undefined || clusterName === undefined || !Number.isInteger(port) || (contract !== "v1" && contract !== "v2")) {
  process.stderr.write("usage: QUARK_UPGRADE_CONTRACT=v1|v2 upgradeSiloMain.ts <keyPrefix> <cluster> <port>\n")
  process.exit(2)
}
const url = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"

const SiloLive = (contract === "v1" ? AccountV1Live : AccountV2Live).pipe(
  Layer.provideMerge(ClusterSilo.layer({ host: "127.0.0.1", port, version: contract === "v1" ? "1.0.0" : "2.0.0" })),
  Layer.provide(RedisMembership.layer({ url, keyPrefix, cluster: clusterName, ...timings })),
  Layer.provide(Stores.layer(RedisStore.make(storeName, { url, keyPrefix })))
)

const write = (line: string) => Effect.sync(() => void process.stdout.write(`${line}\n`))

/** Completes on SIGTERM, or when stdin closes (the test process ended it, or died). */
const stopRequested = Effect.callback<string>((resume) => {
  if (terminateRequested) return resume(Effect.succeed("SIGTERM"))
  terminate = () => resume(Effect.succeed("SIGTERM"))
  const closed = () => resume(Effect.succeed("stdin closed"))
  process.stdin.once("end", closed)
  process.stdin.once("close", closed)
  process.stdin.resume()
})

/** Prints the ring whenever it changes. */
const reportMembers = (cluster: ClusterShape) =>
  Effect.gen(function*() {
    let last = ""
    while (true) {
      const members = (yield* cluster.members).join(",")
      if (members !== last) {
        last = members
        yield* write(`members ${members}`)
      }
      yield* Effect.sleep("20 millis")
    }
  })

const main = Effect.gen(function*() {
  const cluster = yield* Cluster
  yield* write(`ready ${cluster.self!.id}`)
  yield* Effect.forkScoped(reportMembers(cluster))
  const why = yield* stopRequested
  yield* Effect.logInfo(`${why}: stopping gracefully`)
  setTimeout(() => {
    process.stderr.write("graceful stop took over 20 s: exiting 4\n")
    process.exit(4)
  }, 20_000).unref()
}).pipe(
  Effect.annotateLogs({ pid: process.pid, contract }),
  Effect.provide(SiloLive),
  Effect.scoped,
  Effect.provideService(Logger.LogToStderr, true)
)

Effect.runPromiseExit(main).then((exit) => {
  if (exit._tag === "Failure") {
    process.stderr.write(`silo failed: ${String(exit.cause)}\n`)
    process.exit(1)
  }
  process.exit(0)
})

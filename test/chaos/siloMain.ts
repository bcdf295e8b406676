/**
 * One silo of the chaos test, as its own process:
 *
 *   node test/chaos/siloMain.ts --membership <redis url> --state <redis url> --prefix <key prefix>
 *     --cluster <name> --log-dir <dir> [--timings short|default] [--port <port>]
 *
 * A `ClusterSilo` on 127.0.0.1 (`--port`, default any free port) hosting `ChaosAccount`. The membership and
 * the directory live on the `--membership` Redis (the test's own server, which it stops and
 * restarts empty); the accounts' state and the activation records live on the `--state`
 * Redis under `--prefix`. `--timings short` are the multi-process test's membership timings
 * (dead after 1.2 s), `default` the production defaults.
 *
 * stdout carries the protocol only, one line each:
 * - `ready <silo id>` once the silo serves, and again whenever its id changes (a silo
 *   declared dead that rejoined with a new generation);
 * - `members <id>,<id>,...` whenever its ring changes;
 * - `dead <silo id> <reason>` when it learns it was declared dead (it then stays up: the
 *   cluster silo stops serving and, with `onDeclaredDead: "rejoin"`, rejoins by itself), or
 *   `dead <old id> rejoined` just before the `ready` of a new incarnation whose
 *   predecessor's death `Cluster.declaredDead` did not report;
 * - `stopping` when it begins a graceful stop.
 * Logs go to stderr. Turns are logged to `<log-dir>/turns-<pid>.log` (see ChaosAccount.ts).
 *
 * SIGTERM (or stdin closing, so it never outlives the test) closes the silo's scope: it
 * leaves the membership, deactivates its actors (their finalizers run), closes its
 * listener; then the process exits 0. A stop that takes over 20 s exits 4.
 */
import * as Fs from "node:fs"
import * as Path from "node:path"
import { Effect, Layer } from "effect"
import { Stores } from "../../src/index.ts"
import { Cluster, type ClusterShape, ClusterSilo } from "../../src/Cluster/index.ts"
import { RedisDirectory, RedisMembership } from "../../src/Cluster/redis.ts"
import { RedisStore } from "../../src/Persistence/redis.ts"
import {
  connectRedis,
  exitIfStopHangs,
  flagArguments,
  reportMembers,
  runSilo,
  stopRequests,
  usage,
  write
} from "../cluster/process/siloProcess.ts"
import { activationKeys, ChaosAccountLive, formatTurn, nowMillis, Recorder, storeName } from "./ChaosAccount.ts"
import { timingsOf } from "./timings.ts"

// First thing: a SIGTERM before the scope exists must not kill the process the default way.
const stopRequested = stopRequests()

const args = flagArguments()
const membershipUrl = args.get("membership")
const stateUrl = args.get("state")
const keyPrefix = args.get("prefix")
const clusterName = args.get("cluster")
const logDir = args.get("log-dir")
const timingsName = args.get("timings") ?? "short"
const port = Number(args.get("port") ?? "0")
if (
  membershipUrl === undefined || stateUrl === undefined || keyPrefix === undefined || clusterName === undefined ||
  logDir === undefined || (timingsName !== "short" && timingsName !== "default") || !Number.isInteger(port)
) {
  usage("siloMain.ts --membership <url> --state <url> --prefix <p> --cluster <name> --log-dir <dir> [--timings short|default] [--port <port>]")
}
const timings = timingsOf(timingsName)

const RecorderLive = Layer.effect(
  Recorder,
  Effect.gen(function*() {
    const redis = yield* connectRedis(stateUrl, `quark-chaos-recorder:${clusterName}`, "the activation records' Redis")
    const keys = activationKeys(keyPrefix)
    const fd = yield* Effect.acquireRelease(
      Effect.sync(() => Fs.openSync(Path.join(logDir, `turns-${process.pid}.log`), "a")),
      (fd) => Effect.sync(() => Fs.closeSync(fd))
    )
    return Recorder.of({
      activated: (activation, address, silo, start) =>
        Effect.orDie(Effect.tryPromise(() =>
          redis.hset(keys.starts, activation, JSON.stringify({ address, silo, pid: process.pid, start }))
        )),
      deactivated: (activation, end) =>
        Effect.asVoid(Effect.orDie(Effect.tryPromise(() => redis.hset(keys.ends, activation, String(end))))),
      // One write(2) per turn: in the kernel at once, so it survives a kill -9.
      turn: (record) => void Fs.writeSync(fd, `${formatTurn(record)}\n`)
    })
  })
)

const SiloLive = ChaosAccountLive.pipe(
  Layer.provideMerge(ClusterSilo.layer({ host: "127.0.0.1", port })),
  Layer.provide(RedisMembership.layer({ url: membershipUrl, keyPrefix, cluster: clusterName, ...timings })),
  Layer.provide(RedisDirectory.layer({ url: membershipUrl, keyPrefix, cluster: clusterName })),
  Layer.provide(Stores.layer(RedisStore.make(storeName, { url: stateUrl, keyPrefix }))),
  Layer.provide(RecorderLive)
)

/** The incarnations this process has reported dead. */
const reportedDead = new Set<string>()

/**
 * A new id means the previous incarnation was declared dead and the silo joined again: if
 * that death was not reported yet (`Cluster.declaredDead` completes for the first death
 * only), it is reported first, as `dead <id> rejoined`; then `ready <new id>`.
 */
const reportRejoin = (previous: string | undefined, id: string | undefined) =>
  Effect.gen(function*() {
    if (previous !== undefined && !reportedDead.has(previous)) {
      reportedDead.add(previous)
      yield* write(`dead ${previous} rejoined`)
    }
    yield* write(`ready ${id}`)
  })

/** Prints the death `Cluster.declaredDead` reports; the process stays up (see the module doc). */
const reportDeath = (cluster: ClusterShape) =>
  Effect.gen(function*() {
    const dead = yield* cluster.declaredDead
    if (reportedDead.has(dead.id)) return
    reportedDead.add(dead.id)
    yield* write(`dead ${dead.id} ${dead.reason}`)
    yield* Effect.logWarning(`declared dead (${dead.reason}) at ${nowMillis().toFixed(0)}: staying up`)
  })

const main = Effect.gen(function*() {
  const cluster = yield* Cluster
  yield* write(`ready ${cluster.self!.id}`)
  yield* Effect.forkScoped(reportMembers(cluster, { onIdChange: reportRejoin }))
  yield* Effect.forkScoped(reportDeath(cluster))
  const why = yield* stopRequested
  yield* write("stopping")
  yield* Effect.logInfo(`${why}: stopping gracefully`)
  exitIfStopHangs(20_000)
}).pipe(
  Effect.annotateLogs({ pid: process.pid }),
  Effect.provide(SiloLive),
  Effect.scoped
)

runSilo(main, () => process.stderr.write(`stopped gracefully at ${nowMillis().toFixed(0)}\n`))

/**
 * One silo of the split-brain test (`SplitBrain.test.ts`), as its own process:
 *
 *   node test/cluster/process/partitionSiloMain.ts --redis <url> --prefix <key prefix>
 *     --cluster <name> --host <name> --port <port> --log <file>
 *
 * A `ClusterSilo` listening on, and reached at, `--host:--port` (a name this process
 * resolves through the map in `QUARK_TEST_HOST_MAP`, see `hostMap.ts`), hosting the chaos
 * test's `ChaosAccount` (`test/chaos/ChaosAccount.ts`: an idempotent deposit account whose
 * state is a version-checked record in Redis) with the multi-process tests' short
 * membership timings (dead after 1.2 s, lease 1 s). Membership and state both use
 * `--redis`, so a silo whose `--redis` is a proxy the test cuts loses the registry and its
 * store together.
 *
 * Every activation and turn is appended to `--log` (one `write(2)` each, so it survives a
 * kill), not to Redis, since a partitioned silo cannot reach Redis:
 * - `A <activation> <address> <silo id> <pid> <start>` when an activation starts;
 * - `E <activation> <end>` when it has deactivated (its finalizers ran);
 * - `T <turn>` when a turn ends (`formatTurn`: address, silo, pid, start, end, activation,
 *   tag, outcome).
 * Times are `nowMillis` (CLOCK_MONOTONIC, shared by every process of the machine).
 *
 * stdout carries the protocol, one line each:
 * - `ready <silo id>` once it serves, and again whenever its id changes (declared dead, it
 *   stops serving, deactivates everything and joins again with a new generation);
 * - `members <id>,<id>,...` whenever its ring changes;
 * - `dead <silo id> <reason> <at>` each time an incarnation learns it was declared dead, or
 *   fences itself (`unreachable`), and stops serving (`at`: `nowMillis`). Read from the
 *   silo's own log line ("this silo was declared dead: it stops serving", annotated with
 *   `silo` and `reason`), since `Cluster.declaredDead` reports the first death only.
 * Logs go to stderr. It exits 0 when its stdin closes (after a graceful stop, at most 5 s).
 *
 * stdin takes one command, once: `read <account>,<account>,...` starts callers on this silo
 * (clients on its side of a partition): one per account, reading its balance through this
 * silo's own `Silo` whenever this silo's view says it hosts the account (so locally), each
 * call with a 1 s timeout, forever, appending `C <account> <start> <end> <outcome> <silo> <balance>` per
 * call to `--log` (the silo that answered and the balance it read; `- -` on failure).
 */
import * as Fs from "node:fs"
import { Effect, Layer, Logger, References } from "effect"
import { Stores } from "../../../src/index.ts"
import { Cluster, type ClusterShape, ClusterSilo } from "../../../src/Cluster/index.ts"
import { RedisMembership } from "../../../src/Cluster/redis.ts"
import { RedisStore } from "../../../src/Persistence/redis.ts"
import { ChaosAccount, ChaosAccountLive, formatTurn, nowMillis, outcomeOf, Recorder, storeName } from "../../chaos/ChaosAccount.ts"
import { installHostMapFromEnv } from "./hostMap.ts"
import { timings } from "./Account.ts"
import { flagArguments, reportMembers, runSilo, stdinClosed, usage, write } from "./siloProcess.ts"

const args = flagArguments()
const url = args.get("redis")
const keyPrefix = args.get("prefix")
const clusterName = args.get("cluster")
const host = args.get("host")
const port = Number(args.get("port"))
const logFile = args.get("log")
if (
  url === undefined || keyPrefix === undefined || clusterName === undefined || host === undefined ||
  logFile === undefined || !Number.isInteger(port)
) {
  usage("partitionSiloMain.ts --redis <url> --prefix <p> --cluster <name> --host <name> --port <port> --log <file>")
}
// Before anything listens or connects.
installHostMapFromEnv()

const log = Fs.openSync(logFile, "a")
const append = (line: string) => void Fs.writeSync(log, `${line}\n`)

const RecorderLive = Layer.succeed(
  Recorder,
  Recorder.of({
    activated: (activation, address, silo, start) =>
      Effect.sync(() => append(`A ${activation} ${address} ${silo} ${process.pid} ${start.toFixed(3)}`)),
    deactivated: (activation, end) => Effect.sync(() => append(`E ${activation} ${end.toFixed(3)}`)),
    turn: (record) => append(`T ${formatTurn(record)}`)
  })
)

const SiloLive = ChaosAccountLive.pipe(
  Layer.provideMerge(ClusterSilo.layer({ host, port })),
  Layer.provide(RedisMembership.layer({ url, keyPrefix, cluster: clusterName, ...timings })),
  Layer.provide(Stores.layer(RedisStore.make(storeName, { url, keyPrefix }))),
  Layer.provide(RecorderLive)
)

/** The accounts a `read` command named (read by {@link localReader}). */
let readAccounts: ReadonlyArray<string> = []

/** Takes the `read` command (see the module doc). */
const onCommand = (line: string) => {
  if (line.startsWith("read ")) readAccounts = line.slice(5).split(",").filter((id) => id !== "")
}

/** Reads each account of the `read` command in a loop of its own, through this silo, logging every call. */
const localReader = (cluster: ClusterShape) => Effect.gen(function*() {
  while (readAccounts.length === 0) yield* Effect.sleep("10 millis")
  yield* Effect.forEach(readAccounts, (account) =>
    Effect.forkScoped(Effect.forever(Effect.gen(function*() {
      // Only while this silo's view says it hosts the account.
      const owner = yield* cluster.ownerOf({ type: ChaosAccount.type, id: account })
      if (owner === undefined || owner !== cluster.self?.id) return yield* Effect.sleep("20 millis")
      const start = nowMillis()
      const exit = yield* Effect.exit(Effect.flatMap(ChaosAccount.refOrDie(account), (ref) => ref.Balance({ timeout: "1 second" })))
      const outcome = exit._tag === "Success" ? "ok" : outcomeOf(exit.cause)
      const served = exit._tag === "Success" ? `${exit.value.silo} ${exit.value.balance}` : "- -"
      append(`C ${account} ${start.toFixed(3)} ${nowMillis().toFixed(3)} ${outcome} ${served}`)
      yield* Effect.sleep(exit._tag === "Success" ? "5 millis" : "20 millis")
    }))), { discard: true })
})

/** The log line `ClusterSilo` writes when an incarnation stops serving because it was declared dead. */
const stopsServing = "this silo was declared dead: it stops serving"

/** Beside the stderr logger: turns that log line into a `dead` line on stdout, for every incarnation. */
const DeathReporter = Logger.layer([
  Logger.make((options) => {
    const message = Array.isArray(options.message) ? options.message[0] : options.message
    if (message !== stopsServing) return
    const annotations = options.fiber.getRef(References.CurrentLogAnnotations)
    process.stdout.write(`dead ${String(annotations.silo)} ${String(annotations.reason)} ${nowMillis().toFixed(3)}\n`)
  })
], { mergeWithExisting: true })

const main = Effect.gen(function*() {
  const cluster = yield* Cluster
  yield* write(`ready ${cluster.self!.id}`)
  // Its id too: declared dead, it joins again as a new generation.
  yield* Effect.forkScoped(reportMembers(cluster, { every: "10 millis", onIdChange: (_, id) => write(`ready ${id}`) }))
  yield* Effect.forkScoped(localReader(cluster))
  yield* stdinClosed(onCommand)
  yield* Effect.logInfo("stdin closed: stopping")
}).pipe(
  Effect.annotateLogs({ pid: process.pid }),
  Effect.provide(SiloLive),
  Effect.scoped,
  Effect.provide(DeathReporter)
)

runSilo(main)

/**
 * One silo of the multi-process cluster test, as its own process:
 *
 *   node test/cluster/process/siloMain.ts <keyPrefix> <cluster> [test|default]
 *
 * A `ClusterSilo` on 127.0.0.1 (any free port) with Redis membership and directory, hosting
 * `Account` with its state in Redis; every key it writes starts with `keyPrefix`, and the
 * membership timings are `timings` from `Account.ts` (`test`, the default) or the
 * membership's production defaults (`default`).
 *
 * stdout carries the protocol only, one line each:
 * - `ready <silo id>` once the silo has joined and serves;
 * - `members <id>,<id>,...` whenever the silo's ring changes (the first one right after
 *   `ready`).
 * Logs go to stderr. It shuts down gracefully (leaves, deactivates) and exits 0 when its
 * stdin closes, so it never outlives the test process; it exits 3 at once if it is
 * declared dead.
 */
import { Effect, Layer } from "effect"
import { Stores } from "../../../src/index.ts"
import { Cluster, ClusterSilo } from "../../../src/Cluster/index.ts"
import { RedisDirectory, RedisMembership } from "../../../src/Cluster/redis.ts"
import { RedisStore } from "../../../src/Persistence/redis.ts"
import { redisUrl as url } from "../../persistence/services.ts"
import { AccountLive, ActivationRegistry, registryKey, storeName, timings } from "./Account.ts"
import { connectRedis, reportMembers, runSilo, stdinClosed, usage, write } from "./siloProcess.ts"

const [keyPrefix, clusterName, timingsName = "test"] = process.argv.slice(2)
if (keyPrefix === undefined || clusterName === undefined || (timingsName !== "test" && timingsName !== "default")) {
  usage("siloMain.ts <keyPrefix> <cluster> [test|default]")
}
const membershipTimings = timingsName === "test" ? timings : {}

/** Appends the server's time in ms to the entry and adds it to the set; answers the member. */
const stampAndAdd = `local t = redis.call('TIME')
local member = ARGV[1] .. '|' .. (tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000))
redis.call('SADD', KEYS[1], member)
return member`

const RegistryLive = Layer.effect(
  ActivationRegistry,
  Effect.gen(function*() {
    const redis = yield* connectRedis(url, `quark-test-registry:${clusterName}`, "the activation registry's Redis")
    const key = registryKey(keyPrefix)
    return ActivationRegistry.of({
      add: (entry) =>
        Effect.orDie(Effect.tryPromise(() => redis.eval(stampAndAdd, 1, key, entry) as Promise<string>)),
      remove: (member) => Effect.asVoid(Effect.orDie(Effect.tryPromise(() => redis.srem(key, member))))
    })
  })
)

const SiloLive = AccountLive.pipe(
  Layer.provideMerge(ClusterSilo.layer({ host: "127.0.0.1", port: 0 })),
  Layer.provide(RedisMembership.layer({ url, keyPrefix, cluster: clusterName, ...membershipTimings })),
  Layer.provide(RedisDirectory.layer({ url, keyPrefix, cluster: clusterName })),
  Layer.provide(Stores.layer(RedisStore.make(storeName, { url, keyPrefix }))),
  Layer.provide(RegistryLive)
)

const main = Effect.gen(function*() {
  const cluster = yield* Cluster
  const self = cluster.self!.id
  yield* write(`ready ${self}`)
  yield* Effect.forkScoped(reportMembers(cluster))
  const outcome = yield* Effect.raceFirst(
    Effect.map(cluster.declaredDead, (dead) => ({ _tag: "dead" as const, reason: dead.reason })),
    Effect.as(stdinClosed(), { _tag: "stdin closed" as const })
  )
  if (outcome._tag === "dead") {
    yield* Effect.logError(`declared dead (${outcome.reason}): exiting`)
    process.exit(3)
  }
  yield* Effect.logInfo("stdin closed: shutting down")
}).pipe(
  Effect.annotateLogs({ pid: process.pid }),
  Effect.provide(SiloLive),
  Effect.scoped
)

runSilo(main)

/**
 * One silo of the multi-process live migration test, as its own process:
 *
 *   node test/cluster/process/migrationSiloMain.ts <keyPrefix> <cluster>
 *
 * A `ClusterSilo` on 127.0.0.1 with Redis membership (the timings of `Account.ts`),
 * directory and state, hosting `MigAccount` (placed at random, its balance an `ActorState`
 * record in Redis, plus a count of its deposits handed over in memory). Each activation
 * increments `live:<id>` in Redis when it starts and decrements it when it ends; a start
 * that finds another live one pushes to `<keyPrefix>:overlaps`, so the test sees any moment
 * an account was active twice.
 *
 * stdin takes commands, one a line: `share <fraction>` migrates that share of what this
 * silo holds and answers `moved <n> <failed>`. stdout also carries `ready <silo id>` and
 * `members <id>,...`. It shuts down gracefully when stdin closes.
 */
import { Context, Effect, Layer, Option, Ref, Schema } from "effect"
import type { Redis } from "ioredis"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorState, Migration, StateConflict, StoreError, Stores } from "../../../src/index.ts"
import { Cluster, ClusterSilo, Migrator, Placement } from "../../../src/Cluster/index.ts"
import { RedisDirectory, RedisMembership } from "../../../src/Cluster/redis.ts"
import { RedisStore } from "../../../src/Persistence/redis.ts"
import { redisUrl as url } from "../../persistence/services.ts"
import { timings } from "./Account.ts"
import { connectRedis, reportMembers, runSilo, stdinClosed, usage, write } from "./siloProcess.ts"

export const MigAccount = Actor.make("MigAccount", [
  Rpc.make("Deposit", { payload: { amount: Schema.Int }, success: Schema.Int, error: Schema.Union([StateConflict, StoreError]) }),
  Rpc.make("Deposits", { success: Schema.Int }),
  Rpc.make("WhereAmI", { success: Schema.String })
], { placement: Placement.random })

/** A raw Redis connection for the overlap probe. */
class Probe extends Context.Service<Probe, Redis>()("test/MigrationProbe") {}

const main = () => {
  const [keyPrefix, clusterName] = process.argv.slice(2)
  if (keyPrefix === undefined || clusterName === undefined) usage("migrationSiloMain.ts <keyPrefix> <cluster>")

  const AccountLive = MigAccount.toLayer(Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    const silo = (yield* Cluster).self!.id
    const redis = yield* Probe
    const live = `${keyPrefix}:live:${id}`
    const started = yield* Effect.promise(() => redis.incr(live))
    if (started > 1) yield* Effect.promise(() => redis.rpush(`${keyPrefix}:overlaps`, `${id} on ${silo}`))
    yield* Effect.addFinalizer(() => Effect.promise(() => redis.decr(live)))
    const balance = yield* ActorState.make("balance", { schema: Schema.Int, initial: () => 0, store: "redis" })
    const handed = yield* Migration.rehydrated("deposits", Schema.Int)
    const deposits = yield* Ref.make(Option.getOrElse(handed, () => 0))
    yield* Migration.onDehydrate("deposits", Schema.Int, Ref.get(deposits))
    return MigAccount.of({
      Deposit: ({ amount }) =>
        Effect.andThen(
          Effect.andThen(balance.update((b) => b + amount), balance.write),
          Effect.andThen(Ref.update(deposits, (n) => n + 1), balance.get)
        ),
      Deposits: () => Ref.get(deposits),
      WhereAmI: () => Effect.succeed(silo)
    })
  }), { idleTimeout: "never" })

  const SiloLive = AccountLive.pipe(
    Layer.provideMerge(ClusterSilo.layer({ host: "127.0.0.1", port: 0 })),
    Layer.provide(RedisMembership.layer({ url, keyPrefix, cluster: clusterName, ...timings })),
    Layer.provide(RedisDirectory.layer({ url, keyPrefix, cluster: clusterName })),
    Layer.provide(Stores.layer(RedisStore.make("redis", { url, keyPrefix }))),
    Layer.provide(Layer.effect(Probe, connectRedis(url, "quark-test-migration", "the overlap probe's Redis")))
  )

  const program = Effect.gen(function*() {
    const cluster = yield* Cluster
    const migrator = yield* Migrator
    yield* write(`ready ${cluster.self!.id}`)
    yield* Effect.forkScoped(reportMembers(cluster))
    yield* stdinClosed((line) => {
      const [command, argument] = line.split(" ")
      if (command !== "share") return
      Effect.runFork(Effect.flatMap(migrator.migrateShare({ fraction: Number(argument) }), (report) =>
        write(`moved ${report.moved.length} ${report.failed.length} ${report.failed.map((f) => f.message).join("; ")}`)))
    })
  }).pipe(
    Effect.provide(SiloLive),
    Effect.scoped
  )

  runSilo(program)
}

if (process.argv[1]?.endsWith("migrationSiloMain.ts")) main()

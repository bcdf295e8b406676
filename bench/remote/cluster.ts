/**
 * The effect/cluster setup of `baseline.effect-cluster.remote`, shared by the bench process
 * (a client-only member) and the runner child process (effectClusterRunner.ts).
 *
 * effect/cluster has no shard manager process: runners register in a shared RunnerStorage
 * and every member (client-only ones too) computes the shard → runner assignment from the
 * registered runners, runners taking shard locks in that storage. Across processes the
 * storage must therefore be shared: here the SQL RunnerStorage and MessageStorage on the
 * PostgreSQL server (`QUARK_PG_URL`), under tables of their own (prefix
 * `quark_bench_cluster_`), as `NodeClusterSocket.layer({ storage: "sql" })` would set up with
 * the default prefix. Runner-to-runner and client-to-runner traffic is effect/rpc over
 * NodeClusterSocket (RpcSerialization.layerSchemaBinary). The `Increment` message is
 * volatile (not `Persisted`), so no call touches PostgreSQL: storage only serves membership
 * and shard locks.
 */
import { NodeClusterSocket, NodeCrypto } from "@effect/platform-node"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Option, Redacted, Schema } from "effect"
import { Entity, RunnerAddress, ShardingConfig, SqlMessageStorage, SqlRunnerStorage } from "effect/cluster"
import { Reactivity } from "effect/reactivity"
import { Rpc } from "effect/rpc"

export const pgUrl = process.env.QUARK_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
export const tablePrefix = "quark_bench_cluster"

/** The entity: `Increment({ by })` adds to the instance's count and replies with it. */
export const Counter = Entity.make("BenchCounter", [
  Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
])

export const CounterLive = Counter.toLayer(
  Effect.sync(() => {
    let count = 0
    return Counter.of({ Increment: ({ payload }) => Effect.sync(() => (count += payload.by)) })
  })
)

// Same value for every member; the entity must not be passivated between rounds (its
// count is what the replies are checked against).
const shardingConfig = (runner: Option.Option<RunnerAddress.RunnerAddress>): Partial<ShardingConfig.ShardingConfig["Service"]> => ({
  runnerAddress: runner,
  entityMaxIdleTime: "1 hour"
})

const storage = (config: Partial<ShardingConfig.ShardingConfig["Service"]>) =>
  Layer.mergeAll(
    SqlMessageStorage.layerWith({ prefix: tablePrefix }).pipe(Layer.provide(NodeCrypto.layerDigest)),
    SqlRunnerStorage.layerWith({ prefix: tablePrefix })
  ).pipe(
    Layer.provide(ShardingConfig.layer(config)),
    Layer.provide(PgClient.layer({ url: Redacted.make(pgUrl), maxConnections: 4 }))
  )

/** A runner listening on host:port, registered in the shared storage, hosting the Counter. */
export const runnerLayer = (host: string, port: number) => {
  const config = shardingConfig(Option.some(RunnerAddress.RunnerAddress.make({ host, port })))
  return CounterLive.pipe(
    Layer.provideMerge(NodeClusterSocket.layer({ storage: "byo", shardingConfig: config })),
    Layer.provide(storage(config))
  )
}

/** A client-only member: no runner, no shards; sends to the runners found in storage. */
export const clientLayer = () => {
  const config = shardingConfig(Option.none())
  return NodeClusterSocket.layer({ clientOnly: true, storage: "byo", shardingConfig: config }).pipe(
    Layer.provide(storage(config))
  )
}

/** Drops every table under the prefix (before a run, so no stale runner is seen; and after). */
export const dropTables = (): Promise<void> =>
  Effect.runPromise(Effect.scoped(Effect.gen(function*() {
    const sql = yield* PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
      Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
    )
    const rows = yield* sql.unsafe<{ tablename: string }>(
      `SELECT tablename FROM pg_tables WHERE schemaname = current_schema() AND tablename LIKE '${tablePrefix}\\_%'`
    )
    for (const { tablename } of rows) yield* sql.unsafe(`DROP TABLE IF EXISTS "${tablename}" CASCADE`)
  })))

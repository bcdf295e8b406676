/**
 * One silo of `npm run example:cluster`, as its own process:
 *
 *   node examples/cluster/silo.ts <cluster>
 *
 * A `ClusterSilo` on 127.0.0.1 (any free port), a member of `<cluster>` through Redis
 * membership (default timings: dead 3 s after its last heartbeat), hosting `Account`, whose
 * balance is a state record in Redis (QUARK_REDIS_URL, default 127.0.0.1:6379).
 *
 * stdout: `ready <silo id>` once it has joined and serves. Logs go to stderr.
 * It stops gracefully (leaves the membership, deactivates its actors, closes its
 * connections) on SIGTERM / SIGINT or when its stdin closes (so it never outlives the
 * process that started it), and exits 0. Declared dead, it stops serving and exits 3.
 */
import { Effect, Schema } from "effect"
import { ActorState } from "quark"
import { Cluster } from "quark/cluster"
import { clusterSilo, runSilo } from "../support/SiloMain.ts"
import { Account, storePrefix } from "./Account.ts"

const cluster = process.argv[2]
if (cluster === undefined) {
  process.stderr.write("usage: node examples/cluster/silo.ts <cluster>\n")
  process.exit(2)
}
const url = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"

// --- The actor ---------------------------------------------------------------------------

const AccountLive = Account.toLayer(
  Effect.gen(function*() {
    const self = (yield* Cluster).self!.id
    // Loaded from Redis before the first turn: a new activation on another silo after a
    // crash starts from the last acknowledged deposit.
    const balance = yield* ActorState.make("balance", {
      schema: Schema.Struct({ amount: Schema.Number }),
      initial: () => ({ amount: 0 }),
      store: "redis"
    })
    return Account.of({
      Deposit: ({ amount }) =>
        balance.update((b) => ({ amount: b.amount + amount })).pipe(
          Effect.tap(() => balance.write), // written before the reply
          Effect.map((b) => b.amount)
        ),
      Balance: () => Effect.map(balance.get, (b) => b.amount),
      WhereAmI: () => Effect.succeed(self)
    })
  })
)

// --- The silo ----------------------------------------------------------------------------

const SiloLive = clusterSilo(
  AccountLive,
  { url, cluster, storePrefix: storePrefix(cluster) }
)

runSilo(SiloLive)

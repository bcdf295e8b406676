/**
 * Live migration between real processes: two silos (`process/migrationSiloMain.ts`) on
 * Redis membership, directory and state, and this test process as a `ClusterClient` that
 * keeps depositing into 40 accounts while the silos migrate half of what they hold to each
 * other, round after round. Not one call may fail; every account's balance (in Redis,
 * version-checked) and its deposit count (in memory, handed over on every move) must equal
 * the deposits acknowledged; no account may ever be active on both silos at once (each
 * activation counts itself in Redis, see the silo main).
 *
 * Real processes need real time: every wait is a bounded poll. An unreachable Redis fails
 * the test (never skips).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Effect, Fiber, Layer } from "effect"
import type { Silo } from "../../src/index.ts"
import { Cluster, ClusterClient } from "../../src/Cluster/index.ts"
import { RedisDirectory, RedisMembership } from "../../src/Cluster/redis.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { closeAndWait, type SiloChild, siloLogs, spawnSiloChild, waitFor as poll } from "../support/processes.ts"
import { deleteKeys, newRunId } from "../support/redisKeys.ts"
import { timings } from "./process/Account.ts"
import { MigAccount } from "./process/migrationSiloMain.ts"

const siloMain = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "process", "migrationSiloMain.ts")

const keyPrefix = `quark-mig-${newRunId()}`
const clusterName = "mig"
const accountIds = Array.from({ length: 40 }, (_, i) => `m-${i}`)

interface SiloProcess extends SiloChild {
  /** Its `moved` lines, the answers to `share`. */
  readonly replies: Array<string>
}

/** A silo for the life of the scope; on release its stdin is closed (graceful stop), SIGKILL after 5 s. */
const spawnSilo = Effect.acquireRelease(
  Effect.sync(() =>
    spawnSiloChild<SiloProcess>(siloMain, [keyPrefix, clusterName], { replies: [] }, {
      env: { QUARK_REDIS_URL: redisUrl },
      onLine: (line, silo) => {
        if (line.startsWith("moved ")) silo.replies.push(line)
      }
    })
  ),
  (silo) => closeAndWait(silo.child, 5_000)
)

/** Polls `condition` every 10 ms; dies (with the silos' logs) past `maxMillis`. */
const waitFor = (silos: ReadonlyArray<SiloProcess>, what: string, maxMillis: number, condition: () => boolean) =>
  poll(what, maxMillis, Effect.sync(condition), { describe: () => siloLogs(silos, (s) => `pid ${s.child.pid}`) })

describe("live migration across processes", () => {
  it.live("two silos on Redis migrate half their accounts to each other, round after round, under load: zero failed calls", () =>
    Effect.gen(function*() {
      const redis = yield* Effect.orDie(rawRedis)
      yield* Effect.addFinalizer(() => deleteKeys(redis, `${keyPrefix}:*`))
      const silos = [yield* spawnSilo, yield* spawnSilo]
      yield* waitFor(silos, "the silos start", 20_000, () => silos.every((s) => s.id !== undefined))
      yield* waitFor(silos, "the silos see each other", 5_000, () => silos.every((s) => s.members?.length === 2))

      const client: Context.Context<Silo.Silo | Cluster> = yield* Layer.build(
        ClusterClient.layer({ requestTimeout: "10 seconds" }).pipe(
          Layer.provide(RedisMembership.layer({ url: redisUrl, keyPrefix, cluster: clusterName, ...timings })),
          Layer.provide(RedisDirectory.layer({ url: redisUrl, keyPrefix, cluster: clusterName }))
        )
      ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)), Effect.orDie)
      const asClient = <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster>) => Effect.provideContext(effect, client)
      const cluster = Context.get(client, Cluster)
      const directory = yield* RedisDirectory.make({ url: redisUrl, keyPrefix, cluster: clusterName }).pipe(Effect.orDie)
      yield* Effect.repeat(cluster.members, { until: (members) => members.length === 2 })

      // The load: workers deposit 1 into the accounts in turn until told to stop.
      const acks = new Map(accountIds.map((id) => [id, 0]))
      const failures: Array<string> = []
      let stop = false
      const worker = (offset: number) =>
        Effect.gen(function*() {
          for (let i = offset; !stop; i++) {
            const id = accountIds[i % accountIds.length]!
            const result = yield* Effect.result(asClient(Effect.flatMap(MigAccount.ref(id), (ref) => ref.Deposit({ amount: 1 }))))
            if (result._tag === "Success") acks.set(id, acks.get(id)! + 1)
            else failures.push(`${id}: ${result.failure.message}`)
          }
        })
      const load = yield* Effect.forkChild(Effect.forEach(Array.from({ length: 8 }, (_, i) => i * 5), worker, {
        concurrency: "unbounded",
        discard: true
      }))
      yield* waitFor(silos, "every account has a deposit", 10_000, () => [...acks.values()].every((n) => n > 0))

      // The moves: each silo in turn migrates half of what it holds to the other.
      let moved = 0
      for (let round = 0; round < 6; round++) {
        const silo = silos[round % 2]!
        const before = silo.replies.length
        silo.child.stdin!.write("share 0.5\n")
        yield* waitFor(silos, `migration round ${round}`, 15_000, () => silo.replies.length > before)
        const [, count, failed, ...reasons] = silo.replies[before]!.split(" ")
        assert.strictEqual(failed, "0", `round ${round}: ${reasons.join(" ")}`)
        moved += Number(count)
        yield* Effect.sleep("200 millis")
      }
      stop = true
      yield* Fiber.join(load)

      assert.deepStrictEqual(failures, [], "no call failed")
      assert.isAtLeast(moved, 30, "the rounds moved accounts")
      for (const id of accountIds) {
        const ref = yield* asClient(MigAccount.ref(id))
        const balance = yield* asClient(ref.Deposit({ amount: 0 }))
        // The zero deposit counts too.
        const deposits = yield* asClient(ref.Deposits())
        assert.strictEqual(balance, acks.get(id)!, `${id}: the stored balance`)
        assert.strictEqual(deposits, acks.get(id)! + 1, `${id}: the deposit count handed over in memory`)
        const where = yield* asClient(ref.WhereAmI())
        assert.strictEqual(yield* directory.lookup({ type: MigAccount.type, id }), where, `${id}: the directory names its silo`)
      }
      assert.deepStrictEqual(yield* Effect.promise(() => redis.lrange(`${keyPrefix}:overlaps`, 0, -1)), [], "never active twice")
    }).pipe(Effect.scoped), 90_000)
})

/**
 * A rolling upgrade under load, as real processes: three silos (`process/upgradeSiloMain.ts`)
 * on 127.0.0.1 with Redis membership and state run version 1 of the `UpAccount` contract;
 * each in turn is stopped with SIGTERM and replaced, on the same port, by a process running
 * version 2 (which adds an optional field, `memo`, to `Deposit`'s payload and keeps it when
 * present). This test process is a `ClusterClient` depositing steadily into persistent
 * accounts, half of its calls made with the v1 contract and half with v2 (with a memo), so
 * both directions of the wire change are exercised against silos of both versions.
 *
 * - Not one call may fail: each is made once, never retried.
 * - No acknowledged deposit is lost or applied twice (read back from Redis at the end).
 * - Each silo announces its version and hosted contract version, and the memo of a v2 call
 *   is kept once v2 serves the account.
 *
 * Real processes need real time: every wait is a bounded poll of a condition (`waitFor`).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Clock, Context, Effect, Fiber, Layer } from "effect"
import type { Redis } from "ioredis"
import type { Silo } from "../../src/index.ts"
import { Cluster, ClusterClient, Placement } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { RedisStore } from "../../src/Persistence/redis.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { signalAndWait, type SiloChild, siloLogs, spawnSiloChild, waitFor as poll } from "../support/processes.ts"
import { cleanupRun, newRunId } from "../support/redisKeys.ts"
import { timings } from "./process/Account.ts"
import { AccountV1, AccountV2 } from "./process/UpgradeAccount.ts"

const siloMain = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "process", "upgradeSiloMain.ts")

const runPrefix = "quark-up-"
const keyPrefix = `${runPrefix}${newRunId()}`
const clusterName = "up"
const accountIds = Array.from({ length: 24 }, (_, i) => `up-${i}`)

type Contract = "v1" | "v2"

interface SiloProcess extends SiloChild {
  readonly contract: Contract
}

const spawnSilo = (contract: Contract, port: number) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawnSiloChild<SiloProcess>(siloMain, [keyPrefix, clusterName, String(port)], { contract }, {
        env: { QUARK_REDIS_URL: redisUrl, QUARK_UPGRADE_CONTRACT: contract }
      })
    ),
    (silo) => signalAndWait(silo.child, "SIGKILL")
  )

const portOf = (id: string) => Number(id.slice(id.lastIndexOf(":") + 1, id.indexOf("@")))

const describeSilos = (silos: ReadonlyArray<SiloProcess>) => siloLogs(silos, (s) => s.contract)

const storedAccount = (redis: Redis, id: string) =>
  Effect.map(
    Effect.promise(() => redis.hget(RedisStore.redisKey(keyPrefix, "state", { type: "UpAccount", id, record: "account" }), "data")),
    (data) => data === null ? undefined : JSON.parse(data) as { balance: number; applied: Array<string>; memos?: Array<string> }
  )

const percentile = (sorted: ReadonlyArray<number>, p: number) =>
  sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!

describe("rolling upgrade", () => {
  // NOTE for whoever sees this fail with only `ActorUnavailable` ("did not release", "silo is
  // shutting down") or `OutcomeUnknown` around a restart: that is the graceful-stop path of a
  // silo replaced in place (Control's Release, LocalRouter's shutdown), which is being fixed
  // separately. The assertion stays: a rolling upgrade must not fail a single call.
  it.live("three silos upgraded from v1 to v2 of a contract (an optional field added), in place, under load: zero failed calls, nothing lost", () =>
    Effect.gen(function*() {
      const redis = yield* Effect.orDie(rawRedis)
      yield* cleanupRun(redis, runPrefix, keyPrefix)
      const silos: Array<SiloProcess> = [yield* spawnSilo("v1", 0), yield* spawnSilo("v1", 0), yield* spawnSilo("v1", 0)]
      const stopping = new Set<SiloProcess>()

      /** Polls `condition` every 10 ms; a failure with the silos' logs past `maxMillis` or once a silo exits unexpectedly. */
      const waitFor = (what: string, maxMillis: number, condition: Effect.Effect<boolean>) =>
        poll(what, maxMillis, condition, {
          abort: () => silos.some((s) => s.exit !== undefined && !stopping.has(s)) ? "a silo exited" : undefined,
          describe: () => describeSilos(silos)
        })

      yield* waitFor("the v1 silos start", 20_000, Effect.sync(() => silos.every((s) => s.id !== undefined)))
      const client: Context.Context<Silo.Silo | Cluster> = yield* Layer.build(
        ClusterClient.layer({ requestTimeout: "5 seconds", version: "1.0.0" }).pipe(
          Layer.provide(RedisMembership.layer({ url: redisUrl, keyPrefix, cluster: clusterName, ...timings }))
        )
      ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)), Effect.orDie)
      const asClient = <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster>) => Effect.provideContext(effect, client)
      const cluster = Context.get(client, Cluster)

      /** Every view (the client's and each silo's) holds exactly the running silos, each announcing its contract. */
      const converged = Effect.gen(function*() {
        const running = silos.filter((s) => s.exit === undefined && !stopping.has(s))
        const ids = running.map((s) => s.id)
        if (ids.some((id) => id === undefined)) return false
        const view = yield* cluster.view
        if (view.length !== running.length) return false
        for (const silo of running) {
          const member = view.find((m) => m.identity.id === silo.id)
          if (member === undefined) return false
          const hosted = Placement.hostedTypes(member.metadata)
          if (hosted?.get("UpAccount") !== (silo.contract === "v1" ? 1 : 2)) return false
          if (member.metadata[Placement.metadataKeys.version] !== (silo.contract === "v1" ? "1.0.0" : "2.0.0")) return false
          if (silo.members === undefined || silo.members.length !== running.length || !ids.every((id) => silo.members!.includes(id!))) {
            return false
          }
        }
        return true
      })
      yield* waitFor("every view sees the three v1 silos and what they host", 10_000, converged)

      // --- The load: deposits (v1 and v2 contract alternately) and reads, each made once --
      const ledger = {
        calls: 0,
        acks: 0,
        amounts: new Map<string, number>(),
        acknowledged: new Map<string, Set<string>>(accountIds.map((id) => [id, new Set<string>()])),
        failures: [] as Array<string>,
        latencies: [] as Array<number>
      }
      let stop = false
      const call = { timeout: "5 seconds" } as const
      const once = <A, E extends { readonly _tag: string; readonly message: string }>(what: string, effect: Effect.Effect<A, E, Silo.Silo | Cluster>) =>
        Effect.gen(function*() {
          const start = yield* Clock.currentTimeMillis
          ledger.calls++
          const result = yield* Effect.result(asClient(effect))
          ledger.latencies.push((yield* Clock.currentTimeMillis) - start)
          if (result._tag === "Failure") ledger.failures.push(`${what}: ${result.failure._tag}: ${result.failure.message}`)
          return result
        })
      const workers = yield* Effect.forEach(Array.from({ length: 6 }, (_, w) => w), (w) =>
        Effect.forkScoped(Effect.gen(function*() {
          for (let n = 0; !stop; n++) {
            const id = accountIds[(w * 5 + n * 7) % accountIds.length]!
            const depositId = `w${w}-${n}`
            const amount = 1 + ((w + n) % 9)
            ledger.amounts.set(depositId, amount)
            const deposit = n % 2 === 0 ?
              Effect.flatMap(AccountV1.ref(id), (account) => account.Deposit({ depositId, amount }, call)) :
              Effect.flatMap(AccountV2.ref(id), (account) => account.Deposit({ depositId, amount, memo: `m-${depositId}` }, call))
            const result = yield* once(`Deposit ${depositId} on ${id}`, deposit)
            if (result._tag === "Success") {
              ledger.acknowledged.get(id)!.add(depositId)
              ledger.acks++
            }
            if (n % 5 === 4) yield* once(`Balance of ${id}`, Effect.flatMap(AccountV1.ref(id), (account) => account.Balance(call)))
          }
        })))
      yield* waitFor("100 deposits acknowledged on v1", 20_000, Effect.sync(() => ledger.acks >= 100))

      // --- The upgrade: each silo in turn, SIGTERM, its exit, then v2 on its port ----------
      const steps: Array<{ readonly port: number; readonly stopMillis: number; readonly upMillis: number }> = []
      for (let i = 0; i < silos.length; i++) {
        const old = silos[i]!
        const port = portOf(old.id!)
        stopping.add(old)
        const stoppedAt = yield* Clock.currentTimeMillis
        yield* signalAndWait(old.child, "SIGTERM")
        const stopMillis = (yield* Clock.currentTimeMillis) - stoppedAt
        assert.deepStrictEqual(
          { code: old.exit?.code, signal: old.exit?.signal },
          { code: 0, signal: null },
          `the v1 silo on ${port} stopped cleanly\n${describeSilos(silos)}`
        )
        silos[i] = yield* spawnSilo("v2", port)
        const upMillis = yield* waitFor(`the v2 silo on ${port} joins and every view sees it`, 20_000, converged)
        steps.push({ port, stopMillis, upMillis })
        const acks = ledger.acks
        yield* waitFor(`50 more deposits after the silo on ${port} was upgraded`, 20_000, Effect.sync(() => ledger.acks >= acks + 50))
      }
      const acks = ledger.acks
      yield* waitFor("100 more deposits on v2 only", 20_000, Effect.sync(() => ledger.acks >= acks + 100))
      stop = true
      yield* Effect.forEach(workers, Fiber.join, { discard: true })

      const sorted = [...ledger.latencies].sort((a, b) => a - b)
      const report = {
        calls: ledger.calls,
        failed: ledger.failures.length,
        acknowledgedDeposits: ledger.acks,
        p50Ms: percentile(sorted, 50),
        p99Ms: percentile(sorted, 99),
        maxMs: sorted[sorted.length - 1] ?? 0,
        steps
      }
      console.log(JSON.stringify({ rollingUpgrade: report }))
      // See the NOTE above if this fails with ActorUnavailable/OutcomeUnknown around a restart.
      assert.deepStrictEqual(ledger.failures, [], `zero failed calls (${ledger.calls} made)`)

      // --- Nothing lost, nothing applied twice ---------------------------------------------
      for (const id of accountIds) {
        const stored = yield* storedAccount(redis, id)
        const acknowledged = ledger.acknowledged.get(id)!
        if (acknowledged.size === 0) continue
        assert.isDefined(stored, `${id} was stored`)
        assert.strictEqual(new Set(stored!.applied).size, stored!.applied.length, `${id}: no deposit applied twice`)
        for (const depositId of acknowledged) assert.include(stored!.applied, depositId, `${id}: acknowledged ${depositId} kept`)
        const sum = stored!.applied.reduce((total, depositId) => total + ledger.amounts.get(depositId)!, 0)
        assert.strictEqual(stored!.balance, sum, `${id}: the balance is the sum of its deposits`)
        // Every call was answered: nothing was applied that was not acknowledged.
        assert.strictEqual(stored!.applied.length, acknowledged.size, `${id}: only acknowledged deposits applied`)
      }

      // --- v2 everywhere, and its new field used -------------------------------------------
      const view = yield* cluster.view
      assert.strictEqual(view.length, 3)
      for (const member of view) {
        assert.strictEqual(member.metadata[Placement.metadataKeys.version], "2.0.0")
        assert.deepStrictEqual([...Placement.hostedTypes(member.metadata)!], [["UpAccount", 2]])
      }
      const memo = yield* asClient(Effect.gen(function*() {
        const account = yield* AccountV2.ref(accountIds[0]!)
        yield* account.Deposit({ depositId: "final", amount: 1, memo: "after the upgrade" }, call)
        return yield* account.Memos(call)
      }))
      assert.include(memo, "final:after the upgrade")
    }).pipe(Effect.scoped), 180_000)
})

/**
 * The cluster as real processes: three silos (`process/siloMain.ts`), each its own Node
 * process on 127.0.0.1, with Redis membership, directory and state; this test process is a
 * `ClusterClient` of them.
 *
 * - Calls land where the ring says: the silo that answers, and the one the activation
 *   registry names, is the client's `ownerOf`.
 * - A silo killed with SIGKILL while deposits run: its actors serve again from the others
 *   within the detection bound; at no sampled moment do two silos that are both still
 *   members hold an activation of one address (the killed silo's entries stay in the
 *   registry, since nothing runs its finalizers, and count until it is declared dead); no
 *   acknowledged deposit is lost.
 *
 * Real processes need real time: every wait is a bounded poll of a condition (`waitFor`),
 * with bounds derived from the membership timings.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Clock, Context, Effect, Fiber, Layer } from "effect"
import type { Redis } from "ioredis"
import { type Silo } from "../../src/index.ts"
import { Cluster, ClusterClient } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { RedisStore } from "../../src/Persistence/redis.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { signalAndWait, type SiloChild, siloLogs, spawnSiloChild, waitFor as poll } from "../support/processes.ts"
import { cleanupRun, newRunId } from "../support/redisKeys.ts"
import { Account, parseEntry, type RegistryEntry, registryKey, timingMillis, timings } from "./process/Account.ts"

const siloMain = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "process", "siloMain.ts")

const { dead, refresh } = timingMillis
/** Scheduling noise allowed on top of a documented time (three processes, a loaded CPU). */
const slack = 1_000
/**
 * The failover bound. The killed silo's last heartbeat is at most one interval old at the
 * kill; some process's full read declares it dead between `deadAfter` and
 * `deadAfter + refreshInterval` after that heartbeat; the `Dead` announcement reaches the
 * client and the survivors within a round trip; the new owner then activates the actor
 * (one state read). So ≤ deadAfter + refreshInterval + slack = 1,200 + 200 + 1,000 =
 * 2,400 ms from the kill.
 */
const failoverBound = dead + refresh + slack
/**
 * Nothing may serve a killed silo's actor before it is declared dead, about `deadAfter`
 * after its last heartbeat (at most an interval before the kill, more if heartbeats were
 * late): half of `deadAfter` tells a failover that waited for the death from one that
 * reacted to the lost connection (tens of milliseconds).
 */
const failoverFloor = dead / 2

const runPrefix = "quark-mp-"
const keyPrefix = `${runPrefix}${newRunId()}`
const clusterName = "mp"
const membershipKeys = RedisMembership.keys(keyPrefix, clusterName)
const accountIds = Array.from({ length: 30 }, (_, i) => `acct-${i}`)
const addressOf = (id: string) => `${Account.type}/${id}`

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

interface SiloProcess extends SiloChild {
  readonly index: number
}

const spawnSilo = (index: number) =>
  Effect.acquireRelease(
    Effect.sync(() => spawnSiloChild<SiloProcess>(siloMain, [keyPrefix, clusterName], { index }, { env: { QUARK_REDIS_URL: redisUrl } })),
    (silo) => signalAndWait(silo.child, "SIGKILL")
  )

// ---------------------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------------------

/**
 * One consistent read (MULTI) of the members (by id) and the activation registry
 * (address → its entries), plus the death tombstones (id → when, in Redis time).
 */
const readRegistry = (redis: Redis) =>
  Effect.map(
    Effect.promise(() =>
      redis.multi()
        .hkeys(membershipKeys.members)
        .smembers(registryKey(keyPrefix))
        .zrange(membershipKeys.gone, "0", "-1", "WITHSCORES")
        .exec()
    ),
    (results) => {
      const members = new Set(results![0]![1] as Array<string>)
      const holders = new Map<string, Array<RegistryEntry>>()
      for (const member of results![1]![1] as Array<string>) {
        const entry = parseEntry(member)
        if (entry === undefined) continue
        const entries = holders.get(entry.address) ?? []
        entries.push(entry)
        holders.set(entry.address, entries)
      }
      const deaths = new Map<string, number>()
      const gone = results![2]![1] as Array<string>
      for (let i = 0; i + 1 < gone.length; i += 2) {
        if (gone[i]!.startsWith("timeout:")) deaths.set(gone[i]!.slice("timeout:".length), Number(gone[i + 1]))
      }
      return { members, holders, deaths }
    }
  )

/** The silos holding `address` that are still members. */
const liveHolders = (registry: Effect.Success<ReturnType<typeof readRegistry>>, address: string) =>
  [...new Set((registry.holders.get(address) ?? []).map((e) => e.silo).filter((silo) => registry.members.has(silo)))]

const storedAccount = (redis: Redis, id: string) =>
  Effect.map(
    Effect.promise(() =>
      redis.hget(RedisStore.redisKey(keyPrefix, "state", { type: Account.type, id, record: "account" }), "data")
    ),
    (data) => data === null ? undefined : JSON.parse(data) as { balance: number; applied: Array<string> }
  )

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

describe("multi-process cluster", () => {
  it.live("three silo processes: calls land on the ring's owner; after kill -9 the actors move within the bound, never held twice, nothing acknowledged lost", () =>
    Effect.gen(function*() {
      const redis = yield* Effect.orDie(rawRedis)
      yield* cleanupRun(redis, runPrefix, keyPrefix)
      const silos = [yield* spawnSilo(0), yield* spawnSilo(1), yield* spawnSilo(2)]
      let shuttingDown = false
      let victim: SiloProcess | undefined

      /** Polls `condition` every 10 ms; the time it took, or a failure (with the silos' logs) past `maxMillis` or once a silo exits unexpectedly. */
      const waitFor = (what: string, maxMillis: number, condition: Effect.Effect<boolean>) =>
        poll(what, maxMillis, condition, {
          abort: () => {
            const unexpected = silos.find((s) => s !== victim && s.exit !== undefined && !shuttingDown)
            return unexpected === undefined ? undefined : `silo #${unexpected.index} exited`
          },
          describe: () => siloLogs(silos, (s) => `silo #${s.index}`)
        })

      // Startup: Node, module loading and three Redis connections per process.
      const startedIn = yield* waitFor("the silos start", 20_000, Effect.sync(() => silos.every((s) => s.id !== undefined)))
      const ids = silos.map((s) => s.id!)

      const client: Context.Context<Silo.Silo | Cluster> = yield* Layer.build(
        ClusterClient.layer({ requestTimeout: "2 seconds" }).pipe(
          Layer.provide(RedisMembership.layer({ url: redisUrl, keyPrefix, cluster: clusterName, ...timings }))
        )
      ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)), Effect.orDie)
      const asClient = <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster>) => Effect.provideContext(effect, client)
      const cluster = Context.get(client, Cluster)
      const ownerOf = (id: string) => cluster.ownerOf({ type: Account.type, id })
      const call = { timeout: "2 seconds" } as const

      const sameSet = (a: ReadonlyArray<string> | undefined, b: ReadonlyArray<string>) =>
        a !== undefined && a.length === b.length && b.every((id) => a.includes(id))
      yield* waitFor(
        "every silo and the client see the three silos",
        dead + refresh + slack,
        Effect.map(cluster.members, (members) => sameSet(members, ids) && silos.every((s) => sameSet(s.members, ids)))
      )

      // --- The sampler: no address held by two silos that are both members ---------------
      const sampling = { samples: 0, violations: [] as Array<string>, ignoringDead: 0 }
      const sampler = yield* Effect.forkScoped(Effect.forever(Effect.gen(function*() {
        const registry = yield* readRegistry(redis)
        sampling.samples++
        let ignored = false
        for (const [address, entries] of registry.holders) {
          const live = liveHolders(registry, address)
          if (entries.some((e) => !registry.members.has(e.silo))) ignored = true
          if (live.length > 1) sampling.violations.push(`${address} held by ${live.join(" and ")}`)
        }
        if (ignored) sampling.ignoringDead++
        yield* Effect.sleep("20 millis")
      })))

      // --- 1. Calls land where the ring says ---------------------------------------------
      const owners = new Map<string, string>()
      const whereIs = (id: string) => asClient(Effect.flatMap(Account.ref(id), (account) => account.WhereAmI(call)))
      for (const id of accountIds) {
        const owner = yield* ownerOf(id)
        const answered = yield* whereIs(id)
        assert.strictEqual(answered, owner, `${id} answered from its ring owner`)
        owners.set(id, answered)
      }
      {
        const registry = yield* readRegistry(redis)
        for (const id of accountIds) {
          assert.deepStrictEqual(
            registry.holders.get(addressOf(id))?.map((e) => e.silo),
            [owners.get(id)],
            `the registry holds ${id} on its owner only`
          )
        }
      }
      const owned = ids.map((silo) => accountIds.filter((id) => owners.get(id) === silo))
      assert.isAtLeast(owned.filter((accounts) => accounts.length > 0).length, 2, "the accounts spread over the silos")
      const victimIndex = owned.reduce((best, accounts, i) => accounts.length > owned[best]!.length ? i : best, 0)
      const doomed = silos[victimIndex]!
      const victimId = doomed.id!
      const victimAccounts = owned[victimIndex]!
      const survivorIds = ids.filter((id) => id !== victimId)

      // --- 2. Deposits: each retried under its id until acknowledged -----------------------
      const ledger = {
        expected: new Map<string, number>(accountIds.map((id) => [id, 0])),
        acknowledged: new Map<string, number>(accountIds.map((id) => [id, 0])),
        acks: 0,
        failures: new Map<string, number>(),
        killedAt: Infinity,
        failedOverAt: Infinity,
        /** From the kill to the first acknowledgement of a victim account's deposit first tried after the kill. */
        firstVictimAckAfterKill: undefined as number | undefined,
        /** Accounts with a deposit first tried, and acknowledged, after the failover. */
        servedAfterFailover: new Set<string>(),
        longestDeposit: 0
      }
      let stop = false
      const depositUntilAcknowledged = (id: string, depositId: string, amount: number) =>
        Effect.gen(function*() {
          const account = yield* asClient(Account.ref(id))
          const start = yield* Clock.currentTimeMillis
          while (true) {
            const result = yield* Effect.result(asClient(account.Deposit({ depositId, amount }, call)))
            const now = yield* Clock.currentTimeMillis
            if (result._tag === "Success") {
              ledger.expected.set(id, ledger.expected.get(id)! + amount)
              ledger.acknowledged.set(id, ledger.acknowledged.get(id)! + 1)
              ledger.acks++
              ledger.longestDeposit = Math.max(ledger.longestDeposit, now - start)
              if (start >= ledger.killedAt && victimAccounts.includes(id) && ledger.firstVictimAckAfterKill === undefined) {
                ledger.firstVictimAckAfterKill = now - ledger.killedAt
              }
              if (start >= ledger.failedOverAt) ledger.servedAfterFailover.add(id)
              return
            }
            const tag = result.failure._tag
            ledger.failures.set(tag, (ledger.failures.get(tag) ?? 0) + 1)
            if (now - start > 3 * failoverBound) {
              return yield* Effect.die(new Error(`deposit ${depositId} on ${id} not acknowledged within ${now - start} ms: ${tag}`))
            }
            yield* Effect.sleep("20 millis")
          }
        })
      const workers = yield* Effect.forEach(
        Array.from({ length: 8 }, (_, w) => w),
        (w) =>
          Effect.forkScoped(Effect.gen(function*() {
            // Each worker goes round all the accounts (11 is prime to 30), from its own start.
            for (let n = 0; !stop; n++) {
              yield* depositUntilAcknowledged(accountIds[(w * 7 + n * 11) % accountIds.length]!, `w${w}-${n}`, 1 + ((w + n) % 9))
            }
          }))
      )
      yield* waitFor("150 deposits acknowledged before the kill", 15_000, Effect.sync(() => ledger.acks >= 150))
      const acksBeforeKill = ledger.acks

      // --- 3. kill -9 one silo; its actors serve again from the others --------------------
      victim = doomed
      const killedAt = yield* Clock.currentTimeMillis
      ledger.killedAt = killedAt
      doomed.child.kill("SIGKILL")
      const probe = yield* asClient(Account.ref(victimAccounts[0]!))
      let servedBy = ""
      const failover = yield* waitFor(
        "a killed silo's actor serves again",
        failoverBound,
        // The same effect each time: it is routed when it runs.
        Effect.map(Effect.result(asClient(probe.WhereAmI({ timeout: "500 millis" }))), (result) => {
          if (result._tag === "Failure") return false
          servedBy = result.success
          return true
        })
      )
      ledger.failedOverAt = yield* Clock.currentTimeMillis
      assert.include(survivorIds, servedBy, "a survivor serves the killed silo's actor")
      assert.isAtLeast(failover, failoverFloor, "not served before the silo could be declared dead")
      const deathSeen = (yield* Clock.currentTimeMillis) - killedAt + (yield* waitFor(
        "the survivors drop the killed silo from their rings",
        failoverBound,
        Effect.sync(() => silos.every((s) => s === doomed || sameSet(s.members, survivorIds)))
      ))
      const acksAtFailover = ledger.acks
      yield* waitFor(
        "after the failover, 150 deposits acknowledged, on every account",
        3 * failoverBound,
        Effect.sync(() => ledger.servedAfterFailover.size === accountIds.length && ledger.acks >= acksAtFailover + 150)
      )
      stop = true
      yield* Effect.forEach(workers, Fiber.join, { discard: true })
      assert.strictEqual(doomed.exit?.signal, "SIGKILL")
      // A deposit caught by the kill waits for the failover, plus at most one call timeout.
      assert.isAtMost(ledger.longestDeposit, failoverBound + 2_000, "no deposit waited much longer than the failover")

      // After the failover, calls land where the ring says, never on the dead silo; the
      // moved actors were activated only after the killed silo was declared dead.
      assert.deepStrictEqual([...(yield* cluster.members)].sort(), [...survivorIds].sort())
      for (const id of accountIds) {
        const owner = yield* ownerOf(id)
        assert.include(survivorIds, owner)
        if (!victimAccounts.includes(id)) assert.strictEqual(owner, owners.get(id), `${id} did not move`)
        assert.strictEqual(yield* whereIs(id), owner, `${id} answered from its ring owner after the failover`)
        owners.set(id, owner!)
      }
      const diedAt = yield* Effect.gen(function*() {
        const registry = yield* readRegistry(redis)
        assert.isFalse(registry.members.has(victimId), "the killed silo is no longer a member")
        const diedAt = registry.deaths.get(victimId)
        assert.isDefined(diedAt, "the killed silo was declared dead (timeout)")
        for (const id of accountIds) {
          assert.deepStrictEqual(liveHolders(registry, addressOf(id)), [owners.get(id)], `${id} is held by its owner only`)
          if (!victimAccounts.includes(id)) continue
          const entries = registry.holders.get(addressOf(id))!
          assert.isTrue(entries.some((e) => e.silo === victimId), `${id}: the killed silo's entry stays (no finalizer ran)`)
          for (const e of entries.filter((e) => e.silo !== victimId)) {
            assert.isAtLeast(e.at, diedAt!, `${id} activated on ${e.silo} only once ${victimId} was declared dead`)
          }
        }
        return diedAt!
      })

      // --- 5. No acknowledged write lost -------------------------------------------------
      for (const id of accountIds) {
        const balance = yield* asClient(Effect.flatMap(Account.ref(id), (account) => account.Balance(call)))
        assert.strictEqual(balance, ledger.expected.get(id), `${id}: the balance is the sum of the acknowledged deposits`)
        const stored = yield* storedAccount(redis, id)
        assert.strictEqual(stored?.balance, ledger.expected.get(id), `${id}: as stored in Redis`)
        assert.strictEqual(stored?.applied.length, ledger.acknowledged.get(id), `${id}: each deposit applied once`)
      }

      // --- 4. Single activation, all along -----------------------------------------------
      yield* Fiber.interrupt(sampler)
      assert.deepStrictEqual(sampling.violations, [], "never two live silos holding one address")
      assert.isAtLeast(sampling.samples, 50, "the registry was sampled")
      assert.isAbove(sampling.ignoringDead, 0, "samples saw the killed silo's entries, ignored once it was declared dead")

      // Graceful shutdown of the survivors: they leave, and their finalizers remove their entries.
      shuttingDown = true
      for (const s of silos) if (s !== doomed) s.child.stdin!.end()
      yield* waitFor("the survivors exit", 10_000, Effect.sync(() => silos.every((s) => s.exit !== undefined)))
      for (const s of silos) if (s !== doomed) assert.strictEqual(s.exit?.code, 0, `silo #${s.index} exits cleanly`)
      {
        const registry = yield* readRegistry(redis)
        const left = [...registry.holders.values()].flat().map((e) => e.silo)
        assert.isTrue(left.every((silo) => silo === victimId), "only the killed silo's entries remain")
        assert.strictEqual(registry.members.size, 0, "the survivors left the membership")
      }

      console.log(JSON.stringify({
        multiProcess: {
          startupMs: startedIn,
          victimOwned: victimAccounts.length,
          failoverMs: failover,
          bounds: { floor: failoverFloor, ceiling: failoverBound },
          firstVictimDepositAfterKillMs: ledger.firstVictimAckAfterKill,
          survivorsDroppedVictimMs: deathSeen,
          declaredDeadAfterKillMs: diedAt - killedAt,
          longestDepositMs: ledger.longestDeposit,
          acks: ledger.acks,
          acksBeforeKill,
          failures: Object.fromEntries(ledger.failures),
          samples: sampling.samples,
          samplesIgnoringDeadEntries: sampling.ignoringDead
        }
      }))
    }), 60_000)
})

/**
 * `npm run example:cluster` (needs Redis; QUARK_REDIS_URL, default 127.0.0.1:6379): three
 * silos and a client on this machine.
 *
 * - three silo processes (`cluster/silo.ts`) join one cluster through Redis membership;
 * - a client (`ClusterClient`, hosting nothing) reads the members, asks `Cluster.ownerOf`
 *   where nine accounts live, and calls each: `WhereAmI` confirms the call was served there;
 * - deposits are written to Redis before they are acknowledged;
 * - one silo is killed with SIGKILL: calls to its accounts fail with `ActorUnavailable`
 *   (not delivered) or, for a call written just before the kill, `OutcomeUnknown` (it may
 *   have run: `WhereAmI` is a read, so retrying it is safe), and are retried until the
 *   membership declares it dead (3 s without a heartbeat) and the accounts answer from the
 *   silos that own them now, with their balances intact;
 * - the other silos stop gracefully, and the run deletes every Redis key it wrote.
 *
 * Each run uses its own cluster name, so runs never see each other's silos.
 */
import { NodeRuntime } from "@effect/platform-node"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Console, Effect, Layer, Schedule } from "effect"
import type { Redis } from "ioredis"
import { Cluster, ClusterClient } from "quark/cluster"
import { RedisMembership } from "quark/cluster/redis"
import { Account, storePrefix } from "./cluster/Account.ts"
import { connect, deleteKeys, explainUnreachable, redisUrl } from "./support/Redis.ts"
import { isRunning, siloProcesses, type SiloProcess } from "./support/SiloProcesses.ts"

const url = redisUrl
const cluster = `example-${Date.now().toString(36)}-${randomUUID().slice(0, 4)}`
const siloScript = fileURLToPath(new URL("./cluster/silo.ts", import.meta.url))
const accounts = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan"]

const since = (start: number) => Math.round(performance.now() - start)

// --- Redis: the run's keys ---------------------------------------------------------------------

/** Every key this run wrote: the membership and directory of its cluster, and the accounts' state. */
const deleteRunKeys = (redis: Redis) =>
  deleteKeys(redis, [`quark:{membership:${cluster}}:*`, `quark:{directory:${cluster}}:*`, `${storePrefix(cluster)}:*`])

// --- Silo processes --------------------------------------------------------------------------

const { start: startSilo, stop: stopSilo } = siloProcesses({ script: siloScript, args: [cluster] })

// --- The client ------------------------------------------------------------------------------

const demo = (silos: ReadonlyArray<SiloProcess>) =>
  Effect.gen(function*() {
    const { members, ownerOf } = yield* Cluster
    const label = (id: string | undefined) => silos.find((silo) => silo.id === id)?.label ?? `?${id}`

    /** Where each account lives, as `ownerOf` says, and which silo served a call to it. */
    const locate = Effect.forEach(accounts, (id) =>
      Effect.gen(function*() {
        const owner = yield* ownerOf({ type: "Account", id })
        const served = yield* Effect.flatMap(Account.ref(id), (account) => account.WhereAmI())
        return { id, owner, served }
      }), { concurrency: "unbounded" })
    const showLocations = (rows: ReadonlyArray<{ id: string; owner: string | undefined; served: string }>) =>
      Effect.forEach(silos.filter((silo) => rows.some((row) => row.owner === silo.id)), (silo) =>
        Console.log(`  ${silo.label}: ${
          rows.filter((row) => row.owner === silo.id)
            .map((row) => row.served === row.owner ? row.id : `${row.id} (served by ${label(row.served)}!)`)
            .join(", ")
        }`), { discard: true })

    yield* Console.log("members, as the client reads them from Redis:")
    for (const id of (yield* members).toSorted((a, b) => label(a).localeCompare(label(b)))) {
      yield* Console.log(`  ${label(id)}  ${id}  (pid ${silos.find((silo) => silo.id === id)?.child.pid})`)
    }

    const before = yield* locate
    const servedByOwner = before.filter((row) => row.served === row.owner).length
    yield* Console.log(`where the accounts live (Cluster.ownerOf; ${servedByOwner}/${accounts.length} calls served there):`)
    yield* showLocations(before)

    const amounts = new Map(accounts.map((id, i) => [id, 10 * (i + 1)]))
    yield* Effect.forEach(accounts, (id) =>
      Effect.flatMap(Account.ref(id), (account) => account.Deposit({ amount: amounts.get(id)! })), { concurrency: "unbounded" })
    yield* Console.log(`deposited ${accounts.map((id) => `${id} ${amounts.get(id)}`).join(", ")}`)

    // Kill the silo hosting the most accounts.
    const victim = silos.toSorted((a, b) =>
      before.filter((row) => row.owner === b.id).length - before.filter((row) => row.owner === a.id).length)[0]!
    const moved = before.filter((row) => row.owner === victim.id).map((row) => row.id)
    const killedAt = performance.now()
    victim.child.kill("SIGKILL")
    yield* Console.log(`${new Date().toISOString().slice(11, 23)} kill -9 silo ${victim.label} (pid ${victim.child.pid}), host of ${moved.join(", ")}`)

    const stayed = accounts.filter((id) => !moved.includes(id))
    const quick = performance.now()
    yield* Effect.forEach(stayed, (id) => Effect.flatMap(Account.ref(id), (account) => account.WhereAmI()), { concurrency: "unbounded" })
    yield* Console.log(`  the ${stayed.length} accounts on the other silos answer at once (${since(quick)} ms)`)

    const failovers = yield* Effect.forEach(moved, (id) =>
      Effect.gen(function*() {
        const account = yield* Account.ref(id)
        let failed = 0
        // Each attempt is routed by the client's ring as it is then. A read is idempotent, so
        // an unknown outcome is retried too.
        const served = yield* account.WhereAmI().pipe(
          Effect.tapError(() => Effect.sync(() => failed++)),
          Effect.retry({
            while: (error) => error._tag === "ActorUnavailable" || error._tag === "OutcomeUnknown",
            schedule: Schedule.spaced("100 millis")
          })
        )
        const ms = since(killedAt)
        yield* Console.log(`  ${id} answers from silo ${label(served)} ${ms} ms after the kill (${failed} failed attempts before)`)
        return ms
      }), { concurrency: "unbounded" }).pipe(
        Effect.timeoutOrElse({ duration: "30 seconds", orElse: () => Effect.die(new Error("no failover within 30 s")) })
      )
    yield* Console.log(`failover time: ${Math.max(...failovers)} ms (a silo is declared dead 3 s after its last heartbeat)`)

    yield* Console.log(`members now: ${(yield* members).map(label).toSorted().join(", ")}; where the accounts live now:`)
    yield* showLocations(yield* locate)

    const balances = yield* Effect.forEach(accounts, (id) =>
      Effect.map(Effect.flatMap(Account.ref(id), (account) => account.Balance()), (balance) => [id, balance] as const))
    const intact = balances.filter(([id, balance]) => balance === amounts.get(id)).length
    yield* Console.log(`balances: ${balances.map(([id, b]) => `${id} ${b}`).join(", ")}`)
    yield* Console.log(`  ${intact}/${accounts.length} intact; the ${moved.length} moved accounts reloaded theirs from Redis`)
  })

// --- The run ---------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const redis = yield* connect(url)
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(deleteRunKeys(redis), (n) => Console.log(`deleted the run's ${n} Redis keys`)))
  yield* Console.log(`cluster "${cluster}" on ${url}: starting 3 silos`)

  const started = performance.now()
  const silos = yield* Effect.forEach(["A", "B", "C"], startSilo, { concurrency: "unbounded" })
  yield* Console.log(`3 silo processes ready in ${since(started)} ms`)

  yield* demo(silos).pipe(Effect.provide(ClusterClient.layer().pipe(Layer.provide(RedisMembership.layer({ url, cluster })))))

  const alive = silos.filter(isRunning)
  // One after the other: two silos draining at once would each hand its actors to the other.
  const ended = yield* Effect.forEach(alive, stopSilo)
  yield* Console.log(`stopped ${alive.map((silo, i) => `${silo.label} (${ended[i]})`).join(", ")} with SIGTERM, one after the other`)
}).pipe(
  Effect.scoped, // silos stop (if still running) before the keys are deleted
  Effect.catchTag("RedisUnreachable", (error) => explainUnreachable(url, error.reason))
)

NodeRuntime.runMain(main)

/**
 * Split brain: one silo of three cut off from both Redis and the other two, as real
 * processes (`process/partitionSiloMain.ts`) on 127.0.0.1 with Redis membership and state.
 * A `ClusterClient` in this process deposits into 24 accounts (idempotent deposits, each
 * retried under its id until acknowledged) and reads them and 12 read-only accounts; the
 * partitioned silo itself reads the accounts it hosts (a caller on its side of the
 * partition). Three partitions, each on a cluster of its own:
 *
 * - **a paused process**: SIGSTOP for over twice `deadAfter`, then SIGCONT;
 * - **a network partition that drops packets**: the silo's Redis connection and every
 *   connection between it and the other silos go through TCP proxies in this process; the
 *   test drops every connection and then holds new ones open without forwarding a byte
 *   (what a firewall's DROP looks like: connections stall);
 * - **a network partition that refuses connections**: the same proxies drop every
 *   connection and stop listening, so new ones are refused (a firewall's REJECT, a dead
 *   middlebox, an unreachable port).
 *
 * The silos listen on, and are reached at, host names (`silo-<i>.split.test`) that each
 * process resolves through a map of its own (`process/hostMap.ts`): the partitioned silo
 * resolves the others' names to proxies in front of them, the others resolve its name to a
 * proxy in front of it, and its Redis URL is a proxy too. This client resolves every name
 * directly: it reaches both sides, so it keeps calling the partitioned silo until it hears
 * that silo was declared dead.
 *
 * Every activation, turn and call of the partitioned silo's own caller is logged by the silo
 * that runs it, on the machine's monotonic clock. Checked afterwards:
 * - the partitioned silo starts no turn past its lease (`deadAfter − heartbeatInterval`, 1 s
 *   here) after the partition began (after SIGSTOP: none once it was continued, beyond a
 *   turn it had already begun) and stops serving its own callers then, fencing itself
 *   (`unreachable`);
 * - the majority serves its accounts only once the registry has declared it dead, within the
 *   detection bound, and only after the partitioned silo's last turn began;
 * - no address had turns of two activations at overlapping times, except a turn already
 *   running when the partition began that ended after it (started within the lease; its
 *   result withheld, its write version-checked); no activation began before the previous
 *   one of its address had ended or its silo had been declared dead; no read older than an
 *   acknowledged write;
 * - every failed call failed with an error whose retry rule is documented, and no result
 *   reached the client from the partitioned silo after it was declared dead;
 * - every acknowledged deposit is stored exactly once;
 * - after the heal it joins again with a new generation at the same `host:port` and serves.
 *
 * It uses the Redis at `QUARK_REDIS_URL` (default 127.0.0.1:6379) under a key prefix of its
 * own, and fails (never skips) if it cannot reach it.
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Effect, Fiber, Layer } from "effect"
import type { Redis } from "ioredis"
import type { Silo } from "../../src/index.ts"
import { Cluster, ClusterClient } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { RedisStore } from "../../src/Persistence/redis.ts"
import {
  type ActivationLife,
  checkActivationRecords,
  checkWrites,
  findEarlyActivations,
  findOverlaps,
  type IssuedDeposit,
  servingSpans
} from "../chaos/Analysis.ts"
import { ChaosAccount, nowMillis, outcomeOf, parseTurn, type TurnRecord } from "../chaos/ChaosAccount.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import {
  freePort,
  isStopped,
  signalAndWait,
  type SiloChild,
  spawnSiloChild,
  startWatchdog,
  waitFor as poll
} from "../support/processes.ts"
import { cleanupRun, newRunId } from "../support/redisKeys.ts"
import { timingMillis, timings } from "./process/Account.ts"
import { hostMapVariable, installHostMap } from "./process/hostMap.ts"

const siloMain = Path.join(Path.dirname(fileURLToPath(import.meta.url)), "process", "partitionSiloMain.ts")

const { dead, heartbeat, refresh } = timingMillis
/** How long a silo serves after its last acknowledged heartbeat was sent (1,000 ms). */
const lease = dead - heartbeat
/** Scheduling noise allowed on top of a documented time (three silo processes and vitest on 2 shared cores). */
const slack = 1_000
/** From the lease check before a turn to the turn's first logged instant: the same event-loop tick, in practice. */
const turnStartSlack = 50
const callTimeoutMs = 1_000
/**
 * The takeover bound: the partitioned silo's last acknowledged heartbeat was at most an
 * interval before the partition began; some process's full read declares it dead between
 * `deadAfter` and `deadAfter + refreshInterval` after it; the announcement reaches everyone
 * within a round trip; the new owner activates on the next call (the client's reader comes
 * back to an account within a call timeout or two).
 */
const takeoverBound = dead + refresh + slack + 2 * callTimeoutMs
/** How long a partition lasts: over twice `deadAfter` (the issue: a pause longer than `deadAfter`). */
const partitionMillis = 2 * dead + refresh

const runPrefix = "quark-split-"
/** Deposited into and read. */
const accounts = Array.from({ length: 24 }, (_, i) => `acct-${i}`)
/** Only read: their turns never wait for a store write, so a silo that serves them shows it at once. */
const readOnlyAccounts = Array.from({ length: 12 }, (_, i) => `ro-${i}`)
const allAccounts = [...accounts, ...readOnlyAccounts]
const addressOf = (account: string) => `${ChaosAccount.type}/${account}`
/** The partitioned silo. */
const minorityIndex = 2
const hostName = (i: number) => `silo-${i}.split.test`
/** Where silo `i` listens. */
const directIp = (i: number) => `127.0.1.${i + 1}`
/** Where the proxy in front of silo `i` listens, for the processes on the other side of the partition. */
const proxyIp = (i: number) => `127.0.2.${i + 1}`

type PartitionKind = "pause" | "drop" | "refuse"

// ---------------------------------------------------------------------------------------
// A cuttable TCP proxy
// ---------------------------------------------------------------------------------------

interface Proxy {
  /**
   * Drops every connection; then `drop` holds new connections open without forwarding
   * anything (they stall), `refuse` stops listening (they are refused).
   */
  readonly cut: (how: "drop" | "refuse") => Effect.Effect<void>
  /** Forwards new connections again (and drops those it held). */
  readonly heal: Effect.Effect<void>
}

const listen = (server: Net.Server, host: string, port: number) =>
  Effect.callback<void, Error>((resume) => {
    const onError = (error: Error) => resume(Effect.fail(error))
    server.once("error", onError)
    server.listen({ host, port }, () => {
      server.off("error", onError)
      resume(Effect.void)
    })
  })

/** Forwards `host:port` to `target` until cut; closed with the scope. */
const makeProxy = (host: string, port: number, target: { readonly host: string; readonly port: number }) =>
  Effect.gen(function*() {
    const sockets = new Set<Net.Socket>()
    let holding = false
    const dropAll = () => {
      for (const socket of sockets) socket.destroy()
      sockets.clear()
    }
    const accept = (client: Net.Socket) => {
      client.on("error", () => {})
      sockets.add(client)
      if (holding) return
      const upstream = Net.connect(target)
      upstream.on("error", () => {})
      sockets.add(upstream)
      for (const socket of [client, upstream]) {
        socket.setNoDelay(true)
        socket.on("close", () => {
          client.destroy()
          upstream.destroy()
          sockets.delete(client)
          sockets.delete(upstream)
        })
      }
      client.pipe(upstream)
      upstream.pipe(client)
    }
    let server: Net.Server | undefined
    const close = Effect.callback<void>((resume) => {
      const closing = server
      server = undefined
      if (closing === undefined) return resume(Effect.void)
      closing.close(() => resume(Effect.void))
    })
    const heal = Effect.suspend(() => {
      holding = false
      dropAll()
      if (server !== undefined) return Effect.void
      const next = Net.createServer({ noDelay: true }, accept)
      return Effect.map(listen(next, host, port), () => void (server = next))
    }).pipe(Effect.mapError((error) => new Error(`a proxy cannot listen on ${host}:${port}: ${error.message}`)), Effect.orDie)
    const cut = (how: "drop" | "refuse") =>
      Effect.suspend(() => {
        holding = true
        dropAll()
        return how === "refuse" ? close : Effect.void
      })
    yield* Effect.acquireRelease(heal, () => Effect.andThen(Effect.sync(dropAll), close))
    return { cut, heal } satisfies Proxy
  })

// ---------------------------------------------------------------------------------------
// Silo processes
// ---------------------------------------------------------------------------------------

interface SiloProcess extends SiloChild {
  readonly index: number
  readonly logFile: string
  /** Every id it served under, in order, with when it said so. */
  readonly ids: Array<{ readonly id: string; readonly at: number }>
  /** Each incarnation that stopped serving because it was declared dead (or fenced itself). */
  readonly deaths: Array<{ readonly id: string; readonly reason: string; readonly at: number }>
}

const currentId = (silo: SiloProcess) => silo.ids.at(-1)?.id

const describeSilos = (silos: ReadonlyArray<SiloProcess>) =>
  silos.map((s) =>
    `silo #${s.index} ids=${s.ids.map((i) => i.id).join(" → ")} deaths=${JSON.stringify(s.deaths)} exit=${
      JSON.stringify(s.exit ?? null)
    }\n  ${s.stderr.slice(-12).join("\n  ")}`
  ).join("\n")

// ---------------------------------------------------------------------------------------
// What the silos logged, what the registry says
// ---------------------------------------------------------------------------------------

interface LocalCall {
  readonly account: string
  readonly start: number
  readonly end: number
  readonly outcome: string
  readonly silo: string
  readonly balance: number
}

const readLogs = (files: ReadonlyArray<string>) => {
  const turns: Array<TurnRecord> = []
  const starts = new Map<string, { address: string; silo: string; start: number }>()
  const ends = new Map<string, number>()
  const local: Array<LocalCall> = []
  for (const file of files) {
    if (!Fs.existsSync(file)) continue
    for (const line of Fs.readFileSync(file, "utf8").split("\n")) {
      if (line.startsWith("T ")) {
        const turn = parseTurn(line.slice(2))
        if (turn !== undefined) turns.push(turn)
      } else if (line.startsWith("A ")) {
        const [, activation, address, silo, , start] = line.split(" ")
        starts.set(activation!, { address: address!, silo: silo!, start: Number(start) })
      } else if (line.startsWith("E ")) {
        const [, activation, end] = line.split(" ")
        ends.set(activation!, Number(end))
      } else if (line.startsWith("C ")) {
        const [, account, start, end, outcome, silo, balance] = line.split(" ")
        local.push({ account: account!, start: Number(start), end: Number(end), outcome: outcome!, silo: silo!, balance: Number(balance) })
      }
    }
  }
  const lives: Array<ActivationLife> = [...starts].map(([activation, s]) => ({
    activation,
    address: s.address,
    silo: s.silo,
    start: s.start,
    end: ends.get(activation)
  }))
  return { turns, starts, ends, lives, local }
}

/** The registry's death tombstones (not `left`), by silo id, on `nowMillis`'s clock. */
const readDeaths = (redis: Redis, gone: string) =>
  Effect.promise(async () => {
    const tombstones = await redis.zrange(gone, "0", "-1", "WITHSCORES")
    // Redis runs on this machine: its TIME is this machine's wall clock.
    const offset = Date.now() - nowMillis()
    const deaths = new Map<string, { reason: string; at: number }>()
    for (let i = 0; i + 1 < tombstones.length; i += 2) {
      const colon = tombstones[i]!.indexOf(":")
      const reason = tombstones[i]!.slice(0, colon)
      if (reason !== "left") deaths.set(tombstones[i]!.slice(colon + 1), { reason, at: Number(tombstones[i + 1]) - offset })
    }
    return deaths
  })

/**
 * Every error a call may end in during a partition, with what it says about a retry (the
 * table in docs/guarantees.md, and the account's declared errors).
 */
const retryRule: Record<string, string> = {
  ActorUnavailable: "not run: safe",
  MailboxFull: "not run: safe",
  OutcomeUnknown: "unknown: only if idempotent",
  CallTimeout: "unknown: only if idempotent",
  // The account's declared errors: its state write failed (it may have landed) or was refused (it did not).
  StoreError: "the deposit's write may have landed: only if idempotent",
  StateConflict: "the deposit's write was refused: safe"
}

// ---------------------------------------------------------------------------------------
// One partition, on a cluster of its own
// ---------------------------------------------------------------------------------------

interface Call {
  readonly account: string
  readonly kind: "deposit" | "read"
  readonly start: number
  readonly end: number
  readonly outcome: string
  readonly silo: string | undefined
  readonly balance: number | undefined
  /** The sum of the deposits into the account acknowledged before the call started. */
  readonly floor: number
}

const scenario = (kind: PartitionKind) =>
  Effect.gen(function*() {
    const keyPrefix = `${runPrefix}${newRunId()}`
    const clusterName = `split-${kind}`
    const redis = yield* rawRedis
    yield* cleanupRun(redis, runPrefix, keyPrefix)
    const directory = Fs.mkdtempSync(Path.join(Os.tmpdir(), `quark-split-${kind}-`))
    const t0 = nowMillis()
    const rel = (t: number) => Math.round(t - t0)

    // --- The partition: proxies for the minority's Redis and its links to the others --
    const redisTarget = new URL(redisUrl)
    const redisProxyPort = yield* freePort(["127.0.0.1"])
    const ports: Array<number> = []
    for (let i = 0; i < 3; i++) ports.push(yield* freePort([directIp(i), proxyIp(i)]))
    const proxies: ReadonlyArray<Proxy> = [
      yield* makeProxy("127.0.0.1", redisProxyPort, { host: redisTarget.hostname, port: Number(redisTarget.port || "6379") }),
      // The others reach the minority through one proxy, the minority reaches each of them through another.
      ...(yield* Effect.forEach([0, 1, 2], (i) => makeProxy(proxyIp(i), ports[i]!, { host: directIp(i), port: ports[i]! })))
    ]
    const proxiedRedis = new URL(redisUrl)
    proxiedRedis.hostname = "127.0.0.1"
    proxiedRedis.port = String(redisProxyPort)

    /** How process `viewer` (a silo's index, or undefined for this client) resolves the silos' names. */
    const hostMapOf = (viewer: number | undefined) =>
      Object.fromEntries([0, 1, 2].map((i) => {
        const across = viewer !== undefined && (viewer === minorityIndex) !== (i === minorityIndex)
        return [hostName(i), across ? proxyIp(i) : directIp(i)]
      }))
    const undoHostMap = installHostMap(hostMapOf(undefined))
    yield* Effect.addFinalizer(() => Effect.sync(undoHostMap))

    // --- The silos ---------------------------------------------------------------------
    const watchdog = yield* startWatchdog
    const silos: Array<SiloProcess> = []
    let shuttingDown = false
    const spawnSilo = (index: number) =>
      Effect.acquireRelease(
        Effect.sync(() => {
          const logFile = Path.join(directory, `silo-${index}.log`)
          const silo = spawnSiloChild<SiloProcess>(siloMain, [
            "--redis",
            index === minorityIndex ? proxiedRedis.toString() : redisUrl,
            "--prefix",
            keyPrefix,
            "--cluster",
            clusterName,
            "--host",
            hostName(index),
            "--port",
            String(ports[index]),
            "--log",
            logFile
          ], { index, logFile, ids: [], deaths: [] }, {
            env: { [hostMapVariable]: JSON.stringify(hostMapOf(index)) },
            stderrLines: 60,
            stderrFile: Path.join(directory, `silo-${index}.stderr.log`),
            onLine: (line, silo) => {
              const at = nowMillis()
              if (line.startsWith("ready ")) silo.ids.push({ id: line.slice(6), at })
              else if (line.startsWith("dead ")) {
                const [, id, reason, when] = line.split(" ")
                silo.deaths.push({ id: id!, reason: reason!, at: Number(when) })
              }
            }
          })
          watchdog.watch(silo.child.pid)
          silos.push(silo)
          return silo
        }),
        // It may have been left stopped (SIGSTOP).
        (silo) => signalAndWait(silo.child, "SIGKILL", { continueFirst: true })
      )

    /** Polls `condition` every 10 ms; the time it took, or a failure with the silos' logs past `maxMillis` or once a silo exits before the end. */
    const waitFor = (what: string, maxMillis: number, condition: () => boolean) =>
      poll(`${kind}: ${what}`, maxMillis, Effect.sync(condition), {
        now: nowMillis,
        abort: () => {
          const exited = silos.find((s) => s.exit !== undefined)
          return exited !== undefined && !shuttingDown ? `silo #${exited.index} exited` : undefined
        },
        describe: () => `${describeSilos(silos)}\nlogs in ${directory}`
      })

    for (let i = 0; i < 3; i++) yield* spawnSilo(i)
    const startupMs = yield* waitFor("the silos start", 20_000, () => silos.every((s) => s.ids.length > 0))
    const minority = silos[minorityIndex]!
    const majority = silos.filter((s) => s !== minority)

    // --- The client --------------------------------------------------------------------
    const client: Context.Context<Silo.Silo | Cluster> = yield* Layer.build(
      ClusterClient.layer({ requestTimeout: `${callTimeoutMs} millis` }).pipe(
        Layer.provide(RedisMembership.layer({ url: redisUrl, keyPrefix, cluster: clusterName, ...timings }))
      )
    ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)), Effect.orDie)
    const cluster = Context.get(client, Cluster)
    const asClient = <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster>) => Effect.provideContext(effect, client)
    const waitForViews = (what: string, maxMillis: number) =>
      Effect.gen(function*() {
        const start = nowMillis()
        while (true) {
          const members = yield* cluster.members
          const ids = silos.map(currentId)
          const same = (view: ReadonlyArray<string>) => view.length === 3 && ids.every((id) => id !== undefined && view.includes(id))
          if (same(members) && silos.every((s) => same(s.members ?? []))) return nowMillis() - start
          if (nowMillis() - start > maxMillis) {
            return yield* Effect.die(
              new Error(`${kind}: ${what}: views disagree after ${maxMillis} ms (client: ${members.join(",")})\n${describeSilos(silos)}`)
            )
          }
          yield* Effect.sleep("10 millis")
        }
      })
    yield* waitForViews("every silo and the client see the three silos", 10_000)
    const minorityAccounts = Effect.map(
      Effect.forEach(allAccounts, (account) => cluster.ownerOf({ type: ChaosAccount.type, id: account })),
      (owners) => allAccounts.filter((_, i) => owners[i] === currentId(minority))
    )

    // --- The load: idempotent deposits retried until acknowledged, and reads ------------
    const calls: Array<Call> = []
    const issued = new Map<string, { account: string; amount: number; acknowledged: boolean }>()
    const acknowledgedSum = new Map<string, number>()
    /** Every acknowledgement, in order: for the reads of the minority's own callers. */
    const acks: Array<{ readonly account: string; readonly amount: number; readonly at: number }> = []
    let stop = false
    const timeout = { timeout: `${callTimeoutMs} millis` } as const
    const timedCall = (
      account: string,
      kind: Call["kind"],
      attempt: Effect.Effect<{ readonly silo: string; readonly balance: number }, unknown, Silo.Silo | Cluster>
    ) =>
      Effect.gen(function*() {
        const floor = acknowledgedSum.get(account) ?? 0
        const start = nowMillis()
        const exit = yield* Effect.exit(asClient(attempt))
        const end = nowMillis()
        const ok = exit._tag === "Success"
        calls.push({
          account,
          kind,
          start,
          end,
          outcome: ok ? "ok" : outcomeOf(exit.cause),
          silo: ok ? exit.value.silo : undefined,
          balance: ok ? exit.value.balance : undefined,
          floor
        })
        return ok
      })
    const worker = (w: number) =>
      Effect.gen(function*() {
        for (let n = 0; !stop; n++) {
          const account = accounts[(w * 5 + n * 7) % accounts.length]!
          const depositId = `w${w}-${n}`
          const amount = 1 + ((w + n) % 9)
          issued.set(depositId, { account, amount, acknowledged: false })
          const ref = yield* asClient(ChaosAccount.refOrDie(account))
          while (!(yield* timedCall(account, "deposit", ref.Deposit({ depositId, amount }, timeout)))) {
            yield* Effect.sleep("20 millis")
          }
          issued.get(depositId)!.acknowledged = true
          acknowledgedSum.set(account, (acknowledgedSum.get(account) ?? 0) + amount)
          acks.push({ account, amount, at: nowMillis() })
        }
      })
    const reader = Effect.gen(function*() {
      for (let n = 0; !stop; n++) {
        const account = allAccounts[n % allAccounts.length]!
        const ref = yield* asClient(ChaosAccount.refOrDie(account))
        if (!(yield* timedCall(account, "read", ref.Balance(timeout)))) yield* Effect.sleep("20 millis")
      }
    })
    const load = [
      ...(yield* Effect.forEach([0, 1, 2, 3, 4, 5], (w) => Effect.forkScoped(worker(w)))),
      yield* Effect.forkScoped(reader)
    ]
    /** Whether every one of `which` answered a call started at or after `since`, from a silo `by` accepts. */
    const servedSince = (which: ReadonlyArray<string>, since: number, by: (silo: string) => boolean) => () => {
      const served = new Set(calls.filter((c) => c.start >= since && c.silo !== undefined && by(c.silo)).map((c) => c.account))
      return which.every((account) => served.has(account))
    }
    yield* waitFor("every account answers", 10_000, servedSince(allAccounts, t0, () => true))
    yield* waitFor("100 deposits acknowledged", 10_000, () => [...issued.values()].filter((d) => d.acknowledged).length >= 100)
    // Callers on the minority's side: the minority itself reads the accounts it hosts.
    minority.child.stdin!.write(`read ${allAccounts.join(",")}\n`)
    yield* waitFor(
      "the minority serves its own callers",
      5_000,
      () => readLogs([minority.logFile]).local.some((c) => c.outcome === "ok" && c.silo === currentId(minority))
    )

    // --- The partition -----------------------------------------------------------------
    const victimId = currentId(minority)!
    const victimAccounts = yield* minorityAccounts
    const majorityIds = majority.map((s) => currentId(s)!)
    let stoppedSeen = Infinity
    const pid = minority.child.pid!
    const began = nowMillis()
    if (kind === "pause") {
      minority.child.kill("SIGSTOP")
      yield* waitFor("the minority is stopped", 1_000, () => isStopped(pid) === true)
      stoppedSeen = nowMillis()
    } else {
      yield* Effect.forEach(proxies, (p) => p.cut(kind), { discard: true })
    }
    // The majority declares it dead and serves its accounts.
    yield* waitFor("the majority drops the minority from its ring", dead + refresh + slack, () =>
      majority.every((s) => !s.members?.includes(victimId)))
    yield* waitFor("the minority's accounts answer from the majority", takeoverBound, servedSince(victimAccounts, began, (silo) => majorityIds.includes(silo)))
    yield* Effect.sleep(`${Math.max(0, Math.round(began + partitionMillis - nowMillis()))} millis`)
    const healed = nowMillis()
    if (kind === "pause") minority.child.kill("SIGCONT")
    else yield* Effect.forEach(proxies, (p) => p.heal, { discard: true })
    // It learns it is dead, deactivates, and joins again as a new generation.
    yield* waitFor("the minority joins again with a new generation", 10_000, () =>
      minority.deaths.some((d) => d.id === victimId) && currentId(minority) !== victimId)
    const rejoinedMs = minority.ids.at(-1)!.at - healed
    yield* waitForViews("every view has the minority's new generation", 5_000)
    const newId = currentId(minority)!
    const back = yield* minorityAccounts
    yield* waitFor("the rejoined minority serves its accounts", 5_000, servedSince(back, healed, (silo) => silo === newId))
    yield* waitFor("every account answers after the heal", 5_000, servedSince(allAccounts, healed, () => true))
    stop = true
    yield* Effect.forEach(load, Fiber.join, { discard: true })

    // --- Afterwards: what the silos logged, the registry, the stored state ---------------
    shuttingDown = true
    for (const s of silos) s.child.stdin!.end()
    yield* waitFor("the silos exit", 15_000, () => silos.every((s) => s.exit !== undefined))
    const logs = readLogs(silos.map((s) => s.logFile))
    const registryDeaths = yield* readDeaths(redis, RedisMembership.keys(keyPrefix, clusterName).gone)
    const stored = new Map<string, { balance: number; applied: ReadonlyArray<string> } | undefined>()
    for (const account of accounts) {
      const data = yield* Effect.promise(() =>
        redis.hget(RedisStore.redisKey(keyPrefix, "state", { type: ChaosAccount.type, id: account, record: "account" }), "data")
      )
      stored.set(account, data === null ? undefined : JSON.parse(data))
    }
    const declared = registryDeaths.get(victimId)
    const fenced = minority.deaths.find((d) => d.id === victimId)!
    /**
     * The latest a turn of the partitioned incarnation may begin: its lease's end after the
     * cut; for a paused process, before it was seen stopped (a turn it had begun then may
     * show its first logged instant just after SIGCONT, see below).
     */
    const leaseEnd = kind === "pause" ? stoppedSeen : began + lease + turnStartSlack
    const problems: Array<string> = []
    const expect = (ok: boolean, what: string) => {
      if (!ok) problems.push(what)
    }

    // 1. The minority stops starting turns within its lease, and stops serving its own callers.
    const victimTurns = logs.turns.filter((t) => t.silo === victimId)
    const lastVictimStart = Math.max(...victimTurns.map((t) => t.start))
    /**
     * Turns of the paused incarnation whose first logged instant is after SIGCONT but before
     * it stopped serving: begun (lease checked, granted) before SIGSTOP, with the fiber
     * parked by the scheduler before the handler's first instruction. Those callers' calls
     * come back `OutcomeUnknown` (withheld); the minority's own callers that called after
     * SIGCONT must all be refused (checked below).
     */
    const resumedTurns = kind === "pause" ? victimTurns.filter((t) => t.start >= healed && t.start <= fenced.at) : []
    const lateTurns = victimTurns.filter((t) => t.start > leaseEnd && !resumedTurns.includes(t))
    expect(
      lateTurns.length === 0,
      `the partitioned silo started no turn past its lease (${lease} ms after the cut${kind === "pause" ? "; none once stopped" : ""}): ${lateTurns.length}, e.g. ${
        lateTurns.slice(0, 3).map((t) => `${t.address} ${t.tag} at ${Math.round(t.start - began)} ms`).join(", ")
      }`
    )
    const servedOwnCallers = logs.local.filter((c) =>
      c.silo === victimId && c.outcome === "ok" && c.start > (kind === "pause" ? healed : began + lease + turnStartSlack)
    )
    expect(
      servedOwnCallers.length === 0,
      `the partitioned silo served none of its own callers past its lease: ${servedOwnCallers.length}, the last at ${
        Math.round((servedOwnCallers.at(-1)?.start ?? began) - began)
      } ms`
    )
    const ownCallersRefused = logs.local.filter((c) => c.start > began + lease && c.start < healed && c.outcome !== "ok")
    if (kind !== "pause") {
      expect(
        fenced.reason === "unreachable" && fenced.at - began <= lease + slack,
        `the partitioned silo fenced itself (unreachable) at its lease: ${fenced.reason} at ${Math.round(fenced.at - began)} ms`
      )
    }

    // 2. The majority takes over once the registry declared it dead, after the minority's last turn began.
    expect(declared?.reason === "timeout", `the registry declared ${victimId} dead (timeout): ${JSON.stringify(declared)}`)
    const takeover = victimAccounts.map((account) => {
      const first = logs.turns.filter((t) => t.address === addressOf(account) && t.start >= began && majorityIds.includes(t.silo))
        .reduce<TurnRecord | undefined>((a, b) => (a === undefined || b.start < a.start ? b : a), undefined)
      // A resumed turn was granted before the stop (see `resumedTurns`): its result is withheld.
      const lastOnVictim = victimTurns.filter((t) => t.address === addressOf(account) && !resumedTurns.includes(t))
        .reduce((a, t) => Math.max(a, t.start), -Infinity)
      return { account, first, lastOnVictim }
    })
    for (const t of takeover) {
      if (t.first === undefined) {
        problems.push(`${t.account}: never served by the majority during the partition`)
        continue
      }
      expect(
        declared !== undefined && t.first.start >= declared.at,
        `${t.account}: served by ${t.first.silo} at ${Math.round(t.first.start - began)} ms only once the registry declared the minority dead (${
          Math.round((declared?.at ?? NaN) - began)
        } ms)`
      )
      expect(t.first.start > t.lastOnVictim, `${t.account}: the majority's first turn began after the minority's last`)
    }
    const firstTakeover = Math.min(...takeover.map((t) => t.first?.start ?? Infinity))
    const lastTakeover = Math.max(...takeover.map((t) => t.first?.start ?? Infinity))
    expect(lastTakeover - began <= takeoverBound, `the majority served every account of the minority within ${takeoverBound} ms (${Math.round(lastTakeover - began)} ms)`)
    const minGap = Math.min(...takeover.map((t) => (t.first?.start ?? Infinity) - t.lastOnVictim))

    // 3. No address served by two activations at once; none activated early; no stale read.
    const activationStart = (activation: string) => logs.starts.get(activation)?.start
    const turnsOf = new Map<string, Array<TurnRecord>>()
    for (const t of logs.turns) turnsOf.set(t.activation, [...(turnsOf.get(t.activation) ?? []), t])
    const overlaps = findOverlaps(logs.turns, [], activationStart).map((o) => {
      // A turn already running when the partition began, that ended after it: begun within
      // the lease, on the partitioned incarnation, and the other activation began only once
      // the registry had declared that incarnation dead.
      const late = turnsOf.get(o.first.activation)!.filter((t) => t.end > o.witness.second.start)
      const inFlight = o.first.silo === victimId && declared !== undefined &&
        late.every((t) => t.start <= leaseEnd || resumedTurns.includes(t)) &&
        Math.min(o.second.start, activationStart(o.second.activation) ?? Infinity) >= declared.at
      return { ...o, inFlight }
    })
    const violations = overlaps.filter((o) => !o.inFlight)
    expect(
      violations.length === 0,
      `no address served by two activations at once: ${violations.length}, e.g. ${
        violations.slice(0, 3).map((o) =>
          `${o.address}: ${o.kind}, ${o.first.silo} [${Math.round(o.first.start - began)}, ${Math.round(o.first.end - began)}] and ${o.second.silo} [${
            Math.round(o.second.start - began)
          }, ${Math.round(o.second.end - began)}] ms`
        ).join("; ")
      }`
    )
    const early = findEarlyActivations(logs.lives, (silo) => registryDeaths.get(silo)?.at)
    expect(
      early.length === 0,
      `no activation before the previous one of its address ended or its silo was declared dead: ${early.length}, e.g. ${
        early.slice(0, 3).map((e) => `${e.address} on ${e.second.silo} at ${Math.round(e.second.start - began)} ms`).join("; ")
      }`
    )
    const recordProblems = checkActivationRecords(servingSpans(logs.turns).values(), logs.starts, logs.ends)
    expect(recordProblems.length === 0, `every turn belongs to a recorded activation: ${recordProblems.slice(0, 3).join("; ")}`)
    const stale = calls.filter((c) => c.balance !== undefined && c.balance < c.floor)
    expect(
      stale.length === 0,
      `no read older than an acknowledged write: ${stale.length}, e.g. ${
        stale.slice(0, 3).map((c) => `${c.account} ${c.balance} < ${c.floor} from ${c.silo} at ${Math.round(c.start - began)} ms`).join("; ")
      }`
    )
    const floorAt = (account: string, at: number) => acks.reduce((sum, a) => (a.account === account && a.at < at ? sum + a.amount : sum), 0)
    const staleOwn = logs.local.filter((c) => c.outcome === "ok" && c.balance < floorAt(c.account, c.start))
    expect(
      staleOwn.length === 0,
      `no read by the minority's own callers older than an acknowledged write: ${staleOwn.length}, e.g. ${
        staleOwn.slice(0, 3).map((c) => `${c.account} ${c.balance} < ${floorAt(c.account, c.start)} from ${c.silo} at ${Math.round(c.start - began)} ms`)
          .join("; ")
      }`
    )

    // 4. Every failed call says whether a retry is safe; none hung; no result from the minority once it was declared dead.
    const undocumented = calls.filter((c) => c.outcome !== "ok" && retryRule[c.outcome] === undefined)
    expect(undocumented.length === 0, `every failure says whether a retry is safe: ${[...new Set(undocumented.map((c) => c.outcome))].join(", ")}`)
    const longest = Math.max(...calls.map((c) => c.end - c.start))
    expect(longest <= callTimeoutMs + 1_000, `no call outlived its timeout by over 1 s (longest ${Math.round(longest)} ms)`)
    const lateResults = calls.filter((c) => c.silo === victimId && declared !== undefined && c.end > declared.at)
    expect(lateResults.length === 0, `no result from the minority reached the client after it was declared dead: ${lateResults.length}`)

    // 5. Every acknowledged deposit stored exactly once.
    const deposits: Array<IssuedDeposit> = [...issued].map(([id, d]) => ({ id, ...d }))
    const writeProblems = checkWrites(deposits, stored)
    expect(writeProblems.length === 0, `writes: ${writeProblems.slice(0, 5).map((w) => w.detail).join("; ")}`)

    // 6. The minority joined again as a new generation at the same host:port; the majority kept theirs.
    const generationOf = (id: string) => Number(id.slice(id.lastIndexOf("@") + 1))
    const addressPart = (id: string) => id.slice(0, id.lastIndexOf("@"))
    expect(
      minority.ids.length === 2 && addressPart(newId) === addressPart(victimId) && generationOf(newId) > generationOf(victimId),
      `the minority rejoined as a new generation at its address: ${minority.ids.map((i) => i.id).join(" → ")}`
    )
    expect(majority.every((s) => s.ids.length === 1), "the majority silos kept their generation")

    const failed: Record<string, number> = {}
    for (const c of calls) if (c.outcome !== "ok" && c.end >= began) failed[c.outcome] = (failed[c.outcome] ?? 0) + 1
    const figures = {
      partition: kind,
      startupMs: Math.round(startupMs),
      durationMs: rel(nowMillis()),
      victimAccounts: victimAccounts.length,
      /** From the partition's start: when the minority began its last turn, and stopped serving (its `dead` line). */
      lastMinorityTurnMs: Math.round(lastVictimStart - began),
      minorityStoppedServingMs: Math.round(fenced.at - began),
      minorityStopReason: fenced.reason,
      declaredDeadMs: declared === undefined ? null : Math.round(declared.at - began),
      firstTakeoverTurnMs: Math.round(firstTakeover - began),
      lastTakeoverTurnMs: Math.round(lastTakeover - began),
      minGapMs: Math.round(minGap),
      healedAtMs: Math.round(healed - began),
      rejoinedAfterHealMs: Math.round(rejoinedMs),
      calls: calls.length,
      acknowledged: deposits.filter((d) => d.acknowledged).length,
      failedCalls: failed,
      minorityOwnCallsRefused: ownCallersRefused.length,
      turnsInFlightAcrossThePartition: overlaps.length - violations.length,
      resumedTurns: resumedTurns.length
    }
    console.log(JSON.stringify({ splitBrain: figures }))
    if (problems.length > 0) {
      Fs.writeFileSync(Path.join(directory, "calls.json"), JSON.stringify({ began, healed, stoppedSeen, calls }))
      assert.fail(`${kind}:\n- ${problems.join("\n- ")}\n${JSON.stringify(figures, null, 2)}\n${describeSilos(silos)}\nlogs in ${directory}`)
    }
    Fs.rmSync(directory, { recursive: true, force: true })
  })

describe("split brain: one silo of three cut off from Redis and the other two", () => {
  it.live("a paused process (SIGSTOP past deadAfter, then SIGCONT): it stops within its lease, the majority takes over once it is declared dead, never both, nothing acknowledged lost, it rejoins as a new generation", () =>
    scenario("pause"), 40_000)

  it.live("a network partition that drops packets: the same", () => scenario("drop"), 40_000)

  it.live("a network partition that refuses connections: the same", () => scenario("refuse"), 40_000)
})

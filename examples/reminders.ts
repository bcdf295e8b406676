/**
 * `npm run example:reminders` (needs Redis; QUARK_REDIS_URL, default 127.0.0.1:6379):
 * subscription renewals that survive a `kill -9`.
 *
 * - three silo processes (`reminders/silo.ts`) join one cluster through Redis membership and
 *   share one `RedisReminderStore`; the reminders are split into 64 buckets, each a system
 *   actor (`$reminders/<n>`) that the ring places on one silo, which fires its reminders;
 * - a client (`ClusterClient` with `Reminders.layerClient`, hosting nothing) registers a
 *   renewal reminder for each of twelve subscriptions: every second, charge the plan. A
 *   renewal is a turn of the subscription, which saves its statement in Redis; a tick
 *   delivered twice (at least once) is recognised by its due time and not charged again;
 * - the silo that owns the most buckets is killed with SIGKILL. Its buckets are activated on
 *   the survivors once the membership declares it dead (3 s without a heartbeat) and a
 *   keeper touches them (every second): their reminders go on from what Redis holds, and the
 *   renewals due in between are charged late, each once (`missed: { each: 10 }`);
 * - the survivors stop gracefully, the statements are read back from Redis and compared with
 *   the renewals the silos reported, and the run deletes every Redis key it wrote.
 *
 * Each run uses its own cluster name and key prefix, so runs never see each other.
 */
import { NodeRuntime } from "@effect/platform-node"
import { randomUUID } from "node:crypto"
import { fileURLToPath } from "node:url"
import { Console, Effect, Layer, Schedule, Schema } from "effect"
import type { Redis } from "ioredis"
import { Reminders } from "quark"
import { Cluster, ClusterClient } from "quark/cluster"
import { RedisMembership } from "quark/cluster/redis"
import { RedisReminderStore, RedisStore } from "quark/persistence/redis"
import { Statement, storePrefix, Subscription } from "./reminders/Subscription.ts"
import { connect, deleteKeys, explainUnreachable, redisUrl } from "./support/Redis.ts"
import { isRunning, siloProcesses, type SiloProcess } from "./support/SiloProcesses.ts"

const url = redisUrl
const cluster = `example-${Date.now().toString(36)}-${randomUUID().slice(0, 4)}`
const siloScript = fileURLToPath(new URL("./reminders/silo.ts", import.meta.url))
const accounts = ["alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy", "mallory", "niaj"]
const priceCents = 999
const periodMillis = 1_000
const bucketCount = 64 // the default, which the silos use too

class TimedOut extends Schema.TaggedError<TimedOut>()("TimedOut", { waitingFor: Schema.String }) {}

const clock = (epochMillis: number) => new Date(epochMillis).toISOString().slice(11, 23)

// --- What the silos report -------------------------------------------------------------------

interface Charge {
  readonly account: string
  readonly due: number
  readonly at: number
  readonly silo: string
}

const charges: Array<Charge> = []
const duplicates: Array<Charge> = []

const onSiloLine = (label: string, line: string) => {
  const [kind, account, due, ...rest] = line.split(" ")
  if (kind === "renewal") charges.push({ account: account!, due: Number(due), at: Number(rest[1]), silo: label })
  else if (kind === "duplicate") duplicates.push({ account: account!, due: Number(due), at: Number(rest[0]), silo: label })
  else console.error(`    [silo ${label}] ${line}`) // a log line that did not go to stderr
}

/** Waits (bounded, checking every 100 ms) until `condition` holds. */
const waitFor = (waitingFor: string, seconds: number, condition: () => boolean) =>
  Effect.sync(condition).pipe(
    Effect.repeat({ until: (ok) => ok, schedule: Schedule.spaced("100 millis"), times: seconds * 10 }),
    Effect.flatMap((ok) => ok ? Effect.void : Effect.fail(new TimedOut({ waitingFor })))
  )

// --- Redis: the run's keys ---------------------------------------------------------------------

/** Every key this run wrote: its cluster's membership and directory, the statements and the reminders. */
const deleteRunKeys = (redis: Redis) =>
  deleteKeys(redis, [`quark:{membership:${cluster}}:*`, `quark:{directory:${cluster}}:*`, `${storePrefix(cluster)}:*`])

// --- Silo processes --------------------------------------------------------------------------

const { start: startSilo, stop: stopSilo } = siloProcesses({ script: siloScript, args: [cluster], onLine: onSiloLine })

// --- The client ------------------------------------------------------------------------------

// Register, cancel and list from a program that hosts no actors; the silos fire.
const ClientLive = Reminders.layerClient({
  store: RedisReminderStore.make("reminders", { url, keyPrefix: storePrefix(cluster) }),
  bucketCount
}).pipe(
  Layer.provideMerge(ClusterClient.layer()),
  Layer.provide(RedisMembership.layer({ url, cluster }))
)

const chargesOf = (account: string) => charges.filter((charge) => charge.account === account)
const uniq = (labels: ReadonlyArray<string>) => [...new Set(labels)].sort().join(" and ")

interface Outcome {
  readonly killedAt: number
  /** Per account, the silo that fires its reminder (its bucket's owner) before and after the kill. */
  readonly firedBy: ReadonlyMap<string, readonly [before: string, after: string]>
  readonly deadLetters: number
}

/** Registers the renewals, watches them, kills the silo owning the most buckets, watches them go on. */
const demo = (silos: ReadonlyArray<SiloProcess>) =>
  Effect.gen(function*() {
    const { ownerOf } = yield* Cluster
    const { store } = yield* Reminders.Reminders
    const labelOf = (id: string | undefined) => silos.find((silo) => silo.id === id)?.label ?? "-"

    for (const id of accounts) {
      yield* Reminders.register(Subscription, id, "renewal", {
        message: "Renew",
        payload: { cents: priceCents },
        every: `${periodMillis} millis`,
        // Billing charges every period, even the ones missed while nobody could fire.
        missed: { each: 10 }
      })
    }
    yield* Console.log(
      `registered ${accounts.length} renewal reminders from the client: every ${periodMillis / 1000} s, charge ` +
        `$${(priceCents / 100).toFixed(2)}, missed renewals charged late (up to 10)`
    )
    yield* waitFor("three renewals per account", 20, () => accounts.every((id) => chargesOf(id).length >= 3))

    // The silo firing a reminder is the owner of its bucket ($reminders/<bucket>), as the ring
    // places it; the stored reminder says which bucket.
    const bucketOf = new Map<string, number>()
    for (const id of accounts) bucketOf.set(id, (yield* store.list("Subscription", id))[0]!.bucket)
    const bucketOwners = Effect.forEach(Array.from({ length: bucketCount }, (_, b) => b), (b) =>
      Effect.map(ownerOf({ type: "$reminders", id: String(b) }), labelOf))
    const ownersBefore = yield* bucketOwners
    const bucketsOf = (label: string) => ownersBefore.filter((owner) => owner === label).length
    yield* Console.log(`reminder buckets per silo: ${silos.map((silo) => `${silo.label} ${bucketsOf(silo.label)}`).join(", ")}`)

    const victim = silos.toSorted((a, b) => bucketsOf(b.label) - bucketsOf(a.label))[0]!
    const fired = accounts.filter((id) => ownersBefore[bucketOf.get(id)!] === victim.label)
    const hosted = accounts.filter((id) => chargesOf(id).at(-1)!.silo === victim.label)
    const killedAt = Date.now()
    victim.child.kill("SIGKILL")
    yield* Console.log(
      `${clock(killedAt)} kill -9 silo ${victim.label} (pid ${victim.child.pid}): owner of ${bucketsOf(victim.label)} buckets, ` +
        `firing the renewals of ${fired.join(", ") || "none"}; host of ${hosted.join(", ") || "none"}`
    )

    // Declared dead 3 s after its last heartbeat, its buckets touched on the survivors within a
    // second after that, its subscriptions activated there by their next renewal.
    yield* waitFor("renewals due 6 s after the kill", 30, () =>
      accounts.every((id) => chargesOf(id).some((charge) => charge.due >= killedAt + 6_000)))
    const resumed = accounts.filter((id) => fired.includes(id) || hosted.includes(id))
      .map((id) => chargesOf(id).find((charge) => charge.at > killedAt)!.at - killedAt)
    if (resumed.length > 0) {
      yield* Console.log(
        `  the renewals of silo ${victim.label}'s buckets and subscriptions go on from ${uniq(silos.filter(isRunning).map((s) => s.label))}, ` +
          `first charged ${Math.min(...resumed)}–${Math.max(...resumed)} ms after the kill`
      )
    }
    const ownersAfter = yield* bucketOwners
    const firedBy = new Map(accounts.map((id) => [id, [ownersBefore[bucketOf.get(id)!]!, ownersAfter[bucketOf.get(id)!]!] as const]))
    const deadLetters = (yield* Reminders.deadLetters()).length
    return { killedAt, firedBy, deadLetters } satisfies Outcome
  })

/** Per account: where it was fired and where it ran, renewals before and after the kill, the largest gap. */
const summary = ({ deadLetters, firedBy, killedAt }: Outcome) =>
  Effect.gen(function*() {
    yield* Console.log("account   fired by  runs on  before  after  largest gap  missed  duplicates")
    let worstGap = 0
    let missedTotal = 0
    for (const id of accounts) {
      const mine = chargesOf(id).toSorted((a, b) => a.at - b.at)
      const before = mine.filter((charge) => charge.at <= killedAt)
      const after = mine.filter((charge) => charge.at > killedAt)
      let gap = 0
      for (let i = 1; i < mine.length; i++) gap = Math.max(gap, mine[i]!.at - mine[i - 1]!.at)
      worstGap = Math.max(worstGap, gap)
      const dues = [...new Set(mine.map((charge) => charge.due))].sort((a, b) => a - b)
      const missed = (dues.at(-1)! - dues[0]!) / periodMillis + 1 - dues.length
      missedTotal += missed
      const [firedBefore, firedAfter] = firedBy.get(id)!
      yield* Console.log(
        `${id.padEnd(9)} ${firedBefore} → ${firedAfter}     ${before.at(-1)?.silo ?? "-"} → ${after.at(-1)?.silo ?? "-"}  ` +
          `${String(before.length).padStart(6)}  ${String(after.length).padStart(5)}  ${String(gap).padStart(8)} ms  ` +
          `${String(missed).padStart(6)}  ${String(duplicates.filter((d) => d.account === id).length).padStart(10)}`
      )
    }
    yield* Console.log(
      `largest gap between two renewals of one account: ${worstGap} ms (period ${periodMillis} ms); due times never ` +
        `charged: ${missedTotal}; ticks delivered again, not charged twice: ${duplicates.length}; dead letters: ${deadLetters}`
    )
  })

/** The statements saved in Redis, read back after the silos stopped, against the charges reported. */
const checkStatements = Effect.gen(function*() {
  const store = yield* RedisStore.make("check", { url, keyPrefix: storePrefix(cluster) })
  const decode = Schema.decodeUnknownSync(Schema.fromJsonString(Statement))
  let matching = 0
  let renewals = 0
  for (const id of accounts) {
    const stored = yield* store.state.read({ type: "Subscription", id, record: "statement" })
    const statement = decode(stored!.data)
    const dues = new Set(chargesOf(id).map((charge) => charge.due))
    renewals += statement.renewals
    if (statement.renewals === dues.size && statement.chargedCents === dues.size * priceCents) matching++
  }
  yield* Console.log(`statements in Redis: ${matching}/${accounts.length} match the renewals charged (${renewals} in all)`)
})

// --- The run ---------------------------------------------------------------------------------

const main = Effect.gen(function*() {
  const redis = yield* connect(url)
  yield* Effect.addFinalizer(() =>
    Effect.flatMap(deleteRunKeys(redis), (n) => Console.log(`deleted the run's ${n} Redis keys`)))
  yield* Console.log(`cluster "${cluster}" on ${url}: starting 3 silos`)

  const started = performance.now()
  const silos = yield* Effect.forEach(["A", "B", "C"], startSilo, { concurrency: "unbounded" })
  yield* Console.log(`3 silo processes ready in ${Math.round(performance.now() - started)} ms`)

  const outcome = yield* demo(silos).pipe(Effect.provide(ClientLive))

  const alive = silos.filter(isRunning)
  // One after the other: two silos draining at once would each hand its actors to the other.
  const ended = yield* Effect.forEach(alive, stopSilo)
  yield* Console.log(`stopped ${alive.map((silo, i) => `${silo.label} (${ended[i]})`).join(", ")} with SIGTERM, one after the other`)
  yield* summary(outcome)
  yield* Effect.scoped(checkStatements)
}).pipe(
  Effect.scoped, // silos stop (if still running) before the keys are deleted
  Effect.catchTag("RedisUnreachable", (error) => explainUnreachable(url, error.reason))
)

NodeRuntime.runMain(main)

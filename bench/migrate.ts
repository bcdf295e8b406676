/**
 * `cluster.migrate`: live migration between two silos in this process (memory membership
 * and directory on the real clock, real TCP on 127.0.0.1), with a client as the caller.
 *
 * - `cluster.migrate.dehydrated`: activations moved per second, each handing 1 KiB of
 *   in-memory state over (a `Migration` participant); a round moves `perRound` of them
 *   from the silo that holds them to the other, 16 at a time.
 * - `cluster.migrate.store`: the same, for activations without participants whose
 *   finalizer writes their state to the (memory) store and whose next activation reads it.
 * - `cluster.migrate.call-plain`: the baseline of the next: a client's call to an actor
 *   on a silo (sequential; latency per call).
 * - `cluster.migrate.call-mid-migration`: the same call, sent right after a migration of
 *   its actor started (the actor is deactivating): it waits in the old silo's mailbox and
 *   runs on the new one. Its extras give the latency it adds to a plain call (p50, p99).
 *
 * Every call must succeed and every move must report `moved`; otherwise the round fails.
 */
import { Effect, Exit, Fiber, Layer, Ref, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Migration } from "../src/index.ts"
import { Migrator } from "../src/Cluster/Migrator.ts"
import * as Placement from "../src/Cluster/Placement.ts"
import * as TestCluster from "../src/Cluster/TestCluster.ts"
import { Stores } from "../src/Persistence/Stores.ts"
import { nowNs, percentile, type RoundResult, type Variant } from "./Harness.ts"

type Disposable = Variant & { readonly dispose?: () => Promise<void> }

const Get = Rpc.make("Get", { success: Schema.Int })
const Payload = Schema.Struct({ blob: Schema.String, n: Schema.Int })
const blob = "x".repeat(1024)

/** In-memory state, handed over on a move. */
const Handed = Actor.make("BenchHanded", [Get], { placement: Placement.preferLocal })
const handedLayer = Handed.toLayer(Effect.gen(function*() {
  const handed = yield* Migration.rehydrated("state", Payload)
  const state = yield* Ref.make(handed._tag === "Some" ? handed.value : { blob, n: 1 })
  yield* Migration.onDehydrate("state", Payload, Ref.get(state))
  return Handed.of({ Get: () => Effect.map(Ref.get(state), (s) => s.n) })
}))

/** No participant: the finalizer writes the state, the next activation reads it. */
const Stored = Actor.make("BenchStored", [Get], { placement: Placement.preferLocal })
const encode = Schema.encodeSync(Schema.fromJsonString(Payload))
const decode = Schema.decodeSync(Schema.fromJsonString(Payload))
const storedLayer = Stored.toLayer(Effect.gen(function*() {
  const { id } = (yield* ActorContext).address
  const store = yield* Effect.orDie(Effect.flatMap(Stores, (stores) => stores.get("default")))
  const key = { type: "BenchStored", id, record: "state" }
  const stored = yield* Effect.orDie(store.state.read(key))
  let version = stored?.version ?? 0
  const state = yield* Ref.make(stored === undefined ? { blob, n: 1 } : decode(stored.data))
  yield* Effect.addFinalizer(() =>
    Effect.orDie(Effect.flatMap(Ref.get(state), (s) =>
      Effect.map(store.state.write(key, encode(s), version), (next) => void (version = next))))
  )
  return Stored.of({ Get: () => Effect.map(Ref.get(state), (s) => s.n) })
}))

interface Bench {
  readonly cluster: TestCluster.TestCluster
  readonly client: TestCluster.TestMember
  readonly run: <A, E>(effect: Effect.Effect<A, E>) => Promise<A>
}

let shared: Promise<Bench> | undefined
let users = 0
let scope: Scope.Closeable | undefined

/** One cluster for every variant of the group: two silos and a client. */
const bench = (): Promise<Bench> => {
  users++
  return shared ??= (async () => {
    scope = Effect.runSync(Scope.make())
    const cluster = await Effect.runPromise(
      TestCluster.make({ silos: 2, implementations: Layer.mergeAll(handedLayer, storedLayer) }).pipe(Scope.provide(scope))
    )
    const client = await Effect.runPromise(cluster.addClient.pipe(Effect.tap(() => cluster.settle)))
    return { cluster, client, run: (effect) => Effect.runPromise(effect) }
  })()
}

const release = async () => {
  if (--users > 0 || scope === undefined) return
  await Effect.runPromise(Scope.close(scope, Exit.void))
  shared = undefined
  scope = undefined
}

const concurrency = 16

/** Activates `ids` of `contract` on the first silo (preferLocal: called from there). */
const activateOn = (member: TestCluster.TestMember, contract: typeof Handed, ids: ReadonlyArray<string>) =>
  member.run(Effect.forEach(ids, (id) => Effect.flatMap(contract.refOrDie(id), (ref) => ref.Get()), { concurrency: 64 }))

const moves = async (id: string, contract: typeof Handed, perRound: number): Promise<Disposable> => {
  const b = await bench()
  const [one, two] = b.cluster.silos
  const ids = Array.from({ length: perRound }, (_, i) => `${id}-${i}`)
  await b.run(activateOn(one!, contract, ids))
  let holder = one!
  let other = two!
  const round = async (): Promise<RoundResult> => {
    const addresses = ids.map((actor) => ({ type: contract.type, id: actor }))
    const t0 = nowNs()
    const report = await b.run(holder.run(Effect.flatMap(Migrator, (migrator) =>
      migrator.migrateAway(addresses, { to: other.id, concurrency }))))
    const elapsedNs = nowNs() - t0
    if (report.moved.length !== perRound) {
      throw new Error(`${id}: ${report.moved.length} of ${perRound} moved: ${report.failed.map((f) => f.message).join("; ")}`)
    }
    ;[holder, other] = [other, holder]
    return { ops: perRound, elapsedNs, latenciesUs: report.moved.map((moved) => moved.millis * 1000) }
  }
  return { id, round, dispose: release }
}

export const migrateDehydrated = (perRound: number) => moves("cluster.migrate.dehydrated", Handed, perRound)
export const migrateStore = (perRound: number) => moves("cluster.migrate.store", Stored as unknown as typeof Handed, perRound)

/** The plain calls' latencies, for the mid-migration variant's extras. */
const plainLatencies: Array<number> = []
let plainRounds = 0

export const callPlain = async (calls: number): Promise<Disposable> => {
  const id = "cluster.migrate.call-plain"
  const b = await bench()
  const ids = Array.from({ length: calls }, (_, i) => `plain-${i}`)
  await b.run(activateOn(b.cluster.silos[0]!, Handed, ids))
  const round = async (): Promise<RoundResult> => {
    const latenciesUs: Array<number> = []
    const t0 = nowNs()
    await b.run(b.client.run(Effect.forEach(ids, (actor) =>
      Effect.flatMap(Handed.refOrDie(actor), (ref) => {
        const start = nowNs()
        return Effect.map(ref.Get(), () => void latenciesUs.push((nowNs() - start) / 1000))
      }), { discard: true })))
    // The first round is the warmup (see `runInterleaved`): its samples do not count.
    if (++plainRounds > 1) plainLatencies.push(...latenciesUs)
    return { ops: calls, elapsedNs: nowNs() - t0, latenciesUs }
  }
  return { id, round, dispose: release }
}

export const callMidMigration = async (calls: number): Promise<Disposable> => {
  const id = "cluster.migrate.call-mid-migration"
  const b = await bench()
  const [one, two] = b.cluster.silos
  const ids = Array.from({ length: calls }, (_, i) => `mid-${i}`)
  await b.run(activateOn(one!, Handed, ids))
  let holder = one!
  let other = two!
  const measured: Array<number> = []
  let rounds = 0
  const round = async (): Promise<RoundResult> => {
    const latenciesUs: Array<number> = []
    const migrator = await b.run(holder.run(Migrator))
    const t0 = nowNs()
    await b.run(b.client.run(Effect.forEach(ids, (actor) =>
      Effect.gen(function*() {
        const ref = yield* Handed.refOrDie(actor)
        // The move starts at once (the actor deactivates), then the call is sent.
        const moving = yield* Effect.forkChild(migrator.migrate({ type: Handed.type, id: actor }, { to: other.id }))
        const start = nowNs()
        yield* ref.Get()
        latenciesUs.push((nowNs() - start) / 1000)
        const moved = yield* Fiber.await(moving)
        if (moved._tag !== "Success") throw new Error(`${id}: ${actor} did not move`)
      }), { discard: true })))
    ;[holder, other] = [other, holder]
    if (++rounds > 1) measured.push(...latenciesUs)
    return { ops: calls, elapsedNs: nowNs() - t0, latenciesUs }
  }
  return {
    id,
    round,
    extra: () => {
      const mid = Float64Array.from(measured).sort()
      const plain = Float64Array.from(plainLatencies).sort()
      return {
        addedP50Us: Math.round(percentile(mid, 50) - percentile(plain, 50)),
        addedP99Us: Math.round(percentile(mid, 99) - percentile(plain, 99))
      }
    },
    dispose: release
  }
}

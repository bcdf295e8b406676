/**
 * Live migration on the in-process TestCluster (memory membership and directory on the
 * TestClock, real TCP on 127.0.0.1): moving one activation, a type, a share of a silo's;
 * with and without handed-over state; calls queued and in flight during a move all succeed,
 * in order per sender; state stays version-checked; timers and reminders follow; a hashed
 * address hands its state over on a ring change; no address is ever active on two silos
 * (every activation's start and end go to one log, checked for overlaps).
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Option, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorState, Migration, Silo, StateConflict, StoreError, Stores } from "../../src/index.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import { MigrationFailed, Migrator, NotMigratable } from "../../src/Cluster/Migrator.ts"
import * as Placement from "../../src/Cluster/Placement.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import { makeMemoryJournal, makeMemoryStateStore } from "../../src/Persistence/MemoryStore.ts"
import * as MemoryReminderStore from "../../src/Reminders/MemoryReminderStore.ts"
import * as Reminders from "../../src/Reminders/Reminders.ts"
import { advance } from "../fixtures/ClusterClock.ts"
import { type ActivationEvent, hostedIds, overlapsIn, settleFor } from "../fixtures/ActivationLog.ts"
import { eventually } from "../fixtures/Eventually.ts"

// ---------------------------------------------------------------------------
// Fixtures

/** Every activation's start and end, in order, across the cluster. */
const log: Array<ActivationEvent> = []
/** Timer ticks: which silo ran each. */
const ticks: Array<{ readonly id: string; readonly silo: string }> = []
/** Held by `Block` until a test opens it. */
let turnGate = Deferred.makeUnsafe<void>()

const recordStart = Effect.gen(function*() {
  const id = (yield* ActorContext).address.id
  const silo = (yield* Cluster).self!.id
  log.push({ id, silo, kind: "start" })
  yield* Effect.addFinalizer(() => Effect.sync(() => void log.push({ id, silo, kind: "end" })))
  return { id, silo }
})

const Note = Schema.Struct({ sender: Schema.String, seq: Schema.Int })
const Where = Rpc.make("Where", { success: Schema.String })
const Add = Rpc.make("Add", { payload: { n: Schema.Int }, success: Schema.Int })
const Items = Rpc.make("Items", { success: Schema.Array(Schema.Int) })
const Block = Rpc.make("Block", { success: Schema.String })
const Record = Rpc.make("Record", { payload: Note, success: Schema.Int })
const Notes = Rpc.make("Notes", { success: Schema.Array(Note) })

/** Placed on the calling silo; hands its items and notes over; a timer ticks every second. */
const Room = Actor.make("Room", [Where, Add, Items, Block, Record, Notes], { placement: Placement.preferLocal })
const RoomState = Schema.Struct({ items: Schema.Array(Schema.Int), notes: Schema.Array(Note) })

const roomLayer = Room.toLayer(Effect.gen(function*() {
  const { id, silo } = yield* recordStart
  const handed = yield* Migration.rehydrated("room", RoomState)
  const state = yield* Ref.make(Option.getOrElse(handed, () => ({ items: [] as ReadonlyArray<number>, notes: [] as ReadonlyArray<typeof Note.Type> })))
  yield* Migration.onDehydrate("room", RoomState, Ref.get(state))
  const ctx = yield* ActorContext
  yield* ctx.startTimer("beat", Effect.sync(() => void ticks.push({ id, silo })), { period: "1 second" })
  return Room.of({
    Where: () => Effect.succeed(silo),
    Add: ({ n }) => Effect.map(Ref.updateAndGet(state, (s) => ({ ...s, items: [...s.items, n] })), (s) => s.items.length),
    Items: () => Effect.map(Ref.get(state), (s) => s.items),
    Block: () => Effect.as(Deferred.await(turnGate), silo),
    Record: (note) => Effect.map(Ref.updateAndGet(state, (s) => ({ ...s, notes: [...s.notes, note] })), (s) => s.notes.length),
    Notes: () => Effect.map(Ref.get(state), (s) => s.notes)
  })
}))

/** No participant: what survives a move is what its finalizer saves (a stand-in for a store). */
const Plain = Actor.make("Plain", [Where, Add, Items], { placement: Placement.preferLocal })
const saved = new Map<string, ReadonlyArray<number>>()
const plainLayer = Plain.toLayer(Effect.gen(function*() {
  const { id, silo } = yield* recordStart
  const items = yield* Ref.make(saved.get(id) ?? [])
  yield* Effect.addFinalizer(() => Effect.map(Ref.get(items), (list) => void saved.set(id, list)))
  return Plain.of({
    Where: () => Effect.succeed(silo),
    Add: ({ n }) => Effect.map(Ref.updateAndGet(items, (list) => [...list, n]), (list) => list.length),
    Items: () => Ref.get(items)
  })
}))

/** Persisted with `ActorState`, placed at random. */
const Deposit = Rpc.make("Deposit", {
  payload: { n: Schema.Int },
  success: Schema.Int,
  error: Schema.Union([StateConflict, StoreError])
})
const Balance = Rpc.make("Balance", { success: Schema.Struct({ balance: Schema.Int, version: Schema.Int }) })
const Account = Actor.make("Account", [Where, Deposit, Balance], { placement: Placement.random })
const accountLayer = Account.toLayer(Effect.gen(function*() {
  const { silo } = yield* recordStart
  const balance = yield* ActorState.make("balance", { schema: Schema.Int, initial: () => 0 })
  return Account.of({
    Where: () => Effect.succeed(silo),
    Deposit: ({ n }) => Effect.andThen(balance.update((b) => b + n), Effect.andThen(balance.write, balance.get)),
    Balance: () => Effect.zipWith(balance.get, balance.version, (balance, version) => ({ balance, version }))
  })
}))

/** Hashed (the default placement), handing its items over. */
const Tally = Actor.make("Tally", [Where, Add, Items])
const tallyLayer = Tally.toLayer(Effect.gen(function*() {
  const { silo } = yield* recordStart
  const handed = yield* Migration.rehydrated("items", Schema.Array(Schema.Int))
  const items = yield* Ref.make(Option.getOrElse(handed, (): ReadonlyArray<number> => []))
  yield* Migration.onDehydrate("items", Schema.Array(Schema.Int), Ref.get(items))
  return Tally.of({
    Where: () => Effect.succeed(silo),
    Add: ({ n }) => Effect.map(Ref.updateAndGet(items, (list) => [...list, n]), (list) => list.length),
    Items: () => Ref.get(items)
  })
}))

const Worker = Actor.make("Worker", [Where], { placement: Placement.statelessWorker() })
const workerLayer = Worker.toLayer(Effect.map(Cluster, (cluster) => Worker.of({ Where: () => Effect.succeed(cluster.self!.id) })))

/** A state store that counts its reads. */
let stateReads = 0
const countingStore = (): Stores.Store => {
  const state = makeMemoryStateStore("default")
  return {
    name: "default",
    state: { ...state, read: (key) => Effect.suspend(() => (stateReads++, state.read(key))) },
    journal: makeMemoryJournal("default")
  }
}
let store = countingStore()

const implementations = Layer.mergeAll(roomLayer, plainLayer, accountLayer, tallyLayer, workerLayer).pipe(
  Layer.provide(Layer.suspend(() => Stores.layer(store)))
)

const reset = Effect.sync(() => {
  log.length = 0
  ticks.length = 0
  saved.clear()
  stateReads = 0
  store = countingStore()
  turnGate = Deferred.makeUnsafe<void>()
})

// ---------------------------------------------------------------------------
// Helpers

const room = (id: string) => Room.refOrDie(id)
const where = (id: string) => Effect.flatMap(room(id), (ref) => ref.Where())
const migrate = (address: { readonly type: string; readonly id: string }, to?: string) =>
  Effect.flatMap(Migrator, (migrator) => migrator.migrate(address, { to }))


/** Addresses that were active on two silos at once, per the log. */
const overlaps = () => overlapsIn(log)

/** The last activation of `id` started on `to` after one on `from` ended. */
const startedAfterEnd = (id: string, from: string, to: string) => {
  const end = log.findIndex((event) => event.id === id && event.silo === from && event.kind === "end")
  const start = log.findLastIndex((event) => event.id === id && event.silo === to && event.kind === "start")
  return end >= 0 && start > end
}

// ---------------------------------------------------------------------------

describe("live migration", () => {
  it.effect("moves one activation with its handed-over state: single activation, the directory names the target", () =>
    Effect.gen(function*() {
      yield* reset
      const cluster = yield* TestCluster.make({ silos: 3, implementations })
      const [a, b] = cluster.silos
      for (const n of [1, 2, 3]) yield* a!.run(Effect.flatMap(room("r-1"), (ref) => ref.Add({ n })))
      assert.strictEqual(yield* a!.run(where("r-1")), a!.id)
      const moved = yield* a!.run(migrate({ type: "Room", id: "r-1" }, b!.id))
      assert.strictEqual(moved.from, a!.id)
      assert.strictEqual(moved.to, b!.id)
      assert.isTrue(moved.handedState)
      assert.strictEqual(yield* cluster.directory.lookup({ type: "Room", id: "r-1" }), b!.id)
      assert.deepStrictEqual(yield* hostedIds(a!, "Room"), [])
      assert.deepStrictEqual(yield* hostedIds(b!, "Room"), ["r-1"])
      // Called from the old silo, from the new one, and from a client: all reach b, state intact.
      const client = yield* cluster.addClient
      for (const member of [a!, b!, client]) {
        assert.strictEqual(yield* member.run(where("r-1")), b!.id)
        assert.deepStrictEqual(yield* member.run(Effect.flatMap(room("r-1"), (ref) => ref.Items())), [1, 2, 3])
      }
      assert.deepStrictEqual(overlaps(), [])
      assert.isTrue(startedAfterEnd("r-1", a!.id, b!.id))
      // And back, to the placement's choice this time (preferLocal without b: the ring's owner).
      const back = yield* b!.run(migrate({ type: "Room", id: "r-1" }))
      assert.notStrictEqual(back.to, b!.id)
      assert.strictEqual(yield* client.run(where("r-1")), back.to)
      assert.deepStrictEqual(yield* client.run(Effect.flatMap(room("r-1"), (ref) => ref.Items())), [1, 2, 3])
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))

  it.effect("without participants the finalizers save and the next activation reads: nothing handed, nothing lost", () =>
    Effect.gen(function*() {
      yield* reset
      const cluster = yield* TestCluster.make({ silos: 2, implementations })
      const [a, b] = cluster.silos
      const plain = Plain.refOrDie("p-1")
      for (const n of [7, 8]) yield* a!.run(Effect.flatMap(plain, (ref) => ref.Add({ n })))
      const moved = yield* a!.run(migrate({ type: "Plain", id: "p-1" }))
      assert.strictEqual(moved.to, b!.id)
      assert.isFalse(moved.handedState)
      assert.deepStrictEqual(yield* a!.run(Effect.flatMap(plain, (ref) => ref.Items())), [7, 8])
      assert.strictEqual(yield* a!.run(Effect.flatMap(plain, (ref) => ref.Where())), b!.id)
      assert.isTrue(startedAfterEnd("p-1", a!.id, b!.id), "b activated it after a's finalizers ran")
    }).pipe(Effect.scoped))

  it.effect("ActorState hands value and version over: no store read on the target, and a stale write still fails", () =>
    Effect.gen(function*() {
      yield* reset
      const cluster = yield* TestCluster.make({ silos: 2, implementations })
      const [a, b] = cluster.silos
      const account = Account.refOrDie("acct-1")
      assert.strictEqual(yield* a!.run(Effect.flatMap(account, (ref) => ref.Deposit({ n: 5 }))), 5)
      const owner = yield* a!.run(Effect.flatMap(account, (ref) => ref.Where()))
      const [from, to] = owner === a!.id ? [a!, b!] : [b!, a!]
      const readsBefore = stateReads
      const moved = yield* from.run(migrate({ type: "Account", id: "acct-1" }))
      assert.strictEqual(moved.to, to.id)
      assert.deepStrictEqual(yield* a!.run(Effect.flatMap(account, (ref) => ref.Balance())), { balance: 5, version: 1 })
      assert.strictEqual(stateReads, readsBefore, "the target did not read the store")
      assert.strictEqual(yield* a!.run(Effect.flatMap(account, (ref) => ref.Deposit({ n: 3 }))), 8)
      // Someone else writes the record behind the actor's back: its next write conflicts.
      const key = { type: "Account", id: "acct-1", record: "balance" }
      assert.strictEqual(yield* store.state.write(key, "100", 2), 3)
      const conflict = yield* a!.run(Effect.flip(Effect.flatMap(account, (ref) => ref.Deposit({ n: 1 }))))
      assert.instanceOf(conflict, StateConflict)
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))

  it.effect("calls queued and in flight during a move all succeed, each sender's in its order", () =>
    Effect.gen(function*() {
      yield* reset
      yield* Effect.addFinalizer(() => Deferred.succeed(turnGate, undefined))
      const cluster = yield* TestCluster.make({ silos: 3, implementations })
      const [a, b, c] = cluster.silos
      const client = yield* cluster.addClient
      yield* a!.run(Effect.flatMap(room("busy"), (ref) => ref.Add({ n: 0 })))
      // A turn runs on a while the move starts: the move waits for it, calls queue behind it.
      const blocked = yield* Effect.forkChild(a!.run(Effect.flatMap(room("busy"), (ref) => ref.Block())))
      yield* eventually(
        a!.run(Effect.map(Effect.flatMap(Silo.Silo, (silo) => silo.activations("Room")), (rows) => rows[0]?.runningTurns === 1)),
        "the blocking turn runs on a"
      )
      const perSender = 12
      const send = (member: TestCluster.TestMember, sender: string) =>
        member.run(Effect.gen(function*() {
          const ref = yield* room("busy")
          // One-way first, then asks: a sender's order must hold across both.
          for (let seq = 1; seq <= perSender / 2; seq++) yield* ref.tell.Record({ sender, seq })
          for (let seq = perSender / 2 + 1; seq <= perSender; seq++) yield* ref.Record({ sender, seq })
        }))
      const early = yield* Effect.forEach([[a!, "a"], [c!, "c"], [client, "client"]] as const, ([member, sender]) =>
        Effect.forkChild(send(member, `${sender}-early`)))
      yield* settleFor(100)
      const moving = yield* Effect.forkChild(a!.run(migrate({ type: "Room", id: "busy" }, b!.id)))
      yield* settleFor(100)
      assert.isUndefined(moving.pollUnsafe(), "the move waits for the running turn")
      // More calls while the move is under way, from every side.
      const late = yield* Effect.forEach([[a!, "a"], [b!, "b"], [c!, "c"], [client, "client"]] as const, ([member, sender]) =>
        Effect.forkChild(send(member, `${sender}-late`)))
      yield* settleFor(50)
      yield* Deferred.succeed(turnGate, undefined)
      assert.strictEqual(yield* Fiber.join(blocked), a!.id)
      const moved = yield* Fiber.join(moving)
      assert.strictEqual(moved.to, b!.id)
      for (const fiber of [...early, ...late]) yield* Fiber.join(fiber)
      const notes = yield* client.run(Effect.flatMap(room("busy"), (ref) => ref.Notes()))
      const senders = ["a-early", "c-early", "client-early", "a-late", "b-late", "c-late", "client-late"]
      for (const sender of senders) {
        const seqs = notes.filter((note) => note.sender === sender).map((note) => note.seq)
        assert.deepStrictEqual(seqs, Array.from({ length: perSender }, (_, i) => i + 1), sender)
      }
      assert.strictEqual(yield* client.run(where("busy")), b!.id)
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))

  it.effect("moves every activation of a type, and a share of a silo's, to the other silos", () =>
    Effect.gen(function*() {
      yield* reset
      const cluster = yield* TestCluster.make({ silos: 3, implementations })
      const [a, b, c] = cluster.silos
      const ids = Array.from({ length: 8 }, (_, i) => `t-${i}`)
      for (const id of ids) yield* a!.run(Effect.flatMap(room(id), (ref) => ref.Add({ n: Number(id.slice(2)) })))
      const migrator = yield* a!.run(Migrator)
      const two = yield* migrator.migrateShare({ count: 2 })
      assert.strictEqual(two.moved.length, 2)
      assert.deepStrictEqual(two.failed, [])
      const half = yield* migrator.migrateShare({ fraction: 0.5 })
      assert.strictEqual(half.moved.length, 3, "half of the six left, rounded up")
      const rest = yield* migrator.migrateType("Room", { concurrency: 2 })
      assert.strictEqual(rest.moved.length, 3)
      assert.deepStrictEqual(yield* hostedIds(a!, "Room"), [])
      const all = [...two.moved, ...half.moved, ...rest.moved]
      assert.deepStrictEqual(all.map((m) => m.address.id).sort(), ids)
      for (const m of all) assert.include([b!.id, c!.id], m.to)
      for (const id of ids) {
        assert.deepStrictEqual(yield* a!.run(Effect.flatMap(room(id), (ref) => ref.Items())), [Number(id.slice(2))])
      }
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))

  it.effect("errors say why: hashed and stateless addresses are not migratable; other failures leave the actor serving", () =>
    Effect.gen(function*() {
      yield* reset
      const cluster = yield* TestCluster.make({ silos: 2, implementations })
      const [a, b] = cluster.silos
      const migrator = yield* a!.run(Migrator)
      yield* a!.run(Effect.flatMap(Tally.refOrDie("h-1"), (ref) => ref.Add({ n: 1 })))
      const hashed = yield* Effect.flip(migrator.migrate({ type: "Tally", id: "h-1" }))
      assert.instanceOf(hashed, NotMigratable)
      assert.match(hashed.message, /hashed/)
      assert.instanceOf(yield* Effect.flip(migrator.migrateType("Tally")), NotMigratable)
      assert.instanceOf(yield* Effect.flip(migrator.migrate({ type: "Worker", id: "w" })), NotMigratable)
      assert.instanceOf(yield* Effect.flip(migrator.migrate({ type: "Nope", id: "x" })), NotMigratable)

      const notHosted = yield* Effect.flip(migrator.migrate({ type: "Room", id: "nowhere" }))
      assert.instanceOf(notHosted, MigrationFailed)
      assert.strictEqual((notHosted as MigrationFailed).failure, "NotHosted")
      yield* a!.run(Effect.flatMap(room("stay"), (ref) => ref.Add({ n: 4 })))
      const noTarget = yield* Effect.flip(migrator.migrate({ type: "Room", id: "stay" }, { to: "10.9.9.9:1@1" }))
      assert.strictEqual((noTarget as MigrationFailed).failure, "NoTarget")
      assert.isTrue((noTarget as MigrationFailed).retryable)

      // The target refuses (it has begun draining, though a's view still lists it): the
      // actor is activated on a again, with the state it handed to nobody.
      const bRouter = (yield* b!.run(Silo.Silo)).router
      bRouter.draining = true
      const refused = yield* Effect.flip(migrator.migrate({ type: "Room", id: "stay" }, { to: b!.id }))
      bRouter.draining = false
      assert.strictEqual((refused as MigrationFailed).failure, "Refused")
      assert.deepStrictEqual(yield* hostedIds(a!, "Room"), ["stay"])
      assert.deepStrictEqual(yield* a!.run(Effect.flatMap(room("stay"), (ref) => ref.Items())), [4])
      assert.strictEqual(yield* cluster.directory.lookup({ type: "Room", id: "stay" }), a!.id)
      // A retry moves it.
      assert.strictEqual((yield* migrator.migrate({ type: "Room", id: "stay" }, { to: b!.id })).to, b!.id)
      assert.deepStrictEqual(yield* a!.run(Effect.flatMap(room("stay"), (ref) => ref.Items())), [4])
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))

  it.effect("timers follow: registered again by the activation effect on the target", () =>
    Effect.gen(function*() {
      yield* reset
      const cluster = yield* TestCluster.make({ silos: 2, implementations })
      const [a, b] = cluster.silos
      yield* a!.run(Effect.flatMap(room("ticking"), (ref) => ref.Add({ n: 1 })))
      yield* advance(2_500)
      const before = ticks.filter((tick) => tick.id === "ticking")
      assert.isAtLeast(before.length, 2)
      assert.isTrue(before.every((tick) => tick.silo === a!.id))
      ticks.length = 0
      yield* a!.run(migrate({ type: "Room", id: "ticking" }, b!.id))
      yield* advance(3_000)
      const after = ticks.filter((tick) => tick.id === "ticking")
      assert.isAtLeast(after.length, 2)
      assert.isTrue(after.every((tick) => tick.silo === b!.id), "no tick ran on a after the move")
    }).pipe(Effect.scoped))

  it.effect("a hashed address hands its state to its new owner when a joining silo takes it over", () =>
    Effect.gen(function*() {
      yield* reset
      const cluster = yield* TestCluster.make({ silos: 1, implementations })
      const [a] = cluster.silos
      const ids = Array.from({ length: 24 }, (_, i) => `hash-${i}`)
      for (const id of ids) {
        for (const n of [1, 2]) yield* a!.run(Effect.flatMap(Tally.refOrDie(id), (ref) => ref.Add({ n })))
      }
      const c = yield* cluster.addSilo
      yield* cluster.settle
      const client = yield* cluster.addClient
      const moved: Array<string> = []
      for (const id of ids) if ((yield* client.run(Effect.flatMap(Tally.refOrDie(id), (ref) => ref.Where()))) === c.id) moved.push(id)
      assert.isAbove(moved.length, 0)
      for (const id of ids) {
        assert.deepStrictEqual(yield* client.run(Effect.flatMap(Tally.refOrDie(id), (ref) => ref.Items())), [1, 2], id)
      }
      for (const id of moved) assert.isTrue(startedAfterEnd(id, a!.id, c.id), id)
      assert.deepStrictEqual(overlaps(), [])
    }).pipe(Effect.scoped))
})

// ---------------------------------------------------------------------------
// Reminders: stored and routed by address, so they reach the actor wherever it moved.

const pings: Array<string> = []
const Pinged = Actor.make("Pinged", [Rpc.make("Ping", {})], { placement: Placement.preferLocal })
const pingedLayer = Pinged.toLayer(Effect.map(Cluster, (cluster) => Pinged.of({ Ping: () => Effect.sync(() => void pings.push(cluster.self!.id)) })))
const reminderImplementations = Layer.mergeAll(
  pingedLayer,
  Layer.effectDiscard(Layer.build(Reminders.layer({ store: MemoryReminderStore.make("migration-test"), bucketCount: 4, keepInterval: "500 millis" })))
)

describe("live migration and reminders", () => {
  it.effect("a reminder keeps firing on the silo the actor moved to", () =>
    Effect.gen(function*() {
      pings.length = 0
      const cluster = yield* TestCluster.make({ silos: 2, implementations: reminderImplementations })
      const [a, b] = cluster.silos
      yield* a!.run(Effect.flatMap(Pinged.refOrDie("pinged"), (ref) => ref.Ping()))
      yield* a!.run(Reminders.register(Pinged, "pinged", "ping", { message: "Ping", every: "1 second" }))
      yield* advance(2_500)
      assert.isAtLeast(pings.length, 3)
      assert.isTrue(pings.every((silo) => silo === a!.id))
      pings.length = 0
      yield* a!.run(migrate({ type: "Pinged", id: "pinged" }, b!.id))
      yield* advance(3_000)
      assert.isAtLeast(pings.length, 2)
      assert.isTrue(pings.every((silo) => silo === b!.id), "every tick after the move reached b")
    }).pipe(Effect.scoped))
})

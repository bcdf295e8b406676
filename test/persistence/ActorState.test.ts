/**
 * Actor state and event sourcing on the in-memory store (the providers are held to the
 * same contract by the conformance suites).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer } from "effect"
import { ActivationFailed, ActorDefect, JournalConflict, Silo, StateConflict, Stores } from "../../src/index.ts"
import { Account, accountLayer, Ledger, ledgerLayer } from "../fixtures/Bank.ts"

const key = (id: string, record = "balance") => ({ type: "Account", id, record })
const ledgerKey = (id: string) => ({ type: "Ledger", id, record: "ledger" })

/** A silo with a fresh memory store; the test body gets the store to inspect or tamper with. */
const withStore = <A, E>(
  impls: ReadonlyArray<Layer.Layer<never, any, any>>,
  body: (store: Stores.Store) => Effect.Effect<A, E, Silo.Silo>
) => {
  const store = Stores.memory("default")
  return body(store).pipe(
    Effect.provide(Silo.layerTest(...impls).pipe(Layer.provide(Stores.layer(store))))
  )
}

const deactivate = (type: string, id: string) => Effect.flatMap(Silo.Silo, (silo) => silo.deactivate({ type, id }))

describe("actor state", () => {
  it.effect("loads before the first turn, writes explicitly with a version, and survives reactivation", () =>
    withStore([accountLayer()], (store) =>
      Effect.gen(function*() {
        const account = yield* Account.ref("a1")
        assert.deepStrictEqual(yield* account.Get(), { amount: 0, updates: 0 })
        yield* account.Deposit({ amount: 10 })
        assert.isUndefined(yield* store.state.read(key("a1")), "nothing is stored before write")
        assert.strictEqual(yield* account.Save(), 1)
        yield* account.Deposit({ amount: 5 })
        assert.strictEqual(yield* account.Save(), 2)
        assert.deepStrictEqual(yield* store.state.read(key("a1")), { data: `{"amount":15,"updates":2}`, version: 2 })
        assert.isTrue(yield* deactivate("Account", "a1"))
        assert.deepStrictEqual(yield* account.Get(), { amount: 15, updates: 2 })
        assert.strictEqual(yield* account.Version(), 2)
      })))

  it.effect("a write at a stale version fails with StateConflict and overwrites nothing", () =>
    withStore([accountLayer()], (store) =>
      Effect.gen(function*() {
        const account = yield* Account.ref("a2")
        yield* account.Deposit({ amount: 1 })
        yield* account.Save()
        // Another writer (another activation, another silo) writes version 2.
        yield* store.state.write(key("a2"), `{"amount":100,"updates":9}`, 1)
        yield* account.Deposit({ amount: 1 })
        const conflict = yield* Effect.flip(account.Save())
        assert.instanceOf(conflict, StateConflict)
        assert.strictEqual((conflict as StateConflict).expectedVersion, 1)
        assert.strictEqual((conflict as StateConflict).actualVersion, 2)
        assert.deepStrictEqual(yield* store.state.read(key("a2")), { data: `{"amount":100,"updates":9}`, version: 2 })
      })))

  it.effect("a stored record that does not decode fails the activation with StateDecodeError; the bytes stay", () =>
    withStore([accountLayer()], (store) =>
      Effect.gen(function*() {
        yield* store.state.write(key("a3"), `{"amount":"lots"}`, 0)
        const account = yield* Account.ref("a3")
        const error = yield* Effect.flip(account.Get())
        assert.instanceOf(error, ActivationFailed)
        assert.include((error as ActivationFailed).reason, "StateDecodeError")
        assert.include((error as ActivationFailed).reason, "Account/a3/balance")
        assert.deepStrictEqual(yield* store.state.read(key("a3")), { data: `{"amount":"lots"}`, version: 1 })
        const silo = yield* Silo.Silo
        assert.deepStrictEqual(yield* silo.activations("Account"), [], "nothing is left half-activated")
      })))

  it.effect("clear deletes the stored record (version-checked) and resets the value", () =>
    withStore([accountLayer()], (store) =>
      Effect.gen(function*() {
        const account = yield* Account.ref("a4")
        yield* account.Deposit({ amount: 3 })
        yield* account.Save()
        yield* account.Clear()
        assert.isUndefined(yield* store.state.read(key("a4")))
        assert.deepStrictEqual(yield* account.Get(), { amount: 0, updates: 0 })
        assert.strictEqual(yield* account.Version(), 0)
      })))

  it.effect("write-after-turn persists a changed record before the reply, and only then", () =>
    withStore([accountLayer({ writeAfterTurn: true })], (store) =>
      Effect.gen(function*() {
        const account = yield* Account.ref("a5")
        yield* account.Get()
        assert.isUndefined(yield* store.state.read(key("a5")), "an unchanged record is not written")
        yield* account.Deposit({ amount: 7 })
        assert.deepStrictEqual(yield* store.state.read(key("a5")), { data: `{"amount":7,"updates":1}`, version: 1 })
        yield* account.tell.Deposit({ amount: 1 })
        yield* account.Get()
        assert.strictEqual((yield* store.state.read(key("a5")))?.version, 2, "one-way turns write too")
      })))

  it.effect("write-after-turn: a conflicting write fails the turn with ActorDefect and nothing is overwritten", () =>
    withStore([accountLayer({ writeAfterTurn: true })], (store) =>
      Effect.gen(function*() {
        const account = yield* Account.ref("a6")
        yield* account.Deposit({ amount: 1 })
        yield* store.state.write(key("a6"), `{"amount":50,"updates":5}`, 1)
        const error = yield* Effect.flip(account.Deposit({ amount: 1 }))
        assert.instanceOf(error, ActorDefect)
        assert.include((error as ActorDefect).defect, "StateConflict")
        assert.deepStrictEqual(yield* store.state.read(key("a6")), { data: `{"amount":50,"updates":5}`, version: 2 })
      })))

  it.effect("a record bound to a store that is not provided fails the activation", () =>
    withStore([accountLayer({ store: "nowhere" })], () =>
      Effect.gen(function*() {
        const account = yield* Account.ref("a7")
        const error = yield* Effect.flip(account.Get())
        assert.instanceOf(error, ActivationFailed)
        assert.include((error as ActivationFailed).reason, "UnknownStore")
      })))
})

describe("event sourcing", () => {
  const credit = (amount: number) => ({ _tag: "Credited" as const, amount })
  const debit = (amount: number) => ({ _tag: "Debited" as const, amount })

  it.effect("appends atomically and replays the history on activation", () => {
    const replayed: Array<string> = []
    return withStore([ledgerLayer(0, replayed)], (store) =>
      Effect.gen(function*() {
        const ledger = yield* Ledger.ref("l1")
        yield* ledger.Post({ entries: [credit(10), credit(5)] })
        yield* ledger.Post({ entries: [debit(3)] })
        assert.deepStrictEqual(yield* ledger.Read(), { state: { balance: 12, entries: 3 }, sequence: 3 })
        assert.strictEqual(yield* store.journal.lastSequence(ledgerKey("l1")), 3)
        replayed.length = 0
        yield* deactivate("Ledger", "l1")
        assert.deepStrictEqual(yield* ledger.Read(), { state: { balance: 12, entries: 3 }, sequence: 3 })
        assert.deepStrictEqual(replayed, ["Credited", "Credited", "Debited"], "the whole history replayed")
      }))
  })

  it.effect("snapshots every N events; activation is the snapshot plus the events after it", () => {
    const replayed: Array<string> = []
    return withStore([ledgerLayer(4, replayed)], (store) =>
      Effect.gen(function*() {
        const ledger = yield* Ledger.ref("l2")
        for (let i = 0; i < 10; i++) yield* ledger.Post({ entries: [credit(1)] })
        assert.deepStrictEqual(yield* store.journal.loadSnapshot(ledgerKey("l2")), {
          sequence: 8,
          data: `{"balance":8,"entries":8}`
        })
        replayed.length = 0
        yield* deactivate("Ledger", "l2")
        assert.deepStrictEqual(yield* ledger.Read(), { state: { balance: 10, entries: 10 }, sequence: 10 })
        assert.deepStrictEqual(replayed, ["Credited", "Credited"], "only the events after the snapshot replayed")
      }))
  })

  it.effect("an append that conflicts appends nothing and keeps the state", () =>
    withStore([ledgerLayer(0)], (store) =>
      Effect.gen(function*() {
        const ledger = yield* Ledger.ref("l3")
        yield* ledger.Post({ entries: [credit(10)] })
        yield* store.journal.append(ledgerKey("l3"), 1, [`{"_tag":"Debited","amount":1}`])
        const error = yield* Effect.flip(ledger.Post({ entries: [credit(1), credit(2)] }))
        assert.instanceOf(error, JournalConflict)
        assert.deepStrictEqual(yield* ledger.Read(), { state: { balance: 10, entries: 1 }, sequence: 1 })
        assert.strictEqual(yield* store.journal.lastSequence(ledgerKey("l3")), 2)
      })))

  it.effect("an event that no longer decodes fails the activation with StateDecodeError naming it", () =>
    withStore([ledgerLayer(0)], (store) =>
      Effect.gen(function*() {
        yield* store.journal.append(ledgerKey("l4"), 0, [`{"_tag":"Credited","amount":1}`, `{"_tag":"Refunded"}`])
        const ledger = yield* Ledger.ref("l4")
        const error = yield* Effect.flip(ledger.Read())
        assert.instanceOf(error, ActivationFailed)
        assert.include((error as ActivationFailed).reason, "StateDecodeError")
        assert.include((error as ActivationFailed).reason, "Ledger/l4/ledger#2")
        assert.strictEqual(yield* store.journal.lastSequence(ledgerKey("l4")), 2)
      })))
})

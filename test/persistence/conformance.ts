/**
 * The conformance suite every state store and journal provider must pass. A provider's
 * test file calls `conformance("redis", RedisStore.make("redis", ...))`.
 *
 * Keys carry a fresh run id, so runs against a persistent server do not see each other.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import { JournalConflict, StateConflict, type StateKey, Stores } from "../../src/index.ts"

const run = `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
let counter = 0
/** A key no other test (or run) uses. */
const freshKey = (record = "state"): StateKey => ({ type: `Conf-${run}`, id: `actor-${++counter}`, record })

export const conformance = <E>(label: string, store: Effect.Effect<Stores.Store, E, any>) => {
  const layer = Layer.effect(Stores.Stores, Effect.map(store, (s) => Stores.make([s]))) as Layer.Layer<never, E>
  const get = Effect.flatMap(Stores.Stores, (stores) => Effect.orDie(stores.get(label)))

  describe(`${label}: state store conformance`, () => {
    it.layer(layer, { timeout: 30_000 })((it) => {
      it.effect("a missing record reads as undefined", () =>
        Effect.gen(function*() {
          const { state } = yield* get
          assert.isUndefined(yield* state.read(freshKey()))
        }))

      it.effect("write at version 0 creates version 1; each write bumps the version", () =>
        Effect.gen(function*() {
          const { state } = yield* get
          const key = freshKey()
          assert.strictEqual(yield* state.write(key, `{"n":1}`, 0), 1)
          assert.deepStrictEqual(yield* state.read(key), { data: `{"n":1}`, version: 1 })
          assert.strictEqual(yield* state.write(key, `{"n":2}`, 1), 2)
          assert.deepStrictEqual(yield* state.read(key), { data: `{"n":2}`, version: 2 })
        }))

      it.effect("a stale write fails with StateConflict and overwrites nothing", () =>
        Effect.gen(function*() {
          const { state } = yield* get
          const key = freshKey()
          yield* state.write(key, "a", 0)
          yield* state.write(key, "b", 1)
          const stale = yield* Effect.flip(state.write(key, "c", 1))
          assert.instanceOf(stale, StateConflict)
          assert.strictEqual((stale as StateConflict).expectedVersion, 1)
          assert.strictEqual((stale as StateConflict).actualVersion, 2)
          const create = yield* Effect.flip(state.write(key, "d", 0))
          assert.instanceOf(create, StateConflict)
          const ahead = yield* Effect.flip(state.write(key, "e", 7))
          assert.instanceOf(ahead, StateConflict)
          assert.deepStrictEqual(yield* state.read(key), { data: "b", version: 2 })
        }))

      it.effect("of 20 concurrent writers at one version exactly one wins", () =>
        Effect.gen(function*() {
          const { state } = yield* get
          const key = freshKey()
          yield* state.write(key, "start", 0)
          const exits = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => Effect.exit(state.write(key, `writer-${i}`, 1)),
            { concurrency: "unbounded" }
          )
          const winners = exits.flatMap((exit, i) => Exit.isSuccess(exit) ? [i] : [])
          assert.strictEqual(winners.length, 1)
          for (const exit of exits) {
            if (Exit.isFailure(exit)) assert.include(String(exit.cause), "StateConflict")
          }
          assert.deepStrictEqual(yield* state.read(key), { data: `writer-${winners[0]}`, version: 2 })
        }))

      it.effect("clear checks the version, removes the record, and a new one starts at version 1", () =>
        Effect.gen(function*() {
          const { state } = yield* get
          const key = freshKey()
          yield* state.write(key, "x", 0)
          assert.instanceOf(yield* Effect.flip(state.clear(key, 0)), StateConflict)
          assert.deepStrictEqual(yield* state.read(key), { data: "x", version: 1 })
          yield* state.clear(key, 1)
          assert.isUndefined(yield* state.read(key))
          assert.strictEqual(yield* state.write(key, "y", 0), 1)
        }))

      it.effect("type, id and record name each separate records; odd ids round-trip", () =>
        Effect.gen(function*() {
          const { state } = yield* get
          const base = freshKey()
          const keys: Array<StateKey> = [
            base,
            { ...base, record: "other" },
            { ...base, id: `${base.id}:x` },
            { ...base, type: `${base.type}2` },
            { ...base, id: `${base.id}/with:colon/slash "quote" ünïcødé` }
          ]
          for (const [i, key] of keys.entries()) yield* state.write(key, `value-${i}`, 0)
          for (const [i, key] of keys.entries()) {
            assert.deepStrictEqual(yield* state.read(key), { data: `value-${i}`, version: 1 })
          }
        }))

      it.effect("a 100 KB value round-trips", () =>
        Effect.gen(function*() {
          const { state } = yield* get
          const key = freshKey()
          const big = JSON.stringify({ text: "x".repeat(100_000), unicode: "ü€𝄞" })
          yield* state.write(key, big, 0)
          assert.strictEqual((yield* state.read(key))?.data, big)
        }))
    })
  })

  describe(`${label}: journal conformance`, () => {
    it.layer(layer, { timeout: 30_000 })((it) => {
      it.effect("an empty journal has sequence 0 and reads nothing", () =>
        Effect.gen(function*() {
          const { journal } = yield* get
          const key = freshKey("ledger")
          assert.strictEqual(yield* journal.lastSequence(key), 0)
          assert.deepStrictEqual(yield* journal.read(key, 1), [])
          assert.isUndefined(yield* journal.loadSnapshot(key))
        }))

      it.effect("appends at the expected sequence and reads ranges in order", () =>
        Effect.gen(function*() {
          const { journal } = yield* get
          const key = freshKey("ledger")
          assert.strictEqual(yield* journal.append(key, 0, ["e1", "e2", "e3"]), 3)
          assert.strictEqual(yield* journal.append(key, 3, ["e4"]), 4)
          assert.strictEqual(yield* journal.lastSequence(key), 4)
          assert.deepStrictEqual(yield* journal.read(key, 1), [
            { sequence: 1, data: "e1" },
            { sequence: 2, data: "e2" },
            { sequence: 3, data: "e3" },
            { sequence: 4, data: "e4" }
          ])
          assert.deepStrictEqual(yield* journal.read(key, 2, 3), [{ sequence: 2, data: "e2" }, { sequence: 3, data: "e3" }])
          assert.deepStrictEqual(yield* journal.read(key, 5), [])
        }))

      it.effect("an append at a stale sequence fails with JournalConflict and appends nothing", () =>
        Effect.gen(function*() {
          const { journal } = yield* get
          const key = freshKey("ledger")
          yield* journal.append(key, 0, ["a", "b"])
          const conflict = yield* Effect.flip(journal.append(key, 1, ["x", "y"]))
          assert.instanceOf(conflict, JournalConflict)
          assert.strictEqual((conflict as JournalConflict).actualSequence, 2)
          assert.instanceOf(yield* Effect.flip(journal.append(key, 3, ["z"])), JournalConflict)
          assert.deepStrictEqual((yield* journal.read(key, 1)).map((e) => e.data), ["a", "b"])
        }))

      it.effect("of 20 concurrent appends at one sequence exactly one wins, all its events or none", () =>
        Effect.gen(function*() {
          const { journal } = yield* get
          const key = freshKey("ledger")
          yield* journal.append(key, 0, ["start"])
          const exits = yield* Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => Effect.exit(journal.append(key, 1, [`w${i}-1`, `w${i}-2`])),
            { concurrency: "unbounded" }
          )
          const winners = exits.flatMap((exit, i) => Exit.isSuccess(exit) ? [i] : [])
          assert.strictEqual(winners.length, 1)
          assert.deepStrictEqual((yield* journal.read(key, 1)).map((e) => e.data), [
            "start",
            `w${winners[0]}-1`,
            `w${winners[0]}-2`
          ])
        }))

      it.effect("the latest snapshot wins; an older one does not replace it", () =>
        Effect.gen(function*() {
          const { journal } = yield* get
          const key = freshKey("ledger")
          yield* journal.saveSnapshot(key, { sequence: 10, data: "s10" })
          yield* journal.saveSnapshot(key, { sequence: 20, data: "s20" })
          yield* journal.saveSnapshot(key, { sequence: 15, data: "s15" })
          assert.deepStrictEqual(yield* journal.loadSnapshot(key), { sequence: 20, data: "s20" })
        }))

      it.effect("journals of different actors and names are separate", () =>
        Effect.gen(function*() {
          const { journal } = yield* get
          const a = freshKey("ledger")
          const b = { ...a, record: "other" }
          const c = { ...a, id: `${a.id}-c` }
          yield* journal.append(a, 0, ["a1"])
          yield* journal.append(b, 0, ["b1", "b2"])
          assert.strictEqual(yield* journal.lastSequence(a), 1)
          assert.strictEqual(yield* journal.lastSequence(b), 2)
          assert.strictEqual(yield* journal.lastSequence(c), 0)
        }))
    })
  })
}

/**
 * `ActorContext.describe` and `Silo.describe`: an activation that opts in shows a summary of
 * its state to operator tools, read when asked and current; one that did not, or an address
 * not active here, shows nothing; a summary that throws answers its message, and the silo
 * serves on.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Silo } from "../src/index.ts"

const Add = Rpc.make("Add", { payload: { n: Schema.Int }, success: Schema.Int })
const Tally = Actor.make("Tally", [Add])
const Plain = Actor.make("Plain", [Add])
const Broken = Actor.make("Broken", [Add])

const tallyLayer = Tally.toLayer(Effect.gen(function*() {
  const self = yield* ActorContext
  let total = 0
  let calls = 0
  yield* self.describe(() => ({ total, calls }))
  return Tally.of({ Add: ({ n }) => Effect.sync(() => (calls++, total += n)) })
}))
const plainLayer = Plain.toLayer(Effect.sync(() => Plain.of({ Add: ({ n }) => Effect.succeed(n) })))
const brokenLayer = Broken.toLayer(Effect.gen(function*() {
  const self = yield* ActorContext
  yield* self.describe(() => {
    throw new Error("no summary today")
  })
  return Broken.of({ Add: ({ n }) => Effect.succeed(n) })
}))

const layer = Silo.layerTest(Layer.mergeAll(tallyLayer, plainLayer, brokenLayer))

describe("describe", () => {
  it.effect("an activation that opts in shows its current state; others show nothing", () =>
    Effect.gen(function*() {
      const silo = yield* Silo.Silo
      const tally = yield* Tally.ref("t-1")
      assert.isUndefined(yield* silo.describe({ type: "Tally", id: "t-1" }), "not active yet")
      yield* tally.Add({ n: 2 })
      assert.deepStrictEqual(yield* silo.describe({ type: "Tally", id: "t-1" }), { total: 2, calls: 1 })
      yield* tally.Add({ n: 5 })
      assert.deepStrictEqual(yield* silo.describe({ type: "Tally", id: "t-1" }), { total: 7, calls: 2 })

      const plain = yield* Plain.ref("p-1")
      yield* plain.Add({ n: 1 })
      assert.isUndefined(yield* silo.describe({ type: "Plain", id: "p-1" }), "did not opt in")
      assert.isUndefined(yield* silo.describe({ type: "Nobody", id: "x" }))

      const broken = yield* Broken.ref("b-1")
      yield* broken.Add({ n: 1 })
      assert.deepStrictEqual(yield* silo.describe({ type: "Broken", id: "b-1" }), { summaryFailed: "no summary today" })
      assert.strictEqual(yield* broken.Add({ n: 3 }), 3)
    }).pipe(Effect.provide(layer)))
})

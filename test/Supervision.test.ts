import { assert, describe, it } from "@effect/vitest"
import { Effect, Fiber, Schedule } from "effect"
import { TestClock } from "effect/testing"
import { Silo, Supervisor } from "../src/index.ts"
import { Boss, bossLayer, Journal } from "./fixtures/Workers.ts"

describe("supervision smoke", () => {
  it.effect("one-for-one restart after the backoff delay; queued messages reach the new incarnation", () => {
    const journal = new Journal()
    const strategy = Supervisor.oneForOne({ backoff: Schedule.spaced("1 second") })
    return Effect.gen(function*() {
      const boss = yield* Boss.ref("b")
      yield* boss.Spawn({ names: ["w1", "w2"] })
      assert.strictEqual(yield* boss.Ask({ name: "w1", n: 5 }), 5)
      assert.strictEqual(yield* boss.Ask({ name: "w2", n: 7 }), 7)
      yield* boss.CrashChild({ name: "w1" })
      const queued = yield* Effect.forkChild(boss.Ask({ name: "w1", n: 1 }))
      yield* TestClock.adjust("999 millis")
      assert.isUndefined(queued.pollUnsafe())
      yield* TestClock.adjust("1 millis")
      assert.strictEqual(yield* Fiber.join(queued), 1)
      assert.strictEqual(yield* boss.Ask({ name: "w2", n: 1 }), 8)
      assert.deepStrictEqual(journal.events, ["start:w1#1", "start:w2#1", "stop:w1", "start:w1#2"])
    }).pipe(Effect.provide(Silo.layerTest(bossLayer(journal, { supervisor: strategy }))))
  })
})

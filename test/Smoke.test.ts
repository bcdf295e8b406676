import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import { TestClock } from "effect/testing"
import { Silo } from "../src/index.ts"
import { Counter, counterLayer, Lifecycle } from "./fixtures/Counter.ts"

describe("smoke", () => {
  const lifecycle = new Lifecycle()
  it.layer(Silo.layerTest(counterLayer(lifecycle)))((it) => {
    it.effect("asks, then passivates after the idle timeout on the TestClock", () =>
      Effect.gen(function*() {
        const counter = yield* Counter.ref("smoke-1")
        assert.strictEqual(yield* counter.Increment({ by: 2 }), 2)
        const silo = yield* Silo.Silo
        assert.strictEqual((yield* silo.activations("Counter")).length, 1)
        yield* TestClock.adjust("30 seconds")
        assert.strictEqual((yield* silo.activations("Counter")).length, 1)
        yield* TestClock.adjust("1 minute")
        assert.strictEqual((yield* silo.activations("Counter")).length, 0)
        assert.strictEqual(lifecycle.deactivated.get("smoke-1"), 1)
      }))
  })
})

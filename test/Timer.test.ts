/**
 * Volatile timers (issue part F), all on the TestClock: ticks run as turns of the
 * activation, never beside another turn, never pile up, stop with the timer or the
 * activation, and count as activity only with keepAlive.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { TestClock } from "effect/testing"
import { Silo } from "../src/index.ts"
import { depthOf, release, settle, waitUntil } from "./fixtures/MailboxProbe.ts"
import { type TickerConfig, Ticker, tickerLayer, TickerState } from "./fixtures/TimerTicker.ts"

const address = { type: "Ticker", id: "t" }

const withTicker = <A, E>(
  body: (state: TickerState) => Effect.Effect<A, E, Silo.Silo>,
  config?: TickerConfig
): Effect.Effect<A, E> => {
  const state = new TickerState()
  return Effect.provide(
    release(state.abort, body(state)),
    Silo.layerTest(tickerLayer(state, config))
  )
}

/** Activates the ticker with a no-op turn. */
const activate = Effect.flatMap(Ticker.ref("t"), (ticker) => ticker.Hold({ n: 0 }))

const activeCount = Effect.flatMap(Silo.Silo, (silo) => Effect.map(silo.activations("Ticker"), (rows) => rows.length))

const depthIs = (n: number) => Effect.map(depthOf("Ticker", "t"), (depth) => depth === n)

describe("periodic timers", () => {
  it.effect("a timer started at activation ticks once per period (dueTime = period)", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          yield* activate
          assert.strictEqual(state.count("tick"), 0)
          yield* TestClock.adjust("999 millis")
          assert.strictEqual(state.count("tick"), 0)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(state.count("tick"), 1)
          yield* TestClock.adjust("9 seconds")
          assert.strictEqual(state.count("tick"), 10)
          assert.strictEqual(state.violations, 0)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("exactly 10 ticks when the clock moves 10 periods one at a time", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          yield* activate
          for (let i = 1; i <= 10; i++) {
            yield* TestClock.adjust("1 second")
            assert.strictEqual(state.count("tick"), i)
          }
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("the first tick comes at dueTime when it differs from the period", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          yield* activate
          yield* TestClock.adjust("4999 millis")
          assert.strictEqual(state.count("tick"), 0)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(state.count("tick"), 1)
          yield* TestClock.adjust("1999 millis")
          assert.strictEqual(state.count("tick"), 1)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(state.count("tick"), 2)
          yield* TestClock.adjust("2 seconds")
          assert.strictEqual(state.count("tick"), 3)
        }),
      { timers: [{ name: "tick", options: { dueTime: "5 seconds", period: "2 seconds" } }] }
    ))

  it.effect("a failing tick does not stop the timer", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          state.tickHook = (_, count) => count === 1 ? Effect.die(new Error("tick failed")) : Effect.void
          yield* activate
          yield* TestClock.adjust("3 seconds")
          assert.strictEqual(state.count("tick"), 3)
          assert.strictEqual(state.inside, 0)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))
})

describe("one-shot timers", () => {
  it.effect("a timer without a period ticks once, at dueTime", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          yield* activate
          yield* TestClock.adjust("2999 millis")
          assert.strictEqual(state.count("once"), 0)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(state.count("once"), 1)
          yield* TestClock.adjust("1 minute")
          assert.strictEqual(state.count("once"), 1)
          // A fired one-shot timer is gone.
          const ticker = yield* Ticker.ref("t")
          assert.isFalse(yield* ticker.CancelTimer({ name: "once" }))
        }),
      { timers: [{ name: "once", options: { dueTime: "3 seconds" } }], options: { idleTimeout: "never" } }
    ))

  it.effect("a timer without dueTime or period ticks once, right away", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          yield* activate
          yield* waitUntil("the immediate tick", () => state.count("now") === 1)
          yield* TestClock.adjust("1 minute")
          assert.strictEqual(state.count("now"), 1)
        }),
      { timers: [{ name: "now" }], options: { idleTimeout: "never" } }
    ))
})

describe("ticks are turns", () => {
  it.effect("a tick never overlaps a running turn: it waits behind an exclusive turn", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          state.holdHook = (n) => n === 1 ? Deferred.await(gate) : Effect.void
          yield* activate
          const ticker = yield* Ticker.ref("t")
          const hold = yield* Effect.forkChild(ticker.Hold({ n: 1 }))
          yield* waitUntil("the turn is running", () => state.inside === 1)
          yield* TestClock.adjust("1 second")
          assert.strictEqual(state.count("tick"), 0)
          assert.isTrue(yield* depthIs(1), "the tick waits in the mailbox")
          yield* Deferred.succeed(gate, undefined)
          assert.strictEqual(yield* Fiber.join(hold), 1)
          yield* waitUntil("the tick ran", () => state.count("tick") === 1)
          assert.strictEqual(state.violations, 0)
          assert.deepStrictEqual(state.log.slice(-4), ["enter:Hold:1", "exit:Hold:1", "enter:tick:tick", "exit:tick:tick"])
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("ticks do not pile up behind a slow tick", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          state.tickHook = (_, count) => count === 1 ? Deferred.await(gate) : Effect.void
          yield* activate
          yield* TestClock.adjust("1 second")
          assert.strictEqual(state.count("tick"), 1)
          assert.strictEqual(state.inside, 1)
          yield* TestClock.adjust("10 seconds")
          assert.strictEqual(state.count("tick"), 1)
          assert.isTrue(yield* depthIs(0), "no ticks queued behind the slow one")
          yield* Deferred.succeed(gate, undefined)
          yield* waitUntil("the slow tick ended", () => state.inside === 0)
          yield* settle()
          // The next tick is one period after the slow one ended, not a burst of missed ones.
          assert.strictEqual(state.count("tick"), 1)
          yield* TestClock.adjust("999 millis")
          assert.strictEqual(state.count("tick"), 1)
          yield* TestClock.adjust("1 millis")
          assert.strictEqual(state.count("tick"), 2)
          assert.strictEqual(state.violations, 0)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("ticks do not pile up behind a long turn: one tick after it, then one per period", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          state.holdHook = (n) => n === 1 ? Deferred.await(gate) : Effect.void
          yield* activate
          const ticker = yield* Ticker.ref("t")
          const hold = yield* Effect.forkChild(ticker.Hold({ n: 1 }))
          yield* waitUntil("the turn is running", () => state.inside === 1)
          yield* TestClock.adjust("10 seconds")
          assert.isTrue(yield* depthIs(1), "a single tick waits")
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.join(hold)
          yield* waitUntil("the waiting tick ran", () => state.count("tick") === 1)
          yield* settle()
          assert.strictEqual(state.count("tick"), 1)
          yield* TestClock.adjust("1 second")
          assert.strictEqual(state.count("tick"), 2)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))
})

describe("stopping timers", () => {
  it.effect("cancelTimer stops the timer: true, then false", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          const ticker = yield* Ticker.ref("t")
          yield* activate
          yield* TestClock.adjust("3 seconds")
          assert.strictEqual(state.count("tick"), 3)
          assert.isTrue(yield* ticker.CancelTimer({ name: "tick" }))
          assert.isFalse(yield* ticker.CancelTimer({ name: "tick" }))
          yield* TestClock.adjust("10 seconds")
          assert.strictEqual(state.count("tick"), 3)
          assert.isFalse(yield* ticker.CancelTimer({ name: "never-started" }))
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("a timer can cancel itself from its own tick", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          state.tickHook = (name, count) =>
            count === 2 ? Effect.asVoid(state.context!.cancelTimer(name)) : Effect.void
          yield* activate
          yield* TestClock.adjust("10 seconds")
          assert.strictEqual(state.count("tick"), 2)
          assert.isFalse(yield* state.context!.cancelTimer("tick"))
          assert.strictEqual(state.inside, 0)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("cancelling a timer withdraws a tick still waiting in the mailbox", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          state.holdHook = (n) => n === 1 ? Deferred.await(gate) : Effect.void
          yield* activate
          const ticker = yield* Ticker.ref("t")
          const hold = yield* Effect.forkChild(ticker.Hold({ n: 1 }))
          yield* waitUntil("the turn is running", () => state.inside === 1)
          yield* TestClock.adjust("1 second")
          assert.isTrue(yield* depthIs(1))
          assert.isTrue(yield* state.context!.cancelTimer("tick"))
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.join(hold)
          yield* settle()
          yield* TestClock.adjust("10 seconds")
          assert.strictEqual(state.count("tick"), 0)
          assert.isTrue(yield* depthIs(0))
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("timers stop when the activation deactivates", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          const silo = yield* Silo.Silo
          yield* activate
          yield* TestClock.adjust("3 seconds")
          assert.strictEqual(state.count("tick"), 3)
          assert.isTrue(yield* silo.deactivate(address))
          assert.strictEqual(state.deactivations, 1)
          assert.strictEqual(yield* activeCount, 0)
          yield* TestClock.adjust("10 seconds")
          assert.strictEqual(state.count("tick"), 3)
          assert.strictEqual(state.activations, 1, "no tick re-activated the actor")
          assert.strictEqual(yield* activeCount, 0)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("a tick waiting in the mailbox when the activation deactivates never runs", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          const silo = yield* Silo.Silo
          const gate = yield* Deferred.make<void>()
          state.holdHook = (n) => n === 1 ? Deferred.await(gate) : Effect.void
          yield* activate
          const ticker = yield* Ticker.ref("t")
          const hold = yield* Effect.forkChild(ticker.Hold({ n: 1 }))
          yield* waitUntil("the turn is running", () => state.inside === 1)
          yield* TestClock.adjust("1 second")
          assert.isTrue(yield* depthIs(1))
          const deactivation = yield* Effect.forkChild(silo.deactivate(address))
          yield* settle()
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.join(hold)
          assert.isTrue(yield* Fiber.join(deactivation))
          yield* settle()
          yield* TestClock.adjust("10 seconds")
          assert.strictEqual(state.count("tick"), 0)
          assert.strictEqual(state.activations, 1)
          assert.strictEqual(state.deactivations, 1)
          assert.strictEqual(yield* activeCount, 0)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))
})

describe("timers and idle passivation", () => {
  it.effect("keepAlive: false ticks do not prevent idle passivation, and stop with it", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          yield* activate
          yield* TestClock.adjust("50 seconds")
          assert.strictEqual(yield* activeCount, 1)
          assert.strictEqual(state.count("tick"), 50)
          yield* TestClock.adjust("70 seconds")
          assert.strictEqual(yield* activeCount, 0)
          assert.strictEqual(state.deactivations, 1)
          const ticks = state.count("tick")
          assert.isBelow(ticks, 120)
          yield* TestClock.adjust("1 minute")
          assert.strictEqual(state.count("tick"), ticks)
          assert.strictEqual(state.activations, 1)
        }),
      { timers: [{ name: "tick", options: { period: "1 second", keepAlive: false } }] }
    ))

  it.effect("the default is keepAlive: false", () =>
    withTicker(
      () =>
        Effect.gen(function*() {
          yield* activate
          yield* TestClock.adjust("2 minutes")
          assert.strictEqual(yield* activeCount, 0)
        }),
      { timers: [{ name: "tick", options: { period: "1 second" } }] }
    ))

  it.effect("keepAlive: true ticks keep the activation from idle passivation", () =>
    withTicker(
      (state) =>
        Effect.gen(function*() {
          yield* activate
          yield* TestClock.adjust("5 minutes")
          assert.strictEqual(yield* activeCount, 1)
          assert.strictEqual(state.deactivations, 0)
          assert.strictEqual(state.count("tick"), 300)
        }),
      { timers: [{ name: "tick", options: { period: "1 second", keepAlive: true } }] }
    ))
})

describe("timers started from a handler", () => {
  it.effect("a periodic timer started from a handler ticks", () =>
    withTicker((state) =>
      Effect.gen(function*() {
        const ticker = yield* Ticker.ref("t")
        yield* ticker.StartTimer({ name: "h", periodMillis: 1000 })
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual(state.count("h"), 3)
        assert.isTrue(yield* ticker.CancelTimer({ name: "h" }))
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual(state.count("h"), 3)
      })
    ))

  it.effect("a one-shot timer started from a handler ticks once at its dueTime", () =>
    withTicker((state) =>
      Effect.gen(function*() {
        const ticker = yield* Ticker.ref("t")
        yield* ticker.StartTimer({ name: "once", dueMillis: 500 })
        yield* TestClock.adjust("499 millis")
        assert.strictEqual(state.count("once"), 0)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(state.count("once"), 1)
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(state.count("once"), 1)
      })
    ))

  it.effect("starting a timer with the same name replaces it", () =>
    withTicker((state) =>
      Effect.gen(function*() {
        const ticker = yield* Ticker.ref("t")
        yield* ticker.StartTimer({ name: "r", periodMillis: 1000 })
        yield* TestClock.adjust("2 seconds")
        assert.strictEqual(state.count("r"), 2)
        yield* ticker.StartTimer({ name: "r", periodMillis: 5000 })
        yield* TestClock.adjust("4999 millis")
        assert.strictEqual(state.count("r"), 2)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(state.count("r"), 3)
        assert.isTrue(yield* ticker.CancelTimer({ name: "r" }))
        assert.isFalse(yield* ticker.CancelTimer({ name: "r" }))
      })
    ))
})

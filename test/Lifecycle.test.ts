/**
 * Virtual activation and lifecycle: activation on first message (exactly once under
 * concurrency), activation failures, idle passivation on the TestClock, deactivation from
 * inside and outside, handoff of messages sent during deactivation, silo shutdown, and
 * introspection.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Duration, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { ActivationFailed, ActorUnavailable, Silo } from "../src/index.ts"
import { Counter, counterLayer, Lifecycle } from "./fixtures/Counter.ts"
import {
  Flaky,
  FlakyControl,
  flakyLayer,
  Probe,
  ProbeControl,
  probeLayer
} from "./fixtures/LifecycleFixtures.ts"

// ---------------------------------------------------------------------------
// Helpers

/**
 * Lets other fibers run until `condition` holds. No clock is involved: it only yields,
 * and gives up (failing the test) after a bounded number of yields.
 */
const yieldUntil = <R>(label: string, condition: Effect.Effect<boolean, never, R>) =>
  Effect.gen(function*() {
    for (let i = 0; i < 10_000; i++) {
      if (yield* condition) return
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`condition never held: ${label}`))
  })

const rows = (type?: string) => Effect.flatMap(Silo.Silo, (silo) => silo.activations(type))

const ids = (type?: string) =>
  Effect.map(rows(type), (all) => all.map((row) => `${row.address.type}/${row.address.id}`).sort())

const depthOf = (type: string, id: string) =>
  Effect.map(rows(type), (all) => all.find((row) => row.address.id === id)?.mailboxDepth ?? -1)

const count = (map: Map<string, number>, id: string) => map.get(id) ?? 0

/**
 * Opens every gate of a Probe when the test body ends, pass or fail: a turn or finalizer
 * left waiting would make the silo's shutdown wait on the TestClock, which never moves.
 */
const unblock = (control: ProbeControl) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.ensuring(self, Effect.andThen(control.release.open, control.finalizerGate.open))

/** A silo with a given config hosting `impls`, as the brief prescribes. */
const siloWith = (config: Silo.SiloConfig, ...impls: ReadonlyArray<Layer.Layer<never, never, Silo.Silo>>) =>
  Layer.mergeAll(...(impls as [Layer.Layer<never, never, Silo.Silo>])).pipe(
    Layer.provideMerge(Silo.layer(config))
  )

describe("Lifecycle", () => {
  // -------------------------------------------------------------------------
  describe("virtual activation", () => {
    it.effect("the first message activates; later ones reuse the activation", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        assert.deepStrictEqual(yield* ids(), [])
        const counter = yield* Counter.ref("first-1")
        // A ref alone does not activate.
        assert.deepStrictEqual(yield* ids(), [])
        assert.strictEqual(count(lifecycle.activated, "first-1"), 0)
        yield* counter.Increment({ by: 1 })
        assert.deepStrictEqual(yield* ids(), ["Counter/first-1"])
        assert.strictEqual(count(lifecycle.activated, "first-1"), 1)
        yield* counter.Increment({ by: 1 })
        const again = yield* Counter.ref("first-1")
        assert.strictEqual(yield* again.Get(), 2)
        assert.strictEqual(count(lifecycle.activated, "first-1"), 1)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
    })

    it.effect("1,000 concurrent first calls to one fresh id make exactly one activation and all succeed", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("herd-1")
        const results = yield* Effect.all(
          Array.from({ length: 1000 }, () => counter.Increment({ by: 1 })),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(count(lifecycle.activated, "herd-1"), 1)
        assert.strictEqual(results.length, 1000)
        const sorted = [...results].sort((a, b) => a - b)
        assert.deepStrictEqual(sorted, Array.from({ length: 1000 }, (_, i) => i + 1))
        assert.strictEqual(new Set(results).size, 1000)
        assert.strictEqual(yield* counter.Get(), 1000)
        assert.deepStrictEqual(yield* ids(), ["Counter/herd-1"])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
    })

    it.effect("1,000 concurrent first calls while a slow activation effect runs: one activation, all succeed", () => {
      const control = new ProbeControl()
      control.activationGate.closeUnsafe()
      return Effect.gen(function*() {
        const probe = yield* Probe.ref("herd-2")
        const calls = yield* Effect.forkChild(
          Effect.all(Array.from({ length: 1000 }, () => probe.Add({ n: 1 })), { concurrency: "unbounded" })
        )
        yield* yieldUntil(
          "all 1,000 callers wait on the activation",
          Effect.map(rows("Probe"), (r) => r.length === 1 && r[0].mailboxDepth + r[0].runningTurns === 1000)
        )
        assert.strictEqual(control.activated("herd-2"), 1)
        yield* control.activationGate.open
        const results = yield* Fiber.join(calls)
        assert.strictEqual(control.activated("herd-2"), 1)
        assert.deepStrictEqual([...results].sort((a, b) => a - b), Array.from({ length: 1000 }, (_, i) => i + 1))
        assert.strictEqual(yield* probe.Get(), 1000)
        assert.deepStrictEqual(yield* ids(), ["Probe/herd-2"])
      }).pipe(
        Effect.ensuring(control.activationGate.open),
        unblock(control),
        Effect.provide(Silo.layerTest(probeLayer(control)))
      )
    })

    it.effect("the activation effect and its finalizers run exactly once per activation", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const counter = yield* Counter.ref("once-1")
        const address = { type: "Counter", id: "once-1" }
        yield* counter.Increment({ by: 3 })
        yield* counter.Increment({ by: 3 })
        assert.strictEqual(count(lifecycle.activated, "once-1"), 1)
        assert.strictEqual(count(lifecycle.deactivated, "once-1"), 0)

        assert.isTrue(yield* silo.deactivate(address))
        assert.strictEqual(count(lifecycle.activated, "once-1"), 1)
        assert.strictEqual(count(lifecycle.deactivated, "once-1"), 1)

        // Activate again: a new activation with fresh state.
        assert.strictEqual(yield* counter.Increment({ by: 1 }), 1)
        assert.strictEqual(count(lifecycle.activated, "once-1"), 2)
        assert.strictEqual(count(lifecycle.deactivated, "once-1"), 1)

        assert.isTrue(yield* silo.deactivate(address))
        assert.strictEqual(count(lifecycle.activated, "once-1"), 2)
        assert.strictEqual(count(lifecycle.deactivated, "once-1"), 2)
        assert.deepStrictEqual(yield* ids(), [])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
    })
  })

  // -------------------------------------------------------------------------
  describe("activation failure", () => {
    const failingActivation = (mode: "fail" | "die" | "missing") => {
      const control = new FlakyControl(1, mode)
      control.gate.closeUnsafe()
      return Effect.gen(function*() {
        const flaky = yield* Flaky.ref("flaky-1")
        // Five concurrent callers; the first starts the activation effect, which waits at
        // the gate, so the other four queue behind it.
        const callers = yield* Effect.forkChild(
          Effect.all(
            [
              Effect.exit(flaky.Attempt()),
              Effect.exit(flaky.Echo({ text: "a" })),
              Effect.exit(flaky.Attempt()),
              Effect.exit(flaky.Echo({ text: "b" })),
              Effect.exit(flaky.Attempt())
            ],
            { concurrency: "unbounded" }
          )
        )
        yield* control.building.await
        // Whether the first caller's message counts as queued or as running while the
        // activation effect runs is an implementation detail; all five are accounted for.
        yield* yieldUntil(
          "all five callers wait on the activation",
          Effect.map(rows("Flaky"), (r) => r.length === 1 && r[0].mailboxDepth + r[0].runningTurns === 5)
        )
        const listed = yield* rows("Flaky")
        assert.strictEqual(listed.length, 1)
        assert.strictEqual(listed[0].state, "activating")

        yield* control.gate.open
        const exits: ReadonlyArray<Exit.Exit<unknown, unknown>> = yield* Fiber.join(callers)

        assert.strictEqual(control.attempts, 1)
        for (const exit of exits) {
          assert.isTrue(Exit.isFailure(exit), "every waiting call fails")
          const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
          assert.isDefined(error, "the failure is typed, not a defect")
          const failure = (error as { error: unknown }).error
          assert.instanceOf(failure, ActivationFailed)
          assert.deepStrictEqual((failure as ActivationFailed).address, { type: "Flaky", id: "flaky-1" })
          assert.isTrue((failure as ActivationFailed).reason.length > 0)
        }
        // No entry is left, and the partial build's finalizer ran exactly once.
        assert.deepStrictEqual(yield* ids(), [])
        assert.strictEqual(control.finalizers, 1)

        // The next call activates successfully.
        assert.strictEqual(yield* flaky.Attempt(), 2)
        assert.strictEqual(yield* flaky.Echo({ text: "ok" }), "ok")
        assert.strictEqual(control.attempts, 2)
        assert.strictEqual(control.finalizers, 1)
        assert.deepStrictEqual(yield* ids(), ["Flaky/flaky-1"])
        return exits
      }).pipe(
        // Never leave the activation effect waiting (the silo's shutdown would wait on it).
        Effect.ensuring(control.gate.open),
        Effect.provide(Silo.layerTest(flakyLayer(control)))
      )
    }

    it.effect("a failing activation effect fails every waiting call with ActivationFailed and leaves nothing behind", () =>
      Effect.gen(function*() {
        const exits = yield* failingActivation("fail")
        const first = Exit.isFailure(exits[0]) ? exits[0].cause.reasons[0] : undefined
        const reason = ((first as { error: ActivationFailed }).error).reason
        assert.include(reason, "BuildFailed")
      }))

    it.effect("an activation effect that dies behaves the same", () =>
      Effect.gen(function*() {
        const exits = yield* failingActivation("die")
        const first = Exit.isFailure(exits[0]) ? exits[0].cause.reasons[0] : undefined
        assert.include(((first as { error: ActivationFailed }).error).reason, "build attempt 1 died")
      }))

    it.effect("an activation effect returning handlers without a tag fails with ActivationFailed", () =>
      Effect.gen(function*() {
        const exits = yield* failingActivation("missing")
        const first = Exit.isFailure(exits[0]) ? exits[0].cause.reasons[0] : undefined
        assert.include(((first as { error: ActivationFailed }).error).reason, "Echo")
      }))

    it.effect("a single caller gets ActivationFailed, then the next call succeeds", () => {
      const control = new FlakyControl(2, "fail")
      return Effect.gen(function*() {
        const flaky = yield* Flaky.ref("flaky-2")
        const first = yield* Effect.flip(flaky.Attempt())
        assert.instanceOf(first, ActivationFailed)
        assert.deepStrictEqual(yield* ids(), [])
        const second = yield* Effect.flip(flaky.Attempt())
        assert.instanceOf(second, ActivationFailed)
        assert.strictEqual(control.finalizers, 2)
        assert.strictEqual(yield* flaky.Attempt(), 3)
        assert.strictEqual(control.finalizers, 2)
      }).pipe(Effect.provide(Silo.layerTest(flakyLayer(control))))
    })

    it.effect("interrupting the caller that triggered the activation does not fail the callers queued behind it", () => {
      const control = new FlakyControl(0, "fail")
      control.gate.closeUnsafe()
      return Effect.gen(function*() {
        const flaky = yield* Flaky.ref("flaky-4")
        const first = yield* Effect.forkChild(flaky.Attempt())
        yield* control.building.await
        const second = yield* Effect.forkChild(flaky.Echo({ text: "still here" }))
        yield* yieldUntil(
          "the second caller waits on the activation",
          Effect.map(rows("Flaky"), (r) => r.length === 1 && r[0].mailboxDepth + r[0].runningTurns === 2)
        )
        const interrupting = yield* Effect.forkChild(Fiber.interrupt(first))
        yield* control.gate.open
        yield* Fiber.join(interrupting)
        const firstExit = yield* Fiber.await(first)
        assert.isTrue(Exit.isFailure(firstExit))
        assert.strictEqual(yield* Fiber.join(second), "still here")
        assert.strictEqual(control.attempts, 1)
        assert.strictEqual(yield* flaky.Attempt(), 1)
        const listed = yield* rows("Flaky")
        assert.strictEqual(listed.length, 1)
        assert.strictEqual(listed[0].state, "active")
        assert.strictEqual(listed[0].runningTurns, 0)
      }).pipe(Effect.ensuring(control.gate.open), Effect.provide(Silo.layerTest(flakyLayer(control))))
    })

    it.effect("a tell that triggers a failing activation leaves no entry; the next call activates", () => {
      const control = new FlakyControl(1, "die")
      return Effect.gen(function*() {
        const flaky = yield* Flaky.ref("flaky-3")
        yield* flaky.tell.Echo({ text: "lost" })
        yield* yieldUntil("the activation attempt ended", Effect.sync(() => control.finalizers === 1))
        yield* yieldUntil("no entry is left", Effect.map(ids(), (all) => all.length === 0))
        assert.strictEqual(yield* flaky.Attempt(), 2)
      }).pipe(Effect.provide(Silo.layerTest(flakyLayer(control))))
    })
  })

  // -------------------------------------------------------------------------
  describe("idle passivation", () => {
    it.effect("default: not passivated at 50 s (nor 59 s), passivated by 1 min + 10 s", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("idle-1")
        yield* counter.Increment({ by: 1 })
        yield* TestClock.adjust("50 seconds")
        assert.deepStrictEqual(yield* ids(), ["Counter/idle-1"])
        yield* TestClock.adjust("9 seconds")
        assert.deepStrictEqual(yield* ids(), ["Counter/idle-1"])
        assert.strictEqual(count(lifecycle.deactivated, "idle-1"), 0)
        yield* TestClock.adjust("11 seconds")
        assert.deepStrictEqual(yield* ids(), [])
        assert.strictEqual(count(lifecycle.deactivated, "idle-1"), 1)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
    })

    it.effect("never passivated before idleTimeout since the last turn, even when the turn fell between sweeps", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("idle-mid")
        // The sweeps run at 10 s, 20 s, ...; the last turn lands half-way between two.
        yield* TestClock.adjust("5 seconds")
        yield* counter.Increment({ by: 1 })
        yield* TestClock.adjust("59 seconds") // t = 64 s: idle for 59 s
        assert.deepStrictEqual(yield* ids(), ["Counter/idle-mid"])
        assert.strictEqual(count(lifecycle.deactivated, "idle-mid"), 0)
        yield* TestClock.adjust("11 seconds") // t = 75 s: idle for 1 min + 10 s
        assert.deepStrictEqual(yield* ids(), [])
        assert.strictEqual(count(lifecycle.deactivated, "idle-mid"), 1)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
    })

    // (interval, idleTimeout, offset of the last turn from the silo's start)
    it.effect.each([
      ["10 seconds", "15 seconds", 0],
      ["10 seconds", "15 seconds", 3_700],
      ["10 seconds", "15 seconds", 9_900],
      ["10 seconds", "1 second", 0],
      ["10 seconds", "1 second", 6_300],
      ["10 seconds", "1 minute", 2_500],
      ["1 second", "5 seconds", 700]
    ] as const)("interval %s, idleTimeout %s, last turn at +%d ms: passivated between idleTimeout and idleTimeout + interval after it", ([interval, idle, offset]) => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("bound")
        yield* TestClock.adjust(offset)
        yield* counter.Increment({ by: 1 })
        const idleMillis = Duration.toMillis(idle)
        const bound = idleMillis + Duration.toMillis(interval)
        let passivatedAfter: number | undefined
        for (let waited = 0; waited <= bound + 1_000 && passivatedAfter === undefined; waited += 100) {
          if (count(lifecycle.deactivated, "bound") > 0) passivatedAfter = waited
          else yield* TestClock.adjust(100)
        }
        assert.isDefined(passivatedAfter, "passivated at all")
        assert.isAtLeast(passivatedAfter!, idleMillis)
        assert.isAtMost(passivatedAfter!, bound)
      }).pipe(Effect.provide(siloWith({ passivationInterval: interval }, counterLayer(lifecycle, { idleTimeout: idle }))))
    })

    it.effect("activity resets the idle countdown", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("idle-2")
        yield* counter.Increment({ by: 1 })
        for (let i = 0; i < 5; i++) {
          yield* TestClock.adjust("40 seconds")
          yield* counter.Increment({ by: 1 })
        }
        // 200 s since the first call, 0 s since the last: still there.
        assert.deepStrictEqual(yield* ids(), ["Counter/idle-2"])
        assert.strictEqual(count(lifecycle.deactivated, "idle-2"), 0)
        yield* TestClock.adjust("70 seconds")
        assert.deepStrictEqual(yield* ids(), [])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
    })

    it.effect("per-type idleTimeout 5 s with a 1 s passivation interval", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("idle-3")
        yield* counter.Increment({ by: 1 })
        yield* TestClock.adjust("4 seconds")
        assert.deepStrictEqual(yield* ids(), ["Counter/idle-3"])
        yield* TestClock.adjust("2 seconds")
        assert.deepStrictEqual(yield* ids(), [])
        assert.strictEqual(count(lifecycle.deactivated, "idle-3"), 1)
      }).pipe(
        Effect.provide(
          Layer.mergeAll(counterLayer(lifecycle, { idleTimeout: "5 seconds" })).pipe(
            Layer.provideMerge(Silo.layer({ passivationInterval: "1 second" }))
          )
        )
      )
    })

    it.effect("per-type idleTimeout overrides only its own type", () => {
      const lifecycle = new Lifecycle()
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("short")
        const probe = yield* Probe.ref("long")
        yield* counter.Increment({ by: 1 })
        yield* probe.Add({ n: 1 })
        yield* TestClock.adjust("10 seconds")
        // The Counter (5 s) is gone; the Probe (default 1 minute) stays.
        assert.deepStrictEqual(yield* ids(), ["Probe/long"])
        yield* TestClock.adjust("1 minute")
        assert.deepStrictEqual(yield* ids(), [])
      }).pipe(
        Effect.provide(
          siloWith(
            { passivationInterval: "1 second" },
            counterLayer(lifecycle, { idleTimeout: "5 seconds" }),
            probeLayer(control)
          )
        )
      )
    })

    it.effect("idleTimeout \"never\" keeps the activation", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const counter = yield* Counter.ref("forever-1")
        yield* counter.Increment({ by: 1 })
        yield* TestClock.adjust("1 hour")
        yield* TestClock.adjust("1 day")
        assert.deepStrictEqual(yield* ids(), ["Counter/forever-1"])
        assert.strictEqual(count(lifecycle.deactivated, "forever-1"), 0)
        assert.strictEqual(yield* counter.Get(), 1)
        assert.strictEqual(count(lifecycle.activated, "forever-1"), 1)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle, { idleTimeout: "never" }))))
    })

    it.effect("keepAlive(true) from a handler keeps the activation until keepAlive(false)", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const probe = yield* Probe.ref("kept-1")
        yield* probe.Add({ n: 7 })
        yield* probe.KeepAlive({ on: true })
        yield* TestClock.adjust("10 minutes")
        assert.deepStrictEqual(yield* ids(), ["Probe/kept-1"])
        assert.strictEqual(control.deactivated("kept-1"), 0)
        yield* probe.KeepAlive({ on: false })
        yield* TestClock.adjust("50 seconds")
        assert.deepStrictEqual(yield* ids(), ["Probe/kept-1"])
        yield* TestClock.adjust("20 seconds")
        assert.deepStrictEqual(yield* ids(), [])
        assert.strictEqual(control.deactivated("kept-1"), 1)
        assert.strictEqual(control.activated("kept-1"), 1)
      }).pipe(unblock(control), Effect.provide(Silo.layerTest(probeLayer(control))))
    })

    it.effect("a busy activation (running turn) is not passivated", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const probe = yield* Probe.ref("busy-1")
        const held = yield* Effect.forkChild(probe.Hold())
        yield* control.holding.await
        yield* TestClock.adjust("5 minutes")
        assert.deepStrictEqual(yield* ids(), ["Probe/busy-1"])
        assert.strictEqual(control.deactivated("busy-1"), 0)
        yield* control.release.open
        assert.strictEqual(yield* Fiber.join(held), 0)
        yield* TestClock.adjust("70 seconds")
        assert.deepStrictEqual(yield* ids(), [])
      }).pipe(unblock(control), Effect.provide(Silo.layerTest(probeLayer(control))))
    })
  })

  // -------------------------------------------------------------------------
  describe("deactivation", () => {
    it.effect("deactivateOnIdle from a handler: the turn replies, then the activation deactivates", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const probe = yield* Probe.ref("leave-1")
        yield* probe.Add({ n: 5 })
        const reply = yield* probe.Leave()
        assert.strictEqual(reply, 5)
        // Then the finalizer runs, without any further message or clock movement.
        yield* control.stopped("leave-1").await
        assert.strictEqual(control.deactivated("leave-1"), 1)
        yield* yieldUntil("the entry is removed", Effect.map(ids(), (all) => all.length === 0))
        // The next call makes a new activation with fresh state.
        assert.strictEqual(yield* probe.Get(), 0)
        assert.strictEqual(control.activated("leave-1"), 2)
        assert.strictEqual(control.deactivated("leave-1"), 1)
      }).pipe(unblock(control), Effect.provide(Silo.layerTest(probeLayer(control))))
    })

    it.effect("deactivateOnIdle: messages queued behind the leaving turn run on the next activation", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const probe = yield* Probe.ref("leave-2")
        yield* probe.Add({ n: 1 })
        const held = yield* Effect.forkChild(probe.Hold())
        yield* control.holding.await
        // Queue, in order: Leave, then Add 10.
        const leave = yield* Effect.forkChild(probe.Leave())
        yield* yieldUntil("Leave is queued", Effect.map(depthOf("Probe", "leave-2"), (d) => d === 1))
        const add = yield* Effect.forkChild(probe.Add({ n: 10 }))
        yield* yieldUntil("Add is queued", Effect.map(depthOf("Probe", "leave-2"), (d) => d === 2))
        yield* control.release.open
        assert.strictEqual(yield* Fiber.join(held), 1)
        assert.strictEqual(yield* Fiber.join(leave), 1)
        // Add ran after the Leave turn, on a fresh activation: 0 + 10.
        assert.strictEqual(yield* Fiber.join(add), 10)
        assert.strictEqual(control.activated("leave-2"), 2)
        assert.strictEqual(control.deactivated("leave-2"), 1)
      }).pipe(unblock(control), Effect.provide(Silo.layerTest(probeLayer(control))))
    })

    it.effect("admin deactivate returns true once the finalizer has run; false for an unknown address", () => {
      const lifecycle = new Lifecycle()
      return Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const counter = yield* Counter.ref("admin-1")
        yield* counter.Increment({ by: 2 })
        assert.strictEqual(count(lifecycle.deactivated, "admin-1"), 0)
        assert.isTrue(yield* silo.deactivate({ type: "Counter", id: "admin-1" }))
        assert.strictEqual(count(lifecycle.deactivated, "admin-1"), 1)
        assert.deepStrictEqual(yield* ids(), [])
        // Already gone, never existed, unknown type.
        assert.isFalse(yield* silo.deactivate({ type: "Counter", id: "admin-1" }))
        assert.isFalse(yield* silo.deactivate({ type: "Counter", id: "nobody" }))
        assert.isFalse(yield* silo.deactivate({ type: "Nope", id: "admin-1" }))
        assert.strictEqual(count(lifecycle.deactivated, "admin-1"), 1)
        // The next call activates afresh.
        assert.strictEqual(yield* counter.Get(), 0)
        assert.strictEqual(count(lifecycle.activated, "admin-1"), 2)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
    })

    it.effect("admin deactivate waits for the running turn, then for the finalizer", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const probe = yield* Probe.ref("admin-2")
        yield* probe.Add({ n: 4 })
        const held = yield* Effect.forkChild(probe.Hold())
        yield* control.holding.await
        const deactivating = yield* Effect.forkChild(silo.deactivate({ type: "Probe", id: "admin-2" }))
        yield* yieldUntil("the activation is deactivating", Effect.map(rows("Probe"), (r) => r[0]?.state === "deactivating"))
        assert.isUndefined(deactivating.pollUnsafe(), "deactivate waits for the running turn")
        assert.strictEqual(control.deactivated("admin-2"), 0)
        yield* control.release.open
        // The running turn completes normally.
        assert.strictEqual(yield* Fiber.join(held), 4)
        assert.isTrue(yield* Fiber.join(deactivating))
        assert.strictEqual(control.deactivated("admin-2"), 1)
      }).pipe(unblock(control), Effect.provide(Silo.layerTest(probeLayer(control))))
    })

    it.effect("admin deactivate while the activation effect runs: the first call is served, then it deactivates", () => {
      const control = new FlakyControl(0, "fail")
      control.gate.closeUnsafe()
      return Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const flaky = yield* Flaky.ref("flaky-5")
        const first = yield* Effect.forkChild(flaky.Echo({ text: "first" }))
        yield* control.building.await
        const deactivating = yield* Effect.forkChild(silo.deactivate({ type: "Flaky", id: "flaky-5" }))
        yield* Effect.yieldNow
        assert.isUndefined(deactivating.pollUnsafe(), "deactivate waits for the activation to stop")
        yield* control.gate.open
        assert.isTrue(yield* Fiber.join(deactivating))
        assert.strictEqual(yield* Fiber.join(first), "first")
        assert.strictEqual(control.finalizers, 1)
        assert.deepStrictEqual(yield* ids(), [])
        // A new activation serves the next call.
        assert.strictEqual(yield* flaky.Attempt(), 2)
      }).pipe(Effect.ensuring(control.gate.open), Effect.provide(Silo.layerTest(flakyLayer(control))))
    })

    it.effect("messages sent while an activation deactivates go, in order, to the next activation", () => {
      const control = new ProbeControl()
      control.finalizerGate.closeUnsafe()
      return Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const probe = yield* Probe.ref("handoff-1")
        const first = yield* probe.Record({ entry: "a" })
        assert.deepStrictEqual(first, { generation: 1, entries: ["a"] })

        const deactivating = yield* Effect.forkChild(silo.deactivate({ type: "Probe", id: "handoff-1" }))
        yield* control.finalizerEntered.await
        const listed = yield* rows("Probe")
        assert.strictEqual(listed.length, 1)
        assert.strictEqual(listed[0].state, "deactivating")

        // While the finalizer is blocked: tells and asks, interleaved.
        yield* probe.tell.Record({ entry: "b" })
        const askC = yield* Effect.forkChild(probe.Record({ entry: "c" }))
        yield* yieldUntil("c is queued", Effect.map(depthOf("Probe", "handoff-1"), (d) => d === 2))
        yield* probe.tell.Record({ entry: "d" })
        yield* probe.tell.Add({ n: 1 })
        const askE = yield* Effect.forkChild(probe.Record({ entry: "e" }))
        yield* yieldUntil("e is queued", Effect.map(depthOf("Probe", "handoff-1"), (d) => d === 5))
        assert.strictEqual(control.deactivated("handoff-1"), 0)

        yield* control.finalizerGate.open
        assert.isTrue(yield* Fiber.join(deactivating))
        assert.strictEqual(control.deactivated("handoff-1"), 1)

        // None lost, in order, on a fresh (second) activation.
        assert.deepStrictEqual(yield* Fiber.join(askC), { generation: 2, entries: ["b", "c"] })
        assert.deepStrictEqual(yield* Fiber.join(askE), { generation: 2, entries: ["b", "c", "d", "e"] })
        assert.strictEqual(yield* probe.Get(), 1)
        assert.strictEqual(control.activated("handoff-1"), 2)
        assert.deepStrictEqual(yield* ids(), ["Probe/handoff-1"])
      }).pipe(unblock(control), Effect.provide(Silo.layerTest(probeLayer(control))))
    })
  })

  // -------------------------------------------------------------------------
  describe("silo shutdown", () => {
    it.effect("closing the silo's scope runs every activation's finalizer", () => {
      const lifecycle = new Lifecycle()
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Silo.layerTest(counterLayer(lifecycle), probeLayer(control)), scope)
        const silo = Context.get(context, Silo.Silo)
        yield* Effect.gen(function*() {
          for (const id of ["s-1", "s-2", "s-3"]) {
            const counter = yield* Counter.ref(id)
            yield* counter.Increment({ by: 1 })
          }
          const probe = yield* Probe.ref("p-1")
          yield* probe.Add({ n: 1 })
        }).pipe(Effect.provideContext(context))
        assert.strictEqual((yield* silo.activations()).length, 4)

        yield* Scope.close(scope, Exit.void)

        for (const id of ["s-1", "s-2", "s-3"]) {
          assert.strictEqual(count(lifecycle.activated, id), 1, id)
          assert.strictEqual(count(lifecycle.deactivated, id), 1, id)
        }
        assert.strictEqual(control.deactivated("p-1"), 1)
        assert.deepStrictEqual(yield* silo.activations(), [])

        // After shutdown, calls fail with ActorUnavailable and activate nothing.
        const after = yield* Counter.ref("s-4").pipe(
          Effect.flatMap((counter) => Effect.flip(counter.Increment({ by: 1 }))),
          Effect.provideContext(context)
        )
        assert.instanceOf(after, ActorUnavailable)
        assert.strictEqual(count(lifecycle.activated, "s-4"), 0)
        assert.deepStrictEqual(yield* silo.activations(), [])
      })
    })

    it.effect("shutdown waits for a running turn to finish before finalizing", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Silo.layerTest(probeLayer(control)), scope)
        const probe = yield* Probe.ref("busy").pipe(Effect.provideContext(context))
        yield* probe.Add({ n: 2 })
        const held = yield* Effect.forkChild(probe.Hold())
        yield* control.holding.await
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("1 second")
        assert.isUndefined(closing.pollUnsafe())
        assert.strictEqual(control.deactivated("busy"), 0)
        yield* control.release.open
        assert.strictEqual(yield* Fiber.join(held), 2)
        yield* Fiber.join(closing)
        assert.strictEqual(control.deactivated("busy"), 1)
      })
    })

    it.effect("asks queued when the silo shuts down complete (ActorUnavailable) instead of hanging", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Silo.layerTest(probeLayer(control)), scope)
        const probe = yield* Probe.ref("queued").pipe(Effect.provideContext(context))
        const held = yield* Effect.forkChild(probe.Hold())
        yield* control.holding.await
        const queued = yield* Effect.forkChild(
          Effect.all([Effect.exit(probe.Add({ n: 1 })), Effect.exit(probe.Add({ n: 2 }))], { concurrency: "unbounded" })
        )
        yield* yieldUntil(
          "two asks are queued",
          Effect.map(Effect.provideContext(depthOf("Probe", "queued"), context), (d) => d === 2)
        )
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* control.release.open
        assert.strictEqual(yield* Fiber.join(held), 0)
        yield* Fiber.join(closing)
        for (const exit of yield* Fiber.join(queued)) {
          if (Exit.isFailure(exit)) {
            const reason = exit.cause.reasons[0]
            assert.strictEqual(reason._tag, "Fail")
            assert.instanceOf((reason as { error: unknown }).error, ActorUnavailable)
          }
        }
        assert.strictEqual(control.activated("queued"), 1)
        assert.strictEqual(control.deactivated("queued"), 1)
      }).pipe(unblock(control))
    })

    it.effect("a turn that never ends is bounded by shutdownTimeout; the finalizer still runs", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          siloWith({ shutdownTimeout: "2 seconds" }, probeLayer(control)),
          scope
        )
        const silo = Context.get(context, Silo.Silo)
        const probe = yield* Probe.ref("stuck-turn").pipe(Effect.provideContext(context))
        const held = yield* Effect.forkChild(probe.Hold())
        yield* control.holding.await
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* TestClock.adjust("1 second")
        assert.isUndefined(closing.pollUnsafe(), "shutdown waits for the running turn within its timeout")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)
        assert.strictEqual(control.deactivated("stuck-turn"), 1)
        assert.deepStrictEqual(yield* silo.activations(), [])
        yield* control.release.open
        yield* Fiber.await(held)
      }).pipe(unblock(control))
    })

    it.effect("an activation whose effect completes during shutdown is finalized too", () => {
      const control = new FlakyControl(0, "fail")
      control.gate.closeUnsafe()
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Silo.layerTest(flakyLayer(control)), scope)
        const silo = Context.get(context, Silo.Silo)
        const flaky = yield* Flaky.ref("late").pipe(Effect.provideContext(context))
        const first = yield* Effect.forkChild(Effect.exit(flaky.Echo({ text: "late" })))
        yield* control.building.await
        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* Effect.yieldNow
        yield* control.gate.open
        yield* Fiber.join(closing)
        const exit = yield* Fiber.join(first)
        if (Exit.isFailure(exit)) {
          const reason = exit.cause.reasons[0]
          assert.strictEqual(reason._tag, "Fail")
          assert.instanceOf((reason as { error: unknown }).error, ActorUnavailable)
        }
        assert.strictEqual(control.attempts, 1)
        assert.strictEqual(control.finalizers, 1)
        assert.deepStrictEqual(yield* silo.activations(), [])
      }).pipe(Effect.ensuring(control.gate.open))
    })

    it.effect("a finalizer that hangs forever is bounded by shutdownTimeout", () => {
      const lifecycle = new Lifecycle()
      const control = new ProbeControl()
      control.finalizerGate.closeUnsafe() // Probe finalizers hang forever
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(
          siloWith({ shutdownTimeout: "2 seconds" }, counterLayer(lifecycle), probeLayer(control)),
          scope
        )
        const silo = Context.get(context, Silo.Silo)
        yield* Effect.gen(function*() {
          const counter = yield* Counter.ref("fine")
          yield* counter.Increment({ by: 1 })
          const probe = yield* Probe.ref("stuck")
          yield* probe.Add({ n: 1 })
        }).pipe(Effect.provideContext(context))

        const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
        yield* control.finalizerEntered.await
        yield* TestClock.adjust("1 second")
        assert.isUndefined(closing.pollUnsafe(), "shutdown still waits within its timeout")
        yield* TestClock.adjust("1 second")
        yield* Fiber.join(closing)

        // The well-behaved activation was finalized; the stuck one never finished its
        // finalizer, but shutdown returned and nothing is left listed.
        assert.strictEqual(count(lifecycle.deactivated, "fine"), 1)
        assert.strictEqual(control.deactivated("stuck"), 0)
        assert.deepStrictEqual(yield* silo.activations(), [])
        // Let the abandoned finalizer end, so no fiber is left waiting.
        yield* control.finalizerGate.open
      })
    })
  })

  // -------------------------------------------------------------------------
  describe("introspection", () => {
    it.effect("activations(type) lists addresses with mailbox depth, running turns and age", () => {
      const control = new ProbeControl()
      return Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const counter = yield* Counter.ref("c-1")
        yield* counter.Increment({ by: 1 })
        const probe = yield* Probe.ref("busy")
        const idle = yield* Probe.ref("idle")
        yield* idle.Add({ n: 1 })

        const held = yield* Effect.forkChild(probe.Hold())
        yield* control.holding.await
        const queued = yield* Effect.forkChild(
          Effect.all([probe.Add({ n: 1 }), probe.Add({ n: 2 }), probe.Add({ n: 3 })], { concurrency: "unbounded" })
        )
        yield* yieldUntil("three asks are queued", Effect.map(depthOf("Probe", "busy"), (d) => d === 3))

        const probes = [...(yield* silo.activations("Probe"))].sort((a, b) => a.address.id.localeCompare(b.address.id))
        assert.deepStrictEqual(probes, [
          {
            address: { type: "Probe", id: "busy" },
            state: "active",
            mailboxDepth: 3,
            runningTurns: 1,
            ageMillis: 0
          },
          {
            address: { type: "Probe", id: "idle" },
            state: "active",
            mailboxDepth: 0,
            runningTurns: 0,
            ageMillis: 0
          }
        ])
        // Filtered by type; all types without one.
        assert.deepStrictEqual((yield* silo.activations("Counter")).map((r) => r.address), [{ type: "Counter", id: "c-1" }])
        assert.strictEqual((yield* silo.activations()).length, 3)
        assert.deepStrictEqual(yield* silo.activations("Nope"), [])

        yield* TestClock.adjust("5 seconds")
        const aged = yield* silo.activations("Counter")
        assert.strictEqual(aged[0].ageMillis, 5000)
        yield* TestClock.adjust("2500 millis")
        assert.strictEqual((yield* silo.activations("Counter"))[0].ageMillis, 7500)

        yield* control.release.open
        assert.strictEqual(yield* Fiber.join(held), 0)
        assert.deepStrictEqual([...(yield* Fiber.join(queued))].sort((a, b) => a - b), [1, 3, 6])
        const busy = (yield* silo.activations("Probe")).find((r) => r.address.id === "busy")!
        assert.strictEqual(busy.mailboxDepth, 0)
        assert.strictEqual(busy.runningTurns, 0)
        assert.strictEqual(busy.ageMillis, 7500)
      }).pipe(unblock(control), Effect.provide(Silo.layerTest(counterLayer(), probeLayer(control))))
    })

    it.effect("age restarts with a new activation", () =>
      Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const counter = yield* Counter.ref("age-1")
        yield* counter.Increment({ by: 1 })
        yield* TestClock.adjust("3 seconds")
        assert.strictEqual((yield* silo.activations("Counter"))[0].ageMillis, 3000)
        assert.isTrue(yield* silo.deactivate({ type: "Counter", id: "age-1" }))
        yield* counter.Increment({ by: 1 })
        assert.strictEqual((yield* silo.activations("Counter"))[0].ageMillis, 0)
        yield* TestClock.adjust("1 second")
        assert.strictEqual((yield* silo.activations("Counter"))[0].ageMillis, 1000)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))
  })
})

/**
 * Activation and deactivation timeouts: a hung activation effect, or hung finalizers, never
 * wedge an address. Past `activationTimeout` the activation fails (its callers get
 * `ActivationFailed`), its scope is closed and the next call tries again; past
 * `deactivationTimeout` a deactivation is given up on with a warning, so that `deactivate`,
 * passivation and silo shutdown return. All timing is on the TestClock.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Latch, Layer, Logger, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { ActivationFailed, Actor, ActorContext, type ActorTypeOptions, defaultActorDefaults, Silo } from "../src/index.ts"

// ---------------------------------------------------------------------------
// Fixture: an actor whose activation effect and finalizer wait on gates the test holds.

const Echo = Rpc.make("Echo", { payload: { text: Schema.String }, success: Schema.String })
/** Returns the activation's generation (1 for the first activation of the id). */
const Generation = Rpc.make("Generation", { success: Schema.Int })
/** Waits for `turnGate`. */
const Hold = Rpc.make("Hold", { success: Schema.Int })
const Slow = Actor.make("Slow", [Echo, Generation, Hold])
/** A second type, for per-type options. */
const Slow2 = Actor.make("Slow2", [Rpc.make("Ping")])

class Control {
  /** Activation effects started. */
  attempts = 0
  /** Finalizers started, and finished. */
  finalizersStarted = 0
  finalizersDone = 0
  /** Activation effects wait for it after registering their finalizer (open: they do not wait). */
  readonly buildGate = Latch.makeUnsafe(true)
  /** Finalizers wait for it (open: they do not wait). */
  readonly finalizerGate = Latch.makeUnsafe(true)
  /** Hold turns wait for it. */
  readonly turnGate = Latch.makeUnsafe(false)
  /** Opened once an activation effect is waiting on `buildGate`. */
  readonly building = Latch.makeUnsafe(false)
  /** Opened once a finalizer has started. */
  readonly finalizing = Latch.makeUnsafe(false)
  /** Opened once a Hold turn runs. */
  readonly holding = Latch.makeUnsafe(false)
  /** Make the wait on `buildGate` uninterruptible. */
  uninterruptibleBuild = false

  /** Opens every gate: nothing the test started is left waiting. */
  get openAll(): Effect.Effect<void> {
    return Effect.all([this.buildGate.open, this.finalizerGate.open, this.turnGate.open], { discard: true })
  }
}

const slowLayer = (control: Control, options?: ActorTypeOptions) =>
  Slow.toLayer(
    Effect.gen(function*() {
      yield* ActorContext
      const generation = ++control.attempts
      yield* Effect.addFinalizer(() =>
        Effect.gen(function*() {
          control.finalizersStarted++
          control.finalizing.openUnsafe()
          yield* control.finalizerGate.await
          control.finalizersDone++
        })
      )
      control.building.openUnsafe()
      const handlers = Slow.of({
        Echo: ({ text }) => Effect.succeed(text),
        Generation: () => Effect.succeed(generation),
        Hold: () => Effect.andThen(control.holding.open, Effect.as(control.turnGate.await, generation))
      })
      // An uninterruptible effect that finishes late: its outcome must be ignored.
      return yield* control.uninterruptibleBuild ?
        Effect.uninterruptible(Effect.as(control.buildGate.await, handlers)) :
        Effect.as(control.buildGate.await, handlers)
    }),
    options
  )

interface Captured {
  readonly level: string
  readonly message: string
}

const capture = (into: Array<Captured>) =>
  Logger.layer([Logger.make((options) => into.push({ level: options.logLevel, message: String(options.message) }))])

/**
 * Runs `body` against a silo built in a scope of its own, then closes the silo while
 * moving the clock, so that a bug that leaves something hanging fails the test instead of
 * hanging its teardown.
 */
const withSilo = <A, E>(
  control: Control,
  silo: Layer.Layer<Silo.Silo>,
  body: (silo: Silo.SiloShape) => Effect.Effect<A, E, Silo.Silo>
) =>
  Effect.gen(function*() {
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(silo, scope)
    const exit = yield* Effect.exit(Effect.provideContext(body(Context.get(context, Silo.Silo)), context))
    yield* control.openAll
    const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
    yield* TestClock.adjust("2 minutes")
    yield* Fiber.join(closing)
    return yield* exit
  })

const layerWith = (control: Control, options?: ActorTypeOptions, config?: Silo.SiloConfig) =>
  slowLayer(control, options).pipe(Layer.provideMerge(Silo.layer(config)))

const isDone = (fiber: Fiber.Fiber<unknown, unknown>) => fiber.pollUnsafe() !== undefined

/** Lets other fibers run (no time passes). */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

const address = (id: string) => ({ type: "Slow", id })

const failedWith = (exit: Exit.Exit<unknown, unknown>): unknown => {
  assert.isTrue(Exit.isFailure(exit), "the call failed")
  const reason = (exit as Exit.Failure<unknown, unknown>).cause.reasons[0]
  assert.strictEqual(reason._tag, "Fail")
  return (reason as { readonly error: unknown }).error
}

// ---------------------------------------------------------------------------

describe("activation timeout", () => {
  it("defaults to 30 seconds for activation and deactivation", () => {
    assert.strictEqual(defaultActorDefaults.activationTimeout, "30 seconds")
    assert.strictEqual(defaultActorDefaults.deactivationTimeout, "30 seconds")
  })

  it.effect("a hung activation effect fails after 30 s: callers get ActivationFailed, its scope is closed, the next call tries again", () => {
    const control = new Control()
    control.buildGate.closeUnsafe()
    return withSilo(control, layerWith(control), (silo) =>
      Effect.gen(function*() {
        const slow = yield* Slow.ref("hung")
        const first = yield* Effect.forkChild(Effect.exit(slow.Echo({ text: "first" })))
        yield* control.building.await
        const second = yield* Effect.forkChild(Effect.exit(slow.Echo({ text: "second" })))
        // `deactivate` of an address whose activation hangs used to never return.
        const deactivating = yield* Effect.forkChild(silo.deactivate(address("hung")))
        yield* TestClock.adjust("29999 millis")
        yield* settle
        assert.isFalse(isDone(first), "still activating just before the timeout")
        assert.isFalse(isDone(deactivating))
        yield* TestClock.adjust("1 millis")
        yield* settle
        assert.isTrue(isDone(first) && isDone(second) && isDone(deactivating), "all answered at the timeout")
        for (const call of [first, second]) {
          const error = failedWith(yield* Fiber.join(call))
          assert.instanceOf(error, ActivationFailed)
          assert.deepStrictEqual((error as ActivationFailed).address, address("hung"))
          assert.include((error as ActivationFailed).reason, "timed out")
          assert.include((error as ActivationFailed).reason, "30s")
        }
        assert.isTrue(yield* Fiber.join(deactivating))
        // Nothing half-activated: the finalizer registered before the hang ran, the slot is empty.
        assert.strictEqual(control.finalizersDone, 1)
        assert.deepStrictEqual(yield* silo.activations(), [])
        // The next call activates afresh.
        yield* control.buildGate.open
        assert.strictEqual(yield* slow.Generation(), 2)
        assert.strictEqual(control.attempts, 2)
      }))
  })

  it.effect("per type activationTimeout overrides the silo default, which overrides 30 s", () => {
    const control = new Control()
    control.buildGate.closeUnsafe()
    const silo = Layer.mergeAll(
      slowLayer(control),
      Slow2.toLayer(Effect.as(control.buildGate.await, Slow2.of({ Ping: () => Effect.void })), {
        activationTimeout: "5 seconds"
      })
    ).pipe(Layer.provideMerge(Silo.layer({ defaults: { activationTimeout: "2 seconds" } })))
    return withSilo(control, silo, () =>
      Effect.gen(function*() {
        const slow = yield* Slow.ref("a")
        const slow2 = yield* Slow2.ref("b")
        const byDefault = yield* Effect.forkChild(Effect.exit(slow.Echo({ text: "a" })))
        const byType = yield* Effect.forkChild(Effect.exit(slow2.Ping()))
        yield* TestClock.adjust("2 seconds")
        yield* settle
        assert.isTrue(isDone(byDefault), "failed at the silo's default")
        assert.instanceOf(failedWith(yield* Fiber.join(byDefault)), ActivationFailed)
        assert.isFalse(isDone(byType), "the type's own 5 s still runs")
        yield* TestClock.adjust("3 seconds")
        yield* settle
        assert.isTrue(isDone(byType), "failed at the type's own timeout")
        const error = failedWith(yield* Fiber.join(byType))
        assert.instanceOf(error, ActivationFailed)
        assert.include((error as ActivationFailed).reason, "5s")
      }))
  })

  it.effect("an uninterruptible activation effect fails on time too; its late success is ignored", () => {
    const control = new Control()
    control.buildGate.closeUnsafe()
    control.uninterruptibleBuild = true
    return withSilo(control, layerWith(control, { activationTimeout: "1 second" }), (silo) =>
      Effect.gen(function*() {
        const slow = yield* Slow.ref("stubborn")
        const first = yield* Effect.forkChild(Effect.exit(slow.Echo({ text: "first" })))
        yield* control.building.await
        yield* TestClock.adjust("1 second")
        yield* settle
        // Failed without waiting for the effect, which cannot be interrupted.
        assert.isTrue(isDone(first), "failed at the timeout")
        assert.instanceOf(failedWith(yield* Fiber.join(first)), ActivationFailed)
        assert.strictEqual(control.finalizersDone, 1)
        assert.deepStrictEqual(yield* silo.activations(), [])
        // The effect now succeeds, too late: nothing is installed from it.
        control.uninterruptibleBuild = false
        yield* control.buildGate.open
        yield* settle
        assert.deepStrictEqual(yield* silo.activations(), [])
        assert.strictEqual(yield* slow.Generation(), 2)
      }))
  })

  it.effect("an activation effect that finishes in time is not affected by the timer", () => {
    const control = new Control()
    control.buildGate.closeUnsafe()
    return withSilo(control, layerWith(control, { activationTimeout: "1 second" }), (silo) =>
      Effect.gen(function*() {
        const slow = yield* Slow.ref("in-time")
        const first = yield* Effect.forkChild(slow.Generation())
        yield* control.building.await
        yield* TestClock.adjust("999 millis")
        yield* control.buildGate.open
        assert.strictEqual(yield* Fiber.join(first), 1)
        yield* TestClock.adjust("10 seconds")
        assert.strictEqual(yield* slow.Generation(), 1)
        assert.strictEqual(control.finalizersStarted, 0)
        assert.strictEqual((yield* silo.activations())[0]?.state, "active")
      }))
  })
})

describe("deactivation timeout", () => {
  it.effect("deactivate returns after 30 s of hung finalizers, with a warning; what queued meanwhile goes to the next activation", () => {
    const control = new Control()
    const logs: Array<Captured> = []
    return withSilo(control, layerWith(control), (silo) =>
      Effect.gen(function*() {
        const slow = yield* Slow.ref("stuck")
        assert.strictEqual(yield* slow.Generation(), 1)
        control.finalizerGate.closeUnsafe()
        const deactivating = yield* Effect.forkChild(silo.deactivate(address("stuck")))
        yield* control.finalizing.await
        const queued = yield* Effect.forkChild(slow.Generation())
        yield* TestClock.adjust("29999 millis")
        yield* settle
        assert.isFalse(isDone(deactivating), "still waiting for the finalizer just before the timeout")
        assert.isFalse(isDone(queued))
        yield* TestClock.adjust("1 millis")
        yield* settle
        assert.isTrue(isDone(deactivating), "deactivate returned at the timeout")
        assert.isTrue(yield* Fiber.join(deactivating))
        const warnings = logs.filter((log) => log.level === "Warn" && log.message.includes("Slow/stuck"))
        assert.strictEqual(warnings.length, 1)
        assert.include(warnings[0].message, "deactivation timeout")
        // The finalizer is still blocked, but the address serves again, from a new activation.
        assert.strictEqual(control.finalizersDone, 0)
        assert.strictEqual(yield* Fiber.join(queued), 2)
      })).pipe(Effect.provide(capture(logs)))
  })

  it.effect("idle passivation with a hung finalizer ends after deactivationTimeout", () => {
    const control = new Control()
    return withSilo(
      control,
      layerWith(control, { idleTimeout: "1 minute", deactivationTimeout: "5 seconds" }, { passivationInterval: "10 seconds" }),
      (silo) =>
        Effect.gen(function*() {
          const slow = yield* Slow.ref("idle")
          yield* slow.Generation()
          control.finalizerGate.closeUnsafe()
          // Sweeps every 5 s: the one at 5 s starts the count, the 12th after it (65 s) passivates.
          yield* TestClock.adjust("65 seconds")
          yield* control.finalizing.await
          assert.strictEqual((yield* silo.activations())[0]?.state, "deactivating")
          yield* TestClock.adjust("4999 millis")
          assert.strictEqual((yield* silo.activations())[0]?.state, "deactivating")
          yield* TestClock.adjust("1 millis")
          assert.deepStrictEqual(yield* silo.activations(), [])
          assert.strictEqual(yield* slow.Generation(), 2)
        })
    )
  })

  it.effect("shutdown returns when a turn and the finalizers both hang", () => {
    const control = new Control()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(
        layerWith(control, { deactivationTimeout: "3 seconds" }, { shutdownTimeout: "2 seconds" }),
        scope
      )
      const slow = yield* Slow.ref("wedged").pipe(Effect.provideContext(context))
      const held = yield* Effect.forkChild(slow.Hold())
      yield* control.holding.await
      control.finalizerGate.closeUnsafe()
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      // 2 s waiting for the turn, then the scope is closed anyway: 3 s for its finalizer.
      yield* TestClock.adjust("2 seconds")
      yield* control.finalizing.await
      assert.isFalse(isDone(closing))
      yield* TestClock.adjust("3 seconds")
      yield* settle
      const closed = isDone(closing)
      yield* control.openAll
      yield* Fiber.await(held)
      assert.isTrue(closed, "shutdown returned although the finalizer never finished")
      yield* Fiber.join(closing)
    })
  })
})

/**
 * Names and helpers a user writes handlers with: `Actor.Ref<typeof Contract>` and
 * `Actor.orDieOnCallError` (declared errors kept, Quark's call errors made defects), and timer
 * ticks that use the implementation's services.
 */
import { assert, it } from "@effect/vitest"
import { Cause, Effect, Exit, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { Actor, ActorContext, ActorDefect, CallTimeout, Silo } from "../src/index.ts"
import { Counter, counterLayer, Overdrawn } from "./fixtures/Counter.ts"

it.effect("Actor.Ref names a contract's ref type", () =>
  Effect.gen(function*() {
    const refs: Array<Actor.Ref<typeof Counter>> = []
    refs.push(yield* Counter.ref("r-1"))
    // The named type has the contract's methods, typed.
    const total: number = yield* refs[0]!.Increment({ by: 2 })
    assert.strictEqual(total, 2)
  }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))

it.effect("orDieOnCallError keeps declared errors and makes Quark's call errors defects", () =>
  Effect.gen(function*() {
    const counter = yield* Counter.ref("h-1")
    // Declared error: still typed, still in the error channel.
    const declared: Effect.Effect<number, Overdrawn> = Actor.orDieOnCallError(counter.Decrement({ by: 1 }))
    const overdrawn = yield* Effect.flip(declared)
    assert.instanceOf(overdrawn, Overdrawn)
    // A call error (here the callee died: ActorDefect) becomes a defect carrying it.
    const died = yield* Effect.exit(Actor.orDieOnCallError(counter.Crash({ message: "boom" })))
    assert.isTrue(Exit.isFailure(died))
    const defect = Exit.isFailure(died) ? Cause.squash(died.cause) : undefined
    assert.instanceOf(defect, ActorDefect)
    assert.isFalse(Exit.isFailure(died) && died.cause.reasons.some(Cause.isFailReason), "no typed failure left")
    // Any of Quark's call errors, not only ActorDefect.
    const timeout = new CallTimeout({ address: { type: "Counter", id: "h-1" }, tag: "Get", timeoutMillis: 1 })
    const timedOut = yield* Effect.exit(Actor.orDieOnCallError(Effect.fail(timeout)))
    assert.isTrue(Exit.isFailure(timedOut) && Cause.hasDies(timedOut.cause) && !Cause.hasFails(timedOut.cause))
    // Failures that are not Quark's pass through untouched.
    const own = yield* Effect.flip(Actor.orDieOnCallError(Effect.fail("mine" as const)))
    assert.strictEqual(own, "mine")
  }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))

const Tick = Rpc.make("Tick", { success: Schema.Int })
const Pinger = Actor.make("Pinger", [Tick])

it.effect("a timer tick uses the implementation's services (here the Silo, to call another actor) and its ActorContext", () =>
  Effect.gen(function*() {
    const PingerLive = Pinger.toLayer(Effect.gen(function*() {
      const context = yield* ActorContext
      // No provideService by hand: the tick calls the Counter through the silo the layer has.
      yield* context.startTimer(
        "ping",
        Effect.gen(function*() {
          const counter = yield* Effect.orDie(Counter.ref("pinged"))
          yield* Effect.orDie(counter.Increment({ by: 1 }))
          const self = yield* ActorContext
          if (self.address.id !== "p-1") yield* Effect.die(new Error("the tick saw another actor's context"))
        }),
        { period: "1 second" }
      )
      return Pinger.of({ Tick: () => Effect.succeed(0) })
    }))
    yield* Effect.gen(function*() {
      const pinger = yield* Pinger.ref("p-1")
      yield* pinger.Tick()
      yield* TestClock.adjust("3 seconds")
      const counter = yield* Counter.ref("pinged")
      assert.strictEqual(yield* counter.Get(), 3)
    }).pipe(Effect.provide(Silo.layerTest(PingerLive, counterLayer())))
  }))

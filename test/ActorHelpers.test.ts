/**
 * Names and helpers a user writes handlers with: `Actor.Ref<typeof Contract>` and
 * `Actor.orDieOnCallError` (declared errors kept, Quark's call errors made defects).
 */
import { assert, it } from "@effect/vitest"
import { Cause, Effect, Exit } from "effect"
import { Actor, ActorDefect, CallTimeout, Silo } from "../src/index.ts"
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

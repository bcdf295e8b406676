/**
 * The silo owns the fibers it starts for turns (drainers and the like): a one-way turn
 * that never ends is interrupted when the silo closes, after the shutdown timeout, instead
 * of running on in the background for good.
 */
import { assert, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Rpc } from "effect/rpc"
import { Actor, Silo } from "../src/index.ts"

const Hang = Rpc.make("Hang")
const Hanger = Actor.make("Hanger", [Hang])

it.effect("a one-way turn that never ends is interrupted once the silo has closed", () =>
  Effect.gen(function*() {
    const entered = yield* Deferred.make<void>()
    const interrupted = yield* Deferred.make<void>()
    const HangerLive = Hanger.toLayer(Effect.succeed(Hanger.of({
      Hang: () =>
        Deferred.succeed(entered, undefined).pipe(
          Effect.andThen(Effect.never),
          Effect.onInterrupt(() => Deferred.succeed(interrupted, undefined))
        )
    })))
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      HangerLive.pipe(Layer.provideMerge(Silo.layer({ shutdownTimeout: "1 second" }))),
      scope
    )
    yield* Effect.flatMap(Hanger.ref("h"), (hanger) => hanger.tell.Hang()).pipe(
      Effect.provideService(Silo.Silo, Context.get(context, Silo.Silo))
    )
    yield* Deferred.await(entered)
    const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
    yield* TestClock.adjust("1 second")
    yield* Fiber.join(closing)
    assert.isTrue(yield* Deferred.isDone(interrupted), "the hung turn's fiber was interrupted by the silo's close")
  }))

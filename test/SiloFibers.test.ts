/**
 * The silo owns the fibers it starts for turns (drainers and the like): a one-way turn
 * that never ends is interrupted when the silo closes, after the shutdown timeout, instead
 * of running on in the background for good.
 */
import { assert, it } from "@effect/vitest"
import { Context, Deferred, Effect, Exit, Fiber, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Silo } from "../src/index.ts"

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

const Stall = Rpc.make("Stall")
const Staller = Actor.make("Staller", [Stall])

// Live: the point is that the teardown finishes in real time while a turn never ends.
it.live("Silo.layerTest's teardown does not wait on the TestClock: a turn still running is given up on", () =>
  Effect.gen(function*() {
    const entered = yield* Deferred.make<void>()
    const StallerLive = Staller.toLayer(Effect.succeed(Staller.of({
      Stall: () => Effect.andThen(Deferred.succeed(entered, undefined), Effect.never)
    })))
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(Silo.layerTest(StallerLive), scope).pipe(
      // The TestClock, as inside it.effect: it never moves during the teardown below.
      Effect.provide(TestClock.layer())
    )
    const silo = Context.get(context, Silo.Silo)
    const ask = yield* Effect.forkChild(
      Effect.flatMap(Staller.ref("s"), (staller) => staller.Stall()).pipe(Effect.provideService(Silo.Silo, silo))
    )
    const tell = Effect.flatMap(Staller.ref("t"), (staller) => staller.tell.Stall()).pipe(
      Effect.provideService(Silo.Silo, silo)
    )
    yield* tell
    yield* Deferred.await(entered)
    const closed = yield* Scope.close(scope, Exit.void).pipe(Effect.timeout("10 seconds"), Effect.exit)
    assert.isTrue(Exit.isSuccess(closed), "the teardown ended (within a second, with a hung ask and a hung tell)")
    assert.deepStrictEqual(yield* silo.activations(), [])
    yield* Fiber.interrupt(ask)
  }))

const Start = Rpc.make("Start")
const Parent = Actor.make("Parent", [Start])
const Child = Actor.make("Child", [Hang])

it.effect("shutdown is bounded when a child actor's turn never ends (shutdownTimeout, then deactivationTimeout)", () =>
  Effect.gen(function*() {
    const entered = yield* Deferred.make<void>()
    const ParentLive = Parent.toLayer(Effect.gen(function*() {
      const ctx = yield* ActorContext
      const child = yield* ctx.spawn(
        Child,
        Effect.succeed(Child.of({ Hang: () => Effect.andThen(Deferred.succeed(entered, undefined), Effect.never) }))
      )
      return Parent.of({ Start: () => Effect.orDie(child.tell.Hang()) })
    }))
    const scope = yield* Scope.make()
    const context = yield* Layer.buildWithScope(
      ParentLive.pipe(Layer.provideMerge(Silo.layer({ shutdownTimeout: "1 second", defaults: { deactivationTimeout: "1 second" } }))),
      scope
    )
    yield* Effect.flatMap(Parent.ref("p"), (parent) => parent.Start()).pipe(
      Effect.provideService(Silo.Silo, Context.get(context, Silo.Silo))
    )
    yield* Deferred.await(entered)
    const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
    // 1 s of shutdown, then each activation's 1 s of deactivation: well within 5 s.
    for (let i = 0; i < 5 && closing.pollUnsafe() === undefined; i++) yield* TestClock.adjust("1 second")
    assert.isDefined(closing.pollUnsafe(), "the silo closed")
  }))

/**
 * Supervision edge cases: decisions that race with stops and deactivations, activation
 * effects that fail on restart, one-way failures, simultaneous failures under all-for-one,
 * children and passivation, and turns that wait on an actor whose supervisor is deciding
 * (which must not wedge anything).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Fiber, Latch, Schedule, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { Actor, ActorContext, ActorDefect, Silo, Supervisor } from "../src/index.ts"
import { Boss, Control, recording } from "./fixtures/SupervisionFixtures.ts"
import {
  defectError,
  driveOrFail,
  inClosableSilo,
  inSilo,
  joinStopped,
  settle,
  start,
  stoppedError,
  waitUntil
} from "./fixtures/SupervisionHelpers.ts"

const spaced = Schedule.spaced("1 second")
const bossAddress = { type: "Boss", id: "boss" }

const bossWith = (control: Control, names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const boss = yield* Boss.ref("boss")
    yield* boss.Spawn({ names })
    for (const [i, name] of names.entries()) yield* control.ref(name).Work({ n: i + 1 })
    return boss
  })

const stopEvents = (control: Control) => control.events.filter((e) => e.startsWith("stop:"))

describe("Supervision edge cases", () => {
  describe("decisions racing with stops", () => {
    it.effect("a child stopped during its restart backoff is not rebuilt afterwards", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* defectError(w.Crash({ message: "boom" }))
        yield* TestClock.adjust("500 millis")
        yield* boss.StopChild({ name: "w" })
        assert.strictEqual(control.stopsOf("w"), 1)
        yield* TestClock.adjust("1 minute")
        yield* settle
        assert.strictEqual(control.startsOf("w"), 1, "not rebuilt after the backoff")
        assert.strictEqual(control.stopsOf("w"), 1, "finalized once")
        yield* stoppedError(w.Work({ n: 1 }))
        yield* control.awaitEvent("terminated:w")
        assert.deepStrictEqual(yield* boss.Children(), [])
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: spaced }) }))
    })

    it.effect("a parent deactivated during a child's restart backoff: the child stays stopped", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* defectError(w.Crash({ message: "boom" }))
        const silo = yield* Silo.Silo
        assert.isTrue(yield* silo.deactivate(bossAddress))
        assert.deepStrictEqual(stopEvents(control), ["stop:w#1", "stop:boss#1"])
        yield* TestClock.adjust("1 minute")
        yield* settle
        assert.strictEqual(control.startsOf("w"), 1)
        yield* stoppedError(w.Work({ n: 1 }))
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: spaced }) }))
    })

    it.effect("silo.deactivate of a virtual actor during its root restart backoff ends it for good", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        yield* boss.Work({ n: 5 })
        yield* defectError(boss.Crash({ message: "boom" }))
        yield* settle
        const silo = yield* Silo.Silo
        const deactivated = yield* driveOrFail("deactivate", silo.deactivate(bossAddress), 0)
        assert.isTrue(Exit.isSuccess(deactivated) && deactivated.value)
        assert.deepStrictEqual(stopEvents(control), ["stop:w#1", "stop:boss#1"])
        yield* TestClock.adjust("1 minute")
        yield* settle
        assert.strictEqual(control.startsOf("boss"), 1, "the backoff did not rebuild a deactivated activation")
        assert.strictEqual(yield* boss.Count(), 0, "the next call activates afresh")
        assert.strictEqual(control.startsOf("boss"), 2)
        assert.strictEqual(control.stopsOf("boss"), 1)
      }).pipe(inSilo(control, { rootSupervisor: Supervisor.oneForOne({ backoff: spaced }) }))
    })

    /** x runs a held turn while the all-for-one supervisor, after y's failure, is stopping x. */
    const stoppingX = (control: Control) =>
      Effect.gen(function*() {
        const boss = yield* bossWith(control, ["x", "y"])
        const held = yield* start(control.ref("x").Hold({ gate: "h", crash: false }))
        yield* control.entered("h").await
        yield* defectError(control.ref("y").Crash({ message: "boom" }))
        yield* waitUntil("y stopped", () => control.stopsOf("y") === 1)
        yield* settle
        assert.strictEqual(control.stopsOf("x"), 0, "x's stop waits for its running turn")
        return { boss, held }
      })

    it.effect("stop(child) while its supervisor is already stopping it still waits for its finalizers", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const { boss, held } = yield* stoppingX(control)
        const stopping = yield* start(boss.StopChild({ name: "x" }))
        yield* settle
        const returnedEarly = stopping.pollUnsafe() !== undefined
        yield* control.gate("h").open
        yield* Fiber.join(held)
        yield* Fiber.join(stopping)
        assert.isFalse(returnedEarly, "stop returned while x's turn still ran and before its finalizers")
        const events = control.events
        assert.isTrue(events.indexOf("stop:x#1") < events.indexOf("stopped-child:x"), events.join(", "))
      }).pipe(inSilo(control, { supervisor: Supervisor.allForOne({ decider: () => "stop" }) }))
    })

    it.effect("deactivating a parent while its supervisor stops a child finalizes the child first", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const { held } = yield* stoppingX(control)
        const silo = yield* Silo.Silo
        const deactivating = yield* start(silo.deactivate(bossAddress))
        yield* settle
        const bossFinalizedEarly = control.stopsOf("boss") === 1
        yield* control.gate("h").open
        yield* Fiber.join(held)
        yield* Fiber.join(deactivating)
        assert.isFalse(bossFinalizedEarly, "the parent was finalized while its child still ran a turn")
        assert.deepStrictEqual(stopEvents(control), ["stop:y#1", "stop:x#1", "stop:boss#1"])
      }).pipe(inSilo(control, { supervisor: Supervisor.allForOne({ decider: () => "stop" }) }))
    })

    it.effect("a child escalating while its parent deactivates: each finalizer runs once, children first", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b"])
        // a's failure is decided (escalate) while the parent is already deactivating.
        yield* defectError(control.ref("a").Crash({ message: "boom" }))
        const silo = yield* Silo.Silo
        const deactivated = yield* driveOrFail("deactivate", silo.deactivate(bossAddress), 5)
        assert.isTrue(Exit.isSuccess(deactivated))
        yield* TestClock.adjust("1 minute")
        yield* settle
        assert.deepStrictEqual(stopEvents(control), ["stop:b#1", "stop:a#1", "stop:boss#1"])
        const boss = yield* Boss.ref("boss")
        assert.strictEqual(yield* boss.Count(), 0)
        assert.strictEqual(control.startsOf("boss"), 2)
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ decider: () => "escalate" }) }))
    })

    it.effect("stopping a child whose activation effect still runs waits for it, then finalizes", () => {
      const control = new Control()
      const gate = Latch.makeUnsafe(false)
      control.buildGates.set("slow", gate)
      return Effect.gen(function*() {
        const boss = yield* Boss.ref("boss")
        yield* boss.Spawn({ names: ["slow"] })
        const queued = yield* start(control.ref("slow").Work({ n: 1 }))
        const stopping = yield* start(boss.StopChild({ name: "slow" }))
        yield* settle
        assert.isUndefined(stopping.pollUnsafe())
        yield* gate.open
        yield* Fiber.join(stopping)
        yield* joinStopped(queued)
        assert.deepStrictEqual(control.events.slice(0, 4), ["start:boss#1", "start:slow#1", "ready:slow#1", "stop:slow#1"])
      }).pipe(inSilo(control))
    })
  })

  describe("failures of other kinds", () => {
    it.effect("an activation effect that fails on restart stops the child by default (ActivationFailed)", () => {
      const control = new Control()
      const { failures, strategy } = recording(Supervisor.oneForOne, (failure) =>
        Supervisor.restartDecider(failure), { backoff: spaced })
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        control.failingBuilds.add("w")
        yield* defectError(w.Crash({ message: "boom" }))
        const queued = yield* start(w.Work({ n: 1 }))
        yield* TestClock.adjust("1 second")
        yield* joinStopped(queued)
        assert.deepStrictEqual(failures.map((f) => f._tag), ["Defect", "ActivationFailed"])
        yield* control.awaitEvent("terminated:w")
        assert.strictEqual(control.toldAbout("w")[0].failure?._tag, "ActivationFailed")
        assert.strictEqual(control.startsOf("w"), 2)
        assert.strictEqual(control.stopsOf("w"), 2, "both incarnations' finalizers ran")
        yield* stoppedError(w.Work({ n: 1 }))
      }).pipe(inSilo(control, { supervisor: strategy }))
    })

    it.effect("resume of a failed activation effect becomes stop", () => {
      const control = new Control()
      control.failingBuilds.add("bad")
      return Effect.gen(function*() {
        const boss = yield* Boss.ref("boss")
        yield* boss.Spawn({ names: ["bad"] })
        yield* control.awaitEvent("terminated:bad")
        yield* stoppedError(control.ref("bad").Work({ n: 1 }))
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ decider: () => "resume" }) }))
    })

    it.effect("a defect in a one-way message goes to the supervisor", () => {
      const control = new Control()
      const { failures, strategy } = recording(Supervisor.oneForOne, "restart", { backoff: spaced })
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* w.tell.Crash({ message: "one-way" })
        yield* w.tell.Work({ n: 5 })
        yield* waitUntil("the supervisor decided", () => failures.length === 1)
        assert.strictEqual(failures[0]._tag, "Defect")
        yield* settle
        yield* TestClock.adjust("1 second")
        yield* waitUntil("restarted", () => control.startsOf("w") === 2)
        assert.strictEqual(yield* w.Count(), 5, "the tell queued behind the crash reached the new incarnation")
      }).pipe(inSilo(control, { supervisor: strategy }))
    })

    it.effect("two siblings failing together under all-for-one: each child is rebuilt once", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b", "c"])
        // b's turn is running when a fails, and fails in turn before the decision is applied.
        const held = yield* start(control.ref("b").Hold({ gate: "b", crash: true }))
        yield* control.entered("b").await
        yield* defectError(control.ref("a").Crash({ message: "a" }))
        yield* control.gate("b").open
        yield* defectError(Fiber.join(held))
        yield* TestClock.adjust("1 second")
        yield* settle
        yield* TestClock.adjust("1 minute")
        yield* settle
        for (const name of ["a", "b", "c"]) {
          assert.strictEqual(yield* control.ref(name).Count(), 0, name)
          assert.strictEqual(control.startsOf(name), 2, `${name} rebuilt once`)
          assert.strictEqual(control.stopsOf(name), 1, `${name} finalized once`)
        }
      }).pipe(inSilo(control, { supervisor: Supervisor.allForOne({ backoff: spaced }) }))
    })
  })

  describe("children and passivation", () => {
    it.effect("children are not passivated", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        yield* TestClock.adjust("10 minutes")
        assert.strictEqual(yield* control.ref("w").Count(), 1)
        assert.deepStrictEqual(stopEvents(control), [])
      }).pipe(inSilo(control, { idleTimeout: "never" }))
    })
  })

  describe("turns waiting on an actor whose supervisor decides (no wedge)", () => {
    it.effect("a parent turn waiting on a child that escalates", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        const w = control.ref("w")
        const held = yield* start(w.Hold({ gate: "h", crash: true }))
        yield* control.entered("h").await
        // The Boss's turn asks w, which is busy: the ask waits in w's mailbox.
        const relay = yield* start(boss.Relay({ name: "w", n: 1 }))
        yield* settle
        yield* control.gate("h").open
        yield* defectError(Fiber.join(held))
        const relayed = yield* driveOrFail("the Boss's relay", Fiber.join(relay))
        assert.isTrue(Exit.isSuccess(relayed))
        const after = yield* driveOrFail("a later call to w", w.Work({ n: 1 }))
        assert.isTrue(Exit.isSuccess(after))
        const bossAfter = yield* driveOrFail("a later call to the Boss", boss.Count())
        assert.isTrue(Exit.isSuccess(bossAfter))
      }).pipe(inClosableSilo(control, { supervisor: Supervisor.oneForOne({ decider: () => "escalate" }) }))
    })

    it.effect.each([
      { kind: "all-for-one", directive: "restart", waiter: "a" },
      { kind: "rest-for-one", directive: "restart", waiter: "c" },
      { kind: "all-for-one", directive: "stop", waiter: "c" },
      { kind: "rest-for-one", directive: "stop", waiter: "c" }
    ] as const)("$kind $directive while sibling $waiter's running turn waits on the failed child", ({ directive, kind, waiter }) => {
      const control = new Control()
      const make = kind === "all-for-one" ? Supervisor.allForOne : Supervisor.restForOne
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b", "c"])
        const b = control.ref("b")
        const held = yield* start(b.Hold({ gate: "h", crash: true }))
        yield* control.entered("h").await
        // The sibling's turn asks b, which is busy: the ask waits in b's mailbox.
        const relay = yield* start(control.ref(waiter).Relay({ name: "b", n: 1 }))
        yield* settle
        yield* control.gate("h").open
        yield* defectError(Fiber.join(held))
        // The relay's own ask to b may fail (b stopped): the relay then answers -1.
        const relayed = yield* driveOrFail(`${waiter}'s relay to b`, Fiber.join(relay))
        assert.isTrue(Exit.isSuccess(relayed))
        for (const name of ["a", "b", "c"]) {
          const exit = yield* driveOrFail(`a later call to ${name}`, control.ref(name).Work({ n: 1 }))
          const stopped = Exit.isFailure(exit) && String(exit.cause).includes("ActorStopped")
          assert.isTrue(Exit.isSuccess(exit) || (directive === "stop" && stopped), name)
        }
        if (directive === "restart") assert.strictEqual(control.startsOf("b"), 2, "b was rebuilt")
        else yield* stoppedError(control.ref("b").Work({ n: 1 }))
      }).pipe(inClosableSilo(control, { supervisor: make({ backoff: spaced, decider: () => directive }) }))
    })
  })
})

describe("stop and watch take this actor's children only", () => {
  const Target = Actor.make("Target", [Rpc.make("Ping", { success: Schema.String })])
  const TargetLive = Target.toLayer(Effect.succeed(Target.of({ Ping: () => Effect.succeed("pong") })))
  const Meddler = Actor.make("Meddler", [
    Rpc.make("StopOther", { payload: { id: Schema.String } }),
    Rpc.make("WatchOther", { payload: { id: Schema.String } })
  ])
  const MeddlerLive = Meddler.toLayer(Effect.gen(function*() {
    const ctx = yield* ActorContext
    return Meddler.of({
      StopOther: ({ id }) => Effect.flatMap(Target.refOrDie(id), ctx.stop),
      WatchOther: ({ id }) => Effect.flatMap(Target.refOrDie(id), (ref) => ctx.watch(ref, () => Effect.void))
    })
  }))

  it.effect("a virtual actor's ref is refused as a defect, and the actor goes on", () =>
    Effect.gen(function*() {
      const target = yield* Target.ref("t-1")
      assert.strictEqual(yield* target.Ping(), "pong")
      const meddler = yield* Meddler.ref("m")
      for (const call of [meddler.StopOther({ id: "t-1" }), meddler.WatchOther({ id: "t-2" })]) {
        const error = yield* Effect.flip(call)
        assert.instanceOf(error, ActorDefect)
        assert.include((error as ActorDefect).message, "it is not its child")
      }
      const silo = yield* Silo.Silo
      assert.deepStrictEqual((yield* silo.activations("Target")).map((row) => row.address.id), ["t-1"])
      assert.strictEqual(yield* target.Ping(), "pong")
    }).pipe(Effect.provide(Silo.layerTest(TargetLive, MeddlerLive))))
})

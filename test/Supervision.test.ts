/**
 * Supervision: child actors (spawn, stop, watch, lifetimes), each directive, each strategy,
 * restart windows and backoff on the TestClock, escalation through three levels, root
 * supervision of virtual actors, and messages across restarts.
 *
 * The fixture (test/fixtures/SupervisionFixtures.ts) journals every activation effect
 * (`start:name#n`), finalizer (`stop:name#n`) and termination notice (`terminated:name`);
 * the tests call children directly through the refs the fixture keeps.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Exit, Fiber, Latch, Layer, Logger, References, Schedule, Scope } from "effect"
import { TestClock } from "effect/testing"
import { type Failure, Silo, Supervisor } from "../src/index.ts"
import { Boss, Journal, bossLayer as workersBossLayer } from "./fixtures/Workers.ts"
import { Boss as Node, bossLayer, Control, Fatal, type NodeRef, recording } from "./fixtures/SupervisionFixtures.ts"
import {
  defectError,
  inSilo,
  joinStopped,
  settle,
  start,
  stoppedError,
  waitUntil
} from "./fixtures/SupervisionHelpers.ts"

// ---------------------------------------------------------------------------
// Helpers

const bossAddress = (id = "boss") => ({ type: "Boss", id })

const stopEvents = (control: Control) => control.events.filter((e) => e.startsWith("stop:"))

/** A Boss "boss" with children `names`, each of which has done `Work` (1, 2, 3, ...). */
const bossWith = (control: Control, names: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const boss = yield* Node.ref("boss")
    yield* boss.Spawn({ names })
    for (const [i, name] of names.entries()) assert.strictEqual(yield* control.ref(name).Work({ n: i + 1 }), i + 1)
    return boss
  })

const spaced = Schedule.spaced("1 second")

describe("Supervision", () => {
  // -------------------------------------------------------------------------
  describe("smoke (Workers fixture)", () => {
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
      }).pipe(Effect.provide(Silo.layerTest(workersBossLayer(journal, { supervisor: strategy }))))
    })
  })

  // -------------------------------------------------------------------------
  describe("child actors", () => {
    it.effect("spawn returns a usable ref at once; calls queue while the child builds", () => {
      const control = new Control()
      const gate = Latch.makeUnsafe(false)
      control.buildGates.set("slow", gate)
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Spawn({ names: ["slow"] })
        // Spawn returned while the child's activation effect still waits.
        assert.deepStrictEqual(control.events, ["start:boss#1", "start:slow#1"])
        const slow = control.ref("slow")
        assert.deepStrictEqual(slow.address, { type: "Worker", id: "Boss/boss/slow" })
        yield* slow.tell.Work({ n: 4 })
        const asked = yield* start(slow.Work({ n: 3 }))
        yield* settle
        assert.isUndefined(asked.pollUnsafe(), "the ask waits for the child to be built")
        yield* gate.open
        assert.strictEqual(yield* Fiber.join(asked), 7, "the tell, then the ask, in order")
        assert.strictEqual(yield* slow.Count(), 7)
        assert.deepStrictEqual(control.events, ["start:boss#1", "start:slow#1", "ready:slow#1"])
      }).pipe(inSilo(control))
    })

    it.effect("stop waits for the running turn, runs the finalizers; queued and later calls fail with ActorStopped", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        const w = control.ref("w")
        const held = yield* start(w.Hold({ gate: "h", crash: false }))
        yield* control.entered("h").await
        const queuedWork = yield* start(w.Work({ n: 10 }))
        const queuedCount = yield* start(w.Count())
        const stopping = yield* start(boss.StopChild({ name: "w" }))
        yield* settle
        assert.isUndefined(stopping.pollUnsafe(), "stop waits for the running turn")
        assert.strictEqual(control.stopsOf("w"), 0, "no finalizer while the turn runs")
        yield* control.gate("h").open
        assert.strictEqual(yield* Fiber.join(held), 1, "the running turn completes normally")
        yield* Fiber.join(stopping)
        assert.strictEqual(control.stopsOf("w"), 1)
        const queued = yield* joinStopped(queuedWork)
        assert.deepStrictEqual(queued.address, w.address)
        yield* joinStopped(queuedCount)
        yield* stoppedError(w.Work({ n: 1 }))
        yield* stoppedError(w.tell.Work({ n: 1 }))
        yield* stoppedError(w.Count())
        assert.strictEqual(control.startsOf("w"), 1, "a stopped child is not activated again")
        // The finalizer ran before stop returned.
        const i = control.events.indexOf("stop:w#1")
        assert.isTrue(i >= 0 && i < control.events.indexOf("stopped-child:w"))
      }).pipe(inSilo(control))
    })

    it.effect("watch: the termination is delivered as a later turn of the parent, with address and reason", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* boss.StopChild({ name: "w" })
        yield* control.awaitEvent("terminated:w")
        // Told after the StopChild turn (during which the child stopped) had ended.
        const events = control.events
        assert.isTrue(events.indexOf("stopped-child:w") < events.indexOf("terminated:w"))
        assert.deepStrictEqual(control.told.map((t) => t.watcher), ["boss"])
        const [termination] = control.toldAbout("w")
        assert.deepStrictEqual(termination.address, w.address)
        assert.strictEqual(termination.reason, "stopped by its parent")
        assert.isUndefined(termination.failure)
      }).pipe(inSilo(control))
    })

    it.effect("watch: a supervisor's stop tells the failure; the notice waits for the parent's running turn", () => {
      const control = new Control()
      const { failures, strategy } = recording(Supervisor.oneForOne, "stop")
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        const w = control.ref("w")
        const bossHeld = yield* start(boss.Hold({ gate: "boss", crash: false }))
        yield* control.entered("boss").await
        const defect = yield* defectError(w.Crash({ message: "boom" }))
        assert.deepStrictEqual(defect.address, w.address)
        assert.strictEqual(defect.defect, "boom")
        yield* waitUntil("the supervisor stopped w", () => control.stopsOf("w") === 1)
        yield* settle
        assert.deepStrictEqual(control.told, [], "the parent is busy: the notice waits")
        yield* control.gate("boss").open
        yield* Fiber.join(bossHeld)
        yield* control.awaitEvent("terminated:w")
        assert.strictEqual(failures.length, 1)
        const [termination] = control.toldAbout("w")
        assert.deepStrictEqual(termination.address, w.address)
        assert.strictEqual(termination.reason, "defect: boom")
        assert.strictEqual(termination.failure?._tag, "Defect")
        const cause = (termination.failure as { defect: unknown }).defect
        assert.instanceOf(cause, Error)
        assert.strictEqual((cause as Error).message, "boom")
        yield* stoppedError(w.Work({ n: 1 }))
      }).pipe(inSilo(control, { supervisor: strategy }))
    })

    it.effect("watch of a child that has already stopped is told at once", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        yield* boss.StopChild({ name: "w" })
        yield* control.awaitEvent("terminated:w")
        yield* boss.Watch({ name: "w" })
        yield* waitUntil("told again", () => control.toldAbout("w").length === 2)
        const again = control.toldAbout("w")[1]
        assert.deepStrictEqual(again.address, control.ref("w").address)
        assert.strictEqual(again.reason, "it had already stopped")
        assert.isUndefined(again.failure)
      }).pipe(inSilo(control))
    })

    it.effect("children are kept in spawn order: deactivating the parent stops the last spawned first", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["a", "b", "c"])
        yield* boss.StopChild({ name: "b" })
        yield* boss.Spawn({ names: ["d"] })
        assert.deepStrictEqual(yield* boss.Children(), ["a", "c", "d"])
        const silo = yield* Silo.Silo
        assert.isTrue(yield* silo.deactivate(bossAddress()))
        assert.deepStrictEqual(stopEvents(control), ["stop:b#1", "stop:d#1", "stop:c#1", "stop:a#1", "stop:boss#1"])
        for (const name of ["a", "b", "c", "d"]) yield* stoppedError(control.ref(name).Work({ n: 1 }))
      }).pipe(inSilo(control))
    })

    it.effect("deactivating a parent stops its children first, deepest first (3 levels)", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["child"])
        yield* control.ref("child").Spawn({ names: ["grandchild"] })
        assert.strictEqual(yield* control.ref("grandchild").Work({ n: 2 }), 2)
        const silo = yield* Silo.Silo
        assert.isTrue(yield* silo.deactivate(bossAddress()))
        assert.deepStrictEqual(stopEvents(control), ["stop:grandchild#1", "stop:child#1", "stop:boss#1"])
        yield* stoppedError(control.ref("child").Work({ n: 1 }))
        yield* stoppedError(control.ref("grandchild").Work({ n: 1 }))
        // The Boss is virtual: its next call activates it afresh, without the old children.
        assert.strictEqual(yield* boss.Count(), 0)
        assert.deepStrictEqual(yield* boss.Children(), [])
        assert.strictEqual(control.startsOf("boss"), 2)
      }).pipe(inSilo(control))
    })

    it.effect("idle passivation of a virtual parent stops its children first, deepest first", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["child"])
        yield* control.ref("child").Spawn({ names: ["grandchild"] })
        // Calls to the children do not keep the parent alive, and children are not passivated.
        yield* TestClock.adjust("50 seconds")
        yield* control.ref("grandchild").Work({ n: 1 })
        assert.deepStrictEqual(stopEvents(control), [])
        yield* TestClock.adjust("30 seconds")
        yield* waitUntil("the boss passivated", () => control.stopsOf("boss") === 1)
        assert.deepStrictEqual(stopEvents(control), ["stop:grandchild#1", "stop:child#1", "stop:boss#1"])
        const silo = yield* Silo.Silo
        assert.deepStrictEqual(yield* silo.activations("Boss"), [])
      }).pipe(inSilo(control, { idleTimeout: "1 minute" }))
    })

    it.effect("a parent is not passivated while a child is busy; children are listed with their parent", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const silo = yield* Silo.Silo
        const rows = yield* silo.activations()
        const child = rows.find((row) => row.address.type === "Worker")
        assert.isDefined(child, "the child is listed")
        assert.deepStrictEqual(child!.parent, { type: "Boss", id: "boss" })
        assert.isUndefined(rows.find((row) => row.address.type === "Boss")!.parent)
        // The child holds a turn well past the parent's idle timeout: the parent stays.
        const held = yield* start(control.ref("w").Hold({ gate: "long", crash: false }))
        yield* control.entered("long").await
        yield* TestClock.adjust("3 minutes")
        const boss = (yield* silo.activations("Boss"))[0]
        assert.strictEqual(boss?.state, "active", "not passivated from under a busy child")
        yield* control.gate("long").open
        yield* Fiber.join(held)
        // Once the child is idle, the parent's own idle time counts again.
        yield* TestClock.adjust("80 seconds")
        yield* waitUntil("the boss passivated", () => control.stopsOf("boss") === 1)
        assert.deepStrictEqual(stopEvents(control), ["stop:w#1", "stop:boss#1"])
      }).pipe(inSilo(control, { idleTimeout: "1 minute" }))
    })

    it.effect("silo shutdown stops a virtual parent's children first, deepest first", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const scope = yield* Scope.make()
        const context = yield* Layer.buildWithScope(Silo.layerTest(bossLayer(control)), scope)
        yield* Effect.gen(function*() {
          yield* bossWith(control, ["c1", "c2"])
          yield* control.ref("c1").Spawn({ names: ["g1"] })
          yield* control.ref("c2").Spawn({ names: ["g2"] })
        }).pipe(Effect.provideContext(context))
        yield* Scope.close(scope, Exit.void)
        assert.deepStrictEqual(stopEvents(control), ["stop:g2#1", "stop:c2#1", "stop:g1#1", "stop:c1#1", "stop:boss#1"])
        const silo = Context.get(context, Silo.Silo)
        assert.deepStrictEqual(yield* silo.activations(), [])
      })
    })

    it.effect("spawning a second child with a taken name is a defect of the parent's turn", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["a"])
        yield* defectError(boss.Spawn({ names: ["a"] }))
        assert.strictEqual(control.startsOf("a"), 1)
        assert.strictEqual(yield* control.ref("a").Work({ n: 1 }), 2, "the first child is untouched")
      }).pipe(inSilo(control))
    })

    it.effect("a child whose activation effect fails is stopped by default (ActivationFailed)", () => {
      const control = new Control()
      control.failingBuilds.add("bad")
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Spawn({ names: ["bad"] })
        const bad = control.ref("bad")
        const queued = yield* start(bad.Work({ n: 1 }))
        yield* joinStopped(queued)
        yield* control.awaitEvent("terminated:bad")
        const [termination] = control.toldAbout("bad")
        assert.strictEqual(termination.failure?._tag, "ActivationFailed")
        assert.strictEqual(control.startsOf("bad"), 1, "a failed activation effect is not retried by default")
        assert.strictEqual(control.stopsOf("bad"), 1, "its finalizer ran")
        yield* stoppedError(bad.Work({ n: 1 }))
      }).pipe(inSilo(control))
    })
  })

  // -------------------------------------------------------------------------
  describe("directives", () => {
    it.effect("resume: the child keeps its state and goes on", () => {
      const control = new Control()
      const { failures, strategy } = recording(Supervisor.oneForOne, "resume")
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        assert.strictEqual(yield* w.Work({ n: 4 }), 5)
        yield* defectError(w.Crash({ message: "boom" }))
        // Sent before the decision: it waits, then runs on the resumed incarnation.
        assert.strictEqual(yield* w.Work({ n: 1 }), 6)
        assert.strictEqual(failures.length, 1)
        assert.strictEqual(failures[0]._tag, "Defect")
        assert.deepStrictEqual(control.events, ["start:boss#1", "start:w#1"])
      }).pipe(inSilo(control, { supervisor: strategy }))
    })

    it.effect("restart: the activation effect runs again with fresh state; the old finalizers ran once", () => {
      const control = new Control()
      const { failures, strategy } = recording(Supervisor.oneForOne, "restart", { backoff: spaced })
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        assert.strictEqual(yield* w.Work({ n: 4 }), 5)
        yield* defectError(w.Crash({ message: "boom" }))
        const queued = yield* start(w.Work({ n: 1 }))
        yield* TestClock.adjust("999 millis")
        assert.isUndefined(queued.pollUnsafe())
        assert.strictEqual(control.startsOf("w"), 1)
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(queued), 1, "fresh state")
        assert.strictEqual(failures.length, 1)
        assert.deepStrictEqual(control.events, ["start:boss#1", "start:w#1", "stop:w#1", "start:w#2"])
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(control.stopsOf("w"), 1, "the old incarnation's finalizers ran exactly once")
        assert.strictEqual(yield* w.Count(), 1)
      }).pipe(inSilo(control, { supervisor: strategy }))
    })

    it.effect("restart of a child that has children stops them (deepest first) before it is rebuilt", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["c"])
        const c = control.ref("c")
        yield* c.Spawn({ names: ["g1", "g2"] })
        yield* control.ref("g1").Work({ n: 1 })
        yield* defectError(c.Crash({ message: "boom" }))
        yield* TestClock.adjust("1 second")
        yield* waitUntil("c rebuilt", () => control.startsOf("c") === 2)
        assert.deepStrictEqual(stopEvents(control), ["stop:g2#1", "stop:g1#1", "stop:c#1"])
        yield* stoppedError(control.ref("g1").Work({ n: 1 }))
        yield* stoppedError(control.ref("g2").Work({ n: 1 }))
        assert.deepStrictEqual(yield* c.Children(), [], "the new incarnation starts without children")
        assert.strictEqual(yield* c.Count(), 0)
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: spaced }) }))
    })

    it.effect("stop: the failed call gets ActorDefect, waiting asks ActorStopped, later calls ActorStopped", () => {
      const control = new Control()
      const { failures, strategy } = recording(Supervisor.oneForOne, "stop")
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        const held = yield* start(w.Hold({ gate: "h", crash: true }))
        yield* control.entered("h").await
        const queued = [yield* start(w.Work({ n: 1 })), yield* start(w.Count())]
        yield* control.gate("h").open
        const defect = yield* defectError(Fiber.join(held))
        assert.strictEqual(defect.tag, "Hold")
        for (const fiber of queued) yield* joinStopped(fiber)
        yield* stoppedError(w.Work({ n: 1 }))
        assert.strictEqual(failures.length, 1)
        assert.strictEqual(control.startsOf("w"), 1)
        assert.strictEqual(control.stopsOf("w"), 1)
        yield* control.awaitEvent("terminated:w")
        assert.strictEqual(control.toldAbout("w")[0].failure?._tag, "Defect")
      }).pipe(inSilo(control, { supervisor: strategy }))
    })

    it.effect("escalate: the parent's supervisor decides; when the parent resumes, the child resumes too", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, "resume")
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        yield* boss.Work({ n: 3 })
        const w = control.ref("w")
        assert.strictEqual(yield* w.Work({ n: 4 }), 5)
        yield* defectError(w.Crash({ message: "boom" }))
        assert.strictEqual(yield* w.Work({ n: 1 }), 6, "the child resumed with its state")
        assert.strictEqual(root.failures.length, 1)
        const failure = root.failures[0]
        assert.strictEqual(failure._tag, "ChildEscalated")
        if (failure._tag === "ChildEscalated") {
          assert.deepStrictEqual(failure.child, w.address)
          assert.strictEqual(failure.failure._tag, "Defect")
        }
        assert.strictEqual(yield* boss.Work({ n: 0 }), 3, "the parent resumed with its state")
        assert.deepStrictEqual(control.events, ["start:boss#1", "start:w#1"])
      }).pipe(inSilo(control, {
        supervisor: Supervisor.oneForOne({ decider: () => "escalate" }),
        rootSupervisor: root.strategy
      }))
    })
  })

  // -------------------------------------------------------------------------
  describe("strategies", () => {
    const restartWith = (make: (options: Supervisor.Options) => Supervisor.Strategy) =>
      make({ backoff: spaced })

    it.effect("one-for-one restarts only the failed child", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b", "c"])
        yield* defectError(control.ref("b").Crash({ message: "boom" }))
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(
          yield* Effect.forEach(["a", "b", "c"], (name) => control.ref(name).Count()),
          [1, 0, 3]
        )
        assert.deepStrictEqual([control.startsOf("a"), control.startsOf("b"), control.startsOf("c")], [1, 2, 1])
        assert.deepStrictEqual(stopEvents(control), ["stop:b#1"])
      }).pipe(inSilo(control, { supervisor: restartWith(Supervisor.oneForOne) }))
    })

    it.effect("all-for-one restarts every sibling: each finalizer ran at once, each rebuilt after the delay", () => {
      const control = new Control()
      const { failures, strategy } = recording(Supervisor.allForOne, "restart", { backoff: spaced })
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b", "c"])
        yield* defectError(control.ref("b").Crash({ message: "boom" }))
        yield* waitUntil("the supervisor decided", () => failures.length === 1)
        yield* settle
        // The siblings are suspended for the restart: this call waits for c's new incarnation.
        const queued = yield* start(control.ref("c").Work({ n: 10 }))
        yield* TestClock.adjust("999 millis")
        // The finalizers run at once; the new incarnations wait for the backoff delay.
        assert.deepStrictEqual(stopEvents(control), ["stop:a#1", "stop:b#1", "stop:c#1"])
        assert.deepStrictEqual([control.startsOf("a"), control.startsOf("b"), control.startsOf("c")], [1, 1, 1])
        assert.isUndefined(queued.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(queued), 10, "a sibling's queued message reached its new incarnation")
        assert.deepStrictEqual(
          yield* Effect.forEach(["a", "b", "c"], (name) => control.ref(name).Count()),
          [0, 0, 10]
        )
        for (const name of ["a", "b", "c"]) {
          assert.strictEqual(control.startsOf(name), 2, name)
          assert.strictEqual(control.stopsOf(name), 1, name)
          assert.isTrue(control.events.indexOf(`stop:${name}#1`) < control.events.indexOf(`start:${name}#2`))
        }
        assert.deepStrictEqual(control.told, [], "restarted siblings did not terminate")
      }).pipe(inSilo(control, { supervisor: strategy }))
    })

    it.effect.each([
      { kind: "all-for-one", strategy: Supervisor.allForOne, failed: "b", held: ["a", "c"] },
      { kind: "rest-for-one", strategy: Supervisor.restForOne, failed: "b", held: ["c"] }
    ])("$kind: once the failed call has returned, no affected sibling answers from its old state", ({ failed, held, strategy }) => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b", "c"])
        yield* defectError(control.ref(failed).Crash({ message: "boom" }))
        // Asked at once, before the supervisor has run: each waits for its new incarnation.
        const asks = yield* Effect.forEach(held, (name) => start(control.ref(name).Count()))
        for (const ask of asks) assert.isUndefined(ask.pollUnsafe())
        yield* TestClock.adjust("1 second")
        assert.deepStrictEqual(yield* Effect.forEach(asks, Fiber.join), held.map(() => 0))
        for (const name of held) assert.strictEqual(control.startsOf(name), 2, name)
      }).pipe(inSilo(control, { supervisor: restartWith(strategy) }))
    })

    it.effect.each([
      { failed: "b", restarted: ["b", "c"], kept: ["a"] },
      { failed: "a", restarted: ["a", "b", "c"], kept: [] },
      { failed: "c", restarted: ["c"], kept: ["a", "b"] }
    ])("rest-for-one: $failed fails → restarts $restarted, keeps $kept", ({ failed, kept, restarted }) => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b", "c"])
        yield* defectError(control.ref(failed).Crash({ message: "boom" }))
        yield* TestClock.adjust("1 second")
        for (const name of restarted) {
          assert.strictEqual(yield* control.ref(name).Count(), 0, name)
          assert.strictEqual(control.startsOf(name), 2, name)
          assert.strictEqual(control.stopsOf(name), 1, name)
        }
        for (const name of kept) {
          assert.strictEqual(yield* control.ref(name).Count(), ["a", "b", "c"].indexOf(name) + 1, name)
          assert.strictEqual(control.startsOf(name), 1, name)
          assert.strictEqual(control.stopsOf(name), 0, name)
        }
      }).pipe(inSilo(control, { supervisor: restartWith(Supervisor.restForOne) }))
    })

    it.effect("all-for-one stop stops every sibling (last spawned first); only the failed one's notice has a failure", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["a", "b", "c"])
        yield* defectError(control.ref("b").Crash({ message: "boom" }))
        for (const name of ["a", "b", "c"]) {
          yield* control.awaitEvent(`terminated:${name}`)
          yield* stoppedError(control.ref(name).Work({ n: 1 }))
        }
        assert.deepStrictEqual(stopEvents(control), ["stop:c#1", "stop:b#1", "stop:a#1"])
        assert.strictEqual(control.toldAbout("b")[0].failure?._tag, "Defect")
        for (const name of ["a", "c"]) {
          const [termination] = control.toldAbout(name)
          assert.isUndefined(termination.failure, name)
          assert.strictEqual(termination.reason, "a sibling stopped (all-for-one)")
        }
        assert.strictEqual(yield* boss.Work({ n: 1 }), 1, "the parent goes on")
      }).pipe(inSilo(control, { supervisor: Supervisor.allForOne({ decider: () => "stop" }) }))
    })

    it.effect("rest-for-one stop stops the failed child and later siblings, not earlier ones", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["a", "b", "c"])
        yield* defectError(control.ref("b").Crash({ message: "boom" }))
        yield* control.awaitEvent("terminated:b")
        yield* control.awaitEvent("terminated:c")
        yield* stoppedError(control.ref("b").Work({ n: 1 }))
        yield* stoppedError(control.ref("c").Work({ n: 1 }))
        assert.strictEqual(yield* control.ref("a").Work({ n: 1 }), 2)
        assert.deepStrictEqual(stopEvents(control), ["stop:c#1", "stop:b#1"])
        assert.strictEqual(control.toldAbout("c")[0].reason, "a sibling stopped (rest-for-one)")
        assert.deepStrictEqual(control.toldAbout("a"), [])
      }).pipe(inSilo(control, { supervisor: Supervisor.restForOne({ decider: () => "stop" }) }))
    })
  })

  // -------------------------------------------------------------------------
  describe("restart windows and backoff", () => {
    /** Crashes `w`, then checks it is not rebuilt at `delay - 1` ms and is at `delay`. */
    const crashAndExpectRestartAfter = (control: Control, w: NodeRef, delayMillis: number) =>
      Effect.gen(function*() {
        const before = control.startsOf("w")
        yield* defectError(w.Crash({ message: "boom" }))
        yield* TestClock.adjust(delayMillis - 1)
        yield* settle
        assert.strictEqual(control.startsOf("w"), before, `not restarted ${delayMillis - 1} ms after the failure`)
        yield* TestClock.adjust(1)
        yield* waitUntil(`restarted ${delayMillis} ms after the failure`, () => control.startsOf("w") === before + 1)
        assert.strictEqual(yield* w.Count(), 0)
      })

    it.effect("exponential backoff: restarts after exactly 100, 200, 400 ms", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* crashAndExpectRestartAfter(control, w, 100)
        yield* crashAndExpectRestartAfter(control, w, 200)
        yield* crashAndExpectRestartAfter(control, w, 400)
        assert.strictEqual(control.startsOf("w"), 4)
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: Schedule.exponential("100 millis") }) }))
    })

    it.effect("maxRestarts 3 within 1 minute: the 4th failure stops the child (onLimit stop)", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        for (let i = 1; i <= 3; i++) {
          yield* defectError(w.Crash({ message: `boom ${i}` }))
          yield* TestClock.adjust("1 second")
          yield* waitUntil(`restart ${i}`, () => control.startsOf("w") === i + 1)
        }
        yield* w.Work({ n: 7 })
        yield* defectError(w.Crash({ message: "boom 4" }))
        yield* control.awaitEvent("terminated:w")
        yield* stoppedError(w.Work({ n: 1 }))
        const [termination] = control.toldAbout("w")
        assert.strictEqual(termination.failure?._tag, "Defect")
        assert.strictEqual(termination.reason, "defect: boom 4")
        yield* TestClock.adjust("1 minute")
        assert.strictEqual(control.startsOf("w"), 4)
        assert.strictEqual(control.stopsOf("w"), 4)
      }).pipe(inSilo(control, {
        supervisor: Supervisor.oneForOne({ maxRestarts: 3, within: "1 minute", backoff: spaced })
      }))
    })

    it.effect("maxRestarts 3 within 1 minute: the 4th failure escalates (onLimit escalate)", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, "resume")
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        for (let i = 1; i <= 3; i++) {
          yield* defectError(w.Crash({ message: `boom ${i}` }))
          yield* TestClock.adjust("1 second")
          yield* waitUntil(`restart ${i}`, () => control.startsOf("w") === i + 1)
        }
        assert.deepStrictEqual(root.failures, [], "restarts within the limit do not reach the parent")
        yield* w.Work({ n: 7 })
        yield* defectError(w.Crash({ message: "boom 4" }))
        // The parent's supervisor (the root) resumes the parent, and with it the child.
        assert.strictEqual(yield* w.Work({ n: 1 }), 8)
        assert.strictEqual(root.failures.length, 1)
        const failure = root.failures[0]
        assert.strictEqual(failure._tag, "ChildEscalated")
        if (failure._tag === "ChildEscalated") {
          assert.deepStrictEqual(failure.child, w.address)
          assert.strictEqual(failure.failure._tag, "Defect")
        }
        assert.strictEqual(control.startsOf("w"), 4)
        assert.strictEqual(control.stopsOf("w"), 3)
      }).pipe(inSilo(control, {
        supervisor: Supervisor.oneForOne({ maxRestarts: 3, within: "1 minute", backoff: spaced, onLimit: "escalate" }),
        rootSupervisor: root.strategy
      }))
    })

    it.effect("the window slides: restarts older than `within` no longer count", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        // Failures at 0 s, 20 s, 40 s: three restarts in the window.
        for (let i = 1; i <= 3; i++) {
          yield* defectError(w.Crash({ message: `boom ${i}` }))
          yield* TestClock.adjust("20 seconds")
          yield* waitUntil(`restart ${i}`, () => control.startsOf("w") === i + 1)
        }
        // At 60.5 s the restart at 0 s has left the window: this one is allowed.
        yield* TestClock.adjust("500 millis")
        yield* defectError(w.Crash({ message: "boom 4" }))
        yield* TestClock.adjust("1 second")
        yield* waitUntil("restart 4", () => control.startsOf("w") === 5)
        // At 61.5 s, three restarts (20 s, 40 s, 60.5 s) are in the window: the limit.
        yield* defectError(w.Crash({ message: "boom 5" }))
        yield* control.awaitEvent("terminated:w")
        assert.strictEqual(control.startsOf("w"), 5)
      }).pipe(inSilo(control, {
        supervisor: Supervisor.oneForOne({ maxRestarts: 3, within: "1 minute", backoff: spaced })
      }))
    })

    it.effect("after a whole window without restarts, the history and the backoff start over", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* crashAndExpectRestartAfter(control, w, 100)
        yield* crashAndExpectRestartAfter(control, w, 200)
        yield* crashAndExpectRestartAfter(control, w, 400)
        yield* TestClock.adjust("1 minute")
        // The first delay again, and a whole new budget of three restarts.
        yield* crashAndExpectRestartAfter(control, w, 100)
        yield* crashAndExpectRestartAfter(control, w, 200)
        yield* crashAndExpectRestartAfter(control, w, 400)
        yield* defectError(w.Crash({ message: "over the limit" }))
        yield* control.awaitEvent("terminated:w")
        assert.strictEqual(control.startsOf("w"), 7)
      }).pipe(inSilo(control, {
        supervisor: Supervisor.oneForOne({
          maxRestarts: 3,
          within: "1 minute",
          backoff: Schedule.exponential("100 millis")
        })
      }))
    })

    it.effect("a backoff schedule that ends counts as the limit (stop)", () => {
      const control = new Control()
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        for (let i = 1; i <= 2; i++) {
          yield* defectError(w.Crash({ message: `boom ${i}` }))
          yield* TestClock.adjust("1 second")
          yield* waitUntil(`restart ${i}`, () => control.startsOf("w") === i + 1)
        }
        yield* defectError(w.Crash({ message: "boom 3" }))
        yield* control.awaitEvent("terminated:w")
        yield* stoppedError(w.Work({ n: 1 }))
        assert.strictEqual(control.toldAbout("w")[0].failure?._tag, "Defect")
        assert.strictEqual(control.startsOf("w"), 3)
      }).pipe(inSilo(control, {
        supervisor: Supervisor.oneForOne({ backoff: Schedule.max([spaced, Schedule.recurs(2)]) })
      }))
    })

    it.effect("a backoff schedule that ends counts as the limit (escalate)", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, "resume")
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* defectError(w.Crash({ message: "boom 1" }))
        yield* TestClock.adjust("1 second")
        yield* waitUntil("restart 1", () => control.startsOf("w") === 2)
        yield* defectError(w.Crash({ message: "boom 2" }))
        assert.strictEqual(yield* w.Work({ n: 2 }), 2, "escalated, resumed with the parent")
        assert.strictEqual(root.failures.length, 1)
        assert.strictEqual(root.failures[0]._tag, "ChildEscalated")
      }).pipe(inSilo(control, {
        supervisor: Supervisor.oneForOne({ backoff: Schedule.max([spaced, Schedule.recurs(1)]), onLimit: "escalate" }),
        rootSupervisor: root.strategy
      }))
    })
  })

  // -------------------------------------------------------------------------
  describe("escalation three levels deep", () => {
    const escalating = Supervisor.oneForOne({ decider: () => "escalate" })

    /** Boss → child → grandchild, each with some state; the grandchild then crashes. */
    const tree = (control: Control) =>
      Effect.gen(function*() {
        control.childOptions.set("child", { supervisor: escalating })
        const boss = yield* bossWith(control, ["child"])
        yield* boss.Work({ n: 7 })
        yield* control.ref("child").Spawn({ names: ["grandchild"] })
        yield* control.ref("grandchild").Work({ n: 3 })
        yield* defectError(control.ref("grandchild").Crash({ message: "deep" }))
        return boss
      })

    const assertNested = (failures: ReadonlyArray<Failure.Failure>, control: Control) => {
      assert.strictEqual(failures.length, 1)
      const top = failures[0]
      assert.strictEqual(top._tag, "ChildEscalated")
      if (top._tag !== "ChildEscalated") return
      assert.deepStrictEqual(top.child, control.ref("child").address)
      const middle = top.failure
      assert.strictEqual(middle._tag, "ChildEscalated")
      if (middle._tag !== "ChildEscalated") return
      assert.deepStrictEqual(middle.child, control.ref("grandchild").address)
      assert.strictEqual(middle.failure._tag, "Defect")
    }

    it.effect("root restart: the Boss's children stop deepest first, then it is rebuilt after the backoff", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, "restart", { backoff: spaced })
      return Effect.gen(function*() {
        const boss = yield* tree(control)
        yield* waitUntil("the root decided", () => root.failures.length === 1)
        assertNested(root.failures, control)
        // All three are suspended now: these calls wait.
        const grandchildCall = yield* start(control.ref("grandchild").Work({ n: 1 }))
        const childCall = yield* start(control.ref("child").Work({ n: 1 }))
        const bossCall = yield* start(boss.Work({ n: 1 }))
        yield* TestClock.adjust("999 millis")
        yield* settle
        // Torn down at once, deepest first; rebuilt only after the backoff delay.
        assert.deepStrictEqual(stopEvents(control), ["stop:grandchild#1", "stop:child#1", "stop:boss#1"])
        assert.strictEqual(control.startsOf("boss"), 1)
        assert.isUndefined(bossCall.pollUnsafe())
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(bossCall), 1, "the Boss's queued call reached its new incarnation")
        yield* joinStopped(grandchildCall)
        yield* joinStopped(childCall)
        const since = control.events.indexOf("stop:grandchild#1")
        assert.deepStrictEqual(control.events.slice(since).filter((e) => !e.startsWith("terminated:")), [
          "stop:grandchild#1",
          "stop:child#1",
          "stop:boss#1",
          "start:boss#2"
        ])
        assert.deepStrictEqual(yield* boss.Children(), [])
        yield* stoppedError(control.ref("child").Work({ n: 1 }))
        yield* stoppedError(control.ref("grandchild").Work({ n: 1 }))
      }).pipe(inSilo(control, { supervisor: escalating, rootSupervisor: root.strategy }))
    })

    it.effect("escalate at the root means stop: the Boss deactivates and activates fresh on its next call", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, "escalate")
      return Effect.gen(function*() {
        const boss = yield* tree(control)
        yield* waitUntil("the Boss stopped", () => control.stopsOf("boss") === 1)
        assertNested(root.failures, control)
        assert.deepStrictEqual(stopEvents(control), ["stop:grandchild#1", "stop:child#1", "stop:boss#1"])
        const silo = yield* Silo.Silo
        assert.deepStrictEqual(yield* silo.activations("Boss"), [])
        yield* stoppedError(control.ref("child").Work({ n: 1 }))
        yield* stoppedError(control.ref("grandchild").Work({ n: 1 }))
        assert.strictEqual(yield* boss.Work({ n: 1 }), 1, "a fresh activation")
        assert.strictEqual(control.startsOf("boss"), 2)
        assert.deepStrictEqual(yield* boss.Children(), [])
      }).pipe(inSilo(control, { supervisor: escalating, rootSupervisor: root.strategy }))
    })

    it.effect("the Boss's default root supervisor (resume) resumes the whole escalated chain", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* tree(control)
        assert.strictEqual(yield* control.ref("grandchild").Work({ n: 1 }), 4)
        assert.strictEqual(yield* control.ref("child").Work({ n: 1 }), 2)
        assert.strictEqual(yield* boss.Work({ n: 1 }), 8)
        assert.deepStrictEqual(stopEvents(control), [])
      }).pipe(inSilo(control, { supervisor: escalating }))
    })
  })

  // -------------------------------------------------------------------------
  describe("root supervision of virtual actors", () => {
    it.effect("default (Supervisor.resume): the activation keeps its state after a defect", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Work({ n: 5 })
        yield* defectError(boss.Crash({ message: "boom" }))
        assert.strictEqual(yield* boss.Count(), 5)
        assert.deepStrictEqual(control.events, ["start:boss#1"])
      }).pipe(inSilo(control))
    })

    it.effect("rootSupervisor restart rebuilds the activation after the backoff", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Work({ n: 5 })
        yield* defectError(boss.Crash({ message: "boom" }))
        const queued = yield* start(boss.Work({ n: 1 }))
        const silo = yield* Silo.Silo
        yield* TestClock.adjust("199 millis")
        assert.isUndefined(queued.pollUnsafe())
        assert.deepStrictEqual((yield* silo.activations("Boss")).map((a) => a.state), ["suspended"])
        yield* TestClock.adjust("1 millis")
        assert.strictEqual(yield* Fiber.join(queued), 1)
        assert.deepStrictEqual(control.events, ["start:boss#1", "stop:boss#1", "start:boss#2"])
        assert.deepStrictEqual((yield* silo.activations("Boss")).map((a) => a.state), ["active"])
      }).pipe(inSilo(control, { rootSupervisor: Supervisor.oneForOne({ backoff: Schedule.spaced("200 millis") }) }))
    })

    it.effect("rootSupervisor restart whose activation effect fails: stopped (ActivationFailed); the next call activates afresh", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, Supervisor.restartDecider, { backoff: spaced })
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Work({ n: 5 })
        yield* defectError(boss.Crash({ message: "boom" }))
        control.failingBuilds.add("boss")
        const queued = yield* start(boss.Work({ n: 1 }))
        yield* TestClock.adjust("1 second")
        yield* joinStopped(queued)
        assert.deepStrictEqual(root.failures.map((f) => f._tag), ["Defect", "ActivationFailed"])
        assert.strictEqual(control.stopsOf("boss"), 2, "both incarnations' finalizers ran")
        control.failingBuilds.delete("boss")
        assert.strictEqual(yield* boss.Work({ n: 1 }), 1)
        assert.strictEqual(control.startsOf("boss"), 3)
      }).pipe(inSilo(control, { rootSupervisor: root.strategy }))
    })

    it.effect("rootSupervisor stop: waiting asks fail with ActorStopped; the next call activates afresh", () => {
      const control = new Control()
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Work({ n: 5 })
        const held = yield* start(boss.Hold({ gate: "h", crash: true }))
        yield* control.entered("h").await
        const queued = [yield* start(boss.Work({ n: 1 })), yield* start(boss.Count())]
        yield* control.gate("h").open
        yield* defectError(Fiber.join(held))
        for (const fiber of queued) {
          const error = yield* joinStopped(fiber)
          assert.deepStrictEqual(error.address, bossAddress())
        }
        assert.deepStrictEqual(control.events, ["start:boss#1", "stop:boss#1"])
        assert.strictEqual(yield* boss.Work({ n: 1 }), 1, "a fresh activation")
        assert.strictEqual(control.startsOf("boss"), 2)
      }).pipe(inSilo(control, { rootSupervisor: Supervisor.oneForOne({ decider: () => "stop" }) }))
    })

    it.effect("fatal: a declared error goes to the supervisor while the caller still gets it", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, "restart", { backoff: spaced })
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Work({ n: 5 })
        const error = yield* Effect.flip(boss.Fail())
        assert.instanceOf(error, Fatal)
        yield* waitUntil("the supervisor decided", () => root.failures.length === 1)
        const failure = root.failures[0]
        assert.strictEqual(failure._tag, "FatalError")
        assert.instanceOf((failure as { error: unknown }).error, Fatal)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* boss.Count(), 0)
        assert.strictEqual(control.startsOf("boss"), 2)
        // A one-way Fail is a failure too.
        yield* boss.tell.Fail()
        yield* waitUntil("the supervisor decided again", () => root.failures.length === 2)
        yield* TestClock.adjust("1 second")
        yield* waitUntil("restarted again", () => control.startsOf("boss") === 3)
      }).pipe(inSilo(control, { rootSupervisor: root.strategy, fatal: ["Fatal"] }))
    })

    it.effect("without `fatal`, a declared error is only a reply", () => {
      const control = new Control()
      const root = recording(Supervisor.oneForOne, "restart", { backoff: spaced })
      return Effect.gen(function*() {
        const boss = yield* Node.ref("boss")
        yield* boss.Work({ n: 5 })
        assert.instanceOf(yield* Effect.flip(boss.Fail()), Fatal)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* boss.Count(), 5)
        assert.deepStrictEqual(root.failures, [])
      }).pipe(inSilo(control, { rootSupervisor: root.strategy }))
    })

    it.effect("fatal on a child: its parent's supervisor restarts it; the caller gets Fatal", () => {
      const control = new Control()
      control.childOptions.set("w", { fatal: ["Fatal"] })
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        assert.instanceOf(yield* Effect.flip(w.Fail()), Fatal)
        yield* TestClock.adjust("1 second")
        assert.strictEqual(yield* w.Count(), 0)
        assert.strictEqual(control.startsOf("w"), 2)
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: spaced }) }))
    })
  })

  // -------------------------------------------------------------------------
  describe("messages across restarts", () => {
    it.effect("1,000 messages to a child crashing on every 100th: each other one processed once, in order", () => {
      const control = new Control()
      control.crashOn = (i) => i % 100 === 99
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        const asks: Array<[number, Fiber.Fiber<number, unknown>]> = []
        for (let i = 0; i < 1000; i++) {
          // Crashing messages and every third other one are asks; the rest are tells.
          if (control.crashOn(i) || i % 3 === 0) asks.push([i, yield* start(w.Seq({ i }))])
          else yield* w.tell.Seq({ i })
        }
        for (let r = 0; r < 10; r++) {
          yield* TestClock.adjust("1 second")
          yield* settle
        }
        for (const [i, fiber] of asks) {
          if (control.crashOn(i)) {
            const defect = yield* defectError(Fiber.join(fiber))
            assert.strictEqual(defect.defect, `w crashed on ${i}`)
          } else {
            assert.strictEqual(yield* Fiber.join(fiber), i)
          }
        }
        yield* waitUntil("the 10th restart", () => control.startsOf("w") === 11)
        const seen = control.seen.get("w")!
        assert.strictEqual(seen.length, 1000)
        for (let k = 1; k <= 10; k++) {
          const expected = Array.from({ length: 100 }, (_, j) => `${k}:${(k - 1) * 100 + j}`)
          assert.deepStrictEqual(seen.filter((s) => s.startsWith(`${k}:`)), expected, `incarnation ${k}`)
        }
        assert.deepStrictEqual(seen.map((s) => Number(s.split(":")[1])), Array.from({ length: 1000 }, (_, i) => i))
        assert.strictEqual(control.stopsOf("w"), 10)
      }).pipe(inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: spaced, maxRestarts: 10 }) }))
    })
  })
  // -------------------------------------------------------------------------
  describe("logging", () => {
    interface Captured {
      readonly level: string
      readonly message: unknown
      readonly annotations: Readonly<Record<string, unknown>>
    }
    const capture = (into: Array<Captured>) =>
      Logger.layer([
        Logger.make((options) => {
          into.push({
            level: options.logLevel,
            message: options.message,
            annotations: options.fiber.getRef(References.CurrentLogAnnotations)
          })
        })
      ])
    const decisions = (logs: ReadonlyArray<Captured>) => logs.filter((log) => log.annotations.decision !== undefined)

    it.effect("a restart decision is logged with actor, decision, failure, restarts and delay", () => {
      const control = new Control()
      const logs: Array<Captured> = []
      return Effect.gen(function*() {
        yield* bossWith(control, ["w"])
        const w = control.ref("w")
        yield* defectError(w.Crash({ message: "boom" }))
        yield* TestClock.adjust("100 millis")
        yield* waitUntil("restart 1", () => control.startsOf("w") === 2)
        yield* defectError(w.Crash({ message: "boom again" }))
        yield* TestClock.adjust("200 millis")
        yield* waitUntil("restart 2", () => control.startsOf("w") === 3)
        const logged = decisions(logs)
        assert.deepStrictEqual(logged.map((log) => log.annotations), [
          { actor: "Worker/Boss/boss/w", decision: "restart", failure: "defect: boom", restarts: 1, delayMillis: 100 },
          {
            actor: "Worker/Boss/boss/w",
            decision: "restart",
            failure: "defect: boom again",
            restarts: 2,
            delayMillis: 200
          }
        ])
        assert.deepStrictEqual(logged.map((log) => log.level), ["Warn", "Warn"])
        assert.include(String(logged[0].message), "Worker/Boss/boss/w")
      }).pipe(
        inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: Schedule.exponential("100 millis") }) }),
        Effect.provide(capture(logs))
      )
    })

    it.effect("resume is logged at info; the limit and the stop that follows are logged too", () => {
      const control = new Control()
      const logs: Array<Captured> = []
      return Effect.gen(function*() {
        const boss = yield* bossWith(control, ["w"])
        yield* defectError(boss.Crash({ message: "root" }))
        yield* waitUntil("the root decided", () => decisions(logs).length === 1)
        const w = control.ref("w")
        yield* defectError(w.Crash({ message: "first" }))
        yield* TestClock.adjust("1 second")
        yield* waitUntil("restart 1", () => control.startsOf("w") === 2)
        yield* defectError(w.Crash({ message: "second" }))
        yield* control.awaitEvent("terminated:w")
        const logged = decisions(logs)
        const summary = (log: Captured) => [log.level, log.annotations.actor, log.annotations.decision, log.annotations.restarts]
        assert.deepStrictEqual(summary(logged[0]), ["Info", "Boss/boss", "resume", 0])
        assert.deepStrictEqual(summary(logged[1]), ["Warn", "Worker/Boss/boss/w", "restart", 1])
        // Over the limit: the decision that is applied is "stop" (a note about the limit may precede it).
        const last = logged[logged.length - 1]
        assert.deepStrictEqual(summary(last), ["Warn", "Worker/Boss/boss/w", "stop", 2])
        assert.strictEqual(last.annotations.failure, "defect: second")
        assert.isTrue(logged.length <= 4)
      }).pipe(
        inSilo(control, { supervisor: Supervisor.oneForOne({ backoff: spaced, maxRestarts: 1 }) }),
        Effect.provide(capture(logs))
      )
    })
  })
})

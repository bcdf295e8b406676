/**
 * Mailbox and turns (issue part D): one turn at a time, FIFO per sender, read-only and
 * always-interleave scheduling, bounded mailboxes, defects, interruption and timeouts.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Fiber, Latch, Layer, Scope } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { Mailbox } from "../src/Actor/internal/Mailbox.ts"
import { emptyMetadata, Turn, TurnKind, TurnState } from "../src/Actor/internal/Turn.ts"
import { ActorDefect, type ActorTypeOptions, CallTimeout, MailboxFull, Silo } from "../src/index.ts"
import {
  activationOf,
  Boom,
  depthOf,
  Probe,
  probeLayer,
  ProbeState,
  release,
  settle,
  waitUntil
} from "./fixtures/MailboxProbe.ts"

const address = { type: "Probe", id: "p" }

/** Runs `body` against a fresh silo hosting the probe with these options. */
const withProbe = <A, E>(
  body: (state: ProbeState) => Effect.Effect<A, E, Silo.Silo>,
  options?: ActorTypeOptions
): Effect.Effect<A, E> => {
  const state = new ProbeState()
  return Effect.provide(release(state.abort, body(state)), Silo.layerTest(probeLayer(state, options)))
}

const depthIs = (n: number) => Effect.map(depthOf("Probe", "p"), (depth) => depth === n)

const idle = Effect.map(
  activationOf("Probe", "p"),
  (row) => row !== undefined && row.mailboxDepth === 0 && row.runningTurns === 0
)

const isDone = (fiber: Fiber.Fiber<unknown, unknown>) => fiber.pollUnsafe() !== undefined

/** Runs `effect` in a fiber and fails (rather than hangs) unless it completes without the clock moving. */
const answersAtOnce = <A, E>(effect: Effect.Effect<A, E>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* waitUntil("the call answered at once", () => isDone(fiber))
    return yield* Fiber.join(fiber)
  })

describe("one turn at a time", () => {
  it.effect("10 concurrent asks never overlap", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        // Yield inside the turn so that an overlapping turn would get the chance to enter.
        state.hook = () => Effect.andThen(Deferred.await(gate), settle(20))
        const probe = yield* Probe.ref("p")
        const fibers = yield* Effect.forEach(
          Array.from({ length: 10 }, (_, i) => i + 1),
          (n) => Effect.forkChild(probe.Work({ n }))
        )
        yield* waitUntil("nine asks queued behind the first", depthIs(9))
        assert.strictEqual(state.inside, 1)
        yield* Deferred.succeed(gate, undefined)
        const results = yield* Fiber.joinAll(fibers)
        assert.deepStrictEqual([...results].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
        assert.strictEqual(state.maxInside, 1)
        assert.strictEqual(state.violations, 0)
        // Every enter is followed by its own exit before the next enter.
        const events = state.log.filter((e) => e.startsWith("enter:") || e.startsWith("exit:"))
        for (let i = 0; i < events.length; i += 2) {
          assert.strictEqual(events[i].replace("enter:", ""), events[i + 1].replace("exit:", ""))
        }
        assert.strictEqual(events.length, 20)
      })
    ))

  it.effect("one sender's tells followed by an ask run and complete in FIFO order", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 1 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        for (let n = 1; n <= 9; n++) yield* probe.tell.Work({ n })
        const last = yield* Effect.forkChild(probe.Work({ n: 10 }))
        yield* waitUntil("the first tell is running", () => state.entered("Work", 1))
        yield* settle()
        assert.deepStrictEqual(state.enterOrder(), ["Work:1"])
        assert.isFalse(isDone(last))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(last), 10)
        const expected = Array.from({ length: 10 }, (_, i) => `Work:${i + 1}`)
        assert.deepStrictEqual(state.enterOrder(), expected)
        assert.deepStrictEqual(
          state.log.filter((e) => e.startsWith("exit:")).map((e) => e.slice(5)),
          expected
        )
        assert.strictEqual(state.maxInside, 1)
      })
    ))
})

describe("read-only messages", () => {
  it.effect("two read-only asks are inside at once (both must reach a latch)", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const both = yield* Latch.make()
        let arrived = 0
        state.hook = (tag) =>
          tag !== "Read" ? Effect.void : Effect.andThen(
            Effect.sync(() => {
              if (++arrived === 2) both.openUnsafe()
            }),
            both.await
          )
        const probe = yield* Probe.ref("p")
        const r1 = yield* Effect.forkChild(probe.Read({ n: 1 }))
        const r2 = yield* Effect.forkChild(probe.Read({ n: 2 }))
        yield* waitUntil("both reads reached the latch", () => arrived === 2)
        assert.strictEqual(yield* Fiber.join(r1), 1)
        assert.strictEqual(yield* Fiber.join(r2), 2)
        assert.strictEqual(state.maxInside, 2)
        assert.strictEqual(state.violations, 0)
      })
    ))

  it.effect("read-only asks wait while an exclusive turn runs, then run together", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const both = yield* Latch.make()
        let arrived = 0
        state.hook = (tag) =>
          tag === "Work" ? Deferred.await(gate) : Effect.andThen(
            Effect.sync(() => {
              if (++arrived === 2) both.openUnsafe()
            }),
            both.await
          )
        const probe = yield* Probe.ref("p")
        const work = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the exclusive turn is running", () => state.entered("Work", 0))
        const r1 = yield* Effect.forkChild(probe.Read({ n: 1 }))
        const r2 = yield* Effect.forkChild(probe.Read({ n: 2 }))
        yield* waitUntil("both reads queued", depthIs(2))
        yield* settle()
        assert.isFalse(state.entered("Read", 1))
        assert.isFalse(state.entered("Read", 2))
        assert.strictEqual(state.inside, 1)
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(work), 0)
        yield* waitUntil("both reads reached the latch", () => arrived === 2)
        assert.strictEqual(yield* Fiber.join(r1), 1)
        assert.strictEqual(yield* Fiber.join(r2), 2)
        assert.strictEqual(state.violations, 0)
        assert.deepStrictEqual(state.enterOrder(), ["Work:0", "Read:1", "Read:2"])
      })
    ))

  it.effect("an exclusive ask waits for running reads, and a later read waits behind it", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const readGate = yield* Deferred.make<void>()
        state.hook = (tag, n) => tag === "Read" && n <= 2 ? Deferred.await(readGate) : Effect.void
        const probe = yield* Probe.ref("p")
        const r1 = yield* Effect.forkChild(probe.Read({ n: 1 }))
        const r2 = yield* Effect.forkChild(probe.Read({ n: 2 }))
        yield* waitUntil("both reads inside", () => state.inside === 2)
        const work = yield* Effect.forkChild(probe.Work({ n: 3 }))
        yield* waitUntil("the exclusive ask queued", depthIs(1))
        const r4 = yield* Effect.forkChild(probe.Read({ n: 4 }))
        yield* waitUntil("the later read queued behind it", depthIs(2))
        yield* settle()
        assert.isFalse(state.entered("Work", 3))
        assert.isFalse(state.entered("Read", 4))
        yield* Deferred.succeed(readGate, undefined)
        assert.deepStrictEqual(yield* Fiber.joinAll([r1, r2, work, r4]), [1, 2, 3, 4])
        assert.deepStrictEqual(state.enterOrder(), ["Read:1", "Read:2", "Work:3", "Read:4"])
        assert.strictEqual(state.violations, 0)
      })
    ))
})

describe("always-interleave", () => {
  it.effect("answers while an exclusive turn is blocked, ahead of queued messages", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        const work = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the exclusive turn is running", () => state.entered("Work", 0))
        const queued = yield* Effect.forkChild(probe.Work({ n: 1 }))
        yield* waitUntil("a second ask queued", depthIs(1))
        assert.deepStrictEqual(yield* answersAtOnce(probe.Peek()), { inside: 1, exclusive: 1 })
        assert.isFalse(state.exited("Work", 0))
        assert.isFalse(state.entered("Work", 1))
        yield* Deferred.succeed(gate, undefined)
        assert.deepStrictEqual(yield* Fiber.joinAll([work, queued]), [0, 1])
      })
    ))
})

describe("always-interleave beside one-way turns", () => {
  it.effect("an always-interleave ask answers while a one-way turn is blocked", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        yield* probe.Work({ n: -1 }) // activate
        yield* probe.tell.Work({ n: 0 })
        yield* waitUntil("the one-way turn is running", () => state.entered("Work", 0))
        assert.deepStrictEqual(yield* answersAtOnce(probe.Peek()), { inside: 1, exclusive: 1 })
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* probe.Work({ n: 1 }), 1)
      })
    ))

  it.effect("an always-interleave tell starts while a one-way turn is blocked", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        yield* probe.Work({ n: -1 }) // activate
        yield* probe.tell.Work({ n: 0 })
        yield* waitUntil("the one-way turn is running", () => state.entered("Work", 0))
        yield* probe.tell.Peek()
        const started = yield* Effect.exit(waitUntil("the interleaved tell ran", () => state.log.includes("peek")))
        const blocked = !state.exited("Work", 0)
        yield* Deferred.succeed(gate, undefined)
        assert.isTrue(Exit.isSuccess(started), "an always-interleave tell must not wait behind a running turn")
        assert.isTrue(blocked)
      })
    ))

  it.effect("an always-interleave tell starts while an ask's turn is blocked", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        const work = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the turn is running", () => state.entered("Work", 0))
        yield* probe.tell.Peek()
        yield* waitUntil("the interleaved tell ran", () => state.log.includes("peek"))
        assert.isFalse(state.exited("Work", 0))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(work), 0)
      })
    ))
})

describe("bounded mailbox", () => {
  /** One blocked turn plus three queued asks: the mailbox (capacity 3) is full. */
  const fill = (state: ProbeState) =>
    Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
      const probe = yield* Probe.ref("p")
      const running = yield* Effect.forkChild(probe.Work({ n: 0 }))
      yield* waitUntil("the first turn is running", () => state.entered("Work", 0))
      const queued = [
        yield* Effect.forkChild(probe.Work({ n: 1 })),
        yield* Effect.forkChild(probe.Work({ n: 2 })),
        yield* Effect.forkChild(probe.Work({ n: 3 }))
      ]
      yield* waitUntil("three asks queued", depthIs(3))
      return { gate, probe, fibers: [running, ...queued] }
    })

  it.effect("a fourth ask fails with MailboxFull by default; whenFull: \"suspend\" waits for room", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const { fibers, gate, probe } = yield* fill(state)
          const error = yield* Effect.flip(probe.Work({ n: 4 }))
          assert.instanceOf(error, MailboxFull)
          assert.strictEqual((error as MailboxFull).capacity, 3)
          assert.deepStrictEqual((error as MailboxFull).address, address)
          const suspended = yield* Effect.forkChild(probe.Work({ n: 5 }, { whenFull: "suspend" }))
          yield* settle()
          assert.isFalse(isDone(suspended))
          assert.isTrue(yield* depthIs(3))
          yield* Deferred.succeed(gate, undefined)
          assert.strictEqual(yield* Fiber.join(suspended), 5)
          assert.deepStrictEqual(yield* Fiber.joinAll(fibers), [0, 1, 2, 3])
          assert.isFalse(state.entered("Work", 4))
          assert.deepStrictEqual(state.enterOrder(), ["Work:0", "Work:1", "Work:2", "Work:3", "Work:5"])
        }),
      { mailboxCapacity: 3 }
    ))

  it.effect("tell obeys the same: MailboxFull by default, suspends with whenFull: \"suspend\"", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const { fibers, gate, probe } = yield* fill(state)
          const error = yield* Effect.flip(probe.tell.Work({ n: 4 }))
          assert.instanceOf(error, MailboxFull)
          const suspended = yield* Effect.forkChild(probe.tell.Work({ n: 5 }, { whenFull: "suspend" }))
          yield* settle()
          assert.isFalse(isDone(suspended))
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.join(suspended)
          yield* Fiber.joinAll(fibers)
          assert.strictEqual(yield* probe.Work({ n: 6 }), 6)
          assert.isFalse(state.entered("Work", 4))
          assert.deepStrictEqual(state.enterOrder(), ["Work:0", "Work:1", "Work:2", "Work:3", "Work:5", "Work:6"])
        }),
      { mailboxCapacity: 3 }
    ))

  it.effect("per-type whenFull \"suspend\" suspends asks and tells; per-call \"fail\" overrides it", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const { fibers, gate, probe } = yield* fill(state)
          const error = yield* Effect.flip(probe.Work({ n: 4 }, { whenFull: "fail" }))
          assert.instanceOf(error, MailboxFull)
          const tellError = yield* Effect.flip(probe.tell.Work({ n: 4 }, { whenFull: "fail" }))
          assert.instanceOf(tellError, MailboxFull)
          const ask = yield* Effect.forkChild(probe.Work({ n: 5 }))
          const tell = yield* Effect.forkChild(probe.tell.Work({ n: 6 }))
          yield* settle()
          assert.isFalse(isDone(ask))
          assert.isFalse(isDone(tell))
          assert.isTrue(yield* depthIs(3))
          yield* Deferred.succeed(gate, undefined)
          assert.strictEqual(yield* Fiber.join(ask), 5)
          yield* Fiber.join(tell)
          yield* Fiber.joinAll(fibers)
          assert.strictEqual(yield* probe.Work({ n: 7 }), 7)
          assert.isFalse(state.entered("Work", 4))
          assert.isTrue(state.entered("Work", 6))
          assert.strictEqual(state.maxInside, 1)
        }),
      { mailboxCapacity: 3, whenFull: "suspend" }
    ))

  it.effect("a queued ask that was withdrawn (interrupted) frees its slot", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const { fibers, gate, probe } = yield* fill(state)
          yield* Fiber.interrupt(fibers[2])
          // Two messages wait now; a fourth fits in the freed slot.
          const fourth = yield* Effect.forkChild(probe.Work({ n: 4 }))
          yield* settle()
          const early = fourth.pollUnsafe()
          yield* Deferred.succeed(gate, undefined)
          assert.isUndefined(early, `the fourth ask waits in the mailbox, it is not rejected (got ${String(early)})`)
          assert.strictEqual(yield* Fiber.join(fourth), 4)
          assert.isFalse(state.entered("Work", 2))
        }),
      { mailboxCapacity: 3 }
    ))

  it.effect("a sender suspended on a full mailbox gets in when queued asks are withdrawn", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const { fibers, gate, probe } = yield* fill(state)
          const suspended = yield* Effect.forkChild(probe.Work({ n: 4 }, { whenFull: "suspend" }))
          yield* settle()
          assert.isFalse(isDone(suspended))
          // Withdraw every queued ask: only the suspended sender's message should be left waiting.
          yield* Fiber.interrupt(fibers[1])
          yield* Fiber.interrupt(fibers[2])
          yield* Fiber.interrupt(fibers[3])
          yield* settle()
          const depth = yield* depthOf("Probe", "p")
          yield* Deferred.succeed(gate, undefined)
          assert.strictEqual(depth, 1, "the suspended sender's message is the only one waiting")
          assert.strictEqual(yield* Fiber.join(suspended), 4)
        }),
      { mailboxCapacity: 3 }
    ))

  it.effect("a per-call timeout also bounds the wait for room", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const { fibers, gate, probe } = yield* fill(state)
          const suspended = yield* Effect.forkChild(probe.Work({ n: 4 }, { whenFull: "suspend", timeout: "1 second" }))
          yield* settle()
          yield* TestClock.adjust("1 second")
          const error = yield* Effect.flip(Fiber.join(suspended))
          assert.instanceOf(error, CallTimeout)
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.joinAll(fibers)
          assert.strictEqual(yield* probe.Work({ n: 5 }), 5)
          assert.isFalse(state.entered("Work", 4))
        }),
      { mailboxCapacity: 3 }
    ))

  it.effect("a sender suspended on a full mailbox can be interrupted; its message never runs", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const { fibers, gate, probe } = yield* fill(state)
          const suspended = yield* Effect.forkChild(probe.Work({ n: 4 }, { whenFull: "suspend" }))
          yield* settle()
          assert.isFalse(isDone(suspended))
          yield* Fiber.interrupt(suspended)
          yield* Deferred.succeed(gate, undefined)
          yield* Fiber.joinAll(fibers)
          assert.strictEqual(yield* probe.Work({ n: 5 }), 5)
          assert.isFalse(state.entered("Work", 4))
        }),
      { mailboxCapacity: 3 }
    ))
})

describe("defects", () => {
  it.effect("a defect fails that call with ActorDefect and the queued messages behind it complete", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        const first = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the first turn is running", () => state.entered("Work", 0))
        const die = yield* Effect.forkChild(probe.Die({ n: 1 }))
        const work2 = yield* Effect.forkChild(probe.Work({ n: 2 }))
        const fail = yield* Effect.forkChild(probe.Fail({ n: 3 }))
        const work4 = yield* Effect.forkChild(probe.Work({ n: 4 }))
        yield* waitUntil("four asks queued", depthIs(4))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(first), 0)
        const defect = yield* Effect.flip(Fiber.join(die))
        assert.instanceOf(defect, ActorDefect)
        assert.strictEqual((defect as ActorDefect).tag, "Die")
        assert.deepStrictEqual((defect as ActorDefect).address, address)
        assert.include((defect as ActorDefect).defect, "boom 1")
        assert.strictEqual(yield* Fiber.join(work2), 2)
        const failure = yield* Effect.flip(Fiber.join(fail))
        assert.instanceOf(failure, Boom)
        assert.strictEqual((failure as Boom).n, 3)
        assert.strictEqual(yield* Fiber.join(work4), 4)
        assert.strictEqual(state.activations, 1)
      })
    ))

  it.effect("a defect on an idle activation, a thrown handler and a dying tell leave it working", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const probe = yield* Probe.ref("p")
        assert.strictEqual(yield* probe.Work({ n: 0 }), 0)
        const died = yield* Effect.flip(probe.Die({ n: 1 }))
        assert.instanceOf(died, ActorDefect)
        assert.strictEqual(yield* probe.Work({ n: 2 }), 2)
        const thrown = yield* Effect.flip(probe.Throw({ n: 3 }))
        assert.instanceOf(thrown, ActorDefect)
        assert.strictEqual((thrown as ActorDefect).tag, "Throw")
        assert.include((thrown as ActorDefect).defect, "thrown 3")
        assert.strictEqual(yield* probe.Work({ n: 4 }), 4)
        yield* probe.tell.Die({ n: 5 })
        assert.strictEqual(yield* probe.Work({ n: 6 }), 6)
        assert.isTrue(state.entered("Die", 5))
        assert.isTrue(yield* idle)
        assert.strictEqual(state.activations, 1)
      })
    ))
})

describe("interruption", () => {
  it.effect("a caller interrupted while queued: its message never runs, later ones do", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        const first = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the first turn is running", () => state.entered("Work", 0))
        const withdrawn = yield* Effect.forkChild(probe.Work({ n: 1 }))
        const later = yield* Effect.forkChild(probe.Work({ n: 2 }))
        yield* waitUntil("two asks queued", depthIs(2))
        yield* Fiber.interrupt(withdrawn)
        const exit = yield* Fiber.await(withdrawn)
        assert.isTrue(Exit.hasInterrupts(exit))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(later), 2)
        assert.strictEqual(yield* Fiber.join(first), 0)
        assert.isUndefined(state.runs.get("Work:1"))
        assert.strictEqual(yield* probe.Work({ n: 3 }), 3)
        assert.isTrue(yield* idle)
        assert.deepStrictEqual(state.enterOrder(), ["Work:0", "Work:2", "Work:3"])
      })
    ))

  it.effect("a caller interrupted while its turn runs (fast path): the turn is interrupted, the next runs", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const never = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(never) : Effect.void
        const probe = yield* Probe.ref("p")
        const running = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the turn is running", () => state.entered("Work", 0))
        const next = yield* Effect.forkChild(probe.Work({ n: 1 }))
        yield* waitUntil("the next ask queued", depthIs(1))
        yield* Fiber.interrupt(running)
        assert.isTrue(state.log.includes("interrupt:Work:0"))
        assert.isTrue(state.exited("Work", 0))
        assert.strictEqual(yield* Fiber.join(next), 1)
        assert.strictEqual(yield* probe.Work({ n: 2 }), 2)
        assert.isTrue(yield* idle)
      })
    ))

  it.effect("a caller interrupted while its granted turn runs (after queueing): same", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        const never = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : n === 1 ? Deferred.await(never) : Effect.void
        const probe = yield* Probe.ref("p")
        const first = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the first turn is running", () => state.entered("Work", 0))
        const second = yield* Effect.forkChild(probe.Work({ n: 1 }))
        const third = yield* Effect.forkChild(probe.Work({ n: 2 }))
        yield* waitUntil("two asks queued", depthIs(2))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(first), 0)
        yield* waitUntil("the second turn is running", () => state.entered("Work", 1))
        yield* Fiber.interrupt(second)
        assert.isTrue(state.log.includes("interrupt:Work:1"))
        assert.strictEqual(yield* Fiber.join(third), 2)
        assert.strictEqual(yield* probe.Work({ n: 3 }), 3)
        assert.isTrue(yield* idle)
      })
    ))
})

describe("interruption at grant time", () => {
  it.effect("a caller interrupted just as its turn is granted leaves the activation working", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        const first = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the first turn is running", () => state.entered("Work", 0))
        const second = yield* Effect.forkChild(probe.Work({ n: 1 }))
        const third = yield* Effect.forkChild(probe.Work({ n: 2 }))
        yield* waitUntil("two asks queued", depthIs(2))
        // Opening the gate ends the first turn, which grants the second; the interrupt
        // follows in the same step, so it races the grant.
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.interrupt(second)
        assert.strictEqual(yield* Fiber.join(first), 0)
        assert.strictEqual(yield* Fiber.join(third), 2)
        // Either it ran to the end before the interrupt, or it never entered, or it was interrupted.
        const ran = state.runs.get("Work:1") ?? 0
        assert.isAtMost(ran, 1)
        if (ran === 1) assert.isTrue(state.exited("Work", 1))
        assert.strictEqual(yield* probe.Work({ n: 3 }), 3)
        assert.isTrue(yield* idle)
        assert.strictEqual(state.inside, 0)
      })
    ))
})

describe("call timeouts", () => {
  it.effect("callTimeout per type fails with CallTimeout; the activation is not wedged", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const never = yield* Deferred.make<void>()
          state.hook = (_, n) => n === 0 ? Deferred.await(never) : Effect.void
          const probe = yield* Probe.ref("p")
          const call = yield* Effect.forkChild(probe.Work({ n: 0 }))
          yield* waitUntil("the turn is running", () => state.entered("Work", 0))
          yield* TestClock.adjust("999 millis")
          assert.isFalse(isDone(call))
          yield* TestClock.adjust("1 millis")
          const error = yield* Effect.flip(Fiber.join(call))
          assert.instanceOf(error, CallTimeout)
          assert.strictEqual((error as CallTimeout).tag, "Work")
          assert.strictEqual((error as CallTimeout).timeoutMillis, 1000)
          assert.deepStrictEqual((error as CallTimeout).address, address)
          assert.isTrue(state.log.includes("interrupt:Work:0"))
          assert.strictEqual(yield* probe.Work({ n: 1 }), 1)
          assert.isTrue(yield* idle)
        }),
      { callTimeout: "1 second" }
    ))

  it.effect("timeout per call fails a queued ask with CallTimeout; it never runs, the rest go on", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
        const probe = yield* Probe.ref("p")
        const first = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the first turn is running", () => state.entered("Work", 0))
        const timed = yield* Effect.forkChild(probe.Work({ n: 1 }, { timeout: "500 millis" }))
        yield* waitUntil("the timed ask queued", depthIs(1))
        yield* TestClock.adjust("500 millis")
        const error = yield* Effect.flip(Fiber.join(timed))
        assert.instanceOf(error, CallTimeout)
        assert.strictEqual((error as CallTimeout).timeoutMillis, 500)
        assert.isFalse(isDone(first))
        yield* Deferred.succeed(gate, undefined)
        assert.strictEqual(yield* Fiber.join(first), 0)
        assert.strictEqual(yield* probe.Work({ n: 2 }), 2)
        assert.isUndefined(state.runs.get("Work:1"))
        assert.isTrue(yield* idle)
      })
    ))

  it.effect("a timeout also bounds a call that waits for a slow activation", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.activationHook = () => Deferred.await(gate)
        const probe = yield* Probe.ref("p")
        const call = yield* Effect.forkChild(probe.Work({ n: 0 }, { timeout: "1 second" }))
        yield* waitUntil("the activation effect is running", () => state.activations === 1)
        yield* TestClock.adjust("1 second")
        yield* settle()
        const timedOut = isDone(call)
        // Let the activation finish in any case, so the test ends.
        yield* Deferred.succeed(gate, undefined)
        assert.isTrue(timedOut, "the caller got its answer after 1 second")
        const error = yield* Effect.flip(Fiber.join(call))
        assert.instanceOf(error, CallTimeout)
      })
    ))

  it.effect("a caller waiting for a slow activation can be interrupted", () =>
    withProbe((state) =>
      Effect.gen(function*() {
        const gate = yield* Deferred.make<void>()
        state.activationHook = () => Deferred.await(gate)
        const probe = yield* Probe.ref("p")
        const call = yield* Effect.forkChild(probe.Work({ n: 0 }))
        yield* waitUntil("the activation effect is running", () => state.activations === 1)
        const interrupter = yield* Effect.forkChild(Fiber.interrupt(call))
        yield* settle()
        const interrupted = isDone(call)
        yield* Deferred.succeed(gate, undefined)
        yield* Fiber.join(interrupter)
        assert.isTrue(interrupted, "interrupting the caller does not wait for the activation effect")
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(call)))
        assert.isFalse(state.entered("Work", 0))
        assert.strictEqual(yield* probe.Work({ n: 1 }), 1)
      })
    ))

  it.effect("timeout per call overrides the type's callTimeout", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const never = yield* Deferred.make<void>()
          state.hook = (_, n) => n === 0 ? Deferred.await(never) : Effect.void
          const probe = yield* Probe.ref("p")
          const call = yield* Effect.forkChild(probe.Work({ n: 0 }, { timeout: "5 seconds" }))
          yield* waitUntil("the turn is running", () => state.entered("Work", 0))
          yield* TestClock.adjust("1 second")
          assert.isFalse(isDone(call))
          yield* TestClock.adjust("4 seconds")
          const error = yield* Effect.flip(Fiber.join(call))
          assert.instanceOf(error, CallTimeout)
          assert.strictEqual((error as CallTimeout).timeoutMillis, 5000)
          assert.strictEqual(yield* probe.Work({ n: 1 }), 1)
        }),
      { callTimeout: "1 second" }
    ))
})

// ---------------------------------------------------------------------------
// Property: random operation sequences never wedge the mailbox.

type Op = "ok" | "read" | "fail" | "die" | "tell" | "interrupt" | "drain"

const runOps = (ops: ReadonlyArray<Op>) =>
  withProbe((state) =>
    Effect.gen(function*() {
      const probe = yield* Probe.ref("p")
      const gates = new Map<number, Deferred.Deferred<void>>()
      state.hook = (_, n) => {
        const gate = gates.get(n)
        return gate === undefined ? Effect.void : Deferred.await(gate)
      }
      let next = 0
      /** What should enter, in order. */
      const order: Array<string> = []
      const checks: Array<Effect.Effect<void>> = []

      // A blocking turn, so that what follows queues (and can be interrupted while queued).
      const block = Effect.gen(function*() {
        const n = ++next
        const gate = yield* Deferred.make<void>()
        gates.set(n, gate)
        const fiber = yield* Effect.forkChild(probe.Work({ n }))
        yield* waitUntil(`blocker ${n} entered`, () => state.entered("Work", n))
        order.push(`Work:${n}`)
        checks.push(Effect.map(Fiber.join(fiber), (v) => assert.strictEqual(v, n)).pipe(Effect.orDie))
        return gate
      })
      let blocker = yield* block

      for (const op of ops) {
        if (op === "drain") {
          yield* Deferred.succeed(blocker, undefined)
          yield* waitUntil("drained", idle)
          blocker = yield* block
          continue
        }
        const n = ++next
        const before = yield* depthOf("Probe", "p")
        const queued = waitUntil(`op ${n} (${op}) queued`, depthIs(before + 1))
        switch (op) {
          case "tell": {
            yield* probe.tell.Work({ n })
            yield* queued
            order.push(`Work:${n}`)
            checks.push(Effect.sync(() => assert.isTrue(state.exited("Work", n), `tell ${n} ran`)))
            break
          }
          case "ok": {
            const fiber = yield* Effect.forkChild(probe.Work({ n }))
            yield* queued
            order.push(`Work:${n}`)
            checks.push(Effect.map(Fiber.join(fiber), (v) => assert.strictEqual(v, n)).pipe(Effect.orDie))
            break
          }
          case "read": {
            const fiber = yield* Effect.forkChild(probe.Read({ n }))
            yield* queued
            order.push(`Read:${n}`)
            checks.push(Effect.map(Fiber.join(fiber), (v) => assert.strictEqual(v, n)).pipe(Effect.orDie))
            break
          }
          case "fail": {
            const fiber = yield* Effect.forkChild(probe.Fail({ n }))
            yield* queued
            order.push(`Fail:${n}`)
            checks.push(Effect.map(Effect.flip(Fiber.join(fiber)), (error) => {
              assert.instanceOf(error, Boom)
              assert.strictEqual((error as Boom).n, n)
            }).pipe(Effect.orDie))
            break
          }
          case "die": {
            const fiber = yield* Effect.forkChild(probe.Die({ n }))
            yield* queued
            order.push(`Die:${n}`)
            checks.push(Effect.map(Effect.flip(Fiber.join(fiber)), (error) => {
              assert.instanceOf(error, ActorDefect)
              assert.strictEqual((error as ActorDefect).tag, "Die")
            }).pipe(Effect.orDie))
            break
          }
          case "interrupt": {
            const fiber = yield* Effect.forkChild(probe.Work({ n }))
            yield* queued
            yield* Fiber.interrupt(fiber)
            checks.push(Effect.gen(function*() {
              assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(fiber)))
              assert.isUndefined(state.runs.get(`Work:${n}`), `interrupted ask ${n} never runs`)
            }))
            break
          }
        }
      }
      yield* Deferred.succeed(blocker, undefined)
      // One more ask after everything: it succeeds (never wedged) and, FIFO, runs last.
      const final = ++next
      assert.strictEqual(yield* probe.Work({ n: final }), final)
      order.push(`Work:${final}`)
      for (const check of checks) yield* check
      yield* waitUntil("idle at the end", idle)
      const row = yield* activationOf("Probe", "p")
      assert.strictEqual(row?.mailboxDepth, 0)
      assert.deepStrictEqual(state.enterOrder(), order)
      assert.strictEqual(state.violations, 0)
      assert.strictEqual(state.inside, 0)
      assert.strictEqual(state.activations, 1)
    })
  )

describe("property", () => {
  it("random operation sequences: right outcomes, depth 0 after, never wedged", async () => {
    const op = fc.constantFrom<Op>("ok", "read", "fail", "die", "tell", "interrupt", "drain")
    await fc.assert(
      fc.asyncProperty(fc.array(op, { maxLength: 20 }), (ops) => Effect.runPromise(runOps(ops))),
      { numRuns: 100 }
    )
  })
})

// ---------------------------------------------------------------------------
// Asks whose callers gave up leave the mailbox at once.

/** The mailbox of the probe's activation, read afresh each time. */
const mailboxOf = Effect.map(Silo.Silo, (silo) => () => silo.router.slots.get("Probe")?.activations.get("p")?.mailbox)

/**
 * Every turn the mailbox keeps reachable, live or withdrawn, whatever its layout: what it
 * holds in memory. A turn is followed only through its mailbox links.
 */
const turnsHeld = (mailbox: unknown): number => {
  const seen = new Set<unknown>()
  const stack: Array<unknown> = [mailbox]
  let turns = 0
  while (stack.length > 0) {
    const value = stack.pop()
    if (value === null || typeof value !== "object" || seen.has(value)) continue
    seen.add(value)
    if (value instanceof Turn) {
      turns++
      stack.push(value.prev, value.next)
    } else {
      stack.push(...Object.values(value))
    }
  }
  return turns
}

describe("asks that gave up", () => {
  it.effect("timed-out and interrupted asks leave at once and never run: capacity 100 never holds more than 100", () =>
    withProbe(
      (state) =>
        Effect.gen(function*() {
          const gate = yield* Deferred.make<void>()
          state.hook = (_, n) => n === 0 ? Deferred.await(gate) : Effect.void
          const probe = yield* Probe.ref("p")
          const first = yield* Effect.forkChild(probe.Work({ n: 0 }))
          yield* waitUntil("the first turn is running", () => state.entered("Work", 0))
          const mailbox = yield* mailboxOf
          // Ten asks wait throughout; 100 rounds of 90 more give up: 9,000 in all.
          const live: Array<Fiber.Fiber<number, unknown>> = []
          for (let n = 1; n <= 10; n++) live.push(yield* Effect.forkChild(probe.Work({ n })))
          let n = 1_000
          for (let round = 0; round < 100; round++) {
            const timesOut = round % 2 === 0
            const quitters: Array<Fiber.Fiber<number, unknown>> = []
            for (let i = 0; i < 90; i++) {
              const call = timesOut ? probe.Work({ n: n++ }, { timeout: "1 second" }) : probe.Work({ n: n++ })
              quitters.push(yield* Effect.forkChild(call))
            }
            yield* waitUntil(`round ${round}: the mailbox is full`, depthIs(100))
            assert.strictEqual(turnsHeld(mailbox()), 100)
            assert.instanceOf(yield* Effect.flip(probe.Work({ n: -1 })), MailboxFull)
            if (timesOut) yield* TestClock.adjust("1 second")
            else yield* Effect.forEach(quitters, Fiber.interrupt, { discard: true })
            for (const quitter of quitters) {
              const exit = yield* Fiber.await(quitter)
              assert.isTrue(timesOut ? Exit.isFailure(exit) && !Exit.hasInterrupts(exit) : Exit.hasInterrupts(exit))
            }
            assert.strictEqual(turnsHeld(mailbox()), 10, `round ${round}: the asks that gave up left the mailbox`)
            assert.isTrue(yield* depthIs(10))
          }
          yield* Deferred.succeed(gate, undefined)
          assert.deepStrictEqual(yield* Fiber.joinAll([first, ...live]), Array.from({ length: 11 }, (_, i) => i))
          // Only the asks whose callers waited ran, in order.
          assert.deepStrictEqual(state.enterOrder(), Array.from({ length: 11 }, (_, i) => `Work:${i}`))
          assert.isTrue(yield* idle)
        }),
      { mailboxCapacity: 100 }
    ))

  it.effect("a caller interrupted while its ask is being queued leaves nothing behind", () => {
    const state = new ProbeState()
    return Effect.gen(function*() {
      const scope = yield* Scope.make()
      const context = yield* Layer.buildWithScope(Silo.layerTest(probeLayer(state)), scope)
      const body = Effect.gen(function*() {
        const gate = yield* Latch.make()
        let caller: Fiber.Fiber<number, unknown> | undefined
        // The activation effect starts synchronously inside the ask, before the asker
        // parks: an interrupt sent from there lands while the ask is being queued, when
        // the asker cannot be interrupted yet.
        state.activationHook = () => Effect.andThen(Effect.sync(() => caller!.interruptUnsafe()), gate.await)
        const probe = yield* Probe.ref("p")
        const go = yield* Latch.make()
        caller = yield* Effect.forkChild(Effect.andThen(go.await, probe.Work({ n: 1 })))
        yield* go.open
        assert.isTrue(Exit.hasInterrupts(yield* Fiber.await(caller)))
        assert.isTrue(yield* depthIs(0), "the interrupted ask left the mailbox")
        yield* gate.open
        // Not granted to nobody: the activation serves the next ask.
        assert.strictEqual(yield* answersAtOnce(probe.Work({ n: 2 })), 2)
        assert.isUndefined(state.runs.get("Work:1"))
        assert.isTrue(yield* idle)
      })
      const exit = yield* Effect.exit(Effect.provideContext(body, context))
      // Whatever happened, close the silo (moving the clock past its shutdown timeout).
      yield* Deferred.succeed(state.abort, undefined)
      const closing = yield* Effect.forkChild(Scope.close(scope, Exit.void))
      yield* TestClock.adjust("1 minute")
      yield* Fiber.join(closing)
      return yield* exit
    })
  })

  it("the mailbox list matches a model FIFO under push, shift and withdraw (twice, or of a stranger)", () => {
    const info = { tag: "Work", readOnly: false, interleave: false, keepAlive: true }
    const op = fc.oneof(fc.constant("push" as const), fc.constant("shift" as const), fc.nat(50), fc.constant("stranger" as const))
    fc.assert(
      fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
        const mailbox = new Mailbox()
        const model: Array<Turn> = []
        const withdrawn: Array<Turn> = []
        for (const op of ops) {
          if (op === "push") {
            const turn = new Turn(TurnKind.Ask, undefined, undefined, undefined, emptyMetadata, info, undefined)
            mailbox.push(turn)
            model.push(turn)
          } else if (op === "shift") {
            assert.strictEqual(mailbox.shift(), model.shift())
          } else if (op === "stranger") {
            // Withdrawing a turn that is not there (or no longer) changes nothing.
            mailbox.withdraw(withdrawn[0] ?? new Turn(TurnKind.Ask, undefined, undefined, undefined, emptyMetadata, info, undefined))
          } else if (model.length > 0) {
            const [turn] = model.splice(op % model.length, 1)
            mailbox.withdraw(turn)
            assert.strictEqual(turn.state, TurnState.Cancelled)
            withdrawn.push(turn)
          }
          assert.strictEqual(mailbox.size, model.length)
          assert.strictEqual(mailbox.peek(), model[0])
        }
        assert.deepStrictEqual(mailbox.takeAll(), model)
        assert.strictEqual(mailbox.size, 0)
        assert.isUndefined(mailbox.shift())
      }),
      { numRuns: 300 }
    )
  })
})

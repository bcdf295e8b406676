/**
 * Call context and reentrancy (issue part E): deadlock detection on non-reentrant types,
 * reentrant types, always-interleave re-entry, and no false deadlocks through tells.
 * Every test runs with `it.effect` and never moves the clock: a deadlock must fail at
 * once, not after a timeout.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { Deadlock, Silo } from "../src/index.ts"
import { ChainA, ChainB, ChainC, ChainRecorder, type ChainType, step, withChains } from "./fixtures/ChainActors.ts"
import { depthOf, settle, waitUntil } from "./fixtures/MailboxProbe.ts"

const A = { type: "ChainA", id: "a" }
const B = { type: "ChainB", id: "b" }
const C = { type: "ChainC", id: "c" }

const onlyDeadlock = (recorder: ChainRecorder, at: string) => {
  assert.strictEqual(recorder.errors.length, 1, "exactly one call failed")
  assert.strictEqual(recorder.errors[0].at, at)
  const error = recorder.errors[0].error
  assert.instanceOf(error, Deadlock)
  return error as Deadlock
}

/**
 * Runs a call and fails, rather than hangs, unless it completes without the clock moving:
 * a deadlock must be reported at once.
 */
const atOnce = <A, E>(effect: Effect.Effect<A, E, Silo.Silo>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.forkChild(effect)
    yield* waitUntil("the call completed at once", () => fiber.pollUnsafe() !== undefined)
    return yield* Fiber.join(fiber)
  })

const hopsAt = (recorder: ChainRecorder, at: string) => recorder.contextsAt(at, "Hop").length

describe("deadlock on non-reentrant types", () => {
  it.effect("A→B→A fails at once with Deadlock [A, B, A]; the outer calls complete", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      const result = yield* atOnce(a.Hop({ path: [step("ChainB", "b"), step("ChainA", "a")] }))
      assert.strictEqual(result, "ChainA/a>ChainB/b!Deadlock")
      const deadlock = onlyDeadlock(recorder, "ChainB/b")
      assert.deepStrictEqual(deadlock.cycle, [A, B, A])
      assert.strictEqual(deadlock.message, "deadlock: ChainA/a -> ChainB/b -> ChainA/a")
      // The second A turn never started, and A is usable afterwards.
      assert.strictEqual(hopsAt(recorder, "ChainA/a"), 1)
      assert.strictEqual(yield* atOnce(a.Hop({ path: [] })), "ChainA/a")
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("A→B→C→A fails with Deadlock [A, B, C, A]", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      const result = yield* atOnce(a.Hop({ path: [step("ChainB", "b"), step("ChainC", "c"), step("ChainA", "a")] }))
      assert.strictEqual(result, "ChainA/a>ChainB/b>ChainC/c!Deadlock")
      const deadlock = onlyDeadlock(recorder, "ChainC/c")
      assert.deepStrictEqual(deadlock.cycle, [A, B, C, A])
      assert.strictEqual(yield* atOnce(a.Hop({ path: [step("ChainC", "c")] })), "ChainA/a>ChainC/c")
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("A→A (an actor asking itself) fails with Deadlock [A, A]", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      assert.strictEqual(yield* atOnce(a.Hop({ path: [step("ChainA", "a")] })), "ChainA/a!Deadlock")
      assert.deepStrictEqual(onlyDeadlock(recorder, "ChainA/a").cycle, [A, A])
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("the cycle names only the actors inside it: X→A→B→A gives [A, B, A]", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const c = yield* ChainC.ref("x")
      const result = yield* atOnce(c.Hop({ path: [step("ChainA", "a"), step("ChainB", "b"), step("ChainA", "a")] }))
      assert.strictEqual(result, "ChainC/x>ChainA/a>ChainB/b!Deadlock")
      assert.deepStrictEqual(onlyDeadlock(recorder, "ChainB/b").cycle, [A, B, A])
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("a request-context frame set inside a handler keeps the chain: still Deadlock [A, B, A]", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      const result = yield* atOnce(a.Hop({
        path: [step("ChainB", "b", { metadata: { k: "v" } }), step("ChainA", "a", { correlationId: "other" })]
      }))
      assert.strictEqual(result, "ChainA/a>ChainB/b!Deadlock")
      assert.deepStrictEqual(onlyDeadlock(recorder, "ChainB/b").cycle, [A, B, A])
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("a cycle closed after the middle call waited in B's mailbox is still found: [A, B, A]", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      let first = true
      recorder.hooks.set("ChainB/b:Hop", () => {
        if (!first) return Effect.void
        first = false
        return Deferred.await(gate)
      })
      const b = yield* ChainB.ref("b")
      const busy = yield* Effect.forkChild(b.Hop({ path: [] }))
      yield* waitUntil("B is busy", () => hopsAt(recorder, "ChainB/b") === 1)
      const a = yield* ChainA.ref("a")
      const chain = yield* Effect.forkChild(a.Hop({ path: [step("ChainB", "b"), step("ChainA", "a")] }))
      yield* waitUntil("A's call queued in B", Effect.map(depthOf("ChainB", "b"), (d) => d === 1))
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(busy), "ChainB/b")
      assert.strictEqual(yield* atOnce(Fiber.join(chain)), "ChainA/a>ChainB/b!Deadlock")
      assert.deepStrictEqual(onlyDeadlock(recorder, "ChainB/b").cycle, [A, B, A])
    }).pipe((body) => withChains(recorder, body))
  })

  // A waits in B's mailbox while B's running turn, which an outside caller started, calls A:
  // no call chain joins them, so this is found through the wait-for link A → B's mailbox.
  const crossedWaits = (bPath: Array<ReturnType<typeof step>>, expected: string, cycle: Array<typeof A>) => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      let first = true
      recorder.hooks.set("ChainB/b:Hop", () => {
        if (!first) return Effect.void
        first = false
        return Deferred.await(gate)
      })
      const b = yield* ChainB.ref("b")
      const outside = yield* Effect.forkChild(b.Hop({ path: bPath }))
      yield* waitUntil("B is busy", () => hopsAt(recorder, "ChainB/b") === 1)
      const a = yield* ChainA.ref("a")
      const waiting = yield* Effect.forkChild(a.Hop({ path: [step("ChainB", "b")] }))
      yield* waitUntil("A's call queued in B", Effect.map(depthOf("ChainB", "b"), (d) => d === 1))
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* atOnce(Fiber.join(outside)), expected)
      assert.strictEqual(yield* atOnce(Fiber.join(waiting)), "ChainA/a>ChainB/b")
      assert.deepStrictEqual(onlyDeadlock(recorder, expected.split("!")[0].split(">").at(-1)!).cycle, cycle)
    }).pipe((body) => withChains(recorder, body))
  }

  it.effect("A waits in B's mailbox while B's turn (started from outside) asks A: Deadlock [B, A, B]", () =>
    crossedWaits([step("ChainA", "a")], "ChainB/b!Deadlock", [B, A, B]))

  it.effect("the same through a third actor: B→C→A while A waits on B gives [B, C, A, B]", () =>
    crossedWaits([step("ChainC", "c"), step("ChainA", "a")], "ChainB/b>ChainC/c!Deadlock", [B, C, A, B]))

  it.effect("a cycle started by a one-way turn of A is found too: tell A→B→A gives [A, B, A]", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* a.tell.Hop({ path: [step("ChainB", "b"), step("ChainA", "a")] })
      yield* waitUntil("the one-way chain hit the cycle", () => recorder.errors.length === 1)
      assert.deepStrictEqual(onlyDeadlock(recorder, "ChainB/b").cycle, [A, B, A])
      assert.strictEqual(yield* atOnce(a.Hop({ path: [step("ChainB", "b")] })), "ChainA/a>ChainB/b")
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("the same id on another type is another actor: A→B(a)→… is no cycle", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      assert.strictEqual(yield* atOnce(a.Hop({ path: [step("ChainB", "a"), step("ChainC", "a")] })), "ChainA/a>ChainB/a>ChainC/a")
      assert.strictEqual(recorder.errors.length, 0)
    }).pipe((body) => withChains(recorder, body))
  })
})

describe("reentrant types", () => {
  const reentrantA: Partial<Record<ChainType, { reentrant: boolean }>> = { ChainA: { reentrant: true } }

  it.effect("with reentrant: true on A's type, A→B→A re-enters and completes", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      const result = yield* atOnce(a.Hop({ path: [step("ChainB", "b"), step("ChainA", "a")] }))
      assert.strictEqual(result, "ChainA/a>ChainB/b>ChainA/a")
      assert.strictEqual(recorder.errors.length, 0)
      assert.strictEqual(hopsAt(recorder, "ChainA/a"), 2)
      const deep = yield* atOnce(a.Hop({ path: [step("ChainB", "b"), step("ChainC", "c"), step("ChainA", "a")] }))
      assert.strictEqual(deep, "ChainA/a>ChainB/b>ChainC/c>ChainA/a")
      assert.strictEqual(recorder.errors.length, 0)
    }).pipe((body) => withChains(recorder, body, reentrantA))
  })

  it.effect("reentrancy is per type: A→B→A→B still deadlocks on the non-reentrant B, cycle [B, A, B]", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      const result = yield* atOnce(a.Hop({ path: [step("ChainB", "b"), step("ChainA", "a"), step("ChainB", "b")] }))
      assert.strictEqual(result, "ChainA/a>ChainB/b>ChainA/a!Deadlock")
      assert.deepStrictEqual(onlyDeadlock(recorder, "ChainA/a").cycle, [B, A, B])
    }).pipe((body) => withChains(recorder, body, reentrantA))
  })

  it.effect("reentrancy is per call chain: an outside caller still waits for the running turn", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      let first = true
      recorder.hooks.set("ChainA/a:Hop", () => {
        if (!first) return Effect.void
        first = false
        return Deferred.await(gate)
      })
      const a = yield* ChainA.ref("a")
      const chain = yield* Effect.forkChild(a.Hop({ path: [step("ChainB", "b"), step("ChainA", "a")] }))
      yield* waitUntil("the first A turn is running", () => hopsAt(recorder, "ChainA/a") === 1)
      const outsider = yield* Effect.forkChild(a.Hop({ path: [] }))
      yield* waitUntil("the outside call queued", Effect.map(depthOf("ChainA", "a"), (d) => d === 1))
      yield* settle()
      assert.strictEqual(hopsAt(recorder, "ChainA/a"), 1, "the outside call did not enter")
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(chain), "ChainA/a>ChainB/b>ChainA/a")
      assert.strictEqual(yield* Fiber.join(outsider), "ChainA/a")
      assert.strictEqual(recorder.errors.length, 0)
    }).pipe((body) => withChains(recorder, body, reentrantA))
  })
})

describe("always-interleave re-entry", () => {
  it.effect("A→B→A.Peek re-enters a non-reentrant type", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      const result = yield* atOnce(a.Hop({ path: [step("ChainB", "b"), step("ChainA", "a", { peek: true })] }))
      assert.strictEqual(result, "ChainA/a>ChainB/b>ChainA/a:peek")
      assert.strictEqual(recorder.errors.length, 0)
      assert.strictEqual(recorder.contextsAt("ChainA/a", "Peek").length, 1)
    }).pipe((body) => withChains(recorder, body))
  })
})

describe("no false deadlock through one-way messages", () => {
  it.effect("A tells B, then B asks A while A is idle: it works", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      recorder.hooks.set("ChainB/b:Relay", () => Deferred.await(gate))
      const a = yield* ChainA.ref("a")
      const kicked = yield* a.Kick({ target: step("ChainB", "b"), path: [step("ChainA", "a")] })
      assert.strictEqual(kicked, "ChainA/a:kicked")
      // A's turn has ended; now let B's one-way turn ask A.
      yield* Deferred.succeed(gate, undefined)
      yield* waitUntil("B relayed", () => recorder.relayed.length === 1)
      assert.deepStrictEqual(recorder.relayed, [{ at: "ChainB/b", result: "ChainB/b>ChainA/a" }])
      assert.strictEqual(recorder.errors.length, 0)
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("A tells B, then B asks A while A is still busy: B waits (no Deadlock) and completes", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const gate = yield* Deferred.make<void>()
      recorder.hooks.set("ChainA/a:Kick", () => Deferred.await(gate))
      const a = yield* ChainA.ref("a")
      const kick = yield* Effect.forkChild(a.Kick({ target: step("ChainB", "b"), path: [step("ChainA", "a")] }))
      yield* waitUntil("B's ask to A queued", Effect.map(depthOf("ChainA", "a"), (d) => d === 1))
      yield* settle()
      assert.strictEqual(recorder.errors.length, 0)
      assert.strictEqual(recorder.relayed.length, 0)
      yield* Deferred.succeed(gate, undefined)
      assert.strictEqual(yield* Fiber.join(kick), "ChainA/a:kicked")
      yield* waitUntil("B relayed", () => recorder.relayed.length === 1)
      assert.deepStrictEqual(recorder.relayed, [{ at: "ChainB/b", result: "ChainB/b>ChainA/a" }])
      assert.strictEqual(recorder.errors.length, 0)
    }).pipe((body) => withChains(recorder, body))
  })
})


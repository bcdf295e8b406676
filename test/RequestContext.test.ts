/**
 * The request context (correlation id, metadata, request id) flows from a caller to the
 * handler and onward through nested asks and tells.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber } from "effect"
import { RequestContext } from "../src/index.ts"
import { ChainA, ChainRecorder, step, withChains } from "./fixtures/ChainActors.ts"
import { depthOf, waitUntil } from "./fixtures/MailboxProbe.ts"

const only = (recorder: ChainRecorder, at: string, tag: string) => {
  const found = recorder.contextsAt(at, tag)
  assert.strictEqual(found.length, 1, `one ${tag} turn at ${at}`)
  return found[0]
}

describe("RequestContext", () => {
  it.effect("outside any turn or frame the context is empty", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* RequestContext.current, { requestId: "", correlationId: "", metadata: {} })
    }))

  it.effect("the caller's span is the parent of the handler's and of nested calls' turns", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("span")
      const traceId = yield* Effect.withSpan(
        Effect.andThen(a.Hop({ path: [step("ChainB", "span")] }), Effect.map(Effect.currentSpan, (span) => span.traceId)),
        "caller"
      )
      assert.strictEqual(only(recorder, "ChainA/span", "Hop").traceId, traceId)
      assert.strictEqual(only(recorder, "ChainB/span", "Hop").traceId, traceId)
      yield* a.Hop({ path: [] }) // no span: none is made up
      assert.isUndefined(recorder.contextsAt("ChainA/span", "Hop")[1]!.traceId)
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("correlationId and metadata reach the handler and a nested call; requestIds differ", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      const result = yield* RequestContext.withRequestContext({
        correlationId: "corr-1",
        metadata: { user: "alice" }
      })(a.Hop({ path: [step("ChainB", "b"), step("ChainC", "c")] }))
      assert.strictEqual(result, "ChainA/a>ChainB/b>ChainC/c")
      const atA = only(recorder, "ChainA/a", "Hop")
      const atB = only(recorder, "ChainB/b", "Hop")
      const atC = only(recorder, "ChainC/c", "Hop")
      for (const ctx of [atA, atB, atC]) {
        assert.strictEqual(ctx.correlationId, "corr-1")
        assert.deepStrictEqual(ctx.metadata, { user: "alice" })
        assert.notStrictEqual(ctx.requestId, "")
      }
      assert.strictEqual(new Set([atA.requestId, atB.requestId, atC.requestId]).size, 3)
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("two calls under one context share the correlationId and get distinct requestIds", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* RequestContext.withRequestContext({ correlationId: "corr-2" })(
        Effect.andThen(a.Hop({ path: [] }), a.Hop({ path: [] }))
      )
      const contexts = recorder.contextsAt("ChainA/a", "Hop")
      assert.strictEqual(contexts.length, 2)
      assert.strictEqual(contexts[0].correlationId, "corr-2")
      assert.strictEqual(contexts[1].correlationId, "corr-2")
      assert.notStrictEqual(contexts[0].requestId, contexts[1].requestId)
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("without a context, a call still has a correlationId that its nested calls share", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* a.Hop({ path: [step("ChainB", "b")] })
      yield* a.Hop({ path: [step("ChainB", "b")] })
      const [a1, a2] = recorder.contextsAt("ChainA/a", "Hop")
      const [b1, b2] = recorder.contextsAt("ChainB/b", "Hop")
      assert.notStrictEqual(a1.correlationId, "")
      assert.strictEqual(b1.correlationId, a1.correlationId)
      assert.strictEqual(b2.correlationId, a2.correlationId)
      assert.notStrictEqual(a1.correlationId, a2.correlationId, "separate outside calls are separate requests")
      assert.deepStrictEqual(a1.metadata, {})
      assert.deepStrictEqual(b1.metadata, {})
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("the context does not outlive withRequestContext", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* RequestContext.withRequestContext({ correlationId: "corr-3", metadata: { user: "bob" } })(
        a.Hop({ path: [] })
      )
      yield* a.Hop({ path: [] })
      const [inside, after] = recorder.contextsAt("ChainA/a", "Hop")
      assert.strictEqual(inside.correlationId, "corr-3")
      assert.notStrictEqual(after.correlationId, "corr-3")
      assert.deepStrictEqual(after.metadata, {})
      assert.deepStrictEqual(yield* RequestContext.current, { requestId: "", correlationId: "", metadata: {} })
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("nested withRequestContext merges metadata and keeps the outer correlationId", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* RequestContext.withRequestContext({ correlationId: "corr-4", metadata: { user: "alice", role: "x" } })(
        RequestContext.withRequestContext({ metadata: { role: "admin", tenant: "t1" } })(a.Hop({ path: [] }))
      )
      const atA = only(recorder, "ChainA/a", "Hop")
      assert.strictEqual(atA.correlationId, "corr-4")
      assert.deepStrictEqual(atA.metadata, { user: "alice", role: "admin", tenant: "t1" })
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("a handler can add metadata or a new correlationId for its own nested calls", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* RequestContext.withRequestContext({ correlationId: "corr-5", metadata: { user: "alice" } })(
        a.Hop({
          path: [step("ChainB", "b", { metadata: { hop: "b" } }), step("ChainC", "c", { correlationId: "corr-6" })]
        })
      )
      const atA = only(recorder, "ChainA/a", "Hop")
      const atB = only(recorder, "ChainB/b", "Hop")
      const atC = only(recorder, "ChainC/c", "Hop")
      assert.deepStrictEqual(atA.metadata, { user: "alice" })
      assert.strictEqual(atB.correlationId, "corr-5")
      assert.deepStrictEqual(atB.metadata, { user: "alice", hop: "b" })
      assert.strictEqual(atC.correlationId, "corr-6")
      assert.deepStrictEqual(atC.metadata, { user: "alice", hop: "b" })
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("a tell carries the context, and so do the calls its handler makes", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* RequestContext.withRequestContext({ correlationId: "corr-7", metadata: { user: "carol" } })(
        a.tell.Hop({ path: [step("ChainB", "b")] })
      )
      yield* waitUntil("the one-way chain reached B", () => recorder.contextsAt("ChainB/b", "Hop").length === 1)
      const atA = only(recorder, "ChainA/a", "Hop")
      const atB = only(recorder, "ChainB/b", "Hop")
      for (const ctx of [atA, atB]) {
        assert.strictEqual(ctx.correlationId, "corr-7")
        assert.deepStrictEqual(ctx.metadata, { user: "carol" })
      }
      assert.notStrictEqual(atA.requestId, atB.requestId)
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("a tell sent from inside a handler carries the handler's context", () => {
    const recorder = new ChainRecorder()
    return Effect.gen(function*() {
      const a = yield* ChainA.ref("a")
      yield* RequestContext.withRequestContext({ correlationId: "corr-8", metadata: { user: "dave" } })(
        a.Kick({ target: step("ChainB", "b"), path: [step("ChainC", "c")] })
      )
      yield* waitUntil("B relayed", () => recorder.relayed.length === 1)
      const kick = only(recorder, "ChainA/a", "Kick")
      const relay = only(recorder, "ChainB/b", "Relay")
      const nested = only(recorder, "ChainC/c", "Hop")
      for (const ctx of [kick, relay, nested]) {
        assert.strictEqual(ctx.correlationId, "corr-8")
        assert.deepStrictEqual(ctx.metadata, { user: "dave" })
      }
      assert.strictEqual(new Set([kick.requestId, relay.requestId, nested.requestId]).size, 3)
    }).pipe((body) => withChains(recorder, body))
  })

  it.effect("queued asks and tells each see their own context when their turn comes", () => {
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
      const within = (correlationId: string) =>
        RequestContext.withRequestContext({ correlationId, metadata: { id: correlationId } })
      const blocker = yield* Effect.forkChild(within("c0")(a.Hop({ path: [] })))
      yield* waitUntil("A is busy", () => recorder.contexts.length === 1)
      yield* within("t1")(a.tell.Hop({ path: [] }))
      const ask2 = yield* Effect.forkChild(within("c2")(a.Hop({ path: [step("ChainB", "b")] })))
      // The forked ask is another sender: let it reach the mailbox before the next tell.
      yield* waitUntil("two queued", Effect.map(depthOf("ChainA", "a"), (d) => d === 2))
      yield* within("t3")(a.tell.Hop({ path: [] }))
      yield* waitUntil("three queued", Effect.map(depthOf("ChainA", "a"), (d) => d === 3))
      yield* Deferred.succeed(gate, undefined)
      yield* Fiber.join(blocker)
      yield* Fiber.join(ask2)
      yield* waitUntil("all ran", () => recorder.contexts.length === 5)
      assert.deepStrictEqual(
        recorder.contexts.map((c) => [c.at, c.correlationId, c.metadata.id]),
        [
          ["ChainA/a", "c0", "c0"],
          ["ChainA/a", "t1", "t1"],
          ["ChainA/a", "c2", "c2"],
          ["ChainB/b", "c2", "c2"],
          ["ChainA/a", "t3", "t3"]
        ]
      )
    }).pipe((body) => withChains(recorder, body))
  })
})

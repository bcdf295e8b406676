import { assert, describe, it } from "@effect/vitest"
import { Console, Effect, Exit, Layer, Logger, Metric, References, Schema, Tracer } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Rpc } from "effect/rpc"
import { Actor, Silo, Telemetry } from "../../src/index.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"
import { series, recordingTracer } from "./support.ts"

/** A fresh metric registry per test, so counts do not add up across tests. */
const withRegistry = <A, E, R>(layer: Layer.Layer<A, E, R>) =>
  layer.pipe(Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map())))



describe("Telemetry metrics", () => {
  it.layer(withRegistry(Silo.layerTest(counterLayer()).pipe(Layer.provideMerge(Telemetry.layer({ metrics: { timeOneTurnIn: 1 } })))))((it) => {
    it.effect("counts turns by outcome, errors by tag, activations, and times turns", () =>
      Effect.gen(function*() {
        const counter = yield* Counter.ref("m-1")
        for (let i = 0; i < 7; i++) yield* counter.Increment({ by: 1 })
        const overdrawn = yield* Effect.exit(counter.Decrement({ by: 100 }))
        assert.isTrue(Exit.isFailure(overdrawn))
        yield* Effect.exit(counter.Crash({ message: "boom" }))
        // Queued until the root supervisor has decided about the crash (it resumes the actor).
        assert.strictEqual(yield* counter.Get(), 7)
        const text = yield* PrometheusMetrics.format()
        assert.strictEqual(series(text, "quark_turns_total", { type: "Counter", message: "Increment", outcome: "ok" }), 7)
        assert.strictEqual(series(text, "quark_turns_total", { type: "Counter", message: "Decrement", outcome: "error" }), 1)
        assert.strictEqual(series(text, "quark_turns_total", { type: "Counter", message: "Crash", outcome: "defect" }), 1)
        assert.strictEqual(series(text, "quark_call_errors_total", { message: "Decrement", error: "Overdrawn" }), 1)
        assert.strictEqual(series(text, "quark_call_errors_total", { message: "Crash", error: "ActorDefect" }), 1)
        assert.strictEqual(series(text, "quark_activations_total", { type: "Counter" }), 1)
        assert.strictEqual(series(text, "quark_activations_active", { type: "Counter" }), 1)
        assert.strictEqual(series(text, "quark_turn_duration_seconds_count", { type: "Counter", message: "Increment" }), 7)
        // Ten turns: the first waited while its activation started, the last while the actor was
        // suspended, the rest ran at once.
        assert.strictEqual(series(text, "quark_mailbox_wait_seconds_count", { type: "Counter" }), 10)
        assert.isAtLeast(series(text, "quark_mailbox_wait_seconds_bucket", { type: "Counter", le: "0.00001" })!, 8)
        assert.strictEqual(series(text, "quark_supervision_decisions_total", { type: "Counter", directive: "resume" }), 1)
      }))
  })

  it.effect("by default one turn in eight is timed, and every turn is counted", () =>
    Effect.gen(function*() {
      const counter = yield* Counter.ref("m-3")
      for (let i = 0; i < 16; i++) yield* counter.Increment({ by: 1 })
      const text = yield* PrometheusMetrics.format()
      assert.strictEqual(series(text, "quark_turns_total", { type: "Counter", message: "Increment", outcome: "ok" }), 16)
      assert.strictEqual(series(text, "quark_turn_duration_seconds_count", { type: "Counter", message: "Increment" }), 2)
      assert.strictEqual(series(text, "quark_mailbox_wait_seconds_count", { type: "Counter" }), 2)
    }).pipe(Effect.provide(withRegistry(Silo.layerTest(counterLayer()).pipe(Layer.provideMerge(Telemetry.layer()))))))

  it.effect("a silo without the layer registers nothing", () =>
    Effect.gen(function*() {
      const counter = yield* Counter.ref("m-2")
      yield* counter.Increment({ by: 1 })
      const text = yield* PrometheusMetrics.format()
      assert.notInclude(text, "quark_turns_total")
    }).pipe(Effect.provide(withRegistry(Silo.layerTest(counterLayer())))))
})

describe("Telemetry tracing", () => {
  it.effect("a span per sampled turn, with the convention's attributes and the caller as parent", () => {
    const { layer, spans } = recordingTracer()
    return Effect.gen(function*() {
      const counter = yield* Counter.ref("t-1")
      yield* counter.Increment({ by: 1 }).pipe(Effect.withSpan("caller"))
      yield* Effect.exit(counter.Decrement({ by: 5 }))
      const caller = spans.find((span) => span.name === "caller")!
      const turn = spans.find((span) => span.name === "Counter/Increment")!
      assert.isDefined(turn)
      assert.strictEqual(turn.parent._tag === "Some" ? turn.parent.value.spanId : undefined, caller.spanId)
      assert.strictEqual(turn.attributes.get("quark.actor.type"), "Counter")
      assert.strictEqual(turn.attributes.get("quark.actor.id"), "t-1")
      assert.strictEqual(turn.attributes.get("rpc.system"), "quark")
      assert.strictEqual(turn.attributes.get("rpc.method"), "Increment")
      assert.strictEqual(turn.attributes.get("quark.turn.kind"), "ask")
      const failed = spans.find((span) => span.name === "Counter/Decrement")!
      assert.strictEqual(failed.attributes.get("error.type"), "Overdrawn")
      assert.strictEqual(failed.status._tag, "Ended")
      assert.isTrue(failed.status._tag === "Ended" && Exit.isFailure(failed.status.exit))
    }).pipe(Effect.provide(Silo.layerTest(counterLayer()).pipe(
      Layer.provideMerge(Telemetry.layer({ tracing: { sampleRatio: 1 }, metrics: false })),
      Layer.provideMerge(layer)
    )))
  })

  it.effect("sampling: a root turn is traced when the draw is under the ratio, and an unsampled caller's calls are not", () => {
    const { layer, spans } = recordingTracer()
    const draws = [0.5, 0.001]
    return Effect.gen(function*() {
      const counter = yield* Counter.ref("t-2")
      yield* counter.Increment({ by: 1 }) // draw 0.5 ≥ 0.01: not traced
      yield* counter.Increment({ by: 1 }) // draw 0.001 < 0.01: traced
      assert.strictEqual(spans.filter((span) => span.name === "Counter/Increment" && span.sampled).length, 1)
      const unsampled = Tracer.externalSpan({ traceId: "1".repeat(32), spanId: "2".repeat(16), sampled: false })
      yield* counter.Increment({ by: 1 }).pipe(Effect.withParentSpan(unsampled))
      assert.strictEqual(spans.filter((span) => span.name === "Counter/Increment" && span.sampled).length, 1)
      assert.strictEqual(draws.length, 0)
    }).pipe(Effect.provide(Silo.layerTest(counterLayer()).pipe(
      Layer.provideMerge(Telemetry.layer({ tracing: { sampleRatio: 0.01 }, metrics: false, random: () => draws.shift() ?? 1 })),
      Layer.provideMerge(layer)
    )))
  })
})

const Logging = Actor.make("Logging", [Rpc.make("Log", { payload: { lines: Schema.Int } })])
const loggingLayer = Logging.toLayer(Effect.succeed(Logging.of({
  Log: ({ lines }) => Effect.forEach(Array.from({ length: lines }, (_, i) => i), (i) => Effect.logInfo(`inside ${i}`), { discard: true })
})))

const capturing = () => {
  const lines: Array<Record<string, unknown>> = []
  const layer = Logger.layer([Logger.make((entry) => {
    lines.push({ message: entry.message, ...entry.fiber.getRef(References.CurrentLogAnnotations) })
  })])
  return { lines, layer }
}

describe("Telemetry lifecycle spans", () => {
  it.effect("an activation's span is a child of the call that caused it; finalizers run in a deactivation span", () => {
    const { layer, spans } = recordingTracer()
    return Effect.gen(function*() {
      const counter = yield* Counter.ref("d-1")
      yield* counter.Increment({ by: 1 }).pipe(Effect.withSpan("caller"))
      const caller = spans.find((span) => span.name === "caller")!
      const activation = spans.find((span) => span.name === "quark.activate Counter")!
      assert.strictEqual(activation.parent._tag === "Some" ? activation.parent.value.spanId : undefined, caller.spanId)
      assert.isTrue(yield* (yield* Silo.Silo).deactivate({ type: "Counter", id: "d-1" }))
      const deactivation = spans.find((span) => span.name === "quark.deactivate Counter")!
      assert.isDefined(deactivation)
      assert.strictEqual(deactivation.attributes.get("quark.actor.id"), "d-1")
      assert.strictEqual(deactivation.status._tag, "Ended")
    }).pipe(Effect.provide(Silo.layerTest(counterLayer()).pipe(
      Layer.provideMerge(Telemetry.layer({ tracing: { sampleRatio: 1 }, metrics: false })),
      Layer.provideMerge(layer)
    )))
  })
})

describe("Telemetry logs", () => {
  it.effect("a line logged in a turn carries the actor, message, request and correlation ids, and trace ids", () => {
    const { lines, layer } = capturing()
    return Effect.gen(function*() {
      const logging = yield* Logging.ref("l-1")
      yield* logging.Log({ lines: 1 })
      yield* Effect.logInfo("outside")
      const inside = lines.find((line) => String(line.message).includes("inside"))!
      assert.strictEqual(inside["quark.actor"], "Logging/l-1")
      assert.strictEqual(inside["quark.message"], "Log")
      assert.isString(inside["quark.request_id"])
      assert.isString(inside["quark.correlation_id"])
      assert.isString(inside["trace_id"])
      const outside = lines.find((line) => String(line.message).includes("outside"))!
      assert.isUndefined(outside["quark.actor"])
    }).pipe(Effect.provide(Silo.layerTest(loggingLayer).pipe(
      Layer.provideMerge(Telemetry.layer({ tracing: { sampleRatio: 1 }, metrics: false })),
      Layer.provideMerge(layer)
    )))
  })

  it.effect("format json: one JSON object per line, with the turn's annotations", () => {
    const printed: Array<string> = []
    const console: Console.Console = { ...globalThis.console, log: (line: unknown) => void printed.push(String(line)) }
    return Effect.gen(function*() {
      const logging = yield* Logging.ref("l-json")
      yield* logging.Log({ lines: 1 })
      const line = JSON.parse(printed.find((text) => text.includes("inside 0"))!) as {
        readonly message: unknown
        readonly level: unknown
        readonly annotations: Record<string, unknown>
      }
      assert.strictEqual(line.message, "inside 0")
      assert.strictEqual(line.level, "INFO")
      assert.strictEqual(line.annotations["quark.actor"], "Logging/l-json")
      assert.strictEqual(line.annotations["quark.message"], "Log")
    }).pipe(Effect.provide(Silo.layerTest(loggingLayer).pipe(
      Layer.provideMerge(Telemetry.layer({ metrics: false, logs: { format: "json" } })),
      Layer.provideMerge(Layer.succeed(Console.Console, console))
    )))
  })

  it.effect("sampling keeps at most the limit of an actor's Info lines per second and says how many it dropped", () => {
    const { lines, layer } = capturing()
    return Effect.gen(function*() {
      const logging = yield* Logging.ref("l-2")
      yield* logging.Log({ lines: 10 })
      assert.strictEqual(lines.length, 3)
      yield* Effect.logWarning("a warning is never dropped").pipe(Effect.andThen(logging.Log({ lines: 0 })))
      assert.strictEqual(lines.length, 4)
    }).pipe(Effect.provide(Silo.layerTest(loggingLayer).pipe(
      Layer.provideMerge(Telemetry.layer({ metrics: false, logs: { maxLinesPerActorPerSecond: 3 } })),
      Layer.provideMerge(layer)
    )))
  })
})

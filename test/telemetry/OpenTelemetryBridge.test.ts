/**
 * Quark inside an application that already runs the OpenTelemetry SDK, through
 * `@effect/opentelemetry`: Quark's spans go to the application's tracer provider and its
 * metrics to the application's metric reader, as OpenTelemetry sees them (the SDK's
 * in-memory exporters), not as effect sees them.
 *
 * Two wirings:
 * - `NodeSdk.layer({ resource, spanProcessor, metricReader })`: the bridge builds the SDK's
 *   tracer provider over the span processor and binds the reader to effect's metrics.
 * - The application's own `NodeTracerProvider` (registered globally, as the Node SDK
 *   does) through `OtelTracer.layer`, and its own `MeterProvider`, whose reader gets
 *   effect's metrics as an extra `MetricProducer` (`OtelMetrics.makeProducer`). A reader
 *   already bound to a `MeterProvider` cannot be handed to `OtelMetrics.layer`: the SDK
 *   binds a reader to one producer only (pinned below).
 *
 * A span the application starts with the OpenTelemetry API (say, an HTTP server span) must
 * be the parent of the turns called under it: Quark leaves a turn with no effect parent to
 * the tracer, and the bridge's tracer takes the active OpenTelemetry span. So is an effect
 * span under it, and the span context passed with `OtelTracer.withSpanContext`.
 */
import { assert, describe, it } from "@effect/vitest"
import * as NodeSdk from "@effect/opentelemetry/NodeSdk"
import { OtelMetrics, OtelTracer, Resource } from "@effect/opentelemetry"
import * as Otel from "@opentelemetry/api"
import { resourceFromAttributes } from "@opentelemetry/resources"
import {
  AggregationTemporality,
  DataPointType,
  InMemoryMetricExporter,
  MeterProvider,
  type MetricData,
  PeriodicExportingMetricReader
} from "@opentelemetry/sdk-metrics"
import { InMemorySpanExporter, type ReadableSpan, SimpleSpanProcessor } from "@opentelemetry/sdk-trace-base"
import { NodeTracerProvider } from "@opentelemetry/sdk-trace-node"
import { Effect, Exit, Layer, Metric } from "effect"
import { Silo, Telemetry } from "../../src/index.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"

/** A fresh metric registry, so counts do not add up across tests. */
const freshRegistry = () => Layer.succeed(Metric.MetricRegistry, new Map())

const telemetry = Telemetry.layer({ tracing: { sampleRatio: 1 }, metrics: { timeOneTurnIn: 1 }, logs: false })

/** The silo, with Quark's telemetry, above `otel` (which sees the same metric registry). */
const siloOver = <A, E>(otel: Layer.Layer<A, E>) =>
  Silo.layerTest(counterLayer()).pipe(
    Layer.provideMerge(telemetry),
    Layer.provideMerge(otel),
    Layer.provideMerge(freshRegistry())
  )

const spansNamed = (exporter: InMemorySpanExporter, name: string): Array<ReadableSpan> =>
  exporter.getFinishedSpans().filter((span) => span.name === name)

const parentOf = (span: ReadableSpan): string | undefined => span.parentSpanContext?.spanId

/** The convention's attributes on a turn span of `Counter/<message>` for `id`. */
const assertTurnAttributes = (span: ReadableSpan, id: string, message: string) => {
  assert.strictEqual(span.attributes["rpc.system"], "quark")
  assert.strictEqual(span.attributes["rpc.service"], "Counter")
  assert.strictEqual(span.attributes["rpc.method"], message)
  assert.strictEqual(span.attributes["quark.actor.type"], "Counter")
  assert.strictEqual(span.attributes["quark.actor.id"], id)
  assert.strictEqual(span.attributes["quark.message"], message)
  assert.strictEqual(span.attributes["quark.turn.kind"], "ask")
}

/** The data point of `name` whose attributes include `labels`, in the last export. */
const dataPoint = (exporter: InMemoryMetricExporter, name: string, labels: Record<string, string>) => {
  const exported = exporter.getMetrics()
  const last = exported[exported.length - 1]
  const metrics: Array<MetricData> = (last?.scopeMetrics ?? []).flatMap((scope) => scope.metrics)
  const metric = metrics.find((m) => m.descriptor.name === name)
  const point = metric?.dataPoints.find((p) =>
    Object.entries(labels).every(([key, value]) => p.attributes[key] === value)
  )
  return { metric, point, names: metrics.map((m) => m.descriptor.name) }
}

/** Reads the reader now: `PeriodicExportingMetricReader.forceFlush` collects and exports. */
const flushMetrics = (reader: PeriodicExportingMetricReader) => Effect.promise(() => reader.forceFlush())

/** The Node SDK as `@effect/opentelemetry` builds it, over the test's processor and reader. */
const sdkLayer = (options: {
  readonly serviceName: string
  readonly spanProcessor: SimpleSpanProcessor
  readonly metricReader: PeriodicExportingMetricReader
}) =>
  NodeSdk.layer(() => ({
    resource: { serviceName: options.serviceName },
    spanProcessor: options.spanProcessor,
    metricReader: options.metricReader
  }))

describe("@effect/opentelemetry bridge: the SDK built by the bridge (NodeSdk.layer's parts)", () => {
  it.effect("turn spans reach the SDK's span processor under the caller's span; Quark's metrics reach the SDK's metric reader", () => {
    const spans = new InMemorySpanExporter()
    const metrics = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    // A long interval: the test reads it with forceFlush.
    const reader = new PeriodicExportingMetricReader({ exporter: metrics, exportIntervalMillis: 600_000 })
    const sdk = sdkLayer({ serviceName: "bridge-sdk", spanProcessor: new SimpleSpanProcessor(spans), metricReader: reader })
    return Effect.gen(function*() {
      const counter = yield* Counter.ref("sdk-1")
      const calls = 5
      const caller = yield* Effect.gen(function*() {
        for (let i = 0; i < calls; i++) yield* counter.Increment({ by: 1 })
        const failed = yield* Effect.exit(counter.Decrement({ by: 100 }))
        assert.isTrue(Exit.isFailure(failed))
        return yield* Effect.currentSpan
      }).pipe(Effect.withSpan("checkout"))

      // Spans, as the SDK's exporter received them.
      const [root] = spansNamed(spans, "checkout")
      assert.isDefined(root, "the caller's span was exported")
      assert.strictEqual(root!.spanContext().spanId, caller.spanId)
      const turns = spansNamed(spans, "Counter/Increment")
      assert.strictEqual(turns.length, calls, "one span per sampled turn")
      for (const turn of turns) {
        assert.strictEqual(turn.spanContext().traceId, root!.spanContext().traceId)
        assert.strictEqual(parentOf(turn), root!.spanContext().spanId, "the turn's parent is the caller's span")
        assert.strictEqual(turn.kind, Otel.SpanKind.INTERNAL, "a local ask")
        assertTurnAttributes(turn, "sdk-1", "Increment")
        assert.strictEqual(turn.status.code, Otel.SpanStatusCode.OK)
        assert.strictEqual(turn.resource.attributes["service.name"], "bridge-sdk")
      }
      const [failed] = spansNamed(spans, "Counter/Decrement")
      assert.isDefined(failed)
      assert.strictEqual(parentOf(failed!), root!.spanContext().spanId)
      assert.strictEqual(failed!.attributes["error.type"], "Overdrawn")
      assert.strictEqual(failed!.status.code, Otel.SpanStatusCode.ERROR)

      // Metrics, as the SDK's reader collected them through the bridge's producer.
      yield* flushMetrics(reader)
      const ok = dataPoint(metrics, "quark_turns_total", { type: "Counter", message: "Increment", outcome: "ok" })
      assert.isDefined(ok.point, `quark_turns_total{Increment,ok} exported; got ${ok.names.join(", ")}`)
      assert.strictEqual(ok.point!.value, calls)
      assert.strictEqual(ok.metric!.dataPointType, DataPointType.SUM)
      const error = dataPoint(metrics, "quark_turns_total", { type: "Counter", message: "Decrement", outcome: "error" })
      assert.strictEqual(error.point?.value, 1)
      const byTag = dataPoint(metrics, "quark_call_errors_total", { message: "Decrement", error: "Overdrawn" })
      assert.strictEqual(byTag.point?.value, 1)
      const active = dataPoint(metrics, "quark_activations_active", { type: "Counter" })
      assert.strictEqual(active.point?.value, 1)
      const duration = dataPoint(metrics, "quark_turn_duration_seconds", { type: "Counter", message: "Increment" })
      assert.strictEqual(duration.metric?.dataPointType, DataPointType.HISTOGRAM)
      assert.strictEqual((duration.point?.value as { count?: number } | undefined)?.count, calls)

      // Counted again on the next read: the reader reads the cells, not a copy.
      yield* counter.Increment({ by: 1 })
      yield* flushMetrics(reader)
      assert.strictEqual(dataPoint(metrics, "quark_turns_total", { message: "Increment", outcome: "ok" }).point?.value, calls + 1)
    }).pipe(Effect.provide(siloOver(sdk)))
  })
})

// ---------------------------------------------------------------------------------------
// The application's own providers
// ---------------------------------------------------------------------------------------

/**
 * The application's tracer provider, registered globally as an application using the
 * OpenTelemetry Node SDK does (global provider, AsyncLocalStorage context manager, W3C
 * propagator); unregistered and shut down with the scope.
 */
const appTracerProvider = Effect.acquireRelease(
  Effect.sync(() => {
    const exporter = new InMemorySpanExporter()
    const provider = new NodeTracerProvider({
      resource: resourceFromAttributes({ "service.name": "bridge-app" }),
      spanProcessors: [new SimpleSpanProcessor(exporter)]
    })
    provider.register()
    return { exporter, provider }
  }),
  ({ provider }) =>
    Effect.promise(async () => {
      Otel.trace.disable()
      Otel.context.disable()
      Otel.propagation.disable()
      await provider.shutdown()
    })
)

/**
 * The application's meter provider with its own instruments, and a reader that also reads
 * effect's metrics: `OtelMetrics.makeProducer` (in the context of the silo, so it sees its
 * metric registry) as one of the reader's `metricProducers`.
 */
const appMeterProvider = Effect.acquireRelease(
  Effect.gen(function*() {
    const producer = yield* OtelMetrics.makeProducer("cumulative")
    const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
    const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 600_000, metricProducers: [producer] })
    const provider = new MeterProvider({ resource: resourceFromAttributes({ "service.name": "bridge-app" }), readers: [reader] })
    return { exporter, reader, provider }
  }),
  ({ provider }) => Effect.promise(() => provider.shutdown())
)

/** The silo, traced through the application's (global) tracer provider. */
const appSilo = (provider: NodeTracerProvider) =>
  siloOver(OtelTracer.layer.pipe(
    Layer.provide(Layer.succeed(OtelTracer.OtelTracerProvider, provider)),
    Layer.provideMerge(Resource.layer({ serviceName: "bridge-app" }))
  ))

describe("@effect/opentelemetry bridge: the application's own providers", () => {
  it.effect("a span the application starts with the OpenTelemetry API is the parent of the turn it calls", () =>
    Effect.gen(function*() {
      const { exporter, provider } = yield* appTracerProvider
      const context = yield* Layer.build(appSilo(provider))
      const call = Effect.provideContext(Effect.flatMap(Counter.ref("api-1"), (counter) => counter.Increment({ by: 1 })), context)
      const tracer = Otel.trace.getTracer("app")
      const request = yield* Effect.promise(() =>
        tracer.startActiveSpan("GET /counter", (span) =>
          Effect.runPromise(call).then(() => {
            span.end()
            return span.spanContext()
          }))
      )
      const [turn] = spansNamed(exporter, "Counter/Increment")
      assert.isDefined(turn, "the turn's span was exported")
      assertTurnAttributes(turn!, "api-1", "Increment")
      // Fails while Quark starts a turn with no effect parent span as `root: true`
      // (SiloInstruments.turnSpan): the bridge's tracer then ignores the active
      // OpenTelemetry span (OtelSpan adopts it only when `root` is not true) and the turn
      // starts a trace of its own.
      assert.strictEqual(turn!.spanContext().traceId, request.traceId, "the turn is in the request's trace")
      assert.strictEqual(parentOf(turn!), request.spanId, "the turn's parent is the application's span")
    }).pipe(Effect.scoped))

  it.effect("an effect span inside the application's span is the turn's parent, and a child of the application's span", () =>
    Effect.gen(function*() {
      const { exporter, provider } = yield* appTracerProvider
      const context = yield* Layer.build(appSilo(provider))
      const call = Effect.provideContext(
        Effect.flatMap(Counter.ref("api-2"), (counter) => counter.Increment({ by: 1 })).pipe(Effect.withSpan("handler")),
        context
      )
      const tracer = Otel.trace.getTracer("app")
      const request = yield* Effect.promise(() =>
        tracer.startActiveSpan("GET /counter", (span) =>
          Effect.runPromise(call).then(() => {
            span.end()
            return span.spanContext()
          }))
      )
      const [handler] = spansNamed(exporter, "handler")
      const [turn] = spansNamed(exporter, "Counter/Increment")
      assert.isDefined(handler)
      assert.isDefined(turn)
      assert.strictEqual(parentOf(handler!), request.spanId, "the effect span adopts the active OpenTelemetry span")
      assert.strictEqual(parentOf(turn!), handler!.spanContext().spanId, "the turn's parent is the effect span")
      assert.strictEqual(turn!.spanContext().traceId, request.traceId)
      assert.strictEqual(turn!.kind, Otel.SpanKind.INTERNAL)
      assertTurnAttributes(turn!, "api-2", "Increment")
    }).pipe(Effect.scoped))

  it.effect("OtelTracer.withSpanContext: the application's span context passed explicitly is the turn's parent", () =>
    Effect.gen(function*() {
      const { exporter, provider } = yield* appTracerProvider
      const context = yield* Layer.build(appSilo(provider))
      const tracer = Otel.trace.getTracer("app")
      const request = yield* Effect.promise(() =>
        tracer.startActiveSpan("GET /counter", (span) => {
          const call = Effect.flatMap(Counter.ref("api-3"), (counter) => counter.Increment({ by: 1 })).pipe(
            OtelTracer.withSpanContext(span.spanContext()),
            Effect.provideContext(context)
          )
          return Effect.runPromise(call).then(() => {
            span.end()
            return span.spanContext()
          })
        })
      )
      const [turn] = spansNamed(exporter, "Counter/Increment")
      assert.isDefined(turn)
      assert.strictEqual(turn!.spanContext().traceId, request.traceId)
      assert.strictEqual(parentOf(turn!), request.spanId)
      assertTurnAttributes(turn!, "api-3", "Increment")
      // Its kind is server, not internal: Quark takes a parent it did not make (an external
      // span) for a caller in another process.
    }).pipe(Effect.scoped))

  it.effect("the application's MeterProvider exports its own instruments and Quark's metrics in one collection", () =>
    Effect.gen(function*() {
      const { provider } = yield* appTracerProvider
      const context = yield* Layer.build(appSilo(provider))
      const { exporter, reader, provider: meters } = yield* Effect.provideContext(appMeterProvider, context)
      const requests = meters.getMeter("app").createCounter("app_requests_total")
      const calls = 4
      yield* Effect.provideContext(
        Effect.gen(function*() {
          const counter = yield* Counter.ref("meter-1")
          for (let i = 0; i < calls; i++) {
            requests.add(1)
            yield* counter.Increment({ by: 1 })
          }
        }),
        context
      )
      yield* flushMetrics(reader)
      const app = dataPoint(exporter, "app_requests_total", {})
      assert.strictEqual(app.point?.value, calls, "the application's own counter")
      const ok = dataPoint(exporter, "quark_turns_total", { type: "Counter", message: "Increment", outcome: "ok" })
      assert.strictEqual(ok.point?.value, calls, `quark_turns_total in the same collection; got ${ok.names.join(", ")}`)
      assert.strictEqual(dataPoint(exporter, "quark_activations_total", { type: "Counter" }).point?.value, 1)
    }).pipe(Effect.scoped))

  it.effect("a reader already bound to a MeterProvider cannot be handed to OtelMetrics.layer (one producer per reader)", () =>
    Effect.gen(function*() {
      const exporter = new InMemoryMetricExporter(AggregationTemporality.CUMULATIVE)
      const reader = new PeriodicExportingMetricReader({ exporter, exportIntervalMillis: 600_000 })
      const meters = new MeterProvider({ readers: [reader] })
      yield* Effect.addFinalizer(() => Effect.promise(() => meters.shutdown()))
      const exit = yield* Effect.exit(Layer.build(OtelMetrics.layer(() => reader).pipe(Layer.provide(Resource.layerEmpty))))
      assert.isTrue(Exit.isFailure(exit))
      assert.include(String(Exit.isFailure(exit) ? exit.cause : ""), "MetricReader can not be bound to a MeterProvider again")
    }).pipe(Effect.scoped))
})

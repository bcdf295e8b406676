/**
 * Traces over OTLP/HTTP from real processes: two silos (`test/fixtures/tracedSiloMain.ts`),
 * each its own Node process on 127.0.0.1 with Redis membership, export their spans with
 * `OtlpTracer` (OTLP JSON) to a receiver in this test (`otlpReceiver.ts`), which decodes
 * what arrives. This process is a `ClusterClient` of the two, traced the same way (as
 * service `client`).
 *
 * The client asks `TraceFront/x` (owned by silo A), whose handler asks `TraceBack/y`
 * (owned by silo B): the W3C traceparent crosses two TCP connections between processes.
 * From the decoded OTLP alone, the trace must read:
 *
 *   test.forward                 internal  client
 *   └─ TraceFront/Forward        client    client   (the client's call)
 *      └─ TraceFront/Forward     server    silo-a   (X's turn)
 *         └─ TraceBack/Work      client    silo-a   (X's call to Y)
 *            └─ TraceBack/Work   server    silo-b   (Y's turn)
 *
 * one trace id, each span's parent the one above, the RPC attributes and Quark's on each;
 * and when Y fails, `error.type` is the error's tag and the status is error on every span
 * the failure passed through.
 *
 * Every wait is a bounded poll (spans are exported in batches every 100 ms).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Path from "node:path"
import { fileURLToPath } from "node:url"
import { Context, Effect, Layer } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { Silo, Telemetry } from "../../src/index.ts"
import { Cluster, ClusterClient } from "../../src/Cluster/index.ts"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { formatTraceTree } from "../../examples/support/traceTree.ts"
import { timings, TraceBack, TraceFront } from "../fixtures/TracedRelay.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"
import { closeAndWait, type SiloChild, siloLogs, spawnSiloChild, waitFor as poll } from "../support/processes.ts"
import { deleteKeys, newRunId } from "../support/redisKeys.ts"
import * as OtlpReceiver from "./otlpReceiver.ts"
import { type ReceivedSpan, SpanKind, StatusCode } from "./otlpReceiver.ts"

const siloMain = Path.resolve(Path.dirname(fileURLToPath(import.meta.url)), "..", "fixtures", "tracedSiloMain.ts")

const keyPrefix = `quark-otlp-${newRunId()}`
const clusterName = "otlp"

/** Bound on every wait for spans: batches leave every 100 ms; a loaded machine is slow. */
const spansBound = 20_000

// ---------------------------------------------------------------------------------------
// Processes
// ---------------------------------------------------------------------------------------

interface SiloProcess extends SiloChild {
  readonly service: string
}

/**
 * A silo process for the life of the scope: on release, its stdin is closed (graceful
 * shutdown) and it is killed if it has not exited within 5 s.
 */
const spawnSilo = (service: string, tracesUrl: string) =>
  Effect.acquireRelease(
    Effect.sync(() =>
      spawnSiloChild<SiloProcess>(siloMain, [keyPrefix, clusterName, service, tracesUrl], { service }, {
        env: { QUARK_REDIS_URL: redisUrl }
      })
    ),
    (silo) => closeAndWait(silo.child, 5_000)
  )

// ---------------------------------------------------------------------------------------
// Spans
// ---------------------------------------------------------------------------------------

const describeSpans = (spans: ReadonlyArray<ReceivedSpan>) => formatTraceTree(spans, { attributes: ["quark.silo", "quark.actor.id", "error.type"] })

/** The one span of `trace` named `name` exported by `service` with `kind`; fails listing the trace otherwise. */
const only = (trace: ReadonlyArray<ReceivedSpan>, service: string, name: string, kind: number): ReceivedSpan => {
  const found = trace.filter((s) => s.service === service && s.name === name && s.kind === kind)
  assert.strictEqual(found.length, 1, `one ${name} (kind ${kind}) from ${service} in\n${describeSpans(trace)}`)
  return found[0]!
}

/** The RPC convention and Quark's attributes on a call or turn span. */
const assertCallAttributes = (
  span: ReceivedSpan,
  expected: { readonly type: string; readonly id: string; readonly message: string; readonly silo: string | undefined }
) => {
  const where = `${span.service}:${span.name} (kind ${span.kind})`
  assert.strictEqual(span.attributes["rpc.system"], "quark", `${where} rpc.system`)
  assert.strictEqual(span.attributes["rpc.service"], expected.type, `${where} rpc.service`)
  assert.strictEqual(span.attributes["rpc.method"], expected.message, `${where} rpc.method`)
  assert.strictEqual(span.attributes["quark.actor.type"], expected.type, `${where} quark.actor.type`)
  assert.strictEqual(span.attributes["quark.actor.id"], expected.id, `${where} quark.actor.id`)
  assert.strictEqual(span.attributes["quark.message"], expected.message, `${where} quark.message`)
  assert.strictEqual(span.attributes["quark.turn.kind"], "ask", `${where} quark.turn.kind`)
  assert.strictEqual(span.attributes["quark.silo"], expected.silo, `${where} quark.silo`)
}

/** The five spans of one forwarded call, checked for trace id, parents and kinds. */
const forwardTrace = (
  spans: ReadonlyArray<ReceivedSpan>,
  rootName: string,
  ids: { readonly a: string; readonly b: string; readonly x: string; readonly y: string }
) => {
  const roots = spans.filter((s) => s.name === rootName && s.service === "client")
  assert.strictEqual(roots.length, 1, `one ${rootName} span`)
  const root = roots[0]!
  const trace = spans.filter((s) => s.traceId === root.traceId)
  const context = `\n${describeSpans(trace)}`
  const clientCall = only(trace, "client", "TraceFront/Forward", SpanKind.client)
  const front = only(trace, "silo-a", "TraceFront/Forward", SpanKind.server)
  const aToB = only(trace, "silo-a", "TraceBack/Work", SpanKind.client)
  const back = only(trace, "silo-b", "TraceBack/Work", SpanKind.server)

  assert.isUndefined(root.parentSpanId, `${rootName} is the root${context}`)
  assert.strictEqual(clientCall.parentSpanId, root.spanId, `the client's call is a child of ${rootName}${context}`)
  assert.strictEqual(front.parentSpanId, clientCall.spanId, `X's turn on A is a child of the client's call${context}`)
  assert.strictEqual(aToB.parentSpanId, front.spanId, `A's call to Y is a child of X's turn${context}`)
  assert.strictEqual(back.parentSpanId, aToB.spanId, `Y's turn on B is a child of A's call to Y${context}`)
  for (const span of [clientCall, front, aToB, back]) assert.strictEqual(span.traceId, root.traceId)

  assertCallAttributes(clientCall, { type: "TraceFront", id: ids.x, message: "Forward", silo: undefined })
  assertCallAttributes(front, { type: "TraceFront", id: ids.x, message: "Forward", silo: ids.a })
  assertCallAttributes(aToB, { type: "TraceBack", id: ids.y, message: "Work", silo: ids.a })
  assertCallAttributes(back, { type: "TraceBack", id: ids.y, message: "Work", silo: ids.b })
  return { root, trace, clientCall, front, aToB, back }
}

// ---------------------------------------------------------------------------------------
// The test
// ---------------------------------------------------------------------------------------

describe("OTLP traces across silo processes", () => {
  it.live("a call A→B across processes: one trace, parent links, kinds and attributes as decoded from OTLP; a failure's tag and status", () =>
    Effect.gen(function*() {
      const receiver = yield* OtlpReceiver.scoped
      const redis = yield* Effect.orDie(rawRedis)
      yield* Effect.addFinalizer(() => deleteKeys(redis, `${keyPrefix}:*`))
      const a = yield* spawnSilo("silo-a", receiver.tracesUrl)
      const b = yield* spawnSilo("silo-b", receiver.tracesUrl)
      const silos = [a, b]

      const waitFor = (what: string, maxMillis: number, condition: Effect.Effect<boolean>) =>
        poll(what, maxMillis, condition, {
          abort: () => {
            const dead = silos.find((s) => s.exit !== undefined)
            return dead === undefined ? undefined : `${dead.service} exited`
          },
          describe: () => siloLogs(silos, (s) => s.service)
        })

      yield* waitFor("the silos start", 20_000, Effect.sync(() => a.id !== undefined && b.id !== undefined))
      const ids = [a.id!, b.id!]

      const tracing = OtlpTracer.layer({ url: receiver.tracesUrl, resource: { serviceName: "client" }, exportInterval: "100 millis" })
        .pipe(Layer.provide(OtlpSerialization.layerJson), Layer.provide(FetchHttpClient.layer))
      const client: Context.Context<Silo.Silo | Cluster> = yield* Layer.build(
        ClusterClient.layer({ requestTimeout: "5 seconds" }).pipe(
          Layer.provide(RedisMembership.layer({ url: redisUrl, keyPrefix, cluster: clusterName, ...timings })),
          Layer.provide(Telemetry.layer({ tracing: { sampleRatio: 1 }, metrics: false, logs: false })),
          Layer.provideMerge(tracing)
        )
      ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)), Effect.orDie)
      const asClient = <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster>) => Effect.provideContext(effect, client)
      const cluster = Context.get(client, Cluster)
      const both = (members: ReadonlyArray<string> | undefined) =>
        members !== undefined && members.length === 2 && ids.every((id) => members.includes(id))
      yield* waitFor(
        "the client and both silos see both silos",
        10_000,
        Effect.map(cluster.members, (members) => both(members) && silos.every((s) => both(s.members)))
      )

      // X owned by A, Y owned by B: the ring decides, so pick ids by their owners.
      const ownedBy = (type: string, prefix: string, owner: string) =>
        Effect.gen(function*() {
          for (let i = 0; i < 1_000; i++) {
            if ((yield* cluster.ownerOf({ type, id: `${prefix}-${i}` })) === owner) return `${prefix}-${i}`
          }
          return yield* Effect.die(new Error(`no ${type} id owned by ${owner}`))
        })
      const x = yield* ownedBy(TraceFront.type, "x", a.id!)
      const y = yield* ownedBy(TraceBack.type, "y", b.id!)
      const failX = yield* ownedBy(TraceFront.type, "fx", a.id!)
      const failY = yield* ownedBy(TraceBack.type, "fy", b.id!)

      // --- A successful call ---------------------------------------------------------
      const answered = yield* asClient(
        Effect.flatMap(TraceFront.ref(x), (front) => front.Forward({ to: y, fail: false })).pipe(Effect.withSpan("test.forward"))
      )
      assert.deepStrictEqual(answered, { front: a.id!, back: b.id! }, "X ran on A and Y on B")

      // --- A failing call --------------------------------------------------------------
      const failed = yield* Effect.result(asClient(
        Effect.flatMap(TraceFront.ref(failX), (front) => front.Forward({ to: failY, fail: true })).pipe(
          Effect.withSpan("test.forward.fail")
        )
      ))
      assert.strictEqual(failed._tag === "Failure" ? failed.failure._tag : failed._tag, "Refused", "Y's error reached the client")

      // Every span of both traces, from all three exporters.
      const complete = (spans: ReadonlyArray<ReceivedSpan>, rootName: string) => {
        const root = spans.find((s) => s.name === rootName && s.service === "client")
        if (root === undefined) return false
        const trace = spans.filter((s) => s.traceId === root.traceId)
        const has = (service: string, name: string, kind: number) => trace.some((s) => s.service === service && s.name === name && s.kind === kind)
        return has("client", "TraceFront/Forward", SpanKind.client) && has("silo-a", "TraceFront/Forward", SpanKind.server) &&
          has("silo-a", "TraceBack/Work", SpanKind.client) && has("silo-b", "TraceBack/Work", SpanKind.server)
      }
      const spans = yield* receiver.waitFor(
        "the spans of both calls, from the client and both silos",
        spansBound,
        (received) => complete(received, "test.forward") && complete(received, "test.forward.fail")
      )
      assert.deepStrictEqual(receiver.rejected, [], "every export decoded")

      const ok = forwardTrace(spans, "test.forward", { a: a.id!, b: b.id!, x, y })
      for (const span of [ok.clientCall, ok.front, ok.aToB, ok.back]) {
        assert.strictEqual(span.status.code, StatusCode.ok, `${span.service}:${span.name} status ok`)
        assert.isUndefined(span.attributes["error.type"])
      }
      assert.strictEqual(ok.root.kind, SpanKind.internal)

      const bad = forwardTrace(spans, "test.forward.fail", { a: a.id!, b: b.id!, x: failX, y: failY })
      for (const span of [bad.back, bad.aToB, bad.front, bad.clientCall]) {
        assert.strictEqual(span.attributes["error.type"], "Refused", `${span.service}:${span.name} error.type\n${describeSpans(bad.trace)}`)
        assert.strictEqual(span.status.code, StatusCode.error, `${span.service}:${span.name} status error`)
      }
      assert.notStrictEqual(ok.root.traceId, bad.root.traceId, "two calls, two traces")

      // The activations the calls caused are in their traces too, on the silo that ran them.
      const activation = (trace: ReadonlyArray<ReceivedSpan>, service: string, type: string) =>
        trace.filter((s) => s.service === service && s.name === `quark.activate ${type}`)
      assert.strictEqual(activation(ok.trace, "silo-a", "TraceFront").length, 1, `X's activation in its trace\n${describeSpans(ok.trace)}`)
      assert.strictEqual(activation(ok.trace, "silo-b", "TraceBack").length, 1, `Y's activation in its trace\n${describeSpans(ok.trace)}`)

      console.log(`${describeSpans(ok.trace)}\n${describeSpans(bad.trace)}`)
    }).pipe(Effect.scoped), 30_000)
})

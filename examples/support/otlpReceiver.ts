/**
 * A small OTLP/HTTP traces receiver for the examples: a `node:http` server on 127.0.0.1 (a
 * free port) that accepts `POST /v1/traces` with an OTLP JSON body (what effect's
 * `OtlpTracer` sends over `OtlpSerialization.layerJson`), decodes it with a `Schema` of the
 * parts of the OTLP JSON encoding the trace tree needs, and keeps the spans in the shape
 * `formatTraceTree` (./traceTree.ts) prints. A stand-in for a collector, Jaeger or Tempo;
 * not part of Quark's API.
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Zlib from "node:zlib"
import { Effect, Schema, type Scope } from "effect"
import type { TraceTreeSpan } from "./traceTree.ts"

// --- The OTLP JSON encoding, as far as the tree needs it ---------------------------------------

/** An attribute's value: scalars only (array and map values decode as undefined). 64-bit integers may come as strings. */
const AnyValue = Schema.Struct({
  stringValue: Schema.optional(Schema.NullOr(Schema.String)),
  boolValue: Schema.optional(Schema.NullOr(Schema.Boolean)),
  intValue: Schema.optional(Schema.NullOr(Schema.Union([Schema.String, Schema.Number]))),
  doubleValue: Schema.optional(Schema.NullOr(Schema.Union([Schema.Number, Schema.String])))
})

const Attributes = Schema.optional(Schema.Array(Schema.Struct({ key: Schema.String, value: Schema.optional(AnyValue) })))

/** A 64-bit unsigned integer (nanoseconds): a string in OTLP JSON, a number from some encoders. */
const Fixed64 = Schema.optional(Schema.Union([Schema.String, Schema.Number]))

const ExportTraceServiceRequest = Schema.Struct({
  resourceSpans: Schema.optional(Schema.Array(Schema.Struct({
    resource: Schema.optional(Schema.Struct({ attributes: Attributes })),
    scopeSpans: Schema.optional(Schema.Array(Schema.Struct({
      spans: Schema.optional(Schema.Array(Schema.Struct({
        traceId: Schema.String,
        spanId: Schema.String,
        parentSpanId: Schema.optional(Schema.NullOr(Schema.String)),
        name: Schema.String,
        kind: Schema.optional(Schema.Number),
        startTimeUnixNano: Fixed64,
        endTimeUnixNano: Fixed64,
        attributes: Attributes,
        status: Schema.optional(Schema.Struct({
          code: Schema.optional(Schema.Number),
          message: Schema.optional(Schema.NullOr(Schema.String))
        }))
      })))
    })))
  })))
})

const decodeRequest = Schema.decodeUnknownSync(Schema.fromJsonString(ExportTraceServiceRequest))

/** A received span: what the trace tree prints, plus its attributes as JavaScript values. */
export interface ReceivedSpan extends TraceTreeSpan {
  readonly attributes: Readonly<Record<string, unknown>>
}

const valueOf = (value: typeof AnyValue.Type | undefined): unknown => {
  if (value === undefined) return undefined
  if (value.stringValue != null) return value.stringValue
  if (value.boolValue != null) return value.boolValue
  if (value.intValue != null) return Number(value.intValue)
  if (value.doubleValue != null) return Number(value.doubleValue)
  return undefined
}

const attributesOf = (attributes: typeof Attributes.Type): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const { key, value } of attributes ?? []) out[key] = valueOf(value)
  return out
}

const nanos = (value: string | number | undefined): bigint | undefined => {
  try {
    return value === undefined ? undefined : BigInt(value)
  } catch {
    return undefined
  }
}

const spansOf = (request: typeof ExportTraceServiceRequest.Type): Array<ReceivedSpan> =>
  (request.resourceSpans ?? []).flatMap((resourceSpans) => {
    const service = attributesOf(resourceSpans.resource?.attributes)["service.name"]
    return (resourceSpans.scopeSpans ?? []).flatMap((scopeSpans) =>
      (scopeSpans.spans ?? []).map((span): ReceivedSpan => ({
        traceId: span.traceId,
        spanId: span.spanId,
        // OTLP JSON writes a root's parent as "" (or leaves it out).
        parentSpanId: span.parentSpanId == null || span.parentSpanId === "" ? undefined : span.parentSpanId,
        name: span.name,
        kind: span.kind ?? 0,
        service: typeof service === "string" ? service : undefined,
        attributes: attributesOf(span.attributes),
        status: { code: span.status?.code ?? 0, message: span.status?.message ?? undefined },
        startTimeUnixNano: nanos(span.startTimeUnixNano),
        endTimeUnixNano: nanos(span.endTimeUnixNano)
      }))
    )
  })

// --- The server --------------------------------------------------------------------------------

export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>/v1/traces`: the `url` of `OtlpTracer.layer`. */
  readonly tracesUrl: string
  /** Every span received so far, in the order they arrived. */
  readonly spans: ReadonlyArray<ReceivedSpan>
  /** Why bodies were refused (a body that does not decode is answered 400 and noted here). */
  readonly rejected: ReadonlyArray<string>
}

const readBody = (request: Http.IncomingMessage) =>
  new Promise<Buffer>((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks)))
    request.on("error", reject)
  })

const listen = (): Promise<{ readonly receiver: OtlpReceiver; readonly server: Http.Server }> => {
  const spans: Array<ReceivedSpan> = []
  const rejected: Array<string> = []
  const answer = (response: Http.ServerResponse, status: number, body: object) => {
    response.writeHead(status, { "content-type": "application/json" })
    response.end(JSON.stringify(body))
  }
  const refuse = (response: Http.ServerResponse, status: number, why: string) => {
    rejected.push(why)
    answer(response, status, { code: status, message: why })
  }
  const server = Http.createServer((request, response) => {
    if (request.method !== "POST" || request.url?.split("?")[0] !== "/v1/traces") {
      return refuse(response, 404, `${request.method} ${request.url}: not an OTLP traces export`)
    }
    const type = request.headers["content-type"] ?? ""
    if (!type.startsWith("application/json")) return refuse(response, 415, `content-type ${type}: only OTLP JSON is read`)
    readBody(request).then((raw) => {
      const body = request.headers["content-encoding"] === "gzip" ? Zlib.gunzipSync(raw) : raw
      try {
        spans.push(...spansOf(decodeRequest(body.toString("utf8"))))
      } catch (error) {
        return refuse(response, 400, `the body did not decode: ${error instanceof Error ? error.message : String(error)}`)
      }
      answer(response, 200, {}) // ExportTraceServiceResponse: everything accepted
    }, (error: unknown) => refuse(response, 400, `the body could not be read: ${String(error)}`))
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as AddressInfo
      resolve({ receiver: { tracesUrl: `http://127.0.0.1:${port}/v1/traces`, spans, rejected }, server })
    })
  })
}

/** A receiver for the life of the scope (its server closes, keep-alive connections too, with the scope). */
export const scoped: Effect.Effect<OtlpReceiver, never, Scope.Scope> = Effect.map(
  Effect.acquireRelease(Effect.promise(listen), ({ server }) =>
    Effect.promise(() =>
      new Promise<void>((done) => {
        server.close(() => done())
        server.closeAllConnections()
      })
    )),
  ({ receiver }) => receiver
)

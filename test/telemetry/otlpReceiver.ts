/**
 * An OTLP/HTTP traces receiver for tests and examples: a `node:http` server on 127.0.0.1
 * (a free port) that accepts `POST /v1/traces` with an OTLP JSON body (what
 * `OtlpTracer` sends over `OtlpSerialization.layerJson`), decodes it with a `Schema` of
 * the OTLP JSON encoding, and keeps the spans in a simple shape:
 *
 *   { traceId, spanId, parentSpanId, name, kind, attributes, status, service, ... }
 *
 * `kind` and `status.code` are the OTLP enums (kind: 1 internal, 2 server, 3 client,
 * 4 producer, 5 consumer; status: 0 unset, 1 ok, 2 error); `service` is the resource's
 * `service.name`. A body that does not decode is answered 400 and kept in `rejected`, so
 * a test can tell "nothing arrived" from "something arrived that we could not read".
 *
 * ```ts
 * const receiver = yield* OtlpReceiver.scoped            // stopped with the scope
 * // ... OtlpTracer.layer({ url: receiver.tracesUrl, ... })
 * yield* receiver.waitFor("the turn's span", 20_000, (spans) => spans.some((s) => s.name === "Counter/Increment"))
 * ```
 */
import * as Http from "node:http"
import type { AddressInfo } from "node:net"
import * as Zlib from "node:zlib"
import { Clock, Effect, Schema } from "effect"

// ---------------------------------------------------------------------------------------
// The OTLP JSON encoding of traces (opentelemetry-proto, JSON mapping)
// ---------------------------------------------------------------------------------------

/** An OTLP `AnyValue`, as JSON. 64-bit integers may come as strings. */
interface AnyValue {
  readonly stringValue?: string | null | undefined
  readonly boolValue?: boolean | null | undefined
  readonly intValue?: string | number | null | undefined
  readonly doubleValue?: number | string | null | undefined
  readonly bytesValue?: string | null | undefined
  readonly arrayValue?: { readonly values?: ReadonlyArray<AnyValue> | undefined } | undefined
  readonly kvlistValue?: { readonly values?: ReadonlyArray<KeyValue> | undefined } | undefined
}

interface KeyValue {
  readonly key: string
  readonly value?: AnyValue | undefined
}

const AnyValue: Schema.Codec<AnyValue> = Schema.Struct({
  stringValue: Schema.optional(Schema.NullOr(Schema.String)),
  boolValue: Schema.optional(Schema.NullOr(Schema.Boolean)),
  intValue: Schema.optional(Schema.NullOr(Schema.Union([Schema.String, Schema.Number]))),
  doubleValue: Schema.optional(Schema.NullOr(Schema.Union([Schema.Number, Schema.String]))),
  bytesValue: Schema.optional(Schema.NullOr(Schema.String)),
  arrayValue: Schema.optional(Schema.Struct({
    values: Schema.optional(Schema.Array(Schema.suspend((): Schema.Codec<AnyValue> => AnyValue)))
  })),
  kvlistValue: Schema.optional(Schema.Struct({
    values: Schema.optional(Schema.Array(Schema.suspend((): Schema.Codec<KeyValue> => KeyValue)))
  }))
})

const KeyValue: Schema.Codec<KeyValue> = Schema.Struct({
  key: Schema.String,
  value: Schema.optional(AnyValue)
})

const Attributes = Schema.optional(Schema.Array(KeyValue))

/** A 64-bit unsigned integer: a string in OTLP JSON, a number from some encoders. */
const Fixed64 = Schema.Union([Schema.String, Schema.Number])

const OtlpSpan = Schema.Struct({
  traceId: Schema.String,
  spanId: Schema.String,
  parentSpanId: Schema.optional(Schema.NullOr(Schema.String)),
  name: Schema.String,
  kind: Schema.optional(Schema.Number),
  startTimeUnixNano: Schema.optional(Fixed64),
  endTimeUnixNano: Schema.optional(Fixed64),
  attributes: Attributes,
  events: Schema.optional(Schema.Array(Schema.Struct({
    name: Schema.String,
    timeUnixNano: Schema.optional(Fixed64),
    attributes: Attributes
  }))),
  links: Schema.optional(Schema.Array(Schema.Struct({
    traceId: Schema.String,
    spanId: Schema.String,
    attributes: Attributes
  }))),
  status: Schema.optional(Schema.Struct({
    code: Schema.optional(Schema.Number),
    message: Schema.optional(Schema.NullOr(Schema.String))
  }))
})

/** `ExportTraceServiceRequest` as OTLP JSON. */
export const ExportTraceServiceRequest = Schema.Struct({
  resourceSpans: Schema.optional(Schema.Array(Schema.Struct({
    resource: Schema.optional(Schema.Struct({ attributes: Attributes })),
    scopeSpans: Schema.optional(Schema.Array(Schema.Struct({
      scope: Schema.optional(Schema.Struct({ name: Schema.optional(Schema.String), version: Schema.optional(Schema.String) })),
      spans: Schema.optional(Schema.Array(OtlpSpan))
    })))
  })))
})

const decodeRequest = Schema.decodeUnknownSync(Schema.fromJsonString(ExportTraceServiceRequest))

// ---------------------------------------------------------------------------------------
// The simple shape
// ---------------------------------------------------------------------------------------

/** A received span, decoded. */
export interface ReceivedSpan {
  readonly traceId: string
  readonly spanId: string
  /** Undefined for a root span. */
  readonly parentSpanId: string | undefined
  readonly name: string
  /** OTLP `SpanKind`: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  /** Attribute values as JavaScript values (64-bit integers that do not fit a number stay strings). */
  readonly attributes: Readonly<Record<string, unknown>>
  /** OTLP status: code 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message: string | undefined }
  /** The resource's `service.name`. */
  readonly service: string | undefined
  readonly resource: Readonly<Record<string, unknown>>
  /** The instrumentation scope's name. */
  readonly scope: string | undefined
  readonly startTimeUnixNano: bigint
  readonly endTimeUnixNano: bigint
  readonly events: ReadonlyArray<{ readonly name: string; readonly attributes: Readonly<Record<string, unknown>> }>
}

/** The OTLP `SpanKind` enum. */
export const SpanKind = { unspecified: 0, internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const
/** The OTLP `StatusCode` enum. */
export const StatusCode = { unset: 0, ok: 1, error: 2 } as const

const valueOf = (value: AnyValue | undefined): unknown => {
  if (value === undefined) return undefined
  if (value.stringValue != null) return value.stringValue
  if (value.boolValue != null) return value.boolValue
  if (value.intValue != null) {
    const n = Number(value.intValue)
    return Number.isSafeInteger(n) ? n : String(value.intValue)
  }
  if (value.doubleValue != null) return Number(value.doubleValue)
  if (value.bytesValue != null) return value.bytesValue
  if (value.arrayValue !== undefined) return (value.arrayValue.values ?? []).map(valueOf)
  if (value.kvlistValue !== undefined) return attributesOf(value.kvlistValue.values)
  return undefined
}

const attributesOf = (attributes: ReadonlyArray<KeyValue> | undefined): Record<string, unknown> => {
  const out: Record<string, unknown> = {}
  for (const { key, value } of attributes ?? []) out[key] = valueOf(value)
  return out
}

const nanos = (value: string | number | undefined): bigint => {
  if (value === undefined) return 0n
  try {
    return BigInt(value)
  } catch {
    return 0n
  }
}

/** The spans of one decoded request, in the simple shape. */
export const spansOf = (request: typeof ExportTraceServiceRequest.Type): Array<ReceivedSpan> => {
  const out: Array<ReceivedSpan> = []
  for (const resourceSpans of request.resourceSpans ?? []) {
    const resource = attributesOf(resourceSpans.resource?.attributes)
    const service = typeof resource["service.name"] === "string" ? resource["service.name"] : undefined
    for (const scopeSpans of resourceSpans.scopeSpans ?? []) {
      for (const span of scopeSpans.spans ?? []) {
        out.push({
          traceId: span.traceId,
          spanId: span.spanId,
          parentSpanId: span.parentSpanId === undefined || span.parentSpanId === null || span.parentSpanId === "" ?
            undefined :
            span.parentSpanId,
          name: span.name,
          kind: span.kind ?? 0,
          attributes: attributesOf(span.attributes),
          status: { code: span.status?.code ?? 0, message: span.status?.message ?? undefined },
          service,
          resource,
          scope: scopeSpans.scope?.name,
          startTimeUnixNano: nanos(span.startTimeUnixNano),
          endTimeUnixNano: nanos(span.endTimeUnixNano),
          events: (span.events ?? []).map((event) => ({ name: event.name, attributes: attributesOf(event.attributes) }))
        })
      }
    }
  }
  return out
}

// ---------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------

export interface OtlpReceiver {
  /** `http://127.0.0.1:<port>/v1/traces`: the `url` of `OtlpTracer.layer`. */
  readonly tracesUrl: string
  readonly port: number
  /** Every span received so far, in arrival order. */
  readonly spans: ReadonlyArray<ReceivedSpan>
  /** How many export requests were accepted. */
  readonly requests: () => number
  /** Requests refused, with why (wrong path or method, unreadable body). */
  readonly rejected: ReadonlyArray<string>
  /** Forgets the spans received so far. */
  readonly clear: () => void
  /**
   * Polls the spans every 20 ms until `condition` holds, then answers them; dies past
   * `maxMillis`, naming `what` and listing what did arrive.
   */
  readonly waitFor: (
    what: string,
    maxMillis: number,
    condition: (spans: ReadonlyArray<ReceivedSpan>) => boolean
  ) => Effect.Effect<ReadonlyArray<ReceivedSpan>>
  readonly stop: () => Promise<void>
}

const readBody = (request: Http.IncomingMessage): Promise<Buffer> =>
  new Promise((resolve, reject) => {
    const chunks: Array<Buffer> = []
    request.on("data", (chunk: Buffer) => chunks.push(chunk))
    request.on("end", () => resolve(Buffer.concat(chunks)))
    request.on("error", reject)
  })

/** Starts a receiver on 127.0.0.1 (a free port). */
export const start = (): Promise<OtlpReceiver> => {
  const spans: Array<ReceivedSpan> = []
  const rejected: Array<string> = []
  let accepted = 0
  const refuse = (response: Http.ServerResponse, status: number, why: string) => {
    rejected.push(why)
    response.writeHead(status, { "content-type": "application/json" })
    response.end(JSON.stringify({ code: status, message: why }))
  }
  const server = Http.createServer((request, response) => {
    if (request.method !== "POST" || request.url?.split("?")[0] !== "/v1/traces") {
      return refuse(response, 404, `${request.method} ${request.url}: not an OTLP traces export`)
    }
    const type = request.headers["content-type"] ?? ""
    if (!type.startsWith("application/json")) return refuse(response, 415, `content-type ${type}: only OTLP JSON is read`)
    readBody(request).then((raw) => {
      const body = request.headers["content-encoding"] === "gzip" ? Zlib.gunzipSync(raw) : raw
      let decoded: typeof ExportTraceServiceRequest.Type
      try {
        decoded = decodeRequest(body.toString("utf8"))
      } catch (error) {
        return refuse(response, 400, `the body did not decode: ${error instanceof Error ? error.message : String(error)}`)
      }
      spans.push(...spansOf(decoded))
      accepted++
      response.writeHead(200, { "content-type": "application/json" })
      // ExportTraceServiceResponse: everything accepted.
      response.end("{}")
    }, (error: unknown) => refuse(response, 400, `the body could not be read: ${String(error)}`))
  })
  return new Promise((resolve, reject) => {
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const port = (server.address() as AddressInfo).port
      const receiver: OtlpReceiver = {
        tracesUrl: `http://127.0.0.1:${port}/v1/traces`,
        port,
        spans,
        requests: () => accepted,
        rejected,
        clear: () => void spans.splice(0),
        waitFor: (what, maxMillis, condition) =>
          Effect.gen(function*() {
            const start = yield* Clock.currentTimeMillis
            while (!condition(spans)) {
              if ((yield* Clock.currentTimeMillis) - start > maxMillis) {
                return yield* Effect.die(new Error(
                  `${what}: not received within ${maxMillis} ms (${accepted} exports, ${spans.length} spans: ` +
                    `${spans.map((s) => `${s.service ?? "?"}:${s.name}`).join(", ")}; rejected: ${rejected.join("; ") || "none"})`
                ))
              }
              yield* Effect.sleep("20 millis")
            }
            return spans.slice()
          }),
        stop: () =>
          new Promise<void>((done) => {
            server.close(() => done())
            server.closeAllConnections()
          })
      }
      resolve(receiver)
    })
  })
}

/** A receiver for the life of the scope. */
export const scoped = Effect.acquireRelease(
  Effect.promise(start),
  (receiver) => Effect.promise(receiver.stop)
)

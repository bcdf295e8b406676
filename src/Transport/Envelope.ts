/**
 * The request and reply envelopes that travel between silos (and from clients to silos),
 * their schemas, and a hand-written binary codec for them.
 *
 * The envelope fields are fixed, so they are written by hand (no Schema walk per message);
 * the message payload and the reply value are opaque bytes produced by the message's own
 * schema (see {@link payloadCodec}: `Schema.toCodecJson` + JSON + UTF-8).
 *
 * Wire layout (after the frame's 4-byte length prefix; integers big-endian, `str` =
 * u32 byte length + UTF-8, `bytes` = u32 length + raw bytes):
 *
 * - request: u8 kind=1 | u32 requestId | u32 timeoutMillis | u8 flags (1: context.requestId,
 *   2: trace, 4: one-way, 8: forwarded) | str type | str id | str tag | str correlationId | [str context.requestId] |
 *   [str trace] | u32 n + n × (str key, str value) metadata | u32 n + n × (str type, str id)
 *   chain | bytes payload
 * - reply: u8 kind=2 | u32 requestId | u8 outcome (0 Success, 1 Failure, 2 Defect,
 *   3 TransportError) | Success/Failure: bytes | Defect: str | TransportError: str error, str message
 *
 * The request id sits in bytes 1–4 of both, so a receiver can answer even a frame it
 * cannot decode (or that is too large) with a typed error for the right request.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import { ActorAddress } from "../Actor/ActorAddress.ts"
import { headerBytes, MalformedFrame, type OutputBuffer } from "./Frame.ts"

/**
 * The request context carried with a call.
 *
 * @since 0.1.0
 */
export const EnvelopeContext = Schema.Struct({
  requestId: Schema.optional(Schema.String),
  correlationId: Schema.String,
  metadata: Schema.Record(Schema.String, Schema.String)
})

/**
 * @since 0.1.0
 */
export type EnvelopeContext = typeof EnvelopeContext.Type

/**
 * A request: which actor, which message, the payload (encoded with the message's
 * schema), the request context, the call chain (outermost first, for deadlock detection)
 * and an optional W3C traceparent.
 *
 * @since 0.1.0
 */
export const RequestEnvelope = Schema.Struct({
  requestId: Schema.Number,
  target: ActorAddress,
  tag: Schema.String,
  payload: Schema.Uint8Array,
  context: EnvelopeContext,
  chain: Schema.Array(ActorAddress),
  trace: Schema.optional(Schema.String),
  timeoutMillis: Schema.Number,
  /** A one-way message: the receiver sends no reply. */
  oneWay: Schema.optional(Schema.Boolean),
  /** Already forwarded once by a silo that did not own the target: the receiver must not forward again. */
  forwarded: Schema.optional(Schema.Boolean)
})

/**
 * @since 0.1.0
 */
export type RequestEnvelope = typeof RequestEnvelope.Type

/**
 * The tags of transport-level errors a server can answer with. `Draining`: the server was
 * draining and did not run the request (not delivered, safe to retry elsewhere).
 *
 * @since 0.1.0
 */
export const TransportErrorTag = Schema.Literals(["FrameTooLarge", "MalformedFrame", "Interrupted", "Draining"])

/**
 * The outcome of a request: the success value or the typed failure (both encoded with
 * the message's schemas), a defect (rendered), or a transport error.
 *
 * @since 0.1.0
 */
export const ReplyOutcome = Schema.Union([
  Schema.TaggedStruct("Success", { value: Schema.Uint8Array }),
  Schema.TaggedStruct("Failure", { error: Schema.Uint8Array }),
  Schema.TaggedStruct("Defect", { defect: Schema.String }),
  Schema.TaggedStruct("TransportError", { error: TransportErrorTag, message: Schema.String })
])

/**
 * @since 0.1.0
 */
export type ReplyOutcome = typeof ReplyOutcome.Type

/**
 * A reply to the request with the same `requestId` on the same connection.
 *
 * @since 0.1.0
 */
export const ReplyEnvelope = Schema.Struct({
  requestId: Schema.Number,
  outcome: ReplyOutcome
})

/**
 * @since 0.1.0
 */
export type ReplyEnvelope = typeof ReplyEnvelope.Type

/** @since 0.1.0 */
export const kindRequest = 1
/** @since 0.1.0 */
export const kindReply = 2

// ---------------------------------------------------------------------------------------
// strings

// Short ASCII strings (type names, ids, tags) are the common case: a byte loop beats
// Buffer#write / toString for them; anything else goes through Node's UTF-8 codec.
const shortString = 48

/** Upper bound of the bytes `s` takes on the wire (length + UTF-8, or length + bytes). */
const stringBound = (s: string | Uint8Array): number => 4 + (typeof s === "string" ? s.length * 3 : s.length)

const writeString = (buf: Buffer, pos: number, s: string): number => {
  const n = s.length
  if (n <= shortString) {
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      buf[pos + 4 + i] = c
    }
    if (i === n) {
      buf.writeUInt32BE(n, pos)
      return pos + 4 + n
    }
  }
  const written = buf.write(s, pos + 4, "utf8")
  buf.writeUInt32BE(written, pos)
  return pos + 4 + written
}

// Names read from the wire (types, ids, tags) repeat from one frame to the next: a small
// cache hands back the string read last time for the same bytes, which saves building it
// and gives the Map lookups that follow a string whose hash is already computed.
// Direct-mapped on a few of the bytes (a miss replaces the slot, and the full comparison
// decides), so hostile input can neither grow it nor cost more than a miss.
const internSlots = 1024
const interned: Array<string> = new Array(internSlots).fill("")

const utf8Text = Buffer.prototype.toString as (this: Uint8Array, encoding: "utf8", start: number, end: number) => string

/** A short string from `buf` (UTF-8); ASCII goes through the intern cache. */
const readShort = (buf: Uint8Array, start: number, n: number): string => {
  if (n === 0) return ""
  const end = start + n
  const slot = (n * 31 + buf[start]! * 7 + buf[start + (n >> 1)]! * 131 + buf[end - 1]!) & (internSlots - 1)
  const cached = interned[slot]!
  if (cached.length === n) {
    // Cached strings are ASCII, so a match also says every byte is.
    let i = 0
    while (i < n && cached.charCodeAt(i) === buf[start + i]) i++
    if (i === n) return cached
  }
  // Measured: building short ASCII strings byte by byte beats Node's decoders (and the
  // strings they return parse slower with JSON.parse).
  let s = ""
  for (let i = start; i < end; i++) {
    const c = buf[i]!
    if (c >= 0x80) return utf8Text.call(buf, "utf8", start, end)
    s += String.fromCharCode(c)
  }
  interned[slot] = s
  return s
}

/** Writes `bytes` (length + raw bytes), or a string as its UTF-8 bytes. */
const writeBytes = (buf: Buffer, pos: number, bytes: Uint8Array | string): number => {
  if (typeof bytes === "string") return writeString(buf, pos, bytes)
  buf.writeUInt32BE(bytes.length, pos)
  buf.set(bytes, pos + 4)
  return pos + 4 + bytes.length
}

/** A cursor over a frame being decoded; throws MalformedFrame when it runs past the end. */
class Reader {
  readonly buf: Buffer
  pos: number
  /** End of the frame within `buf`. */
  readonly end: number
  constructor(buf: Buffer, pos: number, end: number) {
    this.buf = buf
    this.pos = pos
    this.end = end
  }
  need(n: number): void {
    if (this.pos + n > this.end) {
      throw new MalformedFrame({ reason: `truncated at byte ${this.pos} (needs ${n} more of ${this.end})` })
    }
  }
  u8(): number {
    this.need(1)
    return this.buf[this.pos++]!
  }
  u32(): number {
    this.need(4)
    const buf = this.buf
    const pos = this.pos
    this.pos = pos + 4
    return ((buf[pos]! << 24) | (buf[pos + 1]! << 16) | (buf[pos + 2]! << 8) | buf[pos + 3]!) >>> 0
  }
  string(): string {
    const n = this.u32()
    this.need(n)
    const start = this.pos
    this.pos += n
    return n <= shortString ? readShort(this.buf, start, n) : this.buf.toString("utf8", start, start + n)
  }
  bytes(): Uint8Array {
    const n = this.u32()
    this.need(n)
    // Copy: the payload may outlive the frame, and must not keep its whole socket chunk alive.
    const out = new Uint8Array(n)
    out.set(this.buf.subarray(this.pos, this.pos + n))
    this.pos += n
    return out
  }
}

// ---------------------------------------------------------------------------------------
// requests

const noMetadata: Readonly<Record<string, string>> = Object.freeze({})
const noChain: ReadonlyArray<ActorAddress> = Object.freeze([])

/**
 * A request as a sender hands it over: the envelope without the fields its connection fills
 * in (request id, timeout, one-way). The payload is the encoded bytes, or the payload's
 * UTF-8 text, which is then written straight into the frame (no intermediate bytes).
 *
 * @since 0.1.0
 */
export interface OutgoingRequest {
  readonly target: ActorAddress
  readonly tag: string
  readonly payload: Uint8Array | string
  readonly context: EnvelopeContext
  readonly chain: ReadonlyArray<ActorAddress>
  readonly trace?: string | undefined
  readonly forwarded?: boolean | undefined
}

/**
 * Encodes a request as one frame at the end of `out`. Returns the frame's payload size
 * (what the maximum frame size applies to); when that exceeds `maxFrameBytes` the frame is
 * rolled back and nothing is written.
 *
 * @since 0.1.0
 */
export const writeRequest = (
  out: OutputBuffer,
  req: OutgoingRequest & { readonly requestId: number; readonly timeoutMillis: number; readonly oneWay?: boolean | undefined },
  maxFrameBytes: number
): number => writeRequestWith(out, req, req.requestId, req.timeoutMillis, req.oneWay === true, maxFrameBytes)

/**
 * {@link writeRequest} with the connection's fields passed apart, so a caller's request
 * needs no copy to carry them.
 *
 * @since 0.1.0
 */
export const writeRequestWith = (
  out: OutputBuffer,
  req: OutgoingRequest,
  requestId: number,
  timeoutMillis: number,
  oneWay: boolean,
  maxFrameBytes: number
): number => {
  const ctx = req.context
  const metadata = ctx.metadata
  const chain = req.chain
  const payload = req.payload
  const target = req.target
  let bound = headerBytes + 1 + 4 + 4 + 1 + stringBound(target.type) + stringBound(target.id) +
    stringBound(req.tag) + stringBound(ctx.correlationId) + 4 + 4 + stringBound(payload)
  if (ctx.requestId !== undefined) bound += stringBound(ctx.requestId)
  if (req.trace !== undefined) bound += stringBound(req.trace)
  let metadataCount = 0
  for (const key in metadata) {
    bound += stringBound(key) + stringBound(metadata[key]!)
    metadataCount++
  }
  for (let i = 0; i < chain.length; i++) bound += stringBound(chain[i]!.type) + stringBound(chain[i]!.id)
  out.reserve(bound)
  const buf = out.buffer
  const start = out.position
  let pos = start + headerBytes
  buf[pos] = kindRequest
  buf.writeUInt32BE(requestId >>> 0, pos + 1)
  buf.writeUInt32BE(Math.min(timeoutMillis, 0xffffffff) >>> 0, pos + 5)
  buf[pos + 9] = (ctx.requestId !== undefined ? 1 : 0) | (req.trace !== undefined ? 2 : 0) |
    (oneWay ? 4 : 0) | (req.forwarded === true ? 8 : 0)
  pos += 10
  pos = writeString(buf, pos, target.type)
  pos = writeString(buf, pos, target.id)
  pos = writeString(buf, pos, req.tag)
  pos = writeString(buf, pos, ctx.correlationId)
  if (ctx.requestId !== undefined) pos = writeString(buf, pos, ctx.requestId)
  if (req.trace !== undefined) pos = writeString(buf, pos, req.trace)
  buf.writeUInt32BE(metadataCount, pos)
  pos += 4
  if (metadataCount > 0) {
    for (const key in metadata) {
      pos = writeString(buf, pos, key)
      pos = writeString(buf, pos, metadata[key]!)
    }
  }
  buf.writeUInt32BE(chain.length, pos)
  pos += 4
  for (let i = 0; i < chain.length; i++) {
    pos = writeString(buf, pos, chain[i]!.type)
    pos = writeString(buf, pos, chain[i]!.id)
  }
  pos = writeBytes(buf, pos, payload)
  const size = pos - start - headerBytes
  if (size > maxFrameBytes) return size
  buf.writeUInt32BE(size, start)
  out.position = pos
  return size
}

/** The target and tag of a request. */
interface Names {
  readonly target: ActorAddress
  readonly tag: string
}

// The target and tag of the last request read, with their bytes on the wire: consecutive
// requests (a burst of calls to one actor) usually repeat them, and one byte comparison
// then replaces three string reads and the target's allocation. The objects are shared
// between requests, which treat them as the immutable values they are.
let lastNames: Names = { target: { type: "", id: "" }, tag: "" }
const lastNamesBytes = Buffer.alloc(256)
let lastNamesLength = 0

/** Reads type, id and tag at the reader's position. */
const readNames = (r: Reader): Names => {
  const buf = r.buf
  const start = r.pos
  const n = lastNamesLength
  if (n > 0 && start + n <= r.end) {
    const cached = lastNamesBytes
    let i = 0
    while (i < n && buf[start + i] === cached[i]) i++
    if (i === n) {
      r.pos = start + n
      return lastNames
    }
  }
  const type = r.string()
  const id = r.string()
  const tag = r.string()
  const names: Names = { target: { type, id }, tag }
  const length = r.pos - start
  if (length <= lastNamesBytes.length) {
    buf.copy(lastNamesBytes, 0, start, r.pos)
    lastNames = names
    lastNamesLength = length
  }
  return names
}

/**
 * Decodes a request frame (without its length prefix). Throws {@link MalformedFrame}.
 *
 * @since 0.1.0
 */
export const readRequest = (frame: Buffer): RequestEnvelope => readRequestIn(frame, 0, frame.length)

/**
 * {@link readRequest} of the frame at `buf[start, end)` (as {@link FrameHandler.onFrameIn}
 * hands it over, with no view allocated). Throws {@link MalformedFrame}.
 *
 * @since 0.1.0
 */
export const readRequestIn = (buf: Buffer, start: number, end: number): RequestEnvelope => {
  const r = new Reader(buf, start, end)
  const kind = r.u8()
  if (kind !== kindRequest) throw new MalformedFrame({ reason: `expected a request (kind 1), got kind ${kind}` })
  const requestId = r.u32()
  const timeoutMillis = r.u32()
  const flags = r.u8()
  const named = readNames(r)
  const target = named.target
  const tag = named.tag
  const correlationId = r.string()
  const ctxRequestId = (flags & 1) !== 0 ? r.string() : undefined
  const trace = (flags & 2) !== 0 ? r.string() : undefined
  const metadataCount = r.u32()
  let metadata: Record<string, string> = noMetadata as Record<string, string>
  if (metadataCount > 0) {
    metadata = {}
    for (let i = 0; i < metadataCount; i++) {
      const key = r.string()
      metadata[key] = r.string()
    }
  }
  const chainCount = r.u32()
  r.need(chainCount * 8)
  let chain: ReadonlyArray<ActorAddress> = noChain
  if (chainCount > 0) {
    const links: Array<ActorAddress> = new Array(chainCount)
    for (let i = 0; i < chainCount; i++) links[i] = { type: r.string(), id: r.string() }
    chain = links
  }
  const payload = r.bytes()
  if (r.pos !== end) throw new MalformedFrame({ reason: `${end - r.pos} trailing bytes` })
  const context: EnvelopeContext = ctxRequestId === undefined ?
    { correlationId, metadata } :
    { requestId: ctxRequestId, correlationId, metadata }
  const req: { -readonly [K in keyof RequestEnvelope]: RequestEnvelope[K] } = {
    requestId,
    target,
    tag,
    payload,
    context,
    chain,
    timeoutMillis
  }
  if (trace !== undefined) req.trace = trace
  if ((flags & 4) !== 0) req.oneWay = true
  if ((flags & 8) !== 0) req.forwarded = true
  return req
}

/**
 * Reads the request id of a frame that starts like an envelope (kind byte + u32), for
 * answering frames that cannot be decoded; `undefined` when it is not readable.
 *
 * @since 0.1.0
 */
export const peekRequestId = (frame: Uint8Array, expectedKind: number): number | undefined =>
  peekRequestIdIn(frame, 0, frame.length, expectedKind)

/**
 * {@link peekRequestId} of the frame at `buf[start, end)`.
 *
 * @since 0.1.0
 */
export const peekRequestIdIn = (buf: Uint8Array, start: number, end: number, expectedKind: number): number | undefined => {
  if (end - start < 5 || buf[start] !== expectedKind) return undefined
  return ((buf[start + 1]! << 24) | (buf[start + 2]! << 16) | (buf[start + 3]! << 8) | buf[start + 4]!) >>> 0
}

// ---------------------------------------------------------------------------------------
// replies

/**
 * Encodes a reply as one frame at the end of `out`; returns its payload size. When that
 * exceeds `maxFrameBytes` nothing is written (send a TransportError reply instead).
 *
 * @since 0.1.0
 */
export const writeReply = (out: OutputBuffer, requestId: number, outcome: ReplyOutcome, maxFrameBytes: number): number => {
  let bound = headerBytes + 1 + 4 + 1
  switch (outcome._tag) {
    case "Success":
      bound += 4 + outcome.value.length
      break
    case "Failure":
      bound += 4 + outcome.error.length
      break
    case "Defect":
      bound += stringBound(outcome.defect)
      break
    case "TransportError":
      bound += stringBound(outcome.error) + stringBound(outcome.message)
      break
  }
  out.reserve(bound)
  const buf = out.buffer
  const start = out.position
  let pos = start + headerBytes
  buf[pos] = kindReply
  buf.writeUInt32BE(requestId >>> 0, pos + 1)
  pos += 6
  switch (outcome._tag) {
    case "Success":
      buf[pos - 1] = 0
      buf.writeUInt32BE(outcome.value.length, pos)
      buf.set(outcome.value, pos + 4)
      pos += 4 + outcome.value.length
      break
    case "Failure":
      buf[pos - 1] = 1
      buf.writeUInt32BE(outcome.error.length, pos)
      buf.set(outcome.error, pos + 4)
      pos += 4 + outcome.error.length
      break
    case "Defect":
      buf[pos - 1] = 2
      pos = writeString(buf, pos, outcome.defect)
      break
    case "TransportError":
      buf[pos - 1] = 3
      pos = writeString(buf, pos, outcome.error)
      pos = writeString(buf, pos, outcome.message)
      break
  }
  const size = pos - start - headerBytes
  if (size > maxFrameBytes) return size
  buf.writeUInt32BE(size, start)
  out.position = pos
  return size
}

const isTransportErrorTag = Schema.is(TransportErrorTag)

/**
 * Decodes a reply frame (without its length prefix). Throws {@link MalformedFrame}.
 *
 * @since 0.1.0
 */
export const readReply = (frame: Buffer): ReplyEnvelope => {
  const outcome = readReplyOutcome(frame)
  return { requestId: frame.readUInt32BE(1), outcome }
}

/**
 * The outcome of a reply frame, for a receiver that read its request id with {@link
 * peekRequestId} already. Throws {@link MalformedFrame}.
 *
 * @since 0.1.0
 */
export const readReplyOutcome = (frame: Buffer): ReplyOutcome => readReplyOutcomeIn(frame, 0, frame.length)

/**
 * {@link readReplyOutcome} of the frame at `buf[start, end)`. Throws {@link MalformedFrame}.
 *
 * @since 0.1.0
 */
export const readReplyOutcomeIn = (buf: Buffer, start: number, end: number): ReplyOutcome => {
  const r = new Reader(buf, start, end)
  const kind = r.u8()
  if (kind !== kindReply) throw new MalformedFrame({ reason: `expected a reply (kind 2), got kind ${kind}` })
  r.u32() // the request id
  const tag = r.u8()
  let outcome: ReplyOutcome
  switch (tag) {
    case 0:
      outcome = { _tag: "Success", value: r.bytes() }
      break
    case 1:
      outcome = { _tag: "Failure", error: r.bytes() }
      break
    case 2:
      outcome = { _tag: "Defect", defect: r.string() }
      break
    case 3: {
      const error = r.string()
      const message = r.string()
      if (!isTransportErrorTag(error)) throw new MalformedFrame({ reason: `unknown transport error ${error}` })
      outcome = { _tag: "TransportError", error, message }
      break
    }
    default:
      throw new MalformedFrame({ reason: `unknown reply outcome ${tag}` })
  }
  if (r.pos !== end) throw new MalformedFrame({ reason: `${end - r.pos} trailing bytes` })
  return outcome
}

// ---------------------------------------------------------------------------------------
// payloads

/**
 * Encoder and decoder of one schema's values as envelope payload bytes.
 *
 * @since 0.1.0
 */
export interface PayloadCodec<A> {
  readonly encode: (value: A) => Uint8Array
  /**
   * The payload's UTF-8 text, for senders that write it straight into a frame (see
   * {@link OutgoingRequest}); the same bytes as `encode`.
   */
  readonly encodeText: (value: A) => string
  /** Throws a Schema error when the bytes do not decode. */
  readonly decode: (bytes: Uint8Array) => A
}

/**
 * Payload bytes for a schema: `Schema.toCodecJson`, then JSON, then UTF-8.
 *
 * @since 0.1.0
 */
export const payloadCodec = <A, I>(schema: Schema.Codec<A, I>): PayloadCodec<A> => {
  const json = Schema.toCodecJson(schema)
  const encodeJson = Schema.encodeSync(json)
  const decodeJson = Schema.decodeUnknownSync(json)
  const encodeText = (value: A): string => {
    const encoded = encodeJson(value)
    const text = stringifyFlat(encoded) ?? JSON.stringify(encoded)
    // JSON.stringify gives undefined for what JSON cannot hold (undefined, a function).
    if (typeof text !== "string") throw new Error(`the encoded value has no JSON text (${typeof encoded})`)
    return text
  }
  return {
    encode: (value) => Buffer.from(encodeText(value), "utf8"),
    encodeText,
    decode: (bytes) => decodeJson(parseJson(bytes))
  }
}

// JSON fast paths. Most payloads and replies are a number, a short string, or a flat object
// of those (`{"by":1}`), and for these V8's JSON.parse / JSON.stringify cost more in call
// overhead than in work. The fast paths give exactly what JSON.parse / JSON.stringify would
// and hand anything else to them (whitespace, escapes, fractions, nesting, `__proto__`...),
// so a peer's bytes meet the same parser as before whenever they leave the narrow shape.

/** A string JSON writes as `"<s>"` (printable ASCII without `"` or `\`), short. */
const isPlainString = (s: string): boolean => {
  const n = s.length
  if (n > 64) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false
  }
  return true
}

/** JSON text of a primitive the fast path handles, else `undefined`. */
const stringifyScalar = (value: unknown): string | undefined => {
  switch (typeof value) {
    case "number":
      // A finite number's JSON text is its string (non-finite ones are JSON.stringify's business).
      return Number.isFinite(value) ? String(value) : undefined
    case "string":
      return isPlainString(value) ? `"${value}"` : undefined
    case "boolean":
      return value ? "true" : "false"
    default:
      return value === null ? "null" : undefined
  }
}

/** `JSON.stringify(value)` for a scalar or a flat plain object of scalars, else `undefined`. */
const stringifyFlat = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null) return stringifyScalar(value)
  if (Object.getPrototypeOf(value) !== Object.prototype) return undefined
  const keys = Object.keys(value) // JSON.stringify's order
  if (keys.length > 16) return undefined
  let out = "{"
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    if (!isPlainString(key)) return undefined
    const text = stringifyScalar((value as Record<string, unknown>)[key])
    if (text === undefined) return undefined // undefined, nested, a function (toJSON)...: JSON.stringify decides
    out += i === 0 ? `"${key}":${text}` : `,"${key}":${text}`
  }
  return out + "}"
}

/** The end of a plain string starting after its `"` at `i` (the closing quote's index), or -1. */
const plainStringEnd = (bytes: Uint8Array, i: number, n: number): number => {
  for (; i < n; i++) {
    const c = bytes[i]!
    if (c === 0x22) return i
    if (c < 0x20 || c > 0x7e || c === 0x5c) return -1
  }
  return -1
}

/** Where the fast path stopped; `parsedEnd` is the index after the last value it read. */
let parsedEnd = 0

/**
 * A scalar at `bytes[i]`: an integer `-?(0|[1-9][0-9]*)` of at most 15 digits (exact in a
 * double), a plain string, `true`, `false` or `null`; `noValue` when it is anything else.
 */
const parseScalar = (bytes: Uint8Array, i: number, n: number): unknown => {
  const c = bytes[i]
  if (c === 0x22) {
    const end = plainStringEnd(bytes, i + 1, n)
    if (end < 0) return noValue
    parsedEnd = end + 1
    return latin1(bytes, i + 1, end)
  }
  if (c === 0x74 && n - i >= 4 && bytes[i + 1] === 0x72 && bytes[i + 2] === 0x75 && bytes[i + 3] === 0x65) {
    parsedEnd = i + 4
    return true
  }
  if (c === 0x66 && n - i >= 5 && bytes[i + 1] === 0x61 && bytes[i + 2] === 0x6c && bytes[i + 3] === 0x73 && bytes[i + 4] === 0x65) {
    parsedEnd = i + 5
    return false
  }
  if (c === 0x6e && n - i >= 4 && bytes[i + 1] === 0x75 && bytes[i + 2] === 0x6c && bytes[i + 3] === 0x6c) {
    parsedEnd = i + 4
    return null
  }
  const negative = c === 0x2d
  if (negative) i++
  const first = i
  let value = 0
  for (; i < n && i - first < 16; i++) {
    const digit = bytes[i]! - 0x30
    if (digit < 0 || digit > 9) break
    value = value * 10 + digit
  }
  const digits = i - first
  // No digits, a leading zero, more than 15 digits, or a fraction/exponent next: not ours.
  if (digits === 0 || digits > 15 || (bytes[first] === 0x30 && digits > 1)) return noValue
  if (i < n && (bytes[i] === 0x2e || bytes[i] === 0x65 || bytes[i] === 0x45)) return noValue
  parsedEnd = i
  return negative ? -value : value
}

const noValue = Symbol("noValue")

/** Short ASCII text of `bytes[start, end)`. */
const latin1 = (bytes: Uint8Array, start: number, end: number): string => {
  let s = ""
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!)
  return s
}

/** `JSON.parse` of the payload's text: the fast path for the shapes above, else JSON.parse. */
const parseJson = (bytes: Uint8Array): unknown => {
  const n = bytes.length
  if (n > 0 && n <= 512) {
    if (bytes[0] !== 0x7b) {
      const value = parseScalar(bytes, 0, n)
      if (value !== noValue && parsedEnd === n) return value
    } else {
      const value = parseFlatObject(bytes, n)
      if (value !== undefined) return value
    }
  }
  return JSON.parse(utf8(bytes))
}

/** A flat object `{"k":scalar,...}` with no whitespace, or `undefined` for anything else. */
const parseFlatObject = (bytes: Uint8Array, n: number): Record<string, unknown> | undefined => {
  const out: Record<string, unknown> = {}
  let i = 1
  if (bytes[i] === 0x7d) return i + 1 === n ? out : undefined
  for (;;) {
    if (bytes[i] !== 0x22) return undefined
    const keyEnd = plainStringEnd(bytes, i + 1, n)
    if (keyEnd < 0 || bytes[keyEnd + 1] !== 0x3a) return undefined
    const key = latin1(bytes, i + 1, keyEnd)
    // JSON.parse makes `__proto__` an own property; an assignment would set the prototype.
    if (key === "__proto__") return undefined
    const value = parseScalar(bytes, keyEnd + 2, n)
    if (value === noValue) return undefined
    out[key] = value
    i = parsedEnd
    const c = bytes[i]
    if (c === 0x7d) return i + 1 === n ? out : undefined
    if (c !== 0x2c) return undefined
    i++
  }
}

/** UTF-8 text of `bytes`; short ASCII (the usual small payload) without a decoder call. */
const utf8 = (bytes: Uint8Array): string => {
  const n = bytes.length
  if (n <= 64) {
    let s = ""
    for (let i = 0; i < n; i++) {
      const c = bytes[i]!
      if (c >= 0x80) return utf8Text.call(bytes, "utf8", 0, n)
      s += String.fromCharCode(c)
    }
    return s
  }
  return utf8Text.call(bytes, "utf8", 0, n)
}

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
 *   2: trace, 4: one-way, 8: forwarded, 16: forwarded twice) | str type | str id | str tag | str correlationId | [str context.requestId] |
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
import { parseJson, stringifyJson } from "./internal/JsonText.ts"
import { LastBytes, NameCache } from "./internal/NameCache.ts"

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
  forwarded: Schema.optional(Schema.Boolean),
  /**
   * Forwarded a second time (by a silo that left the ring, or that released the target to
   * the silo it asked for it): the receiver serves or refuses it, whatever it is.
   */
  forwardedTwice: Schema.optional(Schema.Boolean)
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

// Names read from the wire repeat from one frame to the next (see NameCache).
const names = new NameCache(1024)

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
    return n <= shortString ? names.read(this.buf, start, n) : this.buf.toString("utf8", start, start + n)
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
  readonly forwardedTwice?: boolean | undefined
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
    (oneWay ? 4 : 0) | (req.forwarded === true ? 8 : 0) | (req.forwardedTwice === true ? 16 : 0)
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
  out.frames++
  return size
}

/** The target and tag of a request. */
interface Names {
  readonly target: ActorAddress
  readonly tag: string
}

// The target and tag of the last request read: consecutive requests (a burst of calls to
// one actor) usually repeat them (see LastBytes). The objects are shared between requests,
// which treat them as the immutable values they are.
const lastNames = new LastBytes<Names>({ target: { type: "", id: "" }, tag: "" })

/** Reads type, id and tag at the reader's position. */
const readNames = (r: Reader): Names => {
  const buf = r.buf
  const start = r.pos
  const n = lastNames.match(buf, start, r.end)
  if (n > 0) {
    r.pos = start + n
    return lastNames.value
  }
  const type = r.string()
  const id = r.string()
  const tag = r.string()
  const read: Names = { target: { type, id }, tag }
  lastNames.remember(buf, start, r.pos, read)
  return read
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
      const value = r.string()
      // Assigning `__proto__` would go to Object.prototype's setter (which drops a string):
      // define it as the own key it was on the sender's side.
      if (key === "__proto__") Object.defineProperty(metadata, key, { value, enumerable: true, writable: true, configurable: true })
      else metadata[key] = value
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
  if ((flags & 16) !== 0) req.forwardedTwice = true
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
  out.frames++
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
  /** Throws when the bytes do not decode: JSON.parse's SyntaxError, or a Schema error. */
  readonly decode: (bytes: Uint8Array) => A
}

/**
 * Payload bytes for a schema: `Schema.toCodecJson`, then JSON (with the fast paths of
 * `internal/JsonText.ts`), then UTF-8.
 *
 * @since 0.1.0
 */
export const payloadCodec = <A, I>(schema: Schema.Codec<A, I>): PayloadCodec<A> => {
  const json = Schema.toCodecJson(schema)
  const encodeJson = Schema.encodeSync(json)
  const decodeJson = Schema.decodeUnknownSync(json)
  const encodeText = (value: A): string => {
    const encoded = encodeJson(value)
    const text = stringifyJson(encoded)
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

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

/** Upper bound of the bytes `s` takes on the wire (length + UTF-8). */
const stringBound = (s: string): number => 4 + s.length * 3

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

/** A cursor over a frame being decoded; throws MalformedFrame when it runs past the end. */
class Reader {
  readonly buf: Buffer
  pos: number
  constructor(buf: Buffer, pos: number) {
    this.buf = buf
    this.pos = pos
  }
  need(n: number): void {
    if (this.pos + n > this.buf.length) {
      throw new MalformedFrame({ reason: `truncated at byte ${this.pos} (needs ${n} more of ${this.buf.length})` })
    }
  }
  u8(): number {
    this.need(1)
    return this.buf[this.pos++]!
  }
  u32(): number {
    this.need(4)
    const v = this.buf.readUInt32BE(this.pos)
    this.pos += 4
    return v
  }
  string(): string {
    const n = this.u32()
    this.need(n)
    const buf = this.buf
    const start = this.pos
    this.pos += n
    if (n <= shortString) {
      let s = ""
      for (let i = start; i < start + n; i++) {
        const c = buf[i]!
        if (c >= 0x80) return buf.toString("utf8", start, start + n)
        s += String.fromCharCode(c)
      }
      return s
    }
    return buf.toString("utf8", start, start + n)
  }
  bytes(): Uint8Array {
    const n = this.u32()
    this.need(n)
    // Copy: the frame may be a view into a socket chunk that is reused.
    const out = new Uint8Array(n)
    out.set(this.buf.subarray(this.pos, this.pos + n))
    this.pos += n
    return out
  }
}

// ---------------------------------------------------------------------------------------
// requests

const noMetadata: Readonly<Record<string, string>> = Object.freeze({})

/**
 * Encodes a request as one frame at the end of `out`. Returns the frame's payload size
 * (what the maximum frame size applies to); when that exceeds `maxFrameBytes` the frame is
 * rolled back and nothing is written.
 *
 * @since 0.1.0
 */
export const writeRequest = (out: OutputBuffer, req: RequestEnvelope, maxFrameBytes: number): number => {
  const ctx = req.context
  const metadata = ctx.metadata
  const chain = req.chain
  let bound = headerBytes + 1 + 4 + 4 + 1 + stringBound(req.target.type) + stringBound(req.target.id) +
    stringBound(req.tag) + stringBound(ctx.correlationId) + 4 + 4 + 4 + req.payload.length
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
  buf.writeUInt32BE(req.requestId >>> 0, pos + 1)
  buf.writeUInt32BE(Math.min(req.timeoutMillis, 0xffffffff) >>> 0, pos + 5)
  buf[pos + 9] = (ctx.requestId !== undefined ? 1 : 0) | (req.trace !== undefined ? 2 : 0) |
    (req.oneWay === true ? 4 : 0) | (req.forwarded === true ? 8 : 0)
  pos += 10
  pos = writeString(buf, pos, req.target.type)
  pos = writeString(buf, pos, req.target.id)
  pos = writeString(buf, pos, req.tag)
  pos = writeString(buf, pos, ctx.correlationId)
  if (ctx.requestId !== undefined) pos = writeString(buf, pos, ctx.requestId)
  if (req.trace !== undefined) pos = writeString(buf, pos, req.trace)
  buf.writeUInt32BE(metadataCount, pos)
  pos += 4
  for (const key in metadata) {
    pos = writeString(buf, pos, key)
    pos = writeString(buf, pos, metadata[key]!)
  }
  buf.writeUInt32BE(chain.length, pos)
  pos += 4
  for (let i = 0; i < chain.length; i++) {
    pos = writeString(buf, pos, chain[i]!.type)
    pos = writeString(buf, pos, chain[i]!.id)
  }
  buf.writeUInt32BE(req.payload.length, pos)
  buf.set(req.payload, pos + 4)
  pos += 4 + req.payload.length
  const size = pos - start - headerBytes
  if (size > maxFrameBytes) return size
  buf.writeUInt32BE(size, start)
  out.position = pos
  return size
}

/**
 * Decodes a request frame (without its length prefix). Throws {@link MalformedFrame}.
 *
 * @since 0.1.0
 */
export const readRequest = (frame: Buffer): RequestEnvelope => {
  const r = new Reader(frame, 0)
  const kind = r.u8()
  if (kind !== kindRequest) throw new MalformedFrame({ reason: `expected a request (kind 1), got kind ${kind}` })
  const requestId = r.u32()
  const timeoutMillis = r.u32()
  const flags = r.u8()
  const type = r.string()
  const id = r.string()
  const tag = r.string()
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
  const chain: Array<ActorAddress> = new Array(chainCount)
  for (let i = 0; i < chainCount; i++) chain[i] = { type: r.string(), id: r.string() }
  const payload = r.bytes()
  if (r.pos !== frame.length) throw new MalformedFrame({ reason: `${frame.length - r.pos} trailing bytes` })
  const context: EnvelopeContext = ctxRequestId === undefined ?
    { correlationId, metadata } :
    { requestId: ctxRequestId, correlationId, metadata }
  const req: { -readonly [K in keyof RequestEnvelope]: RequestEnvelope[K] } = {
    requestId,
    target: { type, id },
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
export const peekRequestId = (frame: Uint8Array, expectedKind: number): number | undefined => {
  if (frame.length < 5 || frame[0] !== expectedKind) return undefined
  return ((frame[1]! << 24) | (frame[2]! << 16) | (frame[3]! << 8) | frame[4]!) >>> 0
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
  const r = new Reader(frame, 0)
  const kind = r.u8()
  if (kind !== kindReply) throw new MalformedFrame({ reason: `expected a reply (kind 2), got kind ${kind}` })
  const requestId = r.u32()
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
  if (r.pos !== frame.length) throw new MalformedFrame({ reason: `${frame.length - r.pos} trailing bytes` })
  return { requestId, outcome }
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
  return {
    encode: (value) => Buffer.from(JSON.stringify(encodeJson(value)), "utf8"),
    decode: (bytes) => decodeJson(JSON.parse(utf8(bytes)))
  }
}

const textDecoder = new TextDecoder()

/** UTF-8 text of `bytes`; short ASCII (the usual small payload) without a decoder call. */
const utf8 = (bytes: Uint8Array): string => {
  const n = bytes.length
  if (n <= 64) {
    let s = ""
    for (let i = 0; i < n; i++) {
      const c = bytes[i]!
      if (c >= 0x80) return textDecoder.decode(bytes)
      s += String.fromCharCode(c)
    }
    return s
  }
  return textDecoder.decode(bytes)
}

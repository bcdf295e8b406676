/**
 * Fuzzing of what a peer can send: the frame decoder, the envelope codec and a real silo.
 *
 * - Frames: any byte stream, cut anywhere and fed in any chunks (with pauses), decodes to
 *   exactly the frames and oversized-frame reports a reference parser finds in it; nothing
 *   throws, and the decoder never allocates more than the maximum frame size, whatever
 *   length prefix (up to 2^32-1) it reads.
 * - Envelopes: any bytes decode to an envelope or fail with `MalformedFrame`, nothing else;
 *   every valid envelope (including names like `__proto__` and `constructor`, and garbage
 *   payload bytes) comes back from encode + decode as it was; a truncated or extended frame
 *   is always refused.
 * - A silo fed garbage on raw sockets answers with well-formed replies (or closes) and goes
 *   on serving a well-behaved client.
 * - The handshake: garbage before or instead of it, or a hello with random fields, is
 *   refused and closed; no request after it is decoded unless the hello was a valid one.
 *
 * The properties run with a fixed seed, so a run is reproducible.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Schema } from "effect"
import fc from "fast-check"
import * as Net from "node:net"
import { vi } from "vitest"
import type { ActorAddress } from "../../src/Actor/ActorAddress.ts"
import * as SiloIdentity from "../../src/Cluster/SiloIdentity.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import {
  kindReply,
  kindRequest,
  type OutgoingRequest,
  payloadCodec,
  readReply,
  readReplyOutcome,
  readRequest,
  readRequestIn,
  type ReplyOutcome,
  type RequestEnvelope,
  writeReply,
  writeRequest
} from "../../src/Transport/Envelope.ts"
import {
  defaultMaxFrameBytes,
  encodeFrame,
  FrameDecoder,
  headerBytes,
  MalformedFrame,
  OutputBuffer,
  oversizedPrefixBytes
} from "../../src/Transport/Frame.ts"
import * as Handshake from "../../src/Transport/internal/Handshake.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"
import { rawConnect } from "../support/rawPeer.ts"

const seed = 20261215
const runs = (numRuns: number) => ({ seed, numRuns })

// Taken before any test runs, to check that decoding added nothing to them.
const prototypeKeys = Reflect.ownKeys(Object.prototype)

const inherited = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf", "prototype", "isPrototypeOf"]

// ---------------------------------------------------------------------------------------
// frames

type FrameEvent =
  | { readonly _tag: "Frame"; readonly bytes: Array<number> }
  | { readonly _tag: "Oversized"; readonly size: number; readonly prefix: Array<number> }

/**
 * What a stream of frames holds, read the simplest way: the whole stream at once. A frame
 * that does not fit in it is not there; an oversized one is there once its first bytes are.
 */
const referenceFrames = (stream: Uint8Array, max: number): Array<FrameEvent> => {
  const events: Array<FrameEvent> = []
  const view = Buffer.from(stream.buffer, stream.byteOffset, stream.byteLength)
  let offset = 0
  while (offset + headerBytes <= view.length) {
    const size = view.readUInt32BE(offset)
    const body = offset + headerBytes
    if (size > max) {
      const prefix = Math.min(size, oversizedPrefixBytes)
      if (view.length - body < prefix) break
      events.push({ _tag: "Oversized", size, prefix: Array.from(view.subarray(body, body + prefix)) })
    } else {
      if (view.length - body < size) break
      events.push({ _tag: "Frame", bytes: Array.from(view.subarray(body, body + size)) })
    }
    offset = body + size
  }
  return events
}

/** The sizes of the buffers allocated while `f` runs. */
const allocations = (f: () => void): { readonly sizes: Array<number>; readonly concats: number } => {
  const sizes: Array<number> = []
  let concats = 0
  const allocUnsafe = Buffer.allocUnsafe
  const alloc = Buffer.alloc
  const concat = Buffer.concat
  const spies = [
    vi.spyOn(Buffer, "allocUnsafe").mockImplementation((size) => {
      sizes.push(size)
      return allocUnsafe(size)
    }),
    vi.spyOn(Buffer, "alloc").mockImplementation((size, fill, encoding) => {
      sizes.push(size)
      return alloc(size, fill, encoding)
    }),
    vi.spyOn(Buffer, "concat").mockImplementation((list, totalLength) => {
      concats++
      return concat(list, totalLength)
    })
  ]
  try {
    f()
  } finally {
    for (const spy of spies) spy.mockRestore()
  }
  return { sizes, concats }
}

interface DecodeOptions {
  readonly max: number
  /** Cut points into the stream (any order, duplicates allowed). */
  readonly cuts: ReadonlyArray<number>
  /** Hand frames over with `onFrameIn` (the server's way) rather than `onFrame`. */
  readonly inPlace: boolean
  /** For the n-th event, whether the handler pauses the decoder (resumed after the push). */
  readonly pauses: ReadonlyArray<boolean>
}

/** Feeds `stream` to a decoder in chunks; returns what it reported and what it allocated. */
const decodeChunked = (stream: Uint8Array, options: DecodeOptions) => {
  const events: Array<FrameEvent> = []
  let pausedByHandler = false
  const maybePause = () => {
    if (options.pauses[events.length % Math.max(1, options.pauses.length)] === true) {
      pausedByHandler = true
      decoder.pause()
    }
  }
  const record = (buf: Uint8Array, start: number, end: number) => {
    // A copy that allocates no Buffer (the spies count Buffer allocations).
    events.push({ _tag: "Frame", bytes: Array.from(buf.subarray(start, end)) })
    maybePause()
  }
  const decoder = new FrameDecoder({
    onFrame: (frame) => record(frame, 0, frame.length),
    onFrameIn: options.inPlace ? record : undefined,
    onOversized: (size, prefix) => {
      events.push({ _tag: "Oversized", size, prefix: Array.from(prefix) })
      maybePause()
    }
  }, options.max)
  const cuts = [...new Set(options.cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
  const bounds = [0, ...cuts, stream.length]
  const chunks: Array<Buffer> = []
  for (let i = 1; i < bounds.length; i++) {
    if (bounds[i]! > bounds[i - 1]!) chunks.push(Buffer.from(stream.subarray(bounds[i - 1]!, bounds[i]!)))
  }
  const allocated = allocations(() => {
    for (const chunk of chunks) {
      decoder.push(chunk)
      // Resume what the handler paused, until the decoder has gone through everything.
      while (pausedByHandler) {
        pausedByHandler = false
        decoder.resume()
      }
    }
  })
  return { events, ...allocated, chunks: chunks.length }
}

/** One item of a frame stream. */
const streamItem = (max: number) =>
  fc.oneof(
    // A frame that fits, zero-length ones included.
    { weight: 4, arbitrary: fc.uint8Array({ maxLength: max }).map((payload) => encodeFrame(payload)) },
    { weight: 1, arbitrary: fc.constant(encodeFrame(new Uint8Array(0))) },
    { weight: 1, arbitrary: fc.integer({ min: 0, max }).map((n) => encodeFrame(new Uint8Array(n).fill(7))) },
    // An oversized frame, whole (skipped byte for byte).
    { weight: 2, arbitrary: fc.integer({ min: max + 1, max: max * 3 + 1 }).map((n) => encodeFrame(new Uint8Array(n).fill(9))) },
    // A bare length prefix: anything up to 2^32-1, the stream goes on with what follows.
    {
      weight: 2,
      arbitrary: fc.oneof(fc.integer({ min: 0, max: 0xffffffff }), fc.constantFrom(0xffffffff, max, max + 1, 0)).map((n) => {
        const b = Buffer.alloc(headerBytes)
        b.writeUInt32BE(n, 0)
        return b
      })
    },
    // Raw garbage.
    { weight: 2, arbitrary: fc.uint8Array({ maxLength: 64 }).map((b) => Buffer.from(b)) }
  )

const streamOf = (max: number) =>
  fc.record({
    items: fc.array(streamItem(max), { maxLength: 12 }),
    // Truncation: keep this share of the stream (1 = all of it).
    keep: fc.oneof(fc.constant(1), fc.double({ min: 0, max: 1, noNaN: true })),
    cuts: fc.array(fc.nat(), { maxLength: 20 }),
    inPlace: fc.boolean(),
    pauses: fc.array(fc.boolean(), { maxLength: 5 })
  }).map(({ cuts, inPlace, items, keep, pauses }) => {
    const whole = Buffer.concat(items)
    return { stream: whole.subarray(0, Math.floor(whole.length * keep)), cuts, inPlace, pauses }
  })

describe("fuzz: frame decoding", () => {
  for (const max of [0, 1, 20, 300]) {
    it(`any stream, cut anywhere, decodes as a whole-stream reading of it (max ${max} bytes)`, () => {
      fc.assert(
        fc.property(streamOf(max), ({ cuts, inPlace, pauses, stream }) => {
          const decoded = decodeChunked(stream, { max, cuts, inPlace, pauses })
          assert.deepStrictEqual(decoded.events, referenceFrames(stream, max))
          for (const event of decoded.events) {
            if (event._tag === "Frame") assert.isAtMost(event.bytes.length, max)
            else assert.isAbove(event.size, max)
          }
          // Memory: never more than one frame's worth (or an oversized prefix) allocated at
          // a time, and nothing concatenated unless the decoder was paused.
          for (const size of decoded.sizes) assert.isAtMost(size, Math.max(max, oversizedPrefixBytes, headerBytes))
          if (!pauses.includes(true)) assert.strictEqual(decoded.concats, 0)
        }),
        runs(400)
      )
    })
  }

  it("a huge length prefix (up to 2^32-1) is reported, not buffered, at the default maximum", () => {
    fc.assert(
      fc.property(
        fc.oneof(fc.integer({ min: defaultMaxFrameBytes + 1, max: 0xffffffff }), fc.constant(0xffffffff)),
        fc.uint8Array({ maxLength: 4096 }),
        fc.array(fc.nat(), { maxLength: 8 }),
        (size, body, cuts) => {
          const prefix = Buffer.alloc(headerBytes)
          prefix.writeUInt32BE(size, 0)
          const stream = Buffer.concat([prefix, body])
          const decoded = decodeChunked(stream, { max: defaultMaxFrameBytes, cuts, inPlace: true, pauses: [] })
          const expected: Array<FrameEvent> = body.length >= oversizedPrefixBytes ?
            [{ _tag: "Oversized", size, prefix: Array.from(body.subarray(0, oversizedPrefixBytes)) }] :
            []
          assert.deepStrictEqual(decoded.events, expected)
          for (const allocated of decoded.sizes) assert.isAtMost(allocated, oversizedPrefixBytes)
        }
      ),
      runs(300)
    )
  })

  it("the boundary: a frame of exactly the maximum is a frame, one byte more is oversized", () => {
    const max = 100
    const stream = Buffer.concat([
      encodeFrame(new Uint8Array(max).fill(1)),
      encodeFrame(new Uint8Array(max + 1).fill(2)),
      encodeFrame(new Uint8Array(0))
    ])
    for (let cut = 0; cut <= stream.length; cut++) {
      const decoded = decodeChunked(stream, { max, cuts: [cut], inPlace: cut % 2 === 0, pauses: [] })
      assert.deepStrictEqual(decoded.events.map((e) => e._tag === "Frame" ? e.bytes.length : -e.size), [max, -(max + 1), 0])
      // The allocation spy sees the decoder's buffers: a frame split by the cut is copied
      // into one of its exact size, and nothing else is ever allocated.
      const split = cut >= headerBytes && cut < headerBytes + max
      assert.deepStrictEqual(decoded.sizes.filter((size) => size > oversizedPrefixBytes), split ? [max] : [], `cut ${cut}`)
    }
  })
})

// ---------------------------------------------------------------------------------------
// envelopes

type Attempt<A> = { readonly ok: true; readonly value: A } | { readonly ok: false; readonly error: MalformedFrame }

/** Runs a decoder: its value, or its typed error; anything else thrown fails the property. */
const typed = <A>(decode: () => A): Attempt<A> => {
  try {
    return { ok: true, value: decode() }
  } catch (error) {
    if (!(error instanceof MalformedFrame)) {
      throw new Error(`untyped throw: ${String(error)}`, { cause: error })
    }
    return { ok: false, error }
  }
}

/** Encodes one request frame (with its length prefix). */
const requestFrame = (req: Parameters<typeof writeRequest>[1], max = defaultMaxFrameBytes): Buffer => {
  const out = new OutputBuffer()
  const size = writeRequest(out, req, max)
  const frame = out.take()
  assert.isDefined(frame)
  assert.strictEqual(frame!.length, headerBytes + size)
  assert.strictEqual(frame!.readUInt32BE(0), size)
  return Buffer.from(frame!)
}

/** Encodes one reply frame (with its length prefix). */
const replyFrame = (requestId: number, outcome: ReplyOutcome): Buffer => {
  const out = new OutputBuffer()
  const size = writeReply(out, requestId, outcome, defaultMaxFrameBytes)
  const frame = out.take()!
  assert.strictEqual(frame.readUInt32BE(0), size)
  return Buffer.from(frame)
}

/** An object with these own enumerable properties, `__proto__` included (as JSON.parse makes it). */
const recordOf = (entries: ReadonlyArray<readonly [string, string]>): Record<string, string> => {
  const record: Record<string, string> = {}
  for (const [key, value] of entries) {
    Object.defineProperty(record, key, { value, enumerable: true, writable: true, configurable: true })
  }
  return record
}

/** Own enumerable entries, in order: what a round trip must keep. */
const ownEntries = (record: object) =>
  Reflect.ownKeys(record).map((key) => {
    const descriptor = Object.getOwnPropertyDescriptor(record, key)!
    return [String(key), descriptor.value, descriptor.enumerable] as const
  })

// Valid strings: any code point but lone surrogates (which UTF-8 cannot carry), often short
// ASCII (the name caches' path), sometimes prototype names.
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ maxLength: 60 }),
  fc.string({ unit: "binary-ascii", maxLength: 50 }),
  fc.constantFrom(...inherited)
)
const u32 = fc.integer({ min: 0, max: 0xffffffff })
const address: fc.Arbitrary<ActorAddress> = fc.record({ type: text, id: text })

const validRequest = fc.record({
  requestId: u32,
  timeoutMillis: u32,
  target: address,
  tag: text,
  payload: fc.uint8Array({ maxLength: 80 }),
  ctxRequestId: fc.option(text, { nil: undefined }),
  correlationId: text,
  metadata: fc.uniqueArray(fc.tuple(text, text), { maxLength: 5, selector: ([key]) => key }),
  chain: fc.array(address, { maxLength: 4 }),
  trace: fc.option(text, { nil: undefined }),
  oneWay: fc.boolean(),
  forwarded: fc.boolean(),
  forwardedTwice: fc.boolean()
}).map((r) => {
  const metadata = recordOf(r.metadata)
  const context = r.ctxRequestId === undefined ?
    { correlationId: r.correlationId, metadata } :
    { requestId: r.ctxRequestId, correlationId: r.correlationId, metadata }
  const envelope: { -readonly [K in keyof RequestEnvelope]: RequestEnvelope[K] } = {
    requestId: r.requestId,
    target: r.target,
    tag: r.tag,
    payload: r.payload,
    context,
    chain: r.chain,
    timeoutMillis: r.timeoutMillis
  }
  if (r.trace !== undefined) envelope.trace = r.trace
  if (r.oneWay) envelope.oneWay = true
  if (r.forwarded) envelope.forwarded = true
  if (r.forwardedTwice) envelope.forwardedTwice = true
  return envelope as RequestEnvelope
})

/** The request as a sender hands it to `writeRequest`. */
const outgoing = (envelope: RequestEnvelope): OutgoingRequest & {
  readonly requestId: number
  readonly timeoutMillis: number
  readonly oneWay: boolean
} => ({
  target: envelope.target,
  tag: envelope.tag,
  payload: envelope.payload,
  context: envelope.context,
  chain: envelope.chain,
  trace: envelope.trace,
  forwarded: envelope.forwarded,
  forwardedTwice: envelope.forwardedTwice,
  requestId: envelope.requestId,
  timeoutMillis: envelope.timeoutMillis,
  oneWay: envelope.oneWay === true
})

const assertSameRequest = (actual: RequestEnvelope, expected: RequestEnvelope) => {
  assert.deepStrictEqual({ ...actual, payload: Array.from(actual.payload) }, { ...expected, payload: Array.from(expected.payload) })
  // deepStrictEqual skips nothing own, but say it for the metadata: own keys, `__proto__`
  // included, and a plain prototype (no lookup went through, nothing was set on it).
  assert.deepStrictEqual(ownEntries(actual.context.metadata), ownEntries(expected.context.metadata))
  assert.strictEqual(Object.getPrototypeOf(actual.context.metadata), Object.prototype)
}

const validOutcome: fc.Arbitrary<ReplyOutcome> = fc.oneof(
  fc.uint8Array({ maxLength: 64 }).map((value): ReplyOutcome => ({ _tag: "Success", value })),
  fc.uint8Array({ maxLength: 64 }).map((error): ReplyOutcome => ({ _tag: "Failure", error })),
  text.map((defect): ReplyOutcome => ({ _tag: "Defect", defect })),
  fc.record({
    error: fc.constantFrom("FrameTooLarge", "MalformedFrame", "Interrupted", "Draining"),
    message: text
  }).map(({ error, message }): ReplyOutcome => ({ _tag: "TransportError", error, message }))
)

const outcomeBytes = (outcome: ReplyOutcome) =>
  outcome._tag === "Success" ?
    { ...outcome, value: Array.from(outcome.value) } :
    outcome._tag === "Failure" ?
    { ...outcome, error: Array.from(outcome.error) } :
    outcome

/** Random bytes, often starting like an envelope. */
const frameBytes = fc.oneof(
  fc.uint8Array({ maxLength: 200 }),
  fc.tuple(fc.constantFrom(kindRequest, kindReply), fc.uint8Array({ maxLength: 200 })).map(([kind, rest]) =>
    new Uint8Array([kind, ...rest])
  ),
  // Small u32s in the length fields, so the reader goes further than the first string.
  fc.tuple(fc.constantFrom(kindRequest, kindReply), fc.array(fc.oneof(fc.integer({ min: 0, max: 8 }), fc.nat(255)), { maxLength: 200 }))
    .map(([kind, rest]) => new Uint8Array([kind, ...rest]))
)

describe("fuzz: envelope codec", () => {
  it("any bytes decode to an envelope or fail with MalformedFrame", () => {
    fc.assert(
      fc.property(frameBytes, (bytes) => {
        const frame = Buffer.from(bytes)
        const request = typed(() => readRequest(frame))
        const outcome = typed(() => readReplyOutcome(frame))
        const reply = typed(() => readReply(frame))
        // A decoded request really is a request frame; replies likewise.
        if (request.ok) assert.strictEqual(frame[0], kindRequest)
        if (outcome.ok) assert.strictEqual(frame[0], kindReply)
        assert.strictEqual(reply.ok, outcome.ok)
        if (reply.ok && outcome.ok) {
          assert.deepStrictEqual(outcomeBytes(reply.value.outcome), outcomeBytes(outcome.value))
          assert.strictEqual(reply.value.requestId, frame.readUInt32BE(1))
        }
      }),
      runs(2000)
    )
    assert.deepStrictEqual(Reflect.ownKeys(Object.prototype), prototypeKeys)
  })

  it("a frame read in place (bytes around it) reads as the frame alone", () => {
    fc.assert(
      fc.property(
        fc.oneof(frameBytes, validRequest.map((r) => new Uint8Array(requestFrame(outgoing(r)).subarray(headerBytes)))),
        fc.uint8Array({ maxLength: 16 }),
        fc.uint8Array({ maxLength: 16 }),
        (bytes, before, after) => {
          const alone = typed(() => readRequest(Buffer.from(bytes)))
          const buf = Buffer.from([...before, ...bytes, ...after])
          const inPlace = typed(() => readRequestIn(buf, before.length, before.length + bytes.length))
          assert.strictEqual(inPlace.ok, alone.ok)
          if (inPlace.ok && alone.ok) assertSameRequest(inPlace.value, alone.value)
        }
      ),
      runs(500)
    )
  })

  it("encode then decode gives every valid request back (prototype names, garbage payloads)", () => {
    fc.assert(
      fc.property(validRequest, (envelope) => {
        const frame = requestFrame(outgoing(envelope))
        const decoded = typed(() => readRequest(frame.subarray(headerBytes)))
        assert.isTrue(decoded.ok, decoded.ok ? "" : decoded.error.message)
        if (decoded.ok) assertSameRequest(decoded.value, envelope)
        // Through a frame decoder too, frame by frame in one chunk with another request.
        const seen: Array<RequestEnvelope> = []
        const decoder = new FrameDecoder({ onFrame: (f) => void seen.push(readRequest(f)), onOversized: () => assert.fail("oversized") })
        decoder.push(Buffer.concat([frame, frame]))
        assert.strictEqual(seen.length, 2)
        for (const request of seen) assertSameRequest(request, envelope)
      }),
      runs(1000)
    )
    assert.deepStrictEqual(Reflect.ownKeys(Object.prototype), prototypeKeys)
  })

  it("a request too large for the maximum is not written at all", () => {
    fc.assert(
      fc.property(validRequest, fc.nat(400), (envelope, max) => {
        const out = new OutputBuffer()
        const size = writeRequest(out, outgoing(envelope), max)
        const whole = requestFrame(outgoing(envelope))
        assert.strictEqual(size, whole.length - headerBytes)
        if (size > max) assert.isTrue(out.isEmpty)
        else assert.deepStrictEqual(Array.from(out.take()!), Array.from(whole))
      }),
      runs(300)
    )
  })

  it("encode then decode gives every valid reply back", () => {
    fc.assert(
      fc.property(u32, validOutcome, (requestId, outcome) => {
        const frame = replyFrame(requestId, outcome).subarray(headerBytes)
        const decoded = typed(() => readReply(frame))
        assert.isTrue(decoded.ok)
        if (decoded.ok) {
          assert.strictEqual(decoded.value.requestId, requestId)
          assert.deepStrictEqual(outcomeBytes(decoded.value.outcome), outcomeBytes(outcome))
        }
      }),
      runs(500)
    )
  })

  it("a valid request cut short or with bytes after it is refused with MalformedFrame", () => {
    fc.assert(
      fc.property(validRequest, fc.double({ min: 0, max: 1, noNaN: true }), fc.uint8Array({ minLength: 1, maxLength: 8 }), (envelope, keep, extra) => {
        const frame = requestFrame(outgoing(envelope)).subarray(headerBytes)
        const cut = Math.min(frame.length - 1, Math.floor(frame.length * keep))
        assert.isFalse(typed(() => readRequest(frame.subarray(0, cut))).ok)
        assert.isFalse(typed(() => readRequest(Buffer.concat([frame, extra]))).ok)
      }),
      runs(500)
    )
  })

  it("a valid reply cut short, with bytes after it or an unknown outcome is refused with MalformedFrame", () => {
    fc.assert(
      fc.property(u32, validOutcome, fc.nat(), fc.uint8Array({ minLength: 1, maxLength: 8 }), fc.integer({ min: 4, max: 255 }), (requestId, outcome, cut, extra, tag) => {
        const frame = replyFrame(requestId, outcome).subarray(headerBytes)
        assert.isFalse(typed(() => readReply(frame.subarray(0, cut % frame.length))).ok)
        assert.isFalse(typed(() => readReply(Buffer.concat([frame, extra]))).ok)
        const unknown = Buffer.from(frame)
        unknown[5] = tag
        assert.isFalse(typed(() => readReply(unknown)).ok)
      }),
      runs(300)
    )
  })

  it("valid requests with random flags or overwritten bytes decode or fail with MalformedFrame", () => {
    fc.assert(
      fc.property(
        validRequest,
        fc.nat(255),
        fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
        (envelope, flags, writes) => {
          const frame = Buffer.from(requestFrame(outgoing(envelope)).subarray(headerBytes))
          const flagged = Buffer.from(frame)
          flagged[9] = flags
          const withFlags = typed(() => readRequest(flagged))
          if (withFlags.ok) {
            assert.strictEqual(withFlags.value.oneWay, (flags & 4) !== 0 ? true : undefined)
            assert.strictEqual(withFlags.value.forwarded, (flags & 8) !== 0 ? true : undefined)
            assert.strictEqual(withFlags.value.forwardedTwice, (flags & 16) !== 0 ? true : undefined)
            assert.strictEqual(Object.getPrototypeOf(withFlags.value.context.metadata), Object.prototype)
          }
          // Flags that change nothing in the layout (one-way, forwarded, unknown bits) keep it valid.
          if ((flags & 3) === (frame[9]! & 3)) assert.isTrue(withFlags.ok)
          for (const [at, byte] of writes) frame[at % frame.length] = byte
          const overwritten = typed(() => readRequest(frame))
          if (overwritten.ok) assert.strictEqual(Object.getPrototypeOf(overwritten.value.context.metadata), Object.prototype)
        }
      ),
      runs(1000)
    )
    assert.deepStrictEqual(Reflect.ownKeys(Object.prototype), prototypeKeys)
  })

  it("garbage payload bytes: the envelope carries them as they are, the payload codec fails typed", () => {
    const codec = payloadCodec(Schema.Struct({ by: Schema.Int }))
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 40 }), fc.json().map((j) => new Uint8Array(Buffer.from(j)))), (payload) => {
        try {
          const value = codec.decode(payload)
          assert.isTrue(Number.isInteger(value.by))
        } catch (error) {
          // JSON.parse's SyntaxError or the schema's error: nothing else.
          assert.isTrue(error instanceof SyntaxError || Schema.isSchemaError(error), String(error))
        }
      }),
      runs(500)
    )
  })

  // Found by the round-trip property above (seed 20261215): the decoder assigned metadata
  // keys, and `metadata["__proto__"] = ""` went to Object.prototype's `__proto__` setter,
  // which drops it: the key was lost on the way. Kept as fast-check printed it, plus a
  // `constructor` key after it.
  it("counterexample: a metadata key __proto__ survives a round trip as an own key", () => {
    for (const entries of [[["__proto__", ""]], [["__proto__", "x"], ["constructor", "y"]]] as const) {
      const envelope: RequestEnvelope = {
        requestId: 0,
        target: { type: "", id: "constructor" },
        tag: "",
        payload: new Uint8Array(0),
        context: { correlationId: "", metadata: recordOf(entries) },
        chain: [],
        timeoutMillis: 0
      }
      const decoded = readRequest(requestFrame(outgoing(envelope)).subarray(headerBytes))
      assert.deepStrictEqual(ownEntries(decoded.context.metadata), entries.map(([k, v]) => [k, v, true]))
      assert.strictEqual(Object.getPrototypeOf(decoded.context.metadata), Object.prototype)
      assertSameRequest(decoded, envelope)
    }
  })
})

// ---------------------------------------------------------------------------------------
// a real silo

const siloNames = ["Counter", "$quark", "Nope", ...inherited]
const siloTags = ["Increment", "Decrement", "Get", "Crash", ...inherited]

/** A well-framed request with hostile names, flags and payloads. */
const hostileRequest = fc.record({
  timeoutMillis: fc.integer({ min: 0, max: 5000 }),
  type: fc.constantFrom(...siloNames),
  id: fc.oneof(fc.constantFrom("g-1", "g-2", ...inherited), fc.string({ maxLength: 8 }).map((s) => `g-${s}`)),
  tag: fc.oneof(fc.constantFrom(...siloTags), fc.string({ maxLength: 8 })),
  payload: fc.oneof(
    fc.constantFrom("{\"by\":1}", "{}", "{\"message\":\"boom\"}", "null", "{\"__proto__\":{\"by\":1}}"),
    fc.uint8Array({ maxLength: 32 })
  ),
  forwarded: fc.boolean(),
  forwardedTwice: fc.boolean()
})

const hostileFrame = (r: typeof hostileRequest extends fc.Arbitrary<infer A> ? A : never, requestId: number, oneWay: boolean) =>
  requestFrame({
    requestId,
    timeoutMillis: r.timeoutMillis,
    target: { type: r.type, id: r.id },
    tag: r.tag,
    payload: r.payload,
    context: { correlationId: "fuzz", metadata: recordOf(inherited.map((k) => [k, k])) },
    chain: [{ type: "__proto__", id: "constructor" }],
    oneWay,
    forwarded: r.forwarded,
    forwardedTwice: r.forwardedTwice
  })

/** What a hostile peer writes: frames and bytes of every kind. */
const garbagePiece: fc.Arbitrary<Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 128 }).map((b) => Buffer.from(b)),
  fc.uint8Array({ maxLength: 128 }).map((b) => encodeFrame(b)),
  fc.tuple(u32, fc.uint8Array({ maxLength: 64 })).map(([id, rest]) => {
    const body = Buffer.alloc(5 + rest.length)
    body[0] = kindRequest
    body.writeUInt32BE(id, 1)
    body.set(rest, 5)
    return encodeFrame(body)
  }),
  // A hostile request, one byte of it overwritten or not.
  fc.tuple(hostileRequest, u32, fc.boolean(), fc.option(fc.tuple(fc.nat(), fc.nat(255)), { nil: undefined })).map(
    ([r, id, oneWay, flip]) => {
      const frame = hostileFrame(r, id, oneWay)
      if (flip !== undefined) frame[headerBytes + (flip[0] % (frame.length - headerBytes))] = flip[1]
      return frame
    }
  ),
  // An oversized frame, announced up to 2^32-1 bytes, with a readable request id.
  fc.tuple(fc.integer({ min: defaultMaxFrameBytes + 1, max: 0xffffffff }), u32, fc.uint8Array({ maxLength: 32 })).map(
    ([size, id, rest]) => {
      const head = Buffer.alloc(headerBytes + 5)
      head.writeUInt32BE(size, 0)
      head[headerBytes] = kindRequest
      head.writeUInt32BE(id, headerBytes + 1)
      return Buffer.concat([head, rest])
    }
  )
)

/** `stream` cut at `cuts` (taken modulo its length). */
const chunked = (stream: Buffer, cuts: ReadonlyArray<number>): Array<Buffer> => {
  const sorted = [...new Set(cuts.map((c) => c % (stream.length + 1)))].sort((a, b) => a - b)
  const bounds = [0, ...sorted, stream.length]
  return bounds.slice(1).map((end, i) => stream.subarray(bounds[i]!, end)).filter((c) => c.length > 0)
}

/**
 * Writes `chunks` on a fresh socket (after the handshake), then waits until the server has
 * answered every request id in `expect` (and closes), or — with none to wait for —
 * half-closes and waits for the server to close (it has read everything by then).
 * Resolves with the reply frames.
 */
const exchange = (port: number, chunks: ReadonlyArray<Buffer>, expect: ReadonlySet<number>) =>
  rawConnect(port).then((socket) => talk(socket, chunks, expect))

const talk = (socket: Net.Socket, chunks: ReadonlyArray<Buffer>, expect: ReadonlySet<number>) =>
  new Promise<Array<Buffer>>((resolve, reject) => {
    const replies: Array<Buffer> = []
    const waiting = new Set(expect)
    let settled = false
    const settle = (error?: Error) => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      if (error !== undefined) reject(error)
      else resolve(replies)
    }
    const decoder = new FrameDecoder({
      onFrame: (frame) => {
        replies.push(Buffer.from(frame))
        if (frame.length >= 5) waiting.delete(frame.readUInt32BE(1))
        if (expect.size > 0 && waiting.size === 0) settle()
      },
      onOversized: (size) => settle(new Error(`an oversized reply of ${size} bytes`))
    })
    for (const chunk of chunks) socket.write(chunk)
    if (expect.size === 0) socket.end()
    socket.on("data", (chunk: Buffer) => decoder.push(chunk))
    // The server may close at once on an unanswerable frame: a reset is an answer too.
    socket.on("error", () => {})
    socket.on("close", () =>
      waiting.size === 0 || expect.size === 0 ?
        settle() :
        settle(new Error(`closed with requests ${[...waiting].join(", ")} unanswered`)))
    const timer = setTimeout(() => settle(new Error("no answer within 10 s")), 10_000)
  })

/** One silo serving counters, a well-behaved client of it, and its transport port for raw sockets. */
const servedSilo = Effect.gen(function*() {
  const cluster = yield* TestCluster.make({ silos: 1, implementations: counterLayer() })
  const silo = cluster.silos[0]!
  const address = SiloIdentity.parseId(silo.id)!.address
  return { silo, client: yield* cluster.addClient, port: Number(address.slice(address.lastIndexOf(":") + 1)) }
})

describe("fuzz: a silo fed garbage", () => {
  it.live("garbage on raw sockets gets well-formed replies or a close; a well-behaved client is served on", () =>
    Effect.gen(function*() {
      const { client, port, silo } = yield* servedSilo
      let probe = 0
      // Replies seen over all runs, by outcome (transport errors by their error).
      const answered = new Map<string, number>()
      const count = (reply: Buffer) => {
        const decoded = typed(() => readReply(reply))
        assert.isTrue(decoded.ok, decoded.ok ? "" : `malformed reply: ${decoded.error.message}`)
        if (decoded.ok) {
          const outcome = decoded.value.outcome
          const key = outcome._tag === "TransportError" ? outcome.error : outcome._tag
          answered.set(key, (answered.get(key) ?? 0) + 1)
        }
      }
      const property = fc.asyncProperty(
        fc.array(garbagePiece, { minLength: 1, maxLength: 8 }),
        fc.array(hostileRequest, { minLength: 1, maxLength: 8 }),
        fc.array(fc.nat(), { maxLength: 6 }),
        async (pieces, requests, cuts) => {
          // Garbage, in random chunks: whatever the server says is a well-formed reply.
          for (const reply of await exchange(port, chunked(Buffer.concat(pieces), cuts), new Set())) count(reply)
          // Hostile but well-framed requests: every one is answered, once, in a well-formed reply.
          const frames = requests.map((r, i) => hostileFrame(r, i + 1, false))
          const replies = await exchange(port, chunked(Buffer.concat(frames), cuts), new Set(frames.map((_, i) => i + 1)))
          assert.sameMembers(replies.map((reply) => reply.readUInt32BE(1)), frames.map((_, i) => i + 1))
          for (const reply of replies) count(reply)
          // And the silo serves on: a fresh counter counts from zero through the client.
          const id = `probe-${probe++}`
          const counted = await Effect.runPromise(
            client.run(Effect.flatMap(Counter.ref(id), (ref) => ref.Increment({ by: 3 })))
          )
          assert.strictEqual(counted, 3)
        }
      )
      yield* Effect.promise(() => fc.assert(property, runs(20)))
      // The garbage did reach the request path: undecodable and oversized frames were
      // answered with typed transport errors, hostile requests with typed failures.
      for (const key of ["MalformedFrame", "FrameTooLarge", "Failure"]) {
        assert.isAbove(answered.get(key) ?? 0, 0, `${key} in ${JSON.stringify([...answered])}`)
      }
      // The silo itself is still there for local calls too.
      assert.strictEqual(yield* silo.run(Effect.flatMap(Counter.ref("probe-0"), (ref) => ref.Get())), 3)
    }).pipe(Effect.scoped), 60_000)
})

/** A first frame: garbage bytes, a handshake frame of any kind and body, or a hello with random fields. */
const firstFrame: fc.Arbitrary<{ readonly bytes: Buffer; readonly valid: boolean }> = fc.oneof(
  garbagePiece.map((bytes) => ({ bytes, valid: false })),
  fc.tuple(fc.integer({ min: 0, max: 255 }), fc.jsonValue({ maxDepth: 2 })).map(([kind, body]) => {
    const json = Buffer.from(JSON.stringify(body) ?? "null")
    const frame = Buffer.alloc(5 + json.length)
    frame.writeUInt32BE(1 + json.length, 0)
    frame[4] = kind
    json.copy(frame, 5)
    return { bytes: frame, valid: false }
  }),
  fc.record({
    v: fc.oneof(fc.constant(Handshake.protocolVersion), fc.integer(), fc.string()),
    cluster: fc.oneof(fc.constant(Handshake.defaultClusterId), text),
    role: fc.oneof(fc.constant("client"), fc.constant("silo"), text),
    nonce: fc.oneof(fc.constant("AAAAAAAAAAAAAAAAAAAAAA=="), fc.string({ maxLength: 80 }))
  }).map((hello) => ({
    bytes: Handshake.encode(Handshake.kindHello, hello),
    valid: hello.v === Handshake.protocolVersion && hello.cluster === Handshake.defaultClusterId &&
      (hello.role === "client" || hello.role === "silo") && hello.nonce.length <= 64
  })),
  fc.constant({
    bytes: Handshake.encode(Handshake.kindHello, { v: Handshake.protocolVersion, cluster: Handshake.defaultClusterId, role: "client", nonce: "AA==" }),
    valid: true
  })
)

/** Sends `chunks` on a raw socket without a handshake and half-closes; resolves with what came back once the server closed. */
const unshaken = (port: number, chunks: ReadonlyArray<Buffer>) =>
  new Promise<Array<{ readonly kind: number; readonly frame: Buffer }>>((resolve, reject) => {
    const frames: Array<{ readonly kind: number; readonly frame: Buffer }> = []
    const decoder = new FrameDecoder({ onFrame: (frame) => void frames.push({ kind: frame[0]!, frame: Buffer.from(frame) }), onOversized: () => {} })
    const socket = Net.connect({ host: "127.0.0.1", port }, () => {
      for (const chunk of chunks) socket.write(chunk)
      socket.end()
    })
    socket.on("data", (chunk: Buffer) => decoder.push(chunk))
    socket.on("error", () => {})
    const timer = setTimeout(() => reject(new Error("not closed within 10 s")), 10_000)
    socket.on("close", () => {
      clearTimeout(timer)
      resolve(frames)
    })
  })

describe("fuzz: the handshake", () => {
  it.live("garbage before or instead of a handshake is refused and closed; nothing after it is decoded; the silo serves on", () =>
    Effect.gen(function*() {
      const { client, port } = yield* servedSilo
      let probe = 0
      let refused = 0
      let welcomed = 0
      const property = fc.asyncProperty(
        fc.oneof(fc.constant([]), fc.array(garbagePiece, { minLength: 1, maxLength: 2 })),
        firstFrame,
        fc.array(fc.nat(), { maxLength: 6 }),
        async (before, first, cuts) => {
          const valid = Buffer.concat(before).length === 0 && first.valid
          // A well-formed request follows: it is answered only after a valid hello.
          const request = hostileFrame(
            { timeoutMillis: 1000, type: "Counter", id: "h-1", tag: "Get", payload: "{}", forwarded: false, forwardedTwice: false },
            7,
            false
          )
          const frames = await unshaken(port, chunked(Buffer.concat([...before, first.bytes, request]), cuts))
          assert.strictEqual(frames[0]?.kind, Handshake.kindChallenge, "the server opens with its challenge")
          const kinds = frames.slice(1).map((f) => f.kind)
          if (valid) {
            assert.strictEqual(kinds[0], Handshake.kindWelcome)
            welcomed++
            assert.isTrue(kinds.slice(1).every((kind) => kind === kindReply), `after a welcome, replies only: ${kinds}`)
          } else {
            // Refused (or closed mid-frame when the peer ended first): never a welcome, never a reply.
            assert.isTrue(kinds.every((kind) => kind === Handshake.kindRefuse), `frames after an invalid hello: ${kinds}`)
            if (kinds.length > 0) refused++
          }
          const id = `hs-${probe++}`
          const counted = await Effect.runPromise(client.run(Effect.flatMap(Counter.ref(id), (ref) => ref.Increment({ by: 1 }))))
          assert.strictEqual(counted, 1)
        }
      )
      yield* Effect.promise(() => fc.assert(property, runs(60)))
      assert.isAbove(refused, 0, "some first frames were refused with a reason")
      assert.isAbove(welcomed, 0, "some hellos were valid and welcomed")
    }).pipe(Effect.scoped), 60_000)
})

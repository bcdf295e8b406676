/**
 * Length-prefixed framing for the silo transport: every frame is a 4-byte big-endian
 * payload length followed by that many payload bytes.
 *
 * - {@link FrameDecoder} turns TCP chunks into frames. A frame that lies whole inside one
 *   chunk is handed over in place: as a view of that chunk, or as the chunk and the frame's
 *   bounds to a handler with {@link FrameHandler.onFrameIn} (no allocation per frame); only
 *   a frame split across chunks is copied, once, into a buffer of its exact size.
 * - {@link OutputBuffer} is where frames are encoded for sending: frames are written one
 *   after another into a large chunk and {@link OutputBuffer.take} hands everything
 *   written since the last take to the socket as one buffer (write coalescing with no
 *   concatenation copy).
 * - A decoder can be paused between frames ({@link FrameDecoder.pause}): what it has not
 *   decoded yet is held until {@link FrameDecoder.resume}, so a server can stop starting
 *   requests at an exact count, not a chunk later.
 * - Frames are bounded by a maximum size ({@link defaultMaxFrameBytes}, 16 MiB, the same
 *   default as effect/rpc's SchemaBinary serialization). An oversized incoming frame is
 *   skipped byte for byte and reported with its first bytes (so the receiver can read the
 *   request id and answer with a typed error); the stream stays in sync and nothing else
 *   is closed. An oversized outgoing frame is refused before anything is written.
 * - Frames and bytes read are counted here (`quark_transport_frames_total` and
 *   `quark_transport_bytes_total`, direction `in`): one add per frame and one per chunk.
 *   Frames written are counted by the connections' writer when it hands them to the socket.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"
import * as ProcessMetrics from "../Telemetry/internal/ProcessMetrics.ts"

/**
 * Bytes of the length prefix.
 *
 * @since 0.1.0
 */
export const headerBytes = 4

/**
 * Default maximum payload size of one frame: 16 MiB.
 *
 * @since 0.1.0
 */
export const defaultMaxFrameBytes = 16 * 1024 * 1024

/**
 * Default cap on the bytes waiting to be written on one connection (encoded, or held by
 * the socket): 64 MiB, four maximum frames. Past it a client fails new calls at once and a
 * server stops reading that connection until its output drains.
 *
 * @since 0.1.0
 */
export const defaultMaxBufferedBytes = 64 * 1024 * 1024

/**
 * Default cap on the requests in flight on one connection: 10,000 (calls waiting for a
 * reply on a client, running handlers on a server).
 *
 * @since 0.1.0
 */
export const defaultMaxInFlight = 10_000

/**
 * How many leading bytes of an oversized frame are reported to
 * {@link FrameHandler.onOversized} (enough for the envelope kind and request id).
 *
 * @since 0.1.0
 */
export const oversizedPrefixBytes = 16

/**
 * A frame did not decode as an envelope.
 *
 * @since 0.1.0
 */
export class MalformedFrame extends Schema.TaggedError<MalformedFrame>()("MalformedFrame", {
  reason: Schema.String
}) {
  override get message(): string {
    return `malformed frame: ${this.reason}`
  }
}

/**
 * Receives what a {@link FrameDecoder} finds.
 *
 * @since 0.1.0
 */
export interface FrameHandler {
  /**
   * A complete frame payload. It may be a view into the chunk being decoded: use it (or
   * copy it) before returning.
   */
  readonly onFrame: (frame: Buffer) => void
  /**
   * When present, called instead of `onFrame` with the frame as `buf[start, end)`: no view
   * is allocated per frame (the transport's own handlers use this). The same lifetime rule.
   */
  readonly onFrameIn?: ((buf: Buffer, start: number, end: number) => void) | undefined
  /** A frame announced `size` bytes, more than the maximum; `prefix` holds its first bytes. It is skipped. */
  readonly onOversized: (size: number, prefix: Buffer) => void
}

const emptyBuffer = Buffer.alloc(0)

/**
 * Incremental decoder of length-prefixed frames; push TCP chunks in arrival order.
 *
 * @since 0.1.0
 */
export class FrameDecoder {
  readonly handler: FrameHandler
  readonly maxFrameBytes: number
  // A partially received length prefix.
  private readonly header = Buffer.alloc(headerBytes)
  private headerFilled = 0
  // A partially received frame (exact size) and how much of it has arrived.
  private partial: Buffer | undefined = undefined
  private partialFilled = 0
  // An oversized frame being skipped: its size, the prefix collected, bytes still to skip.
  private oversizedSize = 0
  private oversizedPrefix: Buffer | undefined = undefined
  private oversizedPrefixFilled = 0
  private skipRemaining = 0
  // Paused: the rest of the current chunk (and any chunk pushed meanwhile) waits in `held`.
  private paused = false
  private held: Buffer | undefined = undefined
  private pushing = false

  constructor(handler: FrameHandler, maxFrameBytes: number = defaultMaxFrameBytes) {
    this.handler = handler
    this.maxFrameBytes = maxFrameBytes
  }

  /**
   * Stops handing over frames: the frame being handled is the last one until
   * {@link resume}. Bytes pushed meanwhile are kept, not decoded.
   */
  pause(): void {
    this.paused = true
  }

  /** Goes on with what was held (calling the handler from here), unless paused again meanwhile. */
  resume(): void {
    if (!this.paused) return
    this.paused = false
    if (this.pushing) return // the push in progress goes on by itself
    const held = this.held
    if (held === undefined) return
    this.held = undefined
    this.feed(held)
  }

  /** Feeds one chunk; calls the handler for every frame completed by it. */
  push(chunk: Buffer): void {
    // Counted as it arrives, once: what `resume` decodes later was counted here.
    ProcessMetrics.bytesIn.value += chunk.length
    this.feed(chunk)
  }

  private feed(chunk: Buffer): void {
    if (this.paused) {
      this.held = this.held === undefined ? chunk : Buffer.concat([this.held, chunk])
      return
    }
    this.pushing = true
    try {
      this.decode(chunk)
    } finally {
      this.pushing = false
    }
  }

  private frame(buf: Buffer, start: number, end: number): void {
    ProcessMetrics.framesIn.value++
    const handler = this.handler
    if (handler.onFrameIn !== undefined) handler.onFrameIn(buf, start, end)
    else handler.onFrame(start === 0 && end === buf.length ? buf : buf.subarray(start, end))
  }

  private decode(chunk: Buffer): void {
    const end = chunk.length
    let offset = 0
    while (offset < end) {
      if (this.paused) {
        this.held = chunk.subarray(offset)
        return
      }
      if (this.oversizedPrefix !== undefined) {
        const prefix = this.oversizedPrefix
        const n = Math.min(prefix.length - this.oversizedPrefixFilled, end - offset)
        chunk.copy(prefix, this.oversizedPrefixFilled, offset, offset + n)
        this.oversizedPrefixFilled += n
        offset += n
        if (this.oversizedPrefixFilled === prefix.length) {
          this.oversizedPrefix = undefined
          this.skipRemaining = this.oversizedSize - prefix.length
          ProcessMetrics.framesIn.value++ // read, if skipped: its bytes are counted too
          this.handler.onOversized(this.oversizedSize, prefix)
        }
        continue
      }
      if (this.skipRemaining > 0) {
        const n = Math.min(this.skipRemaining, end - offset)
        this.skipRemaining -= n
        offset += n
        continue
      }
      if (this.partial !== undefined) {
        const partial = this.partial
        const n = Math.min(partial.length - this.partialFilled, end - offset)
        chunk.copy(partial, this.partialFilled, offset, offset + n)
        this.partialFilled += n
        offset += n
        if (this.partialFilled === partial.length) {
          this.partial = undefined
          this.frame(partial, 0, partial.length)
        }
        continue
      }
      // Read a length prefix: directly from the chunk when it is whole there.
      let size: number
      if (this.headerFilled === 0 && end - offset >= headerBytes) {
        size = chunk.readUInt32BE(offset)
        offset += headerBytes
      } else {
        const n = Math.min(headerBytes - this.headerFilled, end - offset)
        chunk.copy(this.header, this.headerFilled, offset, offset + n)
        this.headerFilled += n
        offset += n
        if (this.headerFilled < headerBytes) return
        this.headerFilled = 0
        size = this.header.readUInt32BE(0)
      }
      if (size > this.maxFrameBytes) {
        this.oversizedSize = size
        this.oversizedPrefix = Buffer.allocUnsafe(Math.min(size, oversizedPrefixBytes))
        this.oversizedPrefixFilled = 0
        continue
      }
      if (size === 0) {
        this.frame(emptyBuffer, 0, 0)
        continue
      }
      if (end - offset >= size) {
        // Whole frame in this chunk: hand it over in place, no copy.
        const start = offset
        offset += size
        this.frame(chunk, start, offset)
        continue
      }
      this.partial = Buffer.allocUnsafe(size)
      this.partialFilled = 0
    }
  }
}

/** Size of the chunks an {@link OutputBuffer} encodes into. */
const chunkBytes = 64 * 1024

/**
 * Coalesced writes are flushed at the end of the tick, or as soon as this many bytes wait:
 * then the peer can start on the first frames of a burst while the rest are still being
 * produced, so the two processes work in parallel instead of in turns.
 *
 * @since 0.1.0
 */
export const eagerFlushBytes = 4096

/**
 * An append-only encoding area for outgoing frames. Reserve room, write, commit; `take`
 * returns everything committed since the previous take as one buffer, which stays valid
 * (later frames never overwrite it: a full chunk is replaced, not reused).
 *
 * @since 0.1.0
 */
export class OutputBuffer {
  buffer: Buffer = Buffer.allocUnsafe(chunkBytes)
  /** End of committed bytes. */
  position = 0
  /** Start of bytes not yet taken. */
  private start = 0
  /**
   * Frames committed since the last take: each encoder adds one as it commits, and the
   * writer counts them out when it hands them to the socket (the transport's frame metric).
   */
  frames = 0

  /** Makes sure `bytes` more bytes fit after `position` (moving untaken bytes to a new chunk if needed). */
  reserve(bytes: number): void {
    if (this.position + bytes <= this.buffer.length) return
    const untaken = this.position - this.start
    const needed = untaken + bytes
    // A backlog (the socket is not taking bytes) grows geometrically, so that it is copied
    // O(log n) times, not once per frame.
    const next = Buffer.allocUnsafe(needed <= chunkBytes ? chunkBytes : Math.max(needed, 2 * untaken))
    this.buffer.copy(next, 0, this.start, this.position)
    this.buffer = next
    this.start = 0
    this.position = untaken
  }

  /** Bytes committed and not yet taken. */
  get pending(): number {
    return this.position - this.start
  }

  /** Whether anything is waiting to be taken. */
  get isEmpty(): boolean {
    return this.position === this.start
  }

  /** Everything committed since the last take, or `undefined`. */
  take(): Buffer | undefined {
    if (this.position === this.start) return undefined
    const out = this.buffer.subarray(this.start, this.position)
    this.start = this.position
    this.frames = 0
    // Small remainder: start a fresh chunk so the next frames do not straddle. A grown
    // chunk is let go too (the socket holds what it needs of it).
    if (this.buffer.length - this.position < 1024 || this.buffer.length > chunkBytes) {
      this.buffer = Buffer.allocUnsafe(chunkBytes)
      this.start = 0
      this.position = 0
    }
    return out
  }

  /** Drops everything not yet taken. */
  clear(): void {
    this.position = this.start
    this.frames = 0
    if (this.buffer.length > chunkBytes) {
      this.buffer = Buffer.allocUnsafe(chunkBytes)
      this.start = 0
      this.position = 0
    }
  }
}

/**
 * Encodes one frame (prefix + payload) as a new buffer; for tests and simple callers.
 *
 * @since 0.1.0
 */
export const encodeFrame = (payload: Uint8Array): Buffer => {
  const out = Buffer.allocUnsafe(headerBytes + payload.length)
  out.writeUInt32BE(payload.length, 0)
  out.set(payload, headerBytes)
  return out
}

/**
 * The write side of one connection, shared by client and server: frames are encoded into
 * an {@link OutputBuffer} and handed to the socket in one `socket.write` per tick (or at
 * once when {@link eagerFlushBytes} wait).
 *
 * - Backpressure: when `socket.write` returns false nothing more is written until the
 *   socket emits `'drain'`; frames keep accumulating in the buffer meanwhile. {@link
 *   Writer.full} says when the bytes waiting (encoded, plus what the socket holds) reach
 *   `maxBufferedBytes`; what to do then is the owner's choice (the client refuses calls,
 *   the server stops reading).
 * - {@link Writer.writes} counts `socket.write` calls, so an owner can tell whether a
 *   frame left the process by noting the count when it encoded it: no per-frame record.
 * - Metrics: each `socket.write` adds its frames (counted by the encoders on the
 *   {@link OutputBuffer}) and bytes to `quark_transport_frames_total` and
 *   `quark_transport_bytes_total` (direction `out`); frames dropped before a write (the
 *   socket was lost) are not counted.
 *
 * @internal
 */
import type * as Net from "node:net"
import * as ProcessMetrics from "../../Telemetry/internal/ProcessMetrics.ts"
import { eagerFlushBytes, OutputBuffer } from "../Frame.ts"

/** @internal */
export class Writer {
  readonly out = new OutputBuffer()
  readonly maxBufferedBytes: number
  socket: Net.Socket | undefined = undefined
  /**
   * `socket.write` calls so far. A frame encoded while this was `n` goes out with write
   * `n + 1`: it has been handed to the socket once `writes > n`.
   */
  writes = 0
  /** `socket.write` returned false: wait for `'drain'`. */
  blocked = false
  private scheduled = false
  private readonly onProgress: (() => void) | undefined
  private afterWrite: (() => void) | undefined = undefined

  /** `onProgress` runs when the socket took bytes (a write completed, or `'drain'`). */
  constructor(maxBufferedBytes: number, onProgress?: () => void) {
    this.maxBufferedBytes = maxBufferedBytes
    this.onProgress = onProgress
  }

  /** Starts writing to `socket`, beginning with what was buffered before it came. */
  attach(socket: Net.Socket): void {
    this.socket = socket
    this.blocked = false
    const onProgress = this.onProgress
    socket.on("drain", () => {
      if (this.socket !== socket) return
      this.blocked = false
      this.flush()
      onProgress?.()
    })
    if (onProgress !== undefined) {
      this.afterWrite = () => {
        if (this.socket === socket) onProgress()
      }
    }
    this.schedule()
  }

  /** The socket is gone: what was not written is dropped. */
  detach(): void {
    this.socket = undefined
    this.blocked = false
    this.afterWrite = undefined
    this.out.clear()
  }

  /** The socket is going away: stop writing to it, keeping what was not written for the next one. */
  release(): void {
    this.socket = undefined
    this.blocked = false
    this.afterWrite = undefined
  }

  /** Bytes waiting: encoded and not written, plus what the socket has not sent yet. */
  get buffered(): number {
    return this.out.pending + (this.socket?.writableLength ?? 0)
  }

  /** Whether the bytes waiting reached `maxBufferedBytes`. */
  get full(): boolean {
    // Unblocked, the socket holds less than its high-water mark (16 KiB): only the
    // encoding area is worth counting, and reading it costs nothing.
    return this.blocked ?
      this.out.pending + this.socket!.writableLength >= this.maxBufferedBytes :
      this.out.pending >= this.maxBufferedBytes
  }

  /** Everything was handed to the socket and the socket sent it. */
  get idle(): boolean {
    return this.out.isEmpty && (this.socket === undefined || this.socket.writableLength === 0)
  }

  /** Call after encoding frames: writes them at the end of the tick, or now if many wait. */
  schedule(): void {
    if (this.socket === undefined || this.blocked) return // written on attach / on 'drain'
    if (this.out.pending >= eagerFlushBytes) return this.flush()
    if (this.scheduled) return
    this.scheduled = true
    process.nextTick(this.tick)
  }

  private readonly tick = (): void => {
    this.scheduled = false
    this.flush()
  }

  /** Hands everything encoded to the socket now, unless it asked to wait. */
  flush(): void {
    const socket = this.socket
    // A destroyed socket (its 'close' not yet delivered) takes nothing: what waits was not sent.
    if (socket === undefined || this.blocked || socket.destroyed) return
    const frames = this.out.frames
    const chunk = this.out.take()
    if (chunk === undefined) return
    // Counted per write, not per frame: what is dropped before it (a lost socket) never left.
    ProcessMetrics.framesOut.value += frames
    ProcessMetrics.bytesOut.value += chunk.length
    this.writes++
    if (!socket.write(chunk, this.afterWrite)) this.blocked = true
  }
}

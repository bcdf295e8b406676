/**
 * The raw `node:net` floor the transport benchmarks compare with, shared by the one-process
 * (`loopback.raw-net.*`) and two-process (`baseline.raw-net.*`) variants: the 4-byte length
 * framing of Frame.ts, an 8-byte request (slot + sequence number), an echo server with no
 * envelope, no fiber and no schema, and a client that checks every echo.
 *
 * The baseline decodes frames with its own small decoder rather than Frame.ts' class: both
 * run in the bench process, and when the baseline fed the same class, V8's type feedback
 * from its 12-byte frames slowed Quark's `remote.ask.pipelined` by a third (125k against
 * 188k/s measured with and without) and the baseline itself by a fifth.
 */
import * as Net from "node:net"
import { encodeFrame, headerBytes } from "../src/Transport/Frame.ts"
import { nowNs, type RoundResult } from "./Harness.ts"

export const host = "127.0.0.1"

/** A port that was free a moment ago. */
export const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const s = Net.createServer()
    s.once("error", reject)
    s.listen(0, host, () => {
      const port = (s.address() as Net.AddressInfo).port
      s.close(() => resolve(port))
    })
  })

/** Splits a byte stream into length-prefixed frames (whole frames only: the echo needs no more). */
class RawFrameDecoder {
  readonly onFrame: (frame: Buffer) => void
  private rest: Buffer | undefined = undefined

  constructor(onFrame: (frame: Buffer) => void) {
    this.onFrame = onFrame
  }

  push(chunk: Buffer): void {
    const buf = this.rest === undefined ? chunk : Buffer.concat([this.rest, chunk])
    let offset = 0
    while (buf.length - offset >= headerBytes) {
      const size = buf.readUInt32BE(offset)
      if (buf.length - offset - headerBytes < size) break
      this.onFrame(buf.subarray(offset + headerBytes, offset + headerBytes + size))
      offset += headerBytes + size
    }
    this.rest = offset === buf.length ? undefined : Buffer.from(buf.subarray(offset))
  }
}

/** Serves one connection: echoes every frame; the echoes of one chunk go out in one write. */
export const serveEcho = (socket: Net.Socket): void => {
  let out: Array<Buffer> = []
  const decoder = new RawFrameDecoder((frame) => void out.push(encodeFrame(frame)))
  socket.on("data", (chunk: Buffer) => {
    decoder.push(chunk)
    if (out.length > 0) {
      socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))
      out = []
    }
  })
  socket.on("error", () => {})
}

/** An echo server on a free port of 127.0.0.1. */
export const startEchoServer = async (): Promise<Net.Server> => {
  const server = Net.createServer({ noDelay: true }, serveEcho)
  await new Promise<void>((resolve) => server.listen(0, host, resolve))
  return server
}

const frame = (slot: number, value: number): Buffer => {
  const b = Buffer.allocUnsafe(12)
  b.writeUInt32BE(8, 0)
  b.writeUInt32BE(slot, 4)
  b.writeUInt32BE(value, 8)
  return b
}

/**
 * A client of an echo server at `port`. `run(ops, width)` keeps `width` requests in flight
 * (each slot sends its next request from the reply handler, all of one chunk's in one write)
 * and checks that each echo carries the sequence number its slot sent.
 */
export const connectEchoClient = async (id: string, port: number) => {
  const socket = await new Promise<Net.Socket>((resolve, reject) => {
    const s = Net.connect({ host, port }, () => resolve(s))
    s.once("error", reject)
  })
  socket.setNoDelay(true)
  let onReply: (slot: number, value: number) => void = () => {}
  const decoder = new RawFrameDecoder((frame) => onReply(frame.readUInt32BE(0), frame.readUInt32BE(4)))
  let pending: Array<Buffer> = []
  socket.on("data", (chunk: Buffer) => {
    decoder.push(chunk)
    if (pending.length > 0) {
      socket.write(pending.length === 1 ? pending[0]! : Buffer.concat(pending))
      pending = []
    }
  })
  let failure: ((err: Error) => void) | undefined
  const fail = (err: Error) => failure?.(err)
  socket.on("error", fail)
  socket.on("close", () => fail(new Error(`${id}: connection closed`)))
  let seq = 0 // sequence number of the next request, across rounds
  return {
    run: (ops: number, width: number) =>
      new Promise<RoundResult>((resolve, reject) => {
        failure = reject
        const latenciesUs: Array<number> = []
        const sentAt = new Float64Array(width)
        const expected = new Uint32Array(width)
        let sent = 0
        let done = 0
        const send = (slot: number, out: Array<Buffer>) => {
          sent++
          seq = (seq + 1) >>> 0
          expected[slot] = seq
          sentAt[slot] = nowNs()
          out.push(frame(slot, seq))
        }
        const t0 = nowNs()
        onReply = (slot, value) => {
          latenciesUs.push((nowNs() - sentAt[slot]!) / 1000)
          if (slot >= width || value !== expected[slot]) {
            onReply = () => {}
            reject(new Error(`${id}: slot ${slot} echoed ${value}, expected ${expected[slot]}`))
            return
          }
          done++
          if (done === ops) {
            resolve({ ops, elapsedNs: nowNs() - t0, latenciesUs })
          } else if (sent < ops) {
            send(slot, pending)
          }
        }
        const first: Array<Buffer> = []
        for (let slot = 0; slot < Math.min(width, ops); slot++) send(slot, first)
        socket.write(Buffer.concat(first))
      }),
    close: () => {
      failure = undefined
      socket.destroy()
    }
  }
}

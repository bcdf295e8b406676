/**
 * Child process: the raw `node:net` echo server of `baseline.raw-net.*`, the same as the
 * in-process one in bench/transport.ts (4-byte length framing through Frame.ts' encoder and
 * decoder, every frame echoed, replies to one chunk sent in one write), on 127.0.0.1 port 0.
 * Prints `ready <port>`.
 */
import * as Net from "node:net"
import { encodeFrame, FrameDecoder } from "../../src/Transport/Frame.ts"
import { announceReady, onParentGone } from "./Peer.ts"

const server = Net.createServer({ noDelay: true }, (socket) => {
  let out: Array<Buffer> = []
  const decoder = new FrameDecoder({
    onFrame: (frame) => void out.push(encodeFrame(frame)),
    onOversized: () => socket.destroy()
  })
  socket.on("data", (chunk: Buffer) => {
    decoder.push(chunk)
    if (out.length > 0) {
      socket.write(out.length === 1 ? out[0]! : Buffer.concat(out))
      out = []
    }
  })
  socket.on("error", () => {})
})

server.listen(0, "127.0.0.1", () => {
  onParentGone()
  announceReady((server.address() as Net.AddressInfo).port)
})

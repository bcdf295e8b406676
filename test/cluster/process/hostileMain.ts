/**
 * A hostile peer of the hostile multi-process test, as its own process:
 *
 *   node test/cluster/process/hostileMain.ts <port> <seconds> <mode,...>
 *
 * For `seconds` it attacks the silo transport on 127.0.0.1:`port` with every mode named,
 * each in loops of its own, all at once:
 *
 * - `garbage`: connections that send random bytes instead of a handshake (up to 256 KiB
 *   each, in random chunks), the "random bytes against a silo's port";
 * - `frames`: connections that do the handshake, then send one kind of bad input each:
 *   random bytes, a truncated frame, a length prefix of 2^32 − 1, valid frames with random
 *   payloads for a real actor and message, requests whose type or tag is unknown or an
 *   `Object.prototype` name, and random request flags;
 * - `slow`: up to 200 connections held open: half after the handshake with half a frame
 *   sent and the rest dribbled a byte a second, half silent from the start;
 * - `unread`: connections that send valid requests as fast as the socket takes them and
 *   never read a reply (a peer that stops reading).
 *
 * Prints one line on stdout at the end, `stats {json}` (connections opened, bytes sent,
 * refused or reset connections), then exits 0. Never aimed anywhere but 127.0.0.1.
 */
import { randomBytes } from "node:crypto"
import * as Net from "node:net"
import { writeRequest } from "../../../src/Transport/Envelope.ts"
import { OutputBuffer } from "../../../src/Transport/Frame.ts"
import { rawConnect } from "../../support/rawPeer.ts"

const [portText, secondsText, modesText] = process.argv.slice(2)
const port = Number(portText)
const seconds = Number(secondsText)
if (!Number.isInteger(port) || !(seconds > 0) || modesText === undefined) {
  process.stderr.write("usage: hostileMain.ts <port> <seconds> <garbage,frames,slow,unread>\n")
  process.exit(2)
}
const modes = new Set(modesText.split(","))
const host = "127.0.0.1"
const endAt = Date.now() + seconds * 1_000
const stats = { connections: 0, bytes: 0, refused: 0, closedByServer: 0, requestsUnread: 0, held: 0, garbage: 0, frames: 0 }
const live = () => Date.now() < endAt
const pause = (millis: number) => new Promise<void>((resolve) => setTimeout(resolve, millis))
const random = (n: number) => Math.floor(Math.random() * n)

const send = (socket: Net.Socket, bytes: Uint8Array): boolean => {
  stats.bytes += bytes.length
  return socket.write(bytes)
}

/** Resolves when the socket closes (the server dropped it, or we did). */
const closed = (socket: Net.Socket) =>
  new Promise<void>((resolve) => {
    if (socket.destroyed) return resolve()
    socket.once("close", () => resolve())
  })

const request = (type: string, tag: string, payload: Uint8Array, flags: { oneWay?: boolean; requestId?: number } = {}) => {
  const out = new OutputBuffer()
  writeRequest(out, {
    target: { type, id: `h-${random(50)}` },
    tag,
    payload,
    context: { correlationId: "", metadata: {} },
    chain: [],
    requestId: flags.requestId ?? random(2 ** 31),
    timeoutMillis: 5_000,
    oneWay: flags.oneWay
  }, 16 * 1024 * 1024)
  return Buffer.from(out.take()!)
}

const inherited = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]

/** One connection per kind of bad input after a handshake, in turn. */
const badInputs: ReadonlyArray<() => Uint8Array> = [
  () => randomBytes(1 + random(16_384)),
  () => {
    const frame = request("MpAccount", "Deposit", randomBytes(64))
    return frame.subarray(0, 1 + random(frame.length - 1))
  },
  () => Buffer.from([0xff, 0xff, 0xff, 0xff, ...randomBytes(64)]),
  () => request("MpAccount", ["Deposit", "Balance", "WhereAmI"][random(3)]!, randomBytes(random(512))),
  () => request(inherited[random(inherited.length)]!, "Balance", new Uint8Array(0)),
  () => request("MpAccount", inherited[random(inherited.length)]!, new Uint8Array(0)),
  () => {
    const frame = request("MpAccount", "Balance", new Uint8Array(0))
    frame[4 + random(8)] = random(256) // a kind, flags or id byte
    return frame
  }
]

const connectRaw = () =>
  new Promise<Net.Socket | undefined>((resolve) => {
    const socket = Net.connect({ host, port })
    socket.on("error", () => {})
    socket.once("connect", () => resolve(socket))
    socket.once("close", () => resolve(undefined))
  })

const handshaken = async (): Promise<Net.Socket | undefined> => {
  stats.connections++
  try {
    const socket = await rawConnect(port)
    socket.on("error", () => {})
    return socket
  } catch {
    stats.refused++
    return undefined
  }
}

const garbageLoop = async () => {
  while (live()) {
    stats.connections++
    stats.garbage++
    const socket = await connectRaw()
    if (socket === undefined) {
      stats.refused++
      continue
    }
    const total = 1 + random(256 * 1024)
    for (let sent = 0; sent < total && !socket.destroyed;) {
      const chunk = randomBytes(Math.min(total - sent, 1 + random(65_536)))
      sent += chunk.length
      // A server that stopped reading is not waited for long: the next connection goes on.
      if (!send(socket, chunk)) await Promise.race([new Promise<void>((resolve) => socket.once("drain", resolve)), closed(socket), pause(500)])
      if (!socket.writableNeedDrain) continue
      break
    }
    await Promise.race([closed(socket), pause(50)])
    if (!socket.destroyed) socket.destroy()
    else stats.closedByServer++
  }
}

const framesLoop = async () => {
  let turn = 0
  while (live()) {
    const socket = await handshaken()
    if (socket === undefined) continue
    stats.frames++
    send(socket, badInputs[turn++ % badInputs.length]!())
    await Promise.race([closed(socket), pause(100)])
    if (!socket.destroyed) socket.destroy()
    else stats.closedByServer++
  }
}

const slowLoop = async () => {
  const sockets = new Set<Net.Socket>()
  while (live()) {
    if (sockets.size < 200) {
      const silent = sockets.size % 2 === 0
      const socket = silent ? await connectRaw() : await handshaken()
      if (silent) stats.connections++
      if (socket !== undefined) {
        sockets.add(socket)
        stats.held = Math.max(stats.held, sockets.size)
        socket.once("close", () => sockets.delete(socket))
        if (!silent) send(socket, request("MpAccount", "Deposit", randomBytes(4_096)).subarray(0, 2_048))
      }
    } else {
      for (const socket of sockets) if (!socket.destroyed && Math.random() < 0.1) send(socket, randomBytes(1))
      await pause(1_000)
    }
  }
  for (const socket of sockets) socket.destroy()
}

const unreadLoop = async () => {
  while (live()) {
    const socket = await handshaken()
    if (socket === undefined) continue
    socket.pause() // never read a reply
    const until = Date.now() + 2_000
    for (let n = 1; live() && Date.now() < until && !socket.destroyed; n++) {
      stats.requestsUnread++
      if (!send(socket, request("MpAccount", "WhereAmI", new Uint8Array(0)))) {
        await Promise.race([new Promise<void>((resolve) => socket.once("drain", resolve)), closed(socket), pause(500)])
      } else if (n % 256 === 0) {
        await new Promise<void>((resolve) => setImmediate(resolve)) // the other loops of this process run too
      }
    }
    socket.destroy()
  }
}

const loops: Array<Promise<void>> = []
if (modes.has("garbage")) for (let i = 0; i < 4; i++) loops.push(garbageLoop())
if (modes.has("frames")) for (let i = 0; i < 2; i++) loops.push(framesLoop())
if (modes.has("slow")) loops.push(slowLoop())
if (modes.has("unread")) loops.push(unreadLoop())
await Promise.all(loops)
process.stdout.write(`stats ${JSON.stringify(stats)}\n`)
process.exit(0)

/**
 * Raw TCP peers of the transport for tests that play a misbehaving (or hand-driven) peer:
 * every connection to a transport `Server`, and from a `Connection`, opens with the
 * handshake of `src/Transport/internal/Handshake.ts`, so a raw socket must do it first.
 *
 * - {@link rawConnect} connects to a server and does the peer's side (role `"client"` unless
 *   told otherwise); the socket it gives is flowing, with nothing of the handshake left
 *   to read: what arrives next is the server's replies.
 * - {@link serverHandshake} does the server's side on an accepted socket, then calls
 *   `ready`: a raw server calls it first and plays its part from there.
 */
import * as Net from "node:net"
import * as Handshake from "../../src/Transport/internal/Handshake.ts"

export interface RawPeerOptions {
  readonly host?: string
  readonly clusterId?: string
  readonly role?: "silo" | "client"
  readonly siloId?: string
  readonly secret?: string
}

/** Connects to `port` and completes the handshake; rejects with the failure (a refusal says "refused by the peer"). */
export const rawConnect = (port: number, options: RawPeerOptions = {}): Promise<Net.Socket> =>
  new Promise((resolve, reject) => {
    const socket = Net.connect({ host: options.host ?? "127.0.0.1", port }, () => {
      Handshake.clientHandshake(socket, {
        clusterId: options.clusterId ?? Handshake.defaultClusterId,
        role: options.role ?? "client",
        siloId: options.siloId,
        secret: options.secret
      }, (result) => {
        if (!result.ok) {
          socket.destroy()
          return reject(result.failure)
        }
        if (result.rest.length > 0) socket.unshift(result.rest)
        socket.resume() // the server says nothing more until asked
        resolve(socket)
      })
    })
    socket.on("error", () => {}) // a test that cares listens itself; a reset must not crash the run
    socket.once("close", () => reject(new Error("closed before the handshake")))
  })

/** Plays the server's side of the handshake on `socket` (accepting any hello), then calls `ready`. */
export const serverHandshake = (socket: Net.Socket, ready: () => void): void => {
  const first = new Handshake.FirstFrame()
  const onData = (chunk: Buffer) => {
    const frame = first.push(chunk)
    if (frame === undefined) return
    socket.off("data", onData)
    socket.write(Handshake.encode(Handshake.kindWelcome, { v: Handshake.protocolVersion }))
    if (frame.rest.length > 0) socket.unshift(frame.rest)
    ready()
  }
  socket.on("data", onData)
  socket.write(Handshake.challenge().frame)
}

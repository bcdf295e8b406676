/**
 * One accepted connection of a `Server`, and what happens to it outside the request path:
 * its handshake (`Handshake.ts`), its close after a refusal or a `goAway`, and the periodic
 * check of the first-frame and idle timeouts. The rules are in `Server.ts`'s module doc.
 *
 * @internal
 */
import type * as Net from "node:net"
import type { FrameDecoder } from "../Frame.ts"
import type { PeerInfo } from "../PeerInfo.ts"
import * as Handshake from "./Handshake.ts"
import type { Writer } from "./Writer.ts"

/** @internal */
export interface Conn {
  readonly socket: Net.Socket
  readonly peer: string
  /** The peer's host, without the port: the key of the log limiter. */
  readonly host: string
  readonly writer: Writer
  readonly decoder: FrameDecoder
  /** Replies can still be sent. */
  open: boolean
  /** Handlers of this connection running. */
  running: number
  /** Reading is stopped (a cap reached). */
  holding: boolean
  /** What the handshake said of the peer (a placeholder until it is done). */
  info: PeerInfo
  /** Handshaking, serving, or closing (refused or gone away: what it sends is ignored). */
  phase: "handshake" | "ready" | "closing"
  /** When the phase began (monotonic ms). */
  since: number
  /** Chunks read: the idle check compares it with `seen`. */
  activity: number
  seen: number
  /** When the idle check last saw activity (monotonic ms). */
  quietSince: number
}

/** What the helpers below need of their server. */
export interface ConnHost {
  readonly now: () => number
  readonly log: (conn: Conn, message: string, annotations: Record<string, unknown>) => void
  readonly firstFrameMillis: number
  /** `Infinity`: off. */
  readonly idleMillis: number
  readonly handshake: Handshake.ServerParams
}

const ignore = (): void => {}

/**
 * Stops reading `conn` (what it sends is ignored) and ends it after `last`: a refused peer
 * is destroyed once `last` is flushed (it waits for the answer, so nothing unread can turn
 * the close into a reset); a client sent `goAway` closes itself (requests it sent meanwhile
 * must not reset the connection before it reads `goAway`). The sweep destroys whatever lingers.
 */
export const closing = (host: ConnHost, conn: Conn, last: Buffer, refused: boolean): void => {
  conn.phase = "closing"
  conn.since = host.now()
  conn.open = false
  conn.decoder.pause()
  const socket = conn.socket
  socket.removeAllListeners("data")
  socket.on("data", ignore)
  socket.end(last, refused ? () => socket.destroy() : undefined)
}

/** Handshakes too slow, clients idle too long, refused peers lingering. */
export const sweep = (host: ConnHost, conns: Iterable<Conn>): void => {
  const at = host.now()
  for (const conn of conns) {
    if (conn.phase !== "ready") {
      if (at - conn.since < host.firstFrameMillis) continue
      if (conn.phase === "handshake") {
        host.log(conn, "transport: closing a connection without a handshake within firstFrameTimeout", {
          peer: conn.peer,
          timeoutMillis: host.firstFrameMillis
        })
      }
      conn.open = false
      conn.socket.destroy()
    } else if (conn.info.role === "client" && host.idleMillis !== Infinity) {
      if (conn.activity !== conn.seen || conn.running > 0 || !conn.writer.idle) {
        conn.seen = conn.activity
        conn.quietSince = at
      } else if (at - conn.quietSince >= host.idleMillis) {
        closing(host, conn, Handshake.goAwayFrame, false) // nothing is in flight: the client resends whatever crosses this
      }
    }
  }
}

/**
 * Sends the challenge and reads the handshake; once it is done, hands `onData` the
 * socket's data (with what followed the hello), so the request path checks nothing.
 */
export const startHandshake = (host: ConnHost, conn: Conn, onData: (chunk: Buffer) => void): void => {
  const socket = conn.socket
  const { frame: challenge, nonce } = Handshake.challenge()
  const first = new Handshake.FirstFrame()
  const onHandshake = (chunk: Buffer): void => {
    conn.activity++
    let frame: Handshake.HandshakeFrame | undefined
    try {
      frame = first.push(chunk)
    } catch (error) {
      const reason = (error as Error).message
      host.log(conn, "transport: handshake refused: not a Quark handshake", { peer: conn.peer, error: reason })
      return closing(host, conn, Handshake.encode(Handshake.kindRefuse, { reason }), true)
    }
    if (frame === undefined) return
    const verdict = Handshake.judge(frame, host.handshake, nonce, socket, conn.peer)
    if (!verdict.ok) {
      host.log(conn, verdict.log, verdict.annotations)
      return closing(host, conn, verdict.refuse, true)
    }
    socket.write(verdict.welcome)
    conn.info = verdict.info
    conn.phase = "ready"
    socket.off("data", onHandshake)
    socket.on("data", onData)
    if (frame.rest.length > 0) onData(frame.rest)
  }
  socket.on("data", onHandshake)
  socket.write(challenge)
}

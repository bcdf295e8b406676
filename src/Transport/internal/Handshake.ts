/**
 * The handshake that opens every transport connection, before any envelope is read or
 * sent. Its frames use the transport's framing (a 4-byte length, then the payload) with a
 * payload of one kind byte and a JSON object; none is larger than {@link maxHandshakeBytes}
 * (4 KiB), so a peer cannot make a server buffer more than that before it is known.
 *
 * 1. server → peer, at once: `challenge` `{ v, nonce }` (the protocol version it speaks,
 *    16 random bytes);
 * 2. peer → server: `hello` `{ v, cluster, role, silo?, nonce, proof? }`: the cluster id,
 *    `"silo"` or `"client"`, a silo's id (`host:port@generation`), its own nonce, and with a
 *    cluster secret, `proof` = HMAC-SHA256(secret, both nonces, cluster, role, silo);
 * 3. server → peer: `welcome` `{ v, silo?, generation?, proof? }` (the server's silo id;
 *    its proof of the secret over the same nonces, in the other order, when the peer is a
 *    silo) or `refuse` `{ reason }`, after which the server closes.
 *
 * A server refuses a peer of another protocol version or cluster id, and, when it has a
 * cluster secret, a peer claiming role `"silo"` without the right proof (a client needs
 * none). A peer with a secret refuses a server that does not prove it. Proofs are compared
 * in constant time. After the handshake the only frame besides envelopes is `goAway` (one
 * byte, server → client): the server closes an idle connection and has decoded nothing
 * since its last reply.
 *
 * @internal
 */
import * as Crypto from "node:crypto"
import type * as Net from "node:net"
import type { PeerInfo } from "../PeerInfo.ts"
import { peerCertificate } from "../Tls.ts"

/** The protocol version; peers of another version refuse each other. */
export const protocolVersion = 1

export const kindChallenge = 16
export const kindHello = 17
export const kindWelcome = 18
export const kindRefuse = 19
/** After the handshake, server → client: closing an idle connection; nothing in flight was decoded. */
export const kindGoAway = 20

/** Largest handshake payload: 4 KiB. */
export const maxHandshakeBytes = 4096

/** The default cluster id of servers and connections. */
export const defaultClusterId = "quark"

/** A whole frame of `kind` with `body` as JSON (or no body). */
export const encode = (kind: number, body?: object): Buffer => {
  const json = body === undefined ? undefined : Buffer.from(JSON.stringify(body), "utf8")
  const length = 1 + (json?.length ?? 0)
  const frame = Buffer.allocUnsafe(4 + length)
  frame.writeUInt32BE(length, 0)
  frame[4] = kind
  json?.copy(frame, 5)
  return frame
}

/** The goAway frame, shared (it carries nothing). */
export const goAwayFrame = encode(kindGoAway)

export interface HandshakeFrame {
  readonly kind: number
  readonly body: Record<string, unknown>
  /** Bytes after the frame in what was pushed. */
  readonly rest: Buffer
}

/** Why a handshake cannot go on: `refused` when a peer said no or spoke another protocol. */
export class HandshakeFailure extends Error {
  readonly refused: boolean
  constructor(message: string, refused: boolean) {
    super(message)
    this.refused = refused
  }
}

/** Reads one handshake frame out of the chunks pushed; throws a HandshakeFailure on what is none. */
export class FirstFrame {
  private buf: Buffer = Buffer.alloc(0)

  push(chunk: Buffer): HandshakeFrame | undefined {
    this.buf = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk])
    const buf = this.buf
    if (buf.length < 4) return undefined
    const length = buf.readUInt32BE(0)
    if (length < 1 || length > maxHandshakeBytes) {
      throw new HandshakeFailure(`not a Quark handshake: a frame of ${length} bytes (a handshake is at most ${maxHandshakeBytes})`, false)
    }
    if (buf.length < 4 + length) return undefined
    let body: unknown = {}
    if (length > 1) {
      try {
        body = JSON.parse(buf.toString("utf8", 5, 4 + length))
      } catch {
        throw new HandshakeFailure("not a Quark handshake: its frame is not JSON", false)
      }
    }
    if (typeof body !== "object" || body === null || Array.isArray(body)) {
      throw new HandshakeFailure("not a Quark handshake: its frame is not a JSON object", false)
    }
    this.buf = Buffer.alloc(0)
    return { kind: buf[4]!, body: body as Record<string, unknown>, rest: buf.subarray(4 + length) }
  }
}

const nonce = (): string => Crypto.randomBytes(16).toString("base64")

const hmac = (secret: string, parts: ReadonlyArray<unknown>): string =>
  Crypto.createHmac("sha256", secret).update(parts.map(String).join("\n")).digest("base64")

/** Constant-time comparison of a proof received with the one expected. */
const proves = (expected: string, got: unknown): boolean => {
  if (typeof got !== "string") return false
  const a = Buffer.from(expected, "base64")
  const b = Buffer.from(got, "base64")
  return a.length === b.length && Crypto.timingSafeEqual(a, b)
}

const str = (value: unknown): string | undefined => typeof value === "string" ? value : undefined

// --- server side ------------------------------------------------------------------------

export interface ServerParams {
  readonly clusterId: string
  /** The cluster secret, unwrapped; never logged. */
  readonly secret: string | undefined
  /** This server's silo id, when it has one yet. */
  readonly siloId: () => string | undefined
}

/** What the server does with a hello. */
export type Verdict =
  | { readonly ok: true; readonly info: PeerInfo; readonly welcome: Buffer }
  | { readonly ok: false; readonly log: string; readonly annotations: Record<string, unknown>; readonly refuse: Buffer }

/** A challenge to send on accept, and its nonce. */
export const challenge = (): { readonly nonce: string; readonly frame: Buffer } => {
  const n = nonce()
  return { nonce: n, frame: encode(kindChallenge, { v: protocolVersion, nonce: n }) }
}

const refusal = (log: string, annotations: Record<string, unknown>, reason: string): Verdict => ({
  ok: false,
  log: `transport: handshake refused: ${log}`,
  annotations,
  refuse: encode(kindRefuse, { reason })
})

/** The server's verdict on the first frame of a peer at `address`. */
export const judge = (
  frame: HandshakeFrame,
  params: ServerParams,
  serverNonce: string,
  socket: Net.Socket,
  address: string
): Verdict => {
  const body = frame.body
  if (frame.kind !== kindHello) {
    return refusal("not a hello", { peer: address, kind: frame.kind }, "the first frame was not a hello")
  }
  if (body.v !== protocolVersion) {
    return refusal("protocol version mismatch", { peer: address, theirs: String(body.v), ours: protocolVersion }, `protocol version ${String(body.v)} is not supported: this silo speaks version ${protocolVersion}`)
  }
  const cluster = str(body.cluster)
  if (cluster !== params.clusterId) {
    return refusal("cluster id mismatch", { peer: address, theirs: String(cluster), ours: params.clusterId }, `this silo belongs to cluster "${params.clusterId}", not "${String(cluster)}"`)
  }
  const role = body.role
  if (role !== "silo" && role !== "client") {
    return refusal("unknown role", { peer: address, role: String(role) }, `unknown role ${String(role)}`)
  }
  const peerNonce = str(body.nonce)
  if (peerNonce === undefined || peerNonce.length > 64) return refusal("no nonce", { peer: address }, "the hello has no nonce")
  const silo = role === "silo" ? str(body.silo) : undefined
  const secret = params.secret
  if (role === "silo" && secret !== undefined && !proves(hmac(secret, ["peer", cluster, role, silo, serverNonce, peerNonce]), body.proof)) {
    return refusal("wrong cluster secret", { peer: address, silo: String(silo) }, "a silo of this cluster must prove the cluster secret; the proof did not match")
  }
  const self = params.siloId()
  const at = self?.lastIndexOf("@") ?? -1
  const certificate = peerCertificate(socket)
  return {
    ok: true,
    info: {
      address,
      role,
      ...(silo === undefined ? {} : { siloId: silo }),
      ...(certificate === undefined ? {} : { certificate })
    },
    welcome: encode(kindWelcome, {
      v: protocolVersion,
      ...(self === undefined ? {} : { silo: self }),
      ...(at <= 0 ? {} : { generation: Number(self!.slice(at + 1)) }),
      ...(role === "silo" && secret !== undefined ? { proof: hmac(secret, ["server", cluster, self, peerNonce, serverNonce]) } : {})
    })
  }
}

// --- client side ------------------------------------------------------------------------

export interface ClientParams {
  readonly clusterId: string
  readonly secret: string | undefined
  readonly role: "silo" | "client"
  readonly siloId: string | undefined
}

/** What the server said about itself. */
export interface ServerAnswer {
  readonly siloId?: string | undefined
  readonly generation?: number | undefined
}

export type ClientResult =
  | { readonly ok: true; readonly answer: ServerAnswer; readonly rest: Buffer }
  | { readonly ok: false; readonly failure: HandshakeFailure }

/**
 * Runs the peer's side of the handshake on a connected `socket`; `done` is called once.
 * On success the socket is paused (nothing read is lost before its owner listens); the
 * returned function cancels (removes every listener it added).
 */
export const clientHandshake = (socket: Net.Socket, params: ClientParams, done: (result: ClientResult) => void): () => void => {
  let reader = new FirstFrame()
  let ours: string | undefined
  let theirs = ""
  let finished = false
  const cleanup = () => {
    finished = true
    socket.off("data", onData)
    socket.off("error", onError)
    socket.off("close", onClose)
  }
  const fail = (failure: HandshakeFailure) => {
    if (finished) return
    cleanup()
    done({ ok: false, failure })
  }
  const onError = (error: Error) => fail(new HandshakeFailure(`during the handshake: ${error.message}`, false))
  const onClose = () => fail(new HandshakeFailure("the peer closed the connection during the handshake", false))
  const onData = (chunk: Buffer) => {
    let frame: HandshakeFrame | undefined
    try {
      frame = reader.push(chunk)
    } catch (error) {
      return fail(error as HandshakeFailure)
    }
    if (frame === undefined) return
    const body = frame.body
    if (frame.kind === kindRefuse) {
      return fail(new HandshakeFailure(`refused by the peer: ${String(body.reason).slice(0, 300)}`, true))
    }
    if (ours === undefined) {
      if (frame.kind !== kindChallenge) return fail(new HandshakeFailure("the peer did not open with a challenge", false))
      if (body.v !== protocolVersion) {
        return fail(new HandshakeFailure(`the peer speaks protocol version ${String(body.v)}; this one speaks ${protocolVersion}`, true))
      }
      theirs = str(body.nonce) ?? ""
      ours = nonce()
      const proof = params.role === "silo" && params.secret !== undefined ?
        hmac(params.secret, ["peer", params.clusterId, params.role, params.siloId, theirs, ours]) :
        undefined
      socket.write(encode(kindHello, {
        v: protocolVersion,
        cluster: params.clusterId,
        role: params.role,
        ...(params.siloId === undefined ? {} : { silo: params.siloId }),
        nonce: ours,
        ...(proof === undefined ? {} : { proof })
      }))
      reader = new FirstFrame()
      if (frame.rest.length > 0) onData(frame.rest)
      return
    }
    if (frame.kind !== kindWelcome) return fail(new HandshakeFailure("the peer did not answer with a welcome", false))
    const silo = str(body.silo)
    if (
      params.role === "silo" && params.secret !== undefined &&
      !proves(hmac(params.secret, ["server", params.clusterId, silo, ours, theirs]), body.proof)
    ) {
      return fail(new HandshakeFailure("the peer did not prove the cluster secret", true))
    }
    socket.pause()
    cleanup()
    done({
      ok: true,
      answer: { siloId: silo, generation: typeof body.generation === "number" ? body.generation : undefined },
      rest: frame.rest
    })
  }
  socket.on("data", onData)
  socket.on("error", onError)
  socket.on("close", onClose)
  return cleanup
}

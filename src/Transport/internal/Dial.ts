/**
 * One connection attempt of a `Connection`: TCP (`node:net`) or TLS (`node:tls`), then the
 * peer's side of the handshake (`Handshake.ts`), all within the connect timeout. It
 * succeeds with a socket that has said nothing of its own yet and is paused, so its owner
 * loses no byte before it listens.
 *
 * @internal
 */
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import { Effect, Redacted, Schema } from "effect"
import type { Credentials } from "../Tls.ts"
import { type ClientParams, clientHandshake, defaultClusterId, type ServerAnswer } from "./Handshake.ts"

/** @internal */
export class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", {
  reason: Schema.String,
  code: Schema.optional(Schema.String),
  /** The peer refused this one (or spoke another protocol): a configuration mismatch, not an outage. */
  refused: Schema.optional(Schema.Boolean)
}) {}

/** @internal */
export interface Dialed {
  readonly socket: Net.Socket
  /** Bytes that followed the handshake in its last chunk. */
  readonly rest: Buffer
  readonly answer: ServerAnswer
}

/** @internal */
export interface DialOptions {
  readonly host: string
  readonly port: number
  readonly credentials: Credentials | undefined
  readonly timeoutMillis: number
  readonly params: () => ClientParams
}

/** What a connection says in its handshakes, from its options (the secret unwrapped once; the silo id read at each). */
export const handshakeParams = (options: {
  readonly clusterId?: string | undefined
  readonly clusterSecret?: Redacted.Redacted<string> | string | undefined
  readonly role?: "silo" | "client" | undefined
  readonly siloId?: (() => string | undefined) | undefined
}): () => ClientParams => {
  const secret = options.clusterSecret
  const params: ClientParams = {
    clusterId: options.clusterId ?? defaultClusterId,
    secret: secret === undefined ? undefined : Redacted.isRedacted(secret) ? Redacted.value(secret) : secret,
    role: options.role ?? "client",
    siloId: undefined
  }
  const siloId = options.siloId
  return siloId === undefined ? () => params : () => ({ ...params, siloId: siloId() })
}

const errorCode = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "string" ? code : undefined
}

const ignore = (): void => {}

/** @internal */
export const dial = (options: DialOptions): Effect.Effect<Dialed, ConnectFailed> =>
  Effect.callback<Dialed, ConnectFailed>((resume) => {
    const credentials = options.credentials
    const socket = credentials === undefined ?
      Net.connect({ host: options.host, port: options.port }) :
      NodeTls.connect(credentials.connectOptions(options.host, options.port))
    socket.setNoDelay(true)
    socket.setTimeout(options.timeoutMillis)
    let settled = false
    let cancel: (() => void) | undefined
    const fail = (error: unknown, refused: boolean) => {
      if (settled) return
      settled = true
      cancel?.()
      socket.destroy()
      const reason = error instanceof Error ? error.message : String(error)
      resume(Effect.fail(new ConnectFailed({ reason, code: errorCode(error), ...(refused ? { refused } : {}) })))
    }
    const onError = (error: Error) => fail(error, false)
    const onTimeout = () => fail(new Error("connect timed out"), false)
    socket.once("error", onError)
    socket.once("timeout", onTimeout)
    socket.once(credentials === undefined ? "connect" : "secureConnect", () => {
      socket.off("error", onError)
      // Until the owner listens: an error then is followed by a close, which it sees.
      socket.on("error", ignore)
      cancel = clientHandshake(socket, options.params(), (result) => {
        if (!result.ok) return fail(result.failure, result.failure.refused)
        settled = true
        socket.off("timeout", onTimeout)
        socket.setTimeout(0)
        resume(Effect.succeed({ socket, rest: result.rest, answer: result.answer }))
      })
    })
    return Effect.sync(() => {
      settled = true
      cancel?.()
      socket.destroy()
    })
  })

/**
 * The TCP server side of the silo transport: accepts connections, decodes request
 * frames, runs `handle` for each request in its own fiber and writes the replies as they
 * complete (out of order), coalescing all replies finished in one tick into one write.
 *
 * - With `tls`, it listens with `node:tls` (mutual TLS when a CA is given, see `Tls`); the
 *   rest of these rules hold as they are on TLS sockets. A reload of the credentials is
 *   applied with `setSecureContext`: new connections get it, open ones keep theirs. A
 *   failed TLS handshake is logged through the limiter below.
 * - Every connection begins with the handshake of `internal/Handshake.ts`: a peer of
 *   another protocol version or `clusterId`, or one claiming to be a silo without proving
 *   `clusterSecret` (when set), is refused with one log line and closed before any request
 *   is decoded. `handle` gets the peer's {@link PeerInfo} (its role, silo id and verified
 *   certificate) with every request: one object per connection, made at the handshake.
 * - A connection whose handshake is not done within `firstFrameTimeout` (default 10 s) is
 *   closed (and logged). A client's connection (role `"client"`) with nothing in flight and
 *   nothing received for `idleTimeout` (default 5 minutes) is closed with a `goAway` frame:
 *   nothing sent after it is decoded, so the client resends what crossed it on a new
 *   connection, which it opens on its next call only. Silo peers are never closed for
 *   idleness: there are as many as members, and the membership closes them.
 *   Both are checked by one fiber per server, every quarter of the shorter timeout, on
 *   the server's `Clock`: a connection only counts the chunks it reads, so the check costs
 *   nothing per request.
 * - A frame larger than `maxFrameBytes` is skipped and answered with a `FrameTooLarge`
 *   transport error when its request id is readable; otherwise the connection is closed
 *   (and logged). The same goes for a frame that does not decode (`MalformedFrame`).
 * - A reply larger than `maxFrameBytes` is replaced with a `FrameTooLarge` transport error.
 * - A one-way request (`oneWay`) is handled but never answered; if it fails (a defect, or
 *   an outcome other than success) that is logged.
 * - A handler that dies is answered with a `Defect` reply; one interrupted (the scope
 *   closing) is not answered: its connection is being destroyed anyway.
 * - Flow control, per connection: writes respect backpressure (nothing more is written
 *   until the socket drains). While `maxBufferedBytes` (default 64 MiB) of replies wait to
 *   be sent, or `maxInFlight` handlers (default 10,000) run, the server stops reading that
 *   connection (no further request is even decoded) and resumes below the cap, so a peer
 *   that stops reading, or floods requests, cannot grow the server's memory without bound.
 * - A throw in a socket callback (decoding, starting a handler, writing its reply) is
 *   logged and closes that connection only. Socket errors are logged once per connection.
 * - One host holds at most `maxConnectionsPerHost` (1,024) open connections: a new one past
 *   that is closed at once (and logged through the limiter below).
 * - What a peer sends cannot flood the logs: every warning about a connection goes through
 *   a per-host `LogLimiter` (the first 5 per host per 10 s are logged as they are, the
 *   rest are counted and reported in one summary line per host and window, and when the
 *   scope closes).
 * - A peer's socket closing does not interrupt handlers already running (a turn cut
 *   half-way may have done part of its work): they finish and their replies are dropped.
 * - {@link Server.drain} stops accepting connections and requests (a request arriving
 *   after it began is answered with a `Draining` transport error, which callers map to
 *   `ActorUnavailable`: not delivered) and waits, within a timeout, until every running
 *   handler finished and its reply was written to the socket.
 * - Closing the scope stops listening, destroys every connection and interrupts the
 *   handlers still running (and waits for them).
 * - An accepted socket is one `quark_transport_connections{direction="inbound"}` (a
 *   process-wide metric, `MetricCatalog`) until its `'close'`.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import * as NodeTls from "node:tls"
import { Cause, Clock, Context, Deferred, Duration, Effect, Exit, Fiber, Redacted, Schema, Scope } from "effect"
import { kindRequest, peekRequestIdIn, readRequestIn, type ReplyOutcome, type RequestEnvelope, writeReply } from "./Envelope.ts"
import { defaultMaxBufferedBytes, defaultMaxFrameBytes, defaultMaxInFlight, FrameDecoder } from "./Frame.ts"
import * as Handshake from "./internal/Handshake.ts"
import { LogLimiter } from "./internal/LogLimiter.ts"
import { type Conn, type ConnHost, startHandshake, sweep } from "./internal/ServerConn.ts"
import { Writer } from "./internal/Writer.ts"
import type { PeerInfo } from "./PeerInfo.ts"
import * as Tls from "./Tls.ts"
import * as ProcessMetrics from "../Telemetry/internal/ProcessMetrics.ts"

export {
  /** @since 0.1.0 */
  defaultMaxBufferedBytes,
  /** @since 0.1.0 */
  defaultMaxInFlight
}

/**
 * @since 0.1.0
 */
export class ServerError extends Schema.TaggedError<ServerError>()("ServerError", {
  reason: Schema.String
}) {}

/**
 * @since 0.1.0
 */
export interface ServerOptions<R> {
  /** Default 127.0.0.1. */
  readonly host?: string | undefined
  /** 0 picks a free port (see {@link Server.port}). */
  readonly port: number
  /** Runs one request; `peer` is what the connection's handshake and TLS session said of its peer. */
  readonly handle: (request: RequestEnvelope, peer: PeerInfo) => Effect.Effect<ReplyOutcome, never, R>
  /** Listen with TLS (mutual when a CA is given). Default: plain TCP. */
  readonly tls?: Tls.TlsConfig | Tls.Credentials | undefined
  /** Peers that declare another cluster id are refused. Default `"quark"`. */
  readonly clusterId?: string | undefined
  /** When set, a peer claiming role `"silo"` must prove it knows it (clients need not). Never logged. */
  readonly clusterSecret?: Redacted.Redacted<string> | string | undefined
  /** This server's silo id (`host:port@generation`), told to peers in the handshake, once it has one. */
  readonly siloId?: (() => string | undefined) | undefined
  /** A connection whose handshake is not done by then is closed. Default {@link defaultFirstFrameTimeout} (10 s). */
  readonly firstFrameTimeout?: Duration.Input | undefined
  /** A client's connection idle this long is closed (see the module doc). Default {@link defaultIdleTimeout} (5 min). */
  readonly idleTimeout?: Duration.Input | "off" | undefined
  /** Default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
  /** Reply bytes waiting on one connection past which it is not read; default {@link defaultMaxBufferedBytes} (64 MiB). */
  readonly maxBufferedBytes?: number | undefined
  /** Running handlers of one connection at which it is not read; default {@link defaultMaxInFlight} (10,000). */
  readonly maxInFlight?: number | undefined
  /**
   * Open connections from one host (the peer's address, any port) past which a new one is
   * closed at once; default {@link defaultMaxConnectionsPerHost} (1,024). A silo or client
   * opens one connection to each silo, so only a flood comes near it.
   */
  readonly maxConnectionsPerHost?: number | undefined
}

/**
 * The default of `ServerOptions.maxConnectionsPerHost`.
 *
 * @since 0.2.0
 */
export const defaultMaxConnectionsPerHost = 1_024

/**
 * The default of `ServerOptions.firstFrameTimeout`: 10 seconds, time for a TLS handshake
 * and the transport's own over a slow link, short enough that silent sockets do not pile up.
 *
 * @since 0.2.0
 */
export const defaultFirstFrameTimeout: Duration.Input = "10 seconds"

/**
 * The default of `ServerOptions.idleTimeout`: 5 minutes. Clients reconnect on their next
 * call without losing one, so this only sheds the connections of clients gone quiet (or
 * gone without a FIN), at the cost of one reconnection per quiet spell.
 *
 * @since 0.2.0
 */
export const defaultIdleTimeout: Duration.Input = "5 minutes"

/**
 * @since 0.1.0
 */
export interface Server {
  readonly host: string
  /** The port actually bound. */
  readonly port: number
  /** Open connections. */
  readonly connections: Effect.Effect<number>
  /**
   * Completes once no connection is open (at once if none is). A draining silo waits for
   * it: every peer that dropped the silo from its view closes its idle connection to it.
   */
  readonly disconnected: Effect.Effect<void>
  /** Handlers running, across connections (including those whose connection closed). */
  readonly running: Effect.Effect<number>
  /** Bytes of replies waiting to be sent, across connections (encoded, or held by the sockets). */
  readonly bufferedBytes: Effect.Effect<number>
  /**
   * Stops accepting connections and requests (later requests are answered with a
   * `Draining` transport error) and waits until every running handler finished and its
   * reply was written to its socket, or until `timeout`. Connections stay open; closing the
   * scope closes them.
   */
  readonly drain: (timeout: Duration.Input) => Effect.Effect<void>
}

const draining: ReplyOutcome = {
  _tag: "TransportError",
  error: "Draining",
  message: "the server is draining: the request was not run"
}

const describe = (error: unknown): string => error instanceof Error ? error.message : String(error)

/**
 * Starts a server for the life of the scope.
 *
 * @since 0.1.0
 */
export const make = <R>(options: ServerOptions<R>): Effect.Effect<Server, ServerError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes
    const maxBufferedBytes = options.maxBufferedBytes ?? defaultMaxBufferedBytes
    const maxInFlight = options.maxInFlight ?? defaultMaxInFlight
    const maxConnectionsPerHost = options.maxConnectionsPerHost ?? defaultMaxConnectionsPerHost
    const firstFrameMillis = Duration.toMillis(Duration.fromInputUnsafe(options.firstFrameTimeout ?? defaultFirstFrameTimeout))
    const idleOption = options.idleTimeout ?? defaultIdleTimeout
    const idleMillis = idleOption === "off" ? Infinity : Duration.toMillis(Duration.fromInputUnsafe(idleOption))
    const secret = options.clusterSecret
    const handshake: Handshake.ServerParams = {
      clusterId: options.clusterId ?? Handshake.defaultClusterId,
      secret: secret === undefined ? undefined : Redacted.isRedacted(secret) ? Redacted.value(secret) : secret,
      siloId: options.siloId ?? (() => undefined)
    }
    const credentials = options.tls === undefined ?
      undefined :
      yield* Effect.mapError(Tls.resolve(options.tls), (error) => new ServerError({ reason: error.reason }))
    /** Open connections by peer host (a `Map`: the host comes from the socket, not the wire, but keep to one rule). */
    const perHost = new Map<string, number>()
    const context = yield* Effect.context<R>()
    const runFork = Effect.runForkWith(context)
    const handle = options.handle
    const conns = new Set<Conn>()
    // Handlers that did not finish while starting; the scope's close interrupts them.
    const fibers = new Set<Fiber.Fiber<ReplyOutcome>>()
    let drained: Deferred.Deferred<void> | undefined = undefined
    /** Waiting for the last connection to close (`disconnected`). */
    let lastClosed: Array<() => void> = []
    const clock = Context.get(context as Context.Context<never>, Clock.Clock)
    // Per peer host: what peers send cannot flood the logs (see LogLimiter).
    const limiter = new LogLimiter(
      (message, annotations) => void runFork(Effect.logWarning(message).pipe(Effect.annotateLogs(annotations))),
      { now: () => Number(clock.monotonicTimeNanosUnsafe()) / 1e6 }
    )
    const log = (conn: Conn, message: string, annotations: Record<string, unknown>) =>
      limiter.warn(conn.host, message, annotations)
    const now = () => Number(clock.monotonicTimeNanosUnsafe()) / 1e6

    const connHost: ConnHost = { now, log, firstFrameMillis, idleMillis, handshake }

    /** Completes the drain once nothing runs and every reply left. */
    const checkDrained = (): void => {
      if (drained === undefined || fibers.size > 0) return
      for (const conn of conns) if (conn.open && !conn.writer.idle) return
      Deferred.doneUnsafe(drained, Exit.void)
    }

    /** Closes one connection after something went wrong on it; the others go on. */
    const drop = (conn: Conn, message: string, error?: unknown): void => {
      if (!conn.open) return
      log(conn, message, error === undefined ? { peer: conn.peer } : { peer: conn.peer, error: describe(error) })
      conn.open = false
      conn.decoder.pause() // the rest of the chunk is not decoded
      conn.socket.destroy()
    }

    /** Stops or resumes reading `conn` as its caps say. */
    const updateReading = (conn: Conn): void => {
      const hold = conn.open && (conn.running >= maxInFlight || conn.writer.full)
      if (hold === conn.holding) return
      conn.holding = hold
      if (hold) {
        conn.socket.pause()
        conn.decoder.pause()
        return
      }
      try {
        conn.decoder.resume() // decodes what was held; may hold again
      } catch (error) {
        return drop(conn, "transport: closing the connection after an error in a request", error)
      }
      if (!conn.holding && conn.open) conn.socket.resume()
    }

    const reply = (conn: Conn, requestId: number, outcome: ReplyOutcome): void => {
      const writer = conn.writer
      const size = writeReply(writer.out, requestId, outcome, maxFrameBytes)
      if (size > maxFrameBytes) {
        writeReply(writer.out, requestId, {
          _tag: "TransportError",
          error: "FrameTooLarge",
          message: `reply of ${size} bytes exceeds the maximum of ${maxFrameBytes} bytes`
        }, maxFrameBytes)
      }
      writer.schedule()
      if (writer.full) updateReading(conn)
    }

    const done = (conn: Conn, request: RequestEnvelope, exit: Exit.Exit<ReplyOutcome>): void => {
      if (request.oneWay === true) {
        // Nobody waits for this outcome: a failure would vanish unless said here.
        if (Exit.isSuccess(exit)) {
          if (exit.value._tag !== "Success") {
            log(conn, "transport: one-way request failed", { peer: conn.peer, target: request.target, tag: request.tag, outcome: exit.value._tag })
          }
        } else if (!Cause.hasInterruptsOnly(exit.cause)) {
          log(conn, "transport: one-way request died", { peer: conn.peer, target: request.target, tag: request.tag, cause: Cause.pretty(exit.cause) })
        }
        return
      }
      if (!conn.open) return // the peer left: nobody to answer
      if (Exit.isSuccess(exit)) return reply(conn, request.requestId, exit.value)
      if (Cause.hasInterruptsOnly(exit.cause)) return
      reply(conn, request.requestId, { _tag: "Defect", defect: Cause.pretty(exit.cause) })
    }

    const reject = (
      conn: Conn,
      buf: Buffer,
      start: number,
      end: number,
      error: "FrameTooLarge" | "MalformedFrame",
      message: string
    ) => {
      const id = peekRequestIdIn(buf, start, end, kindRequest)
      if (id !== undefined) return reply(conn, id, { _tag: "TransportError", error, message })
      drop(conn, "transport: closing connection after an unanswerable frame", new Error(`${error}: ${message}`))
    }

    const onFrame = (conn: Conn, buf: Buffer, start: number, end: number): void => {
      let request: RequestEnvelope
      try {
        request = readRequestIn(buf, start, end)
      } catch (error) {
        return reject(conn, buf, start, end, "MalformedFrame", describe(error))
      }
      if (drained !== undefined) {
        if (request.oneWay !== true) return reply(conn, request.requestId, draining)
        log(conn, "transport: one-way request dropped: the server is draining", { peer: conn.peer, target: request.target, tag: request.tag })
        return
      }
      // A throw here (from `handle` itself) reaches the data callback, which closes the connection.
      const fiber = runFork(handle(request, conn.info))
      // A handler that finished while starting (the common case) needs no observer.
      const exit = fiber.pollUnsafe()
      if (exit !== undefined) return done(conn, request, exit)
      fibers.add(fiber)
      conn.running++
      fiber.addObserver((exit) => {
        fibers.delete(fiber)
        conn.running--
        try {
          done(conn, request, exit)
        } catch (error) {
          drop(conn, "transport: closing the connection after an error writing a reply", error)
        }
        if (conn.holding) updateReading(conn)
        if (drained !== undefined) checkDrained()
      })
      if (conn.running >= maxInFlight) updateReading(conn)
    }

    const serve = (socket: Net.Socket): void => {
      socket.setNoDelay(true)
      const remote = socket.remoteAddress ?? "unknown"
      const peer = `${remote}:${socket.remotePort}`
      const open = perHost.get(remote) ?? 0
      if (open >= maxConnectionsPerHost) {
        limiter.warn(remote, "transport: refusing a connection: its host has reached maxConnectionsPerHost", { peer, limit: maxConnectionsPerHost })
        socket.on("error", () => {}) // it is being destroyed: nothing to say
        socket.destroy()
        return
      }
      perHost.set(remote, open + 1)
      // The writer calls back before `conn` exists only through `onProgress`, which needs a socket first.
      let conn: Conn
      const writer = new Writer(maxBufferedBytes, () => {
        if (conn.holding) updateReading(conn)
        if (drained !== undefined) checkDrained()
      })
      const decoder = new FrameDecoder({
        onFrame: (frame) => onFrame(conn, frame, 0, frame.length),
        onFrameIn: (buf, start, end) => onFrame(conn, buf, start, end),
        onOversized: (size, prefix) =>
          reject(conn, prefix, 0, prefix.length, "FrameTooLarge", `frame of ${size} bytes exceeds the maximum of ${maxFrameBytes} bytes`)
      }, maxFrameBytes)
      const at = now()
      conn = {
        socket,
        peer,
        host: remote,
        writer,
        decoder,
        open: true,
        running: 0,
        holding: false,
        info: { address: peer, role: "client" },
        phase: "handshake",
        since: at,
        activity: 0,
        seen: 0,
        quietSince: at
      }
      conns.add(conn)
      ProcessMetrics.connectionsInbound.value++ // until its "close", below
      writer.attach(socket)
      const onData = (chunk: Buffer): void => {
        conn.activity++
        try {
          decoder.push(chunk)
          // Handlers that finished while starting have replied already: send that at once.
          if (!writer.out.isEmpty) writer.flush()
        } catch (error) {
          drop(conn, "transport: closing the connection after an error in a request", error)
        }
      }
      startHandshake(connHost, conn, onData)
      let errorLogged = false
      socket.on("error", (error: Error & { code?: string }) => {
        // "close" follows.
        if (errorLogged) return
        errorLogged = true
        log(conn, "transport: connection error", { peer, code: error.code, error: error.message })
      })
      socket.once("close", () => {
        ProcessMetrics.connectionsInbound.value--
        const left = (perHost.get(remote) ?? 1) - 1
        if (left === 0) perHost.delete(remote)
        else perHost.set(remote, left)
        conn.open = false
        conns.delete(conn)
        if (conns.size === 0 && lastClosed.length > 0) {
          const waiters = lastClosed
          lastClosed = []
          for (const wake of waiters) wake()
        }
        writer.detach()
        // Running handlers go on: cutting a turn half-way could leave its work half done.
        if (drained !== undefined) checkDrained()
      })
    }

    const server = credentials === undefined ?
      Net.createServer({ noDelay: true }, serve) :
      NodeTls.createServer({ ...credentials.serverOptions(), handshakeTimeout: firstFrameMillis }, serve)
    if (credentials !== undefined) {
      const tlsServer = server as NodeTls.Server
      const stop = credentials.onReload((next) => tlsServer.setSecureContext(next))
      yield* Effect.addFinalizer(() => Effect.sync(stop))
      tlsServer.on("tlsClientError", (error: Error & { code?: string }, socket: Net.Socket) => {
        const remote = socket.remoteAddress ?? "unknown"
        limiter.warn(remote, "transport: TLS handshake failed", { peer: `${remote}:${socket.remotePort}`, code: error.code, error: error.message })
      })
    }
    let serverClosed = false
    server.once("close", () => {
      serverClosed = true
    })
    const port = yield* Effect.callback<number, ServerError>((resume) => {
      const onError = (error: Error) => resume(Effect.fail(new ServerError({ reason: error.message })))
      server.once("error", onError)
      server.listen({ host, port: options.port }, () => {
        server.off("error", onError)
        resume(Effect.succeed((server.address() as Net.AddressInfo).port))
      })
    })

    const drain = (timeout: Duration.Input): Effect.Effect<void> =>
      Effect.suspend(() => {
        if (drained === undefined) {
          drained = Deferred.makeUnsafe<void>()
          server.close() // no new connections; the open ones stay
          checkDrained()
        }
        return Effect.timeoutOrElse(Deferred.await(drained), { duration: timeout, orElse: () => Effect.void })
      })

    const tick = Duration.millis(Math.max(5, Math.min(firstFrameMillis, idleMillis) / 4))
    yield* Effect.forkScoped(Effect.forever(Effect.andThen(Effect.sleep(tick), Effect.sync(() => sweep(connHost, conns)))))

    yield* Effect.addFinalizer(() =>
      Effect.suspend(() => {
        if (drained === undefined) server.close()
        for (const conn of conns) {
          conn.open = false
          conn.socket.destroy()
        }
        conns.clear()
        limiter.close() // reports the counts still waiting
        return Effect.andThen(
          Fiber.interruptAll(Array.from(fibers)),
          Effect.callback<void>((resume) => {
            if (serverClosed) return resume(Effect.void)
            server.once("close", () => resume(Effect.void))
          })
        )
      })
    )
    return {
      host,
      port,
      connections: Effect.sync(() => conns.size),
      disconnected: Effect.callback<void>((resume) => {
        if (conns.size === 0) return resume(Effect.void)
        const wake = () => resume(Effect.void)
        lastClosed.push(wake)
        return Effect.sync(() => {
          lastClosed = lastClosed.filter((waiter) => waiter !== wake)
        })
      }),
      running: Effect.sync(() => fibers.size),
      bufferedBytes: Effect.sync(() => {
        let total = 0
        for (const conn of conns) total += conn.writer.buffered
        return total
      }),
      drain
    } satisfies Server
  })

/**
 * A client connection to one peer silo over TCP (`node:net`), or TLS (`node:tls`) with
 * `tls`: one socket, multiplexing concurrent requests by request id.
 *
 * - Each socket opens with the handshake (`internal/Handshake.ts`); nothing is sent before
 *   it is done. A refusal (another cluster or protocol version, a wrong secret) fails the
 *   calls with {@link ActorUnavailable} ("refused: … a configuration mismatch") until an
 *   attempt succeeds; logged once per outage; attempts go on following `reconnect`.
 * - After a server's `goAway` (an idle client), calls that crossed it, never decoded, are
 *   sent again on the next connection, opened by the next call (status `"idle"` till then).
 * - Writes are coalesced (one `socket.write` per tick, or at once when 4 KiB wait, so 100
 *   fibers asking at once cost one syscall) and respect backpressure: when the socket asks
 *   to wait, frames wait in the buffer until `'drain'`. When `maxBufferedBytes` (default
 *   {@link defaultMaxBufferedBytes}, 64 MiB) wait, new calls and sends fail at once with
 *   {@link ActorUnavailable} ("backed up"; nothing was sent).
 * - At most `maxInFlight` calls wait for replies (default {@link defaultMaxInFlight},
 *   10,000); one more fails at once with ActorUnavailable (nothing was sent).
 * - Each call has a timeout: the connection's `defaultTimeout` (default 30 seconds) or the
 *   call's own `timeout`; it fails with {@link CallTimeout}. Deadlines are monotonic and
 *   follow Effect's `Clock` (a `TestClock` drives them): one fiber per connection sleeps
 *   until the earliest deadline.
 * - When the socket drops or the connection is closed, every call waiting for a reply fails
 *   at once: with {@link OutcomeUnknown} if its request was handed to `socket.write` (it
 *   may have run), with ActorUnavailable if it never was (still in the buffer, or waiting
 *   for a connection: safe to retry). The connection then reconnects following `reconnect`
 *   (default: exponential from 20 ms, capped at 2 s; the schedule restarts after each
 *   successful connection). While the connection is down between attempts, calls fail at
 *   once with ActorUnavailable; while an attempt is in progress (including the very
 *   first), calls wait in the buffer for it.
 * - A request larger than `maxFrameBytes` fails with {@link PayloadTooLarge} and nothing is
 *   sent; a reply frame larger than it fails the call it belongs to, the rest go on.
 * - A reply whose request id cannot be read means the stream can no longer be trusted: the
 *   socket is closed (and logged), its calls fail as above. So is a throw in the socket's
 *   data callback; an `onReply` that throws fails its own call with a defect. Socket
 *   errors are logged once per socket, failed connection attempts once per outage.
 *   A peer that accepts and then misbehaves at once can still make a connection log on
 *   every reconnection, so these warnings go through a `LogLimiter` keyed by the peer's
 *   host: the first 5 per 10 s are logged as they are, the rest are counted and reported
 *   in one summary line per window (and when the connection closes).
 * - Metrics (process-wide, `MetricCatalog`): calls waiting for a reply are
 *   `quark_transport_calls_in_flight` (every way a call leaves `pending` takes it off), an
 *   attached socket is one `quark_transport_connections{direction="outbound"}` until its
 *   `'close'`; frames and bytes are counted by the decoder and the writer.
 *
 * @since 0.1.0
 */
import type * as Net from "node:net"
import { Clock, Context, Duration, Effect, Fiber, type Redacted, Schedule, Scope } from "effect"
import { ActorUnavailable, CallTimeout, OutcomeUnknown, PayloadTooLarge } from "../Actor/ActorError.ts"
import * as ProcessMetrics from "../Telemetry/internal/ProcessMetrics.ts"
import {
  kindReply,
  type OutgoingRequest,
  peekRequestId,
  peekRequestIdIn,
  readReplyOutcomeIn,
  type ReplyOutcome,
  writeRequestWith
} from "./Envelope.ts"
import { defaultMaxBufferedBytes, defaultMaxFrameBytes, defaultMaxInFlight, FrameDecoder } from "./Frame.ts"
import { type Dialed, dial, handshakeParams } from "./internal/Dial.ts"
import { kindGoAway, type ServerAnswer } from "./internal/Handshake.ts"
import {
  describe,
  errorCode,
  failAll,
  malformedReply,
  type OnReply,
  Pending,
  replyItself,
  resendWritten,
  tooLarge
} from "./internal/Pending.ts"
import { LogLimiter } from "./internal/LogLimiter.ts"
import { Writer } from "./internal/Writer.ts"
import * as Tls from "./Tls.ts"

export {
  /** @since 0.1.0 */
  defaultMaxBufferedBytes,
  /** @since 0.1.0 */
  defaultMaxInFlight
}

/**
 * Default request timeout: 30 seconds.
 *
 * @since 0.1.0
 */
export const defaultTimeout: Duration.Input = "30 seconds"

/**
 * Default reconnect schedule: exponential from 20 ms (×2), capped at 2 seconds, forever.
 *
 * @since 0.1.0
 */
export const defaultReconnect: Schedule.Schedule<unknown, unknown> = Schedule.min([
  Schedule.exponential("20 millis"),
  Schedule.spaced("2 seconds")
])

/**
 * @since 0.1.0
 */
export interface ConnectionOptions {
  readonly host: string
  readonly port: number
  /** Default 30 seconds. */
  readonly defaultTimeout?: Duration.Input | undefined
  /** Default {@link defaultMaxFrameBytes} (16 MiB). */
  readonly maxFrameBytes?: number | undefined
  /** Bytes waiting to be sent past which calls fail at once; default {@link defaultMaxBufferedBytes} (64 MiB). */
  readonly maxBufferedBytes?: number | undefined
  /** Calls waiting for a reply past which calls fail at once; default {@link defaultMaxInFlight} (10,000). */
  readonly maxInFlight?: number | undefined
  /** Delays between failed connection attempts; default {@link defaultReconnect}. */
  readonly reconnect?: Schedule.Schedule<unknown, unknown> | undefined
  /** Bound on one connection attempt, handshake included; default 5 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
  /** TLS, verifying the server's certificate (see `Tls`). Default: plain TCP. */
  readonly tls?: Tls.TlsConfig | Tls.Credentials | undefined
  /** Said in the handshake; a server of another cluster refuses. Default `"quark"`. */
  readonly clusterId?: string | undefined
  /** Default `"client"`. */
  readonly role?: "silo" | "client" | undefined
  /** This silo's id, read at each handshake (it changes when the silo joins again). */
  readonly siloId?: (() => string | undefined) | undefined
  /** Role `"silo"`: proved to the server, which must prove it too. Never logged. */
  readonly clusterSecret?: Redacted.Redacted<string> | string | undefined
}

/**
 * What a caller sends: the envelope without the fields the connection fills in (request id,
 * timeout, one-way). Its payload may be the encoded bytes or their UTF-8 text.
 *
 * @since 0.1.0
 */
export type CallRequest = OutgoingRequest

/**
 * Options of one request on a connection. (Not the actor-level `CallOptions` a ref's
 * caller passes; this is what reaches the transport.)
 *
 * @since 0.1.0
 */
export interface RequestOptions {
  /** Overrides the connection's default timeout for this call (a number is milliseconds). */
  readonly timeout?: Duration.Input | undefined
}

/**
 * @since 0.1.0
 */
export type ConnectionStatus = "connecting" | "connected" | "idle" | "disconnected" | "closed"

/**
 * @since 0.1.0
 */
export interface Connection {
  readonly host: string
  readonly port: number
  /**
   * Sends a request and waits for its reply; `onReply` (default: the reply itself) turns the
   * reply into the call's result as it arrives, which saves a step per call. It is given the
   * request too, so one function can serve every call (no closure per call).
   */
  readonly call: <Req extends CallRequest, A = ReplyOutcome, E = never>(
    request: Req,
    options?: RequestOptions,
    onReply?: (outcome: ReplyOutcome, request: Req) => Effect.Effect<A, E>
  ) => Effect.Effect<A, E | CallTimeout | ActorUnavailable | OutcomeUnknown | PayloadTooLarge>
  /**
   * Sends a one-way request: completes once it is in the write buffer (a connection lost
   * before the flush loses it, as any one-way message may be lost).
   */
  readonly send: (request: CallRequest) => Effect.Effect<void, ActorUnavailable | PayloadTooLarge>
  readonly status: Effect.Effect<ConnectionStatus>
  /** Calls waiting for a reply. */
  readonly inFlight: Effect.Effect<number>
  /** What the server said of itself in the last handshake (its silo id and generation), once connected. */
  readonly server: Effect.Effect<ServerAnswer | undefined>
}

/**
 * The mutable core of a connection. Plain code: it runs in socket callbacks and on the
 * call path, where a fiber per event would cost more than the work.
 */
class Core {
  readonly host: string
  readonly port: number
  readonly peer: string
  readonly maxFrameBytes: number
  readonly maxInFlight: number
  readonly defaultTimeoutMillis: number
  readonly lostReason: string
  readonly closedReason: string
  readonly busyReason: string
  readonly backedUpReason: string
  readonly clock: Clock.Clock
  readonly runFork: <A, E>(effect: Effect.Effect<A, E>) => Fiber.Fiber<A, E>
  status: ConnectionStatus = "connecting"
  socket: Net.Socket | undefined = undefined
  readonly writer: Writer
  readonly pending = new Map<number, Pending>()
  nextId = 0
  decoder: FrameDecoder
  /** A failed connection attempt was logged; reset by the next successful one. */
  outageLogged = false
  timer: Fiber.Fiber<void> | undefined = undefined
  timerDeadline = Infinity
  /** Bounds this connection's warnings (see LogLimiter). */
  readonly limiter: LogLimiter
  /** Why the last attempt was refused, until one succeeds. */
  refusedReason: string | undefined = undefined
  answer: ServerAnswer | undefined = undefined
  /** Set while `idle`: starts the next connection. */
  wake: (() => void) | undefined = undefined

  constructor(options: ConnectionOptions, context: Context.Context<never>) {
    this.host = options.host
    this.port = options.port
    this.peer = `${this.host}:${this.port}`
    this.maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes
    this.maxInFlight = options.maxInFlight ?? defaultMaxInFlight
    this.defaultTimeoutMillis = Duration.toMillis(options.defaultTimeout ?? defaultTimeout)
    this.lostReason = `connection to ${this.peer} lost`
    this.closedReason = `connection to ${this.peer} closed`
    this.busyReason = `connection to ${this.peer} has ${this.maxInFlight} calls in flight; not sent`
    const maxBufferedBytes = options.maxBufferedBytes ?? defaultMaxBufferedBytes
    this.backedUpReason = `connection to ${this.peer} is backed up (${maxBufferedBytes} bytes waiting to be sent); not sent`
    this.writer = new Writer(maxBufferedBytes)
    this.clock = Context.get(context, Clock.Clock)
    this.runFork = Effect.runForkWith(context)
    this.decoder = this.makeDecoder()
    this.limiter = new LogLimiter(
      (message, annotations) => void this.runFork(Effect.logWarning(message).pipe(Effect.annotateLogs(annotations))),
      { now: () => this.now() }
    )
  }

  log(message: string, annotations: Record<string, unknown>): void {
    this.limiter.warn(this.host, message, { peer: this.peer, ...annotations })
  }

  /** Monotonic milliseconds. */
  now(): number {
    return Number(this.clock.monotonicTimeNanosUnsafe()) / 1e6
  }

  makeDecoder(): FrameDecoder {
    return new FrameDecoder({
      onFrame: (frame) => this.onReply(frame, 0, frame.length),
      onFrameIn: (buf, start, end) => this.onReply(buf, start, end),
      onOversized: (size, prefix) => {
        const id = peekRequestId(prefix, kindReply)
        if (id === undefined) return this.untrusted(`an oversized reply frame (${size} bytes) without a readable request id`)
        const entry = this.pending.get(id)
        if (entry === undefined) return
        this.pending.delete(id)
        ProcessMetrics.callsInFlight.value--
        entry.resume(Effect.fail(tooLarge(entry.request.target, entry.request.tag, size, this.maxFrameBytes)))
      }
    }, this.maxFrameBytes)
  }

  /** A reply frame at `buf[start, end)`. */
  onReply(buf: Buffer, start: number, end: number): void {
    const id = peekRequestIdIn(buf, start, end, kindReply)
    if (id === undefined) {
      if (end - start === 1 && buf[start] === kindGoAway) return this.goAway()
      return this.untrusted("a reply frame without a readable request id")
    }
    const entry = this.pending.get(id)
    if (entry === undefined) return // timed out or interrupted meanwhile: not even decoded
    let outcome: ReplyOutcome
    try {
      outcome = readReplyOutcomeIn(buf, start, end)
    } catch {
      // A reply we cannot read fails the call it names; the stream stays in sync.
      outcome = malformedReply
    }
    this.settle(id, entry, outcome)
  }

  settle(id: number, entry: Pending, outcome: ReplyOutcome): void {
    this.pending.delete(id)
    ProcessMetrics.callsInFlight.value--
    let result: Effect.Effect<unknown, unknown>
    try {
      result = entry.onReply(outcome, entry.request)
    } catch (error) {
      result = Effect.die(error) // the caller's own code: its call, not the connection, pays
    }
    entry.resume(result)
  }

  /**
   * Starts a call (the body of its `Effect.callback`): refuses it at once, or encodes it,
   * records it as pending and returns the canceller that forgets it.
   */
  start(
    request: CallRequest,
    options: RequestOptions | undefined,
    onReply: OnReply,
    resume: (effect: Effect.Effect<unknown, unknown>) => void
  ): Effect.Effect<void> | undefined {
    const refused = this.refusal(request)
    if (refused !== undefined) {
      resume(Effect.fail(refused))
      return undefined
    }
    if (this.pending.size >= this.maxInFlight) {
      resume(Effect.fail(new ActorUnavailable({ address: request.target, reason: this.busyReason })))
      return undefined
    }
    const timeout = options?.timeout
    const timeoutMillis = timeout === undefined ? this.defaultTimeoutMillis : Duration.toMillis(timeout)
    const requestId = this.nextId = (this.nextId + 1) >>> 0
    const writer = this.writer
    const seq = writer.writes
    const size = writeRequestWith(writer.out, request, requestId, timeoutMillis, false, this.maxFrameBytes)
    if (size > this.maxFrameBytes) {
      resume(Effect.fail(tooLarge(request.target, request.tag, size, this.maxFrameBytes)))
      return undefined
    }
    const deadline = this.now() + timeoutMillis
    this.pending.set(requestId, new Pending(request, timeoutMillis, deadline, seq, onReply, resume))
    // The process-wide gauge follows `pending`: every removal below takes one off.
    ProcessMetrics.callsInFlight.value++
    if (deadline < this.timerDeadline) this.armTimer(deadline)
    writer.schedule()
    return Effect.sync(() => {
      // Interrupted: unless a reply, timeout or loss removed it first.
      if (this.pending.delete(requestId)) ProcessMetrics.callsInFlight.value--
    })
  }

  /** Why a request cannot be sent now, or undefined. */
  refusal(request: CallRequest): ActorUnavailable | undefined {
    const status = this.status
    if (status !== "connected" && status !== "connecting") {
      if (status === "idle") {
        this.status = "connecting"
        const wake = this.wake
        this.wake = undefined
        wake?.()
      } else {
        const reason = status === "closed" ? this.closedReason : this.refusedReason ?? this.lostReason
        return new ActorUnavailable({ address: request.target, reason })
      }
    }
    if (this.writer.full) return new ActorUnavailable({ address: request.target, reason: this.backedUpReason })
    return undefined
  }

  /** The server closes this idle connection, having decoded nothing since its last reply: see the module doc. */
  goAway(): void {
    const socket = this.socket
    if (socket === undefined) return
    this.socket = undefined
    this.decoder.pause()
    this.decoder = this.makeDecoder()
    const writer = this.writer
    writer.release()
    resendWritten(this.pending, writer, this.maxFrameBytes)
    if (this.status !== "closed") this.status = this.pending.size > 0 || !writer.out.isEmpty ? "connecting" : "idle"
    socket.destroy()
  }

  /** What the peer sends can no longer be trusted: drop the socket (the loop reconnects). */
  untrusted(what: string, error?: unknown): void {
    const socket = this.socket
    if (socket === undefined) return
    this.log(`transport: closing the connection after ${what}`, error === undefined ? {} : { error: describe(error) })
    this.decoder.pause() // nothing more from this stream
    this.lost()
    socket.destroy()
  }

  attach(socket: Net.Socket, rest: Buffer, onClose: () => void): void {
    this.socket = socket
    this.status = "connected"
    this.outageLogged = false
    this.refusedReason = undefined
    const decoder = this.decoder
    const writer = this.writer
    const onData = (chunk: Buffer) => {
      try {
        decoder.push(chunk)
        // Callers resumed by these replies may have asked again already: send that at once.
        if (!writer.out.isEmpty) writer.flush()
      } catch (error) {
        if (this.socket === socket) this.untrusted("an error in its data callback", error)
      }
    }
    socket.on("data", onData)
    let errorLogged = false
    socket.on("error", (error) => {
      // "close" follows and fails the calls; say why once.
      if (errorLogged || this.status === "closed") return
      errorLogged = true
      this.log("transport: connection error", { code: errorCode(error), error: error.message })
    })
    socket.once("close", () => {
      ProcessMetrics.connectionsOutbound.value--
      if (this.socket === socket) this.lost()
      onClose()
    })
    ProcessMetrics.connectionsOutbound.value++
    writer.attach(socket)
    socket.resume() // the handshake paused it
    if (rest.length > 0) onData(rest)
  }

  /** The socket is gone: fail everything in flight, reset the stream state. */
  lost(): void {
    this.socket = undefined
    if (this.status !== "closed") this.status = "disconnected"
    this.writer.detach()
    this.decoder = this.makeDecoder()
    this.failAll(this.lostReason)
  }

  /** Fails every waiting call: OutcomeUnknown if its request was written, ActorUnavailable if not. */
  failAll(reason: string): void {
    failAll(this.pending, this.writer.writes, reason)
  }

  // --- timeouts: one fiber sleeping until the earliest deadline --------------------------

  armTimer(deadline: number): void {
    if (deadline >= this.timerDeadline) return
    this.timer?.interruptUnsafe()
    this.timerDeadline = deadline
    this.timer = this.runFork(
      Effect.andThen(this.clock.sleep(Duration.millis(Math.max(0, deadline - this.now()))), this.expire)
    )
  }

  readonly expire = Effect.sync(() => {
    this.timer = undefined
    this.timerDeadline = Infinity
    const now = this.now()
    let next = Infinity
    for (const [id, entry] of this.pending) {
      if (entry.deadline <= now) {
        this.pending.delete(id)
        ProcessMetrics.callsInFlight.value--
        entry.resume(
          Effect.fail(
            new CallTimeout({ address: entry.request.target, tag: entry.request.tag, timeoutMillis: entry.timeoutMillis })
          )
        )
      } else if (entry.deadline < next) {
        next = entry.deadline
      }
    }
    if (next !== Infinity && this.status !== "closed") this.armTimer(next)
  })

  close(): void {
    this.status = "closed"
    this.timer?.interruptUnsafe()
    this.timer = undefined
    this.timerDeadline = Infinity
    const socket = this.socket
    this.socket = undefined
    socket?.destroy()
    this.failAll(this.closedReason)
    this.writer.detach()
    this.limiter.close() // reports the counts still waiting
  }
}

/**
 * Opens a connection to `host:port` for the life of the scope. Returns at once; the first
 * connection attempt runs in the background (calls made meanwhile wait for it).
 *
 * @since 0.1.0
 */
export const make = (options: ConnectionOptions): Effect.Effect<Connection, Tls.TlsError, Scope.Scope> =>
  Effect.gen(function*() {
    const core = new Core(options, yield* Effect.context<never>())
    const connectTimeoutMillis = Duration.toMillis(options.connectTimeout ?? "5 seconds")

    const credentials = options.tls === undefined ? undefined : yield* Tls.resolve(options.tls)
    const params = handshakeParams(options)

    const connectOnce = Effect.suspend(() => {
      core.status = "connecting"
      return dial({ host: core.host, port: core.port, credentials, timeoutMillis: connectTimeoutMillis, params })
    }).pipe(
      // Calls buffered for this attempt fail with it (never sent); later ones fail fast until the next.
      Effect.tapError((error) =>
        Effect.sync(() => {
          if (core.status === "connecting") core.status = "disconnected"
          if (error.refused === true) {
            core.refusedReason = `connection to ${core.peer} refused: ${error.reason} (a configuration mismatch: calls fail until it is fixed)`
          }
          if (!core.outageLogged) {
            core.outageLogged = true
            core.log(
              error.refused === true ? "transport: the peer refused the connection (retrying)" : "transport: cannot connect (retrying)",
              { code: error.code, error: error.reason }
            )
          }
          core.writer.out.clear()
          core.failAll(core.refusedReason ?? core.lostReason)
        })
      )
    )

    const untilClosed = ({ answer, rest, socket }: Dialed) =>
      Effect.callback<void>((resume) => {
        core.answer = answer
        core.attach(socket, rest, () => resume(Effect.void))
        return Effect.sync(() => socket.destroy())
      })

    /** After a `goAway` with nothing waiting: until the next call. */
    const untilNeeded = Effect.callback<void>((resume) => {
      if (core.status !== "idle") return resume(Effect.void)
      core.wake = () => resume(Effect.void)
      return Effect.sync(() => {
        core.wake = undefined
      })
    })

    const loop = Effect.retry(connectOnce, options.reconnect ?? defaultReconnect).pipe(
      Effect.flatMap(untilClosed),
      Effect.andThen(untilNeeded),
      Effect.forever,
      Effect.ignore
    )

    yield* Effect.forkScoped(loop)
    // Added last, so it runs first: the calls fail before the loop's interruption destroys the socket.
    yield* Effect.addFinalizer(() => Effect.sync(() => core.close()))

    const send = (request: CallRequest): Effect.Effect<void, ActorUnavailable | PayloadTooLarge> =>
      Effect.suspend((): Effect.Effect<void, ActorUnavailable | PayloadTooLarge> => {
        const refused = core.refusal(request)
        if (refused !== undefined) return Effect.fail(refused)
        const requestId = core.nextId = (core.nextId + 1) >>> 0
        const size = writeRequestWith(core.writer.out, request, requestId, 0, true, core.maxFrameBytes)
        if (size > core.maxFrameBytes) return Effect.fail(tooLarge(request.target, request.tag, size, core.maxFrameBytes))
        core.writer.schedule()
        return Effect.void
      })

    const call = <Req extends CallRequest, A = ReplyOutcome, E = never>(
      request: Req,
      options?: RequestOptions,
      onReply?: (outcome: ReplyOutcome, request: Req) => Effect.Effect<A, E>
    ): Effect.Effect<A, E | CallTimeout | ActorUnavailable | OutcomeUnknown | PayloadTooLarge> =>
      Effect.callback<A, E | CallTimeout | ActorUnavailable | OutcomeUnknown | PayloadTooLarge>((resume) =>
        core.start(request, options, (onReply ?? replyItself) as OnReply, resume as Pending["resume"])
      )

    return {
      host: core.host,
      port: core.port,
      call,
      send,
      status: Effect.sync(() => core.status),
      inFlight: Effect.sync(() => core.pending.size),
      server: Effect.sync(() => core.answer)
    } satisfies Connection
  })

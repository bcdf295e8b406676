/**
 * A client connection to one peer silo over TCP (`node:net`): one socket, multiplexing
 * concurrent requests by request id.
 *
 * - Writes are coalesced: frames are encoded into one {@link OutputBuffer} and flushed in
 *   a single `socket.write` at the end of the current tick (`process.nextTick`), so 100
 *   fibers asking at once cost one syscall.
 * - Each call has a timeout: the connection's `defaultTimeout` (default 30 seconds) or the
 *   call's own `timeout`; it fails with {@link CallTimeout}. Deadlines use one real timer
 *   per connection, armed for the earliest deadline (not the Effect Clock).
 * - When the socket drops, every in-flight call (written or still buffered) fails at once
 *   with {@link ActorUnavailable} (`connection to host:port lost`); the connection then
 *   reconnects following `reconnect` (default: exponential from 20 ms, capped at 2 s;
 *   the schedule restarts after each successful connection). While the connection is
 *   down between attempts, calls fail at once with ActorUnavailable; while an attempt is
 *   in progress (including the very first), calls wait in the buffer for it.
 * - A request larger than `maxFrameBytes` fails with {@link PayloadTooLarge} and nothing is
 *   sent; a reply frame larger than it fails the call it belongs to, the rest go on.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import { Duration, Effect, Schedule, Schema, Scope } from "effect"
import { ActorAddress } from "../Actor/ActorAddress.ts"
import { ActorUnavailable, CallTimeout, PayloadTooLarge } from "../Actor/ActorError.ts"
import { kindReply, peekRequestId, readReply, type ReplyOutcome, type RequestEnvelope, writeRequest } from "./Envelope.ts"
import { defaultMaxFrameBytes, eagerFlushBytes, FrameDecoder, OutputBuffer } from "./Frame.ts"

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
  /** Delays between failed connection attempts; default {@link defaultReconnect}. */
  readonly reconnect?: Schedule.Schedule<unknown, unknown> | undefined
  /** Bound on one connection attempt; default 5 seconds. */
  readonly connectTimeout?: Duration.Input | undefined
}

/**
 * What a caller sends: the envelope without the fields the connection fills in.
 *
 * @since 0.1.0
 */
export type CallRequest = Omit<RequestEnvelope, "requestId" | "timeoutMillis">

/**
 * @since 0.1.0
 */
export interface CallOptions {
  /** Overrides the connection's default timeout for this call. */
  readonly timeout?: Duration.Input | undefined
}

/**
 * @since 0.1.0
 */
export type ConnectionStatus = "connecting" | "connected" | "disconnected" | "closed"

/**
 * @since 0.1.0
 */
export interface Connection {
  readonly host: string
  readonly port: number
  /**
   * Sends a request and waits for its reply; `onReply` (default: the reply itself) turns the
   * reply into the call's result as it arrives, which saves a step per call.
   */
  readonly call: <A = ReplyOutcome, E = never>(
    request: CallRequest,
    options?: CallOptions,
    onReply?: (outcome: ReplyOutcome) => Effect.Effect<A, E>
  ) => Effect.Effect<A, E | CallTimeout | ActorUnavailable | PayloadTooLarge>
  /**
   * Sends a one-way request: completes once it is in the write buffer (a connection lost
   * before the flush loses it, as any one-way message may be lost).
   */
  readonly send: (request: CallRequest) => Effect.Effect<void, ActorUnavailable | PayloadTooLarge>
  readonly status: Effect.Effect<ConnectionStatus>
  /** Calls waiting for a reply. */
  readonly inFlight: Effect.Effect<number>
}

const tooLarge = (target: ActorAddress, tag: string, size: number, maxBytes: number) =>
  new PayloadTooLarge({ address: target, tag, size, maxBytes })

class ConnectFailed extends Schema.TaggedError<ConnectFailed>()("ConnectFailed", { reason: Schema.String }) {}

interface Pending {
  readonly target: ActorAddress
  readonly tag: string
  readonly timeoutMillis: number
  readonly deadline: number
  readonly onReply: (outcome: ReplyOutcome) => Effect.Effect<unknown, unknown>
  readonly resume: (effect: Effect.Effect<unknown, unknown>) => void
}

/**
 * The mutable core of a connection. Plain code: it runs in socket callbacks and on the
 * call path, where a fiber per event would cost more than the work.
 */
class Core {
  readonly host: string
  readonly port: number
  readonly maxFrameBytes: number
  readonly defaultTimeoutMillis: number
  readonly lostReason: string
  status: ConnectionStatus = "connecting"
  socket: Net.Socket | undefined = undefined
  readonly pending = new Map<number, Pending>()
  nextId = 0
  out = new OutputBuffer()
  flushScheduled = false
  decoder: FrameDecoder
  timer: ReturnType<typeof setTimeout> | undefined = undefined
  timerDeadline = Infinity

  constructor(options: ConnectionOptions) {
    this.host = options.host
    this.port = options.port
    this.maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes
    this.defaultTimeoutMillis = Duration.toMillis(options.defaultTimeout ?? defaultTimeout)
    this.lostReason = `connection to ${this.host}:${this.port} lost`
    this.decoder = this.makeDecoder()
  }

  makeDecoder(): FrameDecoder {
    return new FrameDecoder({
      onFrame: (frame) => {
        let reply
        try {
          reply = readReply(frame)
        } catch {
          // A reply we cannot read fails the call it names, if any; the stream stays in sync.
          const id = peekRequestId(frame, kindReply)
          if (id !== undefined) this.settle(id, { _tag: "TransportError", error: "MalformedFrame", message: "malformed reply" })
          return
        }
        this.settle(reply.requestId, reply.outcome)
      },
      onOversized: (size, prefix) => {
        const id = peekRequestId(prefix, kindReply)
        if (id === undefined) return
        const entry = this.pending.get(id)
        if (entry === undefined) return
        this.pending.delete(id)
        entry.resume(Effect.fail(tooLarge(entry.target, entry.tag, size, this.maxFrameBytes)))
      }
    }, this.maxFrameBytes)
  }

  settle(id: number, outcome: ReplyOutcome): void {
    const entry = this.pending.get(id)
    if (entry === undefined) return // timed out or interrupted meanwhile
    this.pending.delete(id)
    entry.resume(entry.onReply(outcome))
  }

  readonly flush = (): void => {
    this.flushScheduled = false
    const socket = this.socket
    if (socket === undefined) return // connecting: kept until attached
    const chunk = this.out.take()
    if (chunk !== undefined) socket.write(chunk)
  }

  scheduleFlush(): void {
    if (this.socket === undefined) return
    if (this.out.pending >= eagerFlushBytes) return this.flush()
    if (this.flushScheduled) return
    this.flushScheduled = true
    process.nextTick(this.flush)
  }

  attach(socket: Net.Socket, onClose: () => void): void {
    this.socket = socket
    this.status = "connected"
    const decoder = this.decoder
    socket.on("data", (chunk: Buffer) => {
      decoder.push(chunk)
      // Callers resumed by these replies may have asked again already: send that at once.
      if (!this.out.isEmpty) this.flush()
    })
    socket.on("error", () => {}) // "close" follows
    socket.once("close", () => {
      if (this.socket === socket) this.lost()
      onClose()
    })
    this.scheduleFlush()
  }

  /** The socket is gone: fail everything in flight, reset the stream state. */
  lost(): void {
    this.socket = undefined
    if (this.status !== "closed") this.status = "disconnected"
    this.out.clear()
    this.decoder = this.makeDecoder()
    this.failAll(this.lostReason)
  }

  failAll(reason: string): void {
    if (this.pending.size === 0) return
    const entries = Array.from(this.pending.values())
    this.pending.clear()
    for (const entry of entries) {
      entry.resume(Effect.fail(new ActorUnavailable({ address: entry.target, reason })))
    }
  }

  // --- timeouts: one timer armed for the earliest deadline -------------------------------

  armTimer(deadline: number): void {
    if (deadline >= this.timerDeadline) return
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timerDeadline = deadline
    this.timer = setTimeout(this.onTimer, Math.max(0, deadline - Date.now()))
    this.timer.unref?.()
  }

  readonly onTimer = (): void => {
    this.timer = undefined
    this.timerDeadline = Infinity
    const now = Date.now()
    let next = Infinity
    for (const [id, entry] of this.pending) {
      if (entry.deadline <= now) {
        this.pending.delete(id)
        entry.resume(
          Effect.fail(new CallTimeout({ address: entry.target, tag: entry.tag, timeoutMillis: entry.timeoutMillis }))
        )
      } else if (entry.deadline < next) {
        next = entry.deadline
      }
    }
    if (next !== Infinity) this.armTimer(next)
  }

  close(): void {
    this.status = "closed"
    if (this.timer !== undefined) clearTimeout(this.timer)
    this.timer = undefined
    const socket = this.socket
    this.socket = undefined
    socket?.destroy()
    this.out.clear()
    this.failAll(`connection to ${this.host}:${this.port} closed`)
  }
}

/**
 * Opens a connection to `host:port` for the life of the scope. Returns at once; the first
 * connection attempt runs in the background (calls made meanwhile wait for it).
 *
 * @since 0.1.0
 */
export const make = (options: ConnectionOptions): Effect.Effect<Connection, never, Scope.Scope> =>
  Effect.gen(function*() {
    const core = new Core(options)
    const connectTimeoutMillis = Duration.toMillis(options.connectTimeout ?? "5 seconds")

    const connectOnce = Effect.callback<Net.Socket, ConnectFailed>((resume) => {
      core.status = "connecting"
      const socket = Net.connect({ host: core.host, port: core.port })
      socket.setNoDelay(true)
      socket.setTimeout(connectTimeoutMillis)
      const onError = (error: Error) => {
        socket.destroy()
        resume(Effect.fail(new ConnectFailed({ reason: error.message })))
      }
      const onTimeout = () => onError(new Error("connect timed out"))
      socket.once("error", onError)
      socket.once("timeout", onTimeout)
      socket.once("connect", () => {
        socket.off("error", onError)
        socket.off("timeout", onTimeout)
        socket.setTimeout(0)
        resume(Effect.succeed(socket))
      })
      return Effect.sync(() => socket.destroy())
    }).pipe(
      // Calls buffered for this attempt fail with it; later ones fail fast until the next.
      Effect.tapError(() =>
        Effect.sync(() => {
          if (core.status === "connecting") core.status = "disconnected"
          core.out.clear()
          core.failAll(core.lostReason)
        })
      )
    )

    const untilClosed = (socket: Net.Socket) =>
      Effect.callback<void>((resume) => {
        core.attach(socket, () => resume(Effect.void))
        return Effect.sync(() => socket.destroy())
      })

    const loop = Effect.retry(connectOnce, options.reconnect ?? defaultReconnect).pipe(
      Effect.flatMap(untilClosed),
      Effect.forever,
      Effect.ignore
    )

    yield* Effect.addFinalizer(() => Effect.sync(() => core.close()))
    yield* Effect.forkScoped(loop)

    const unavailable = (request: CallRequest, status: ConnectionStatus) =>
      new ActorUnavailable({
        address: request.target,
        reason: status === "closed" ? `connection to ${core.host}:${core.port} closed` : core.lostReason
      })

    const send = (request: CallRequest): Effect.Effect<void, ActorUnavailable | PayloadTooLarge> =>
      Effect.suspend((): Effect.Effect<void, ActorUnavailable | PayloadTooLarge> => {
        const status = core.status
        if (status === "disconnected" || status === "closed") return Effect.fail(unavailable(request, status))
        const requestId = core.nextId = (core.nextId + 1) >>> 0
        const size = writeRequest(core.out, { ...request, requestId, timeoutMillis: 0, oneWay: true }, core.maxFrameBytes)
        if (size > core.maxFrameBytes) return Effect.fail(tooLarge(request.target, request.tag, size, core.maxFrameBytes))
        core.scheduleFlush()
        return Effect.void
      })

    const call = <A = ReplyOutcome, E = never>(
      request: CallRequest,
      callOptions?: CallOptions,
      onReply: (outcome: ReplyOutcome) => Effect.Effect<A, E> = Effect.succeed as any
    ): Effect.Effect<A, E | CallTimeout | ActorUnavailable | PayloadTooLarge> =>
      Effect.callback<A, E | CallTimeout | ActorUnavailable | PayloadTooLarge>((resume) => {
        const status = core.status
        if (status === "disconnected" || status === "closed") {
          resume(Effect.fail(unavailable(request, status)))
          return
        }
        const timeoutMillis = callOptions?.timeout === undefined ?
          core.defaultTimeoutMillis :
          Duration.toMillis(callOptions.timeout)
        const requestId = core.nextId = (core.nextId + 1) >>> 0
        const envelope: RequestEnvelope = {
          requestId,
          target: request.target,
          tag: request.tag,
          payload: request.payload,
          context: request.context,
          chain: request.chain,
          trace: request.trace,
          timeoutMillis,
          forwarded: request.forwarded
        }
        const size = writeRequest(core.out, envelope, core.maxFrameBytes)
        if (size > core.maxFrameBytes) {
          resume(Effect.fail(tooLarge(request.target, request.tag, size, core.maxFrameBytes)))
          return
        }
        const deadline = Date.now() + timeoutMillis
        core.pending.set(requestId, {
          target: request.target,
          tag: request.tag,
          timeoutMillis,
          deadline,
          onReply,
          resume: resume as Pending["resume"]
        })
        core.armTimer(deadline)
        core.scheduleFlush()
        return Effect.sync(() => {
          core.pending.delete(requestId)
        })
      })

    return {
      host: core.host,
      port: core.port,
      call,
      send,
      status: Effect.sync(() => core.status),
      inFlight: Effect.sync(() => core.pending.size)
    } satisfies Connection
  })

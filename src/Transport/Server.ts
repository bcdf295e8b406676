/**
 * The TCP server side of the silo transport: accepts connections, decodes request
 * frames, runs `handle` for each request in its own fiber and writes the replies as they
 * complete (out of order), coalescing all replies finished in one tick into one write.
 *
 * - A frame larger than `maxFrameBytes` is skipped and answered with a `FrameTooLarge`
 *   transport error when its request id is readable; otherwise the connection is closed
 *   (and logged). The same goes for a frame that does not decode (`MalformedFrame`).
 * - A reply larger than `maxFrameBytes` is replaced with a `FrameTooLarge` transport error.
 * - A one-way request (`oneWay`) is handled but never answered.
 * - A handler that dies is answered with a `Defect` reply; one interrupted (the scope
 *   closing) is not answered: its connection is being destroyed anyway.
 * - Closing the scope stops listening, destroys every connection and interrupts every
 *   running handler.
 *
 * @since 0.1.0
 */
import * as Net from "node:net"
import { Cause, Effect, Exit, Fiber, Schema, Scope } from "effect"
import { kindRequest, peekRequestId, readRequest, type ReplyOutcome, type RequestEnvelope, writeReply } from "./Envelope.ts"
import { defaultMaxFrameBytes, eagerFlushBytes, FrameDecoder, OutputBuffer } from "./Frame.ts"

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
  readonly handle: (request: RequestEnvelope) => Effect.Effect<ReplyOutcome, never, R>
  /** Default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
}

/**
 * @since 0.1.0
 */
export interface Server {
  readonly host: string
  /** The port actually bound. */
  readonly port: number
  /** Open connections. */
  readonly connections: Effect.Effect<number>
}

/**
 * Starts a server for the life of the scope.
 *
 * @since 0.1.0
 */
export const make = <R>(options: ServerOptions<R>): Effect.Effect<Server, ServerError, Scope.Scope | R> =>
  Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const maxFrameBytes = options.maxFrameBytes ?? defaultMaxFrameBytes
    const context = yield* Effect.context<R>()
    const runFork = Effect.runForkWith(context)
    const handle = options.handle
    const sockets = new Set<Net.Socket>()
    const log = (message: string, annotations: Record<string, unknown>) =>
      void runFork(Effect.logWarning(message).pipe(Effect.annotateLogs(annotations)))

    const serve = (socket: Net.Socket): void => {
      sockets.add(socket)
      socket.setNoDelay(true)
      const out = new OutputBuffer()
      const fibers = new Set<Fiber.Fiber<ReplyOutcome>>()
      let flushScheduled = false
      let open = true
      const peer = `${socket.remoteAddress}:${socket.remotePort}`
      const flush = () => {
        flushScheduled = false
        if (!open) return
        const chunk = out.take()
        if (chunk !== undefined) socket.write(chunk)
      }
      const reply = (requestId: number, outcome: ReplyOutcome) => {
        if (!open) return
        const size = writeReply(out, requestId, outcome, maxFrameBytes)
        if (size > maxFrameBytes) {
          writeReply(out, requestId, {
            _tag: "TransportError",
            error: "FrameTooLarge",
            message: `reply of ${size} bytes exceeds the maximum of ${maxFrameBytes} bytes`
          }, maxFrameBytes)
        }
        if (out.pending >= eagerFlushBytes) flush()
        else if (!flushScheduled) {
          flushScheduled = true
          process.nextTick(flush)
        }
      }
      const reject = (frame: Buffer, error: "FrameTooLarge" | "MalformedFrame", message: string) => {
        const id = peekRequestId(frame, kindRequest)
        if (id !== undefined) return reply(id, { _tag: "TransportError", error, message })
        log("transport: closing connection after an unanswerable frame", { peer, error, message })
        socket.destroy()
      }
      const decoder = new FrameDecoder({
        onFrame: (frame) => {
          let request: RequestEnvelope
          try {
            request = readRequest(frame)
          } catch (error) {
            return reject(frame, "MalformedFrame", error instanceof Error ? error.message : String(error))
          }
          const fiber = runFork(handle(request))
          const done = (exit: Exit.Exit<ReplyOutcome>) => {
            if (request.oneWay === true) return
            if (Exit.isSuccess(exit)) return reply(request.requestId, exit.value)
            if (Cause.hasInterruptsOnly(exit.cause)) return
            reply(request.requestId, { _tag: "Defect", defect: Cause.pretty(exit.cause) })
          }
          // A handler that finished while starting (the common case) needs no observer.
          const exit = fiber.pollUnsafe()
          if (exit !== undefined) return done(exit)
          fibers.add(fiber)
          fiber.addObserver((exit) => {
            fibers.delete(fiber)
            done(exit)
          })
        },
        onOversized: (size, prefix) =>
          reject(prefix, "FrameTooLarge", `frame of ${size} bytes exceeds the maximum of ${maxFrameBytes} bytes`)
      }, maxFrameBytes)
      socket.on("data", (chunk: Buffer) => {
        decoder.push(chunk)
        // Handlers that finished while starting have replied already: send that at once.
        if (!out.isEmpty) flush()
      })
      socket.on("error", () => {}) // "close" follows
      socket.once("close", () => {
        open = false
        sockets.delete(socket)
        for (const fiber of fibers) fiber.interruptUnsafe()
        fibers.clear()
      })
    }

    const server = Net.createServer({ noDelay: true }, serve)
    const port = yield* Effect.callback<number, ServerError>((resume) => {
      const onError = (error: Error) => resume(Effect.fail(new ServerError({ reason: error.message })))
      server.once("error", onError)
      server.listen({ host, port: options.port }, () => {
        server.off("error", onError)
        resume(Effect.succeed((server.address() as Net.AddressInfo).port))
      })
    })
    yield* Effect.addFinalizer(() =>
      Effect.callback<void>((resume) => {
        server.close(() => resume(Effect.void))
        for (const socket of sockets) socket.destroy()
        sockets.clear()
      })
    )
    return {
      host,
      port,
      connections: Effect.sync(() => sockets.size)
    } satisfies Server
  })

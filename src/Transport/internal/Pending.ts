/**
 * A call of a `Connection` waiting for its reply, and the small helpers of the connection's
 * core (see `Connection.ts`).
 *
 * @internal
 */
import { Effect } from "effect"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import { ActorUnavailable, OutcomeUnknown, PayloadTooLarge } from "../../Actor/ActorError.ts"
import * as ProcessMetrics from "../../Telemetry/internal/ProcessMetrics.ts"
import { type OutgoingRequest, type ReplyOutcome, writeRequestWith } from "../Envelope.ts"
import type { Writer } from "./Writer.ts"

export const tooLarge = (target: ActorAddress, tag: string, size: number, maxBytes: number) =>
  new PayloadTooLarge({ address: target, tag, size, maxBytes })

export type OnReply = (outcome: ReplyOutcome, request: OutgoingRequest) => Effect.Effect<unknown, unknown>

/** A call waiting for its reply. */
export class Pending {
  readonly request: OutgoingRequest
  readonly timeoutMillis: number
  /** Monotonic milliseconds of the connection's Clock. */
  readonly deadline: number
  /** `writer.writes` when the request was encoded: written once `writer.writes` exceeds it. */
  seq: number
  readonly onReply: OnReply
  readonly resume: (effect: Effect.Effect<unknown, unknown>) => void
  constructor(
    request: OutgoingRequest,
    timeoutMillis: number,
    deadline: number,
    seq: number,
    onReply: OnReply,
    resume: (effect: Effect.Effect<unknown, unknown>) => void
  ) {
    this.request = request
    this.timeoutMillis = timeoutMillis
    this.deadline = deadline
    this.seq = seq
    this.onReply = onReply
    this.resume = resume
  }
}

export const replyItself: OnReply = Effect.succeed

export const malformedReply: ReplyOutcome = { _tag: "TransportError", error: "MalformedFrame", message: "malformed reply" }

export const errorCode = (error: unknown): string | undefined => {
  const code = (error as { code?: unknown } | null)?.code
  return typeof code === "string" ? code : undefined
}

export const describe = (error: unknown): string => error instanceof Error ? error.message : String(error)


/** Fails every waiting call: OutcomeUnknown if its request was written (`seq < writes`), ActorUnavailable if not. */
export const failAll = (pending: Map<number, Pending>, writes: number, reason: string): void => {
  if (pending.size === 0) return
  const entries = Array.from(pending.values())
  ProcessMetrics.callsInFlight.value -= entries.length
  pending.clear()
  for (const entry of entries) {
    entry.resume(Effect.fail(
      entry.seq < writes ?
        new OutcomeUnknown({ address: entry.request.target, tag: entry.request.tag, reason }) :
        new ActorUnavailable({ address: entry.request.target, reason })
    ))
  }
}

/** Encodes again, for the next socket, the waiting calls already written to the last one (a `goAway` says they were not run). */
export const resendWritten = (pending: Map<number, Pending>, writer: Writer, maxFrameBytes: number): void => {
  const writes = writer.writes
  for (const [id, entry] of pending) {
    if (entry.seq >= writes) continue // still in the buffer
    writeRequestWith(writer.out, entry.request, id, entry.timeoutMillis, false, maxFrameBytes)
    entry.seq = writes
  }
}

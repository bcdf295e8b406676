/** A request and a handler for transport tests: the handler doubles the request's `n`. */
import { Effect, Schema } from "effect"
import type * as Connection from "../../src/Transport/Connection.ts"
import { payloadCodec, type ReplyOutcome, type RequestEnvelope } from "../../src/Transport/Envelope.ts"

export const Num = payloadCodec(Schema.Struct({ n: Schema.Number }))

export const request = (n: number, id = "1"): Connection.CallRequest => ({
  target: { type: "Counter", id },
  tag: "Double",
  payload: Num.encode({ n }),
  context: { correlationId: "c-1", metadata: {} },
  chain: []
})

export const success = (outcome: ReplyOutcome): number => {
  if (outcome._tag !== "Success") throw new Error(`expected Success, got ${JSON.stringify(outcome)}`)
  return Num.decode(outcome.value).n
}

/** Doubles `n`. */
export const doubler = (req: RequestEnvelope): Effect.Effect<ReplyOutcome> =>
  Effect.sync(() => ({ _tag: "Success", value: Num.encode({ n: Num.decode(req.payload).n * 2 }) }))

/** Bounds a wait that should end quickly: a hang fails the test in 5 s instead of 30. */
export const bounded = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  effect.pipe(Effect.timeoutOrElse({ duration: "5 seconds", orElse: () => Effect.die("bounded wait exceeded") }))

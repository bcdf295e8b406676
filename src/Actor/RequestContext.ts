/**
 * The request context that flows from a caller to a handler and onward through nested
 * calls: a request id, a correlation id and a string metadata map.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { CurrentTurn, emptyMetadata, Turn } from "./internal/Turn.ts"

/**
 * What a handler sees of the call that started its turn.
 *
 * @since 0.1.0
 */
export interface RequestContext {
  /** Unique per call within the silo. */
  readonly requestId: string
  /** Shared by every call made on behalf of one outside request. */
  readonly correlationId: string
  readonly metadata: Readonly<Record<string, string>>
}

/**
 * The request context of the current turn; outside any turn, the context set by
 * {@link withRequestContext}, or an empty one.
 *
 * @since 0.1.0
 */
export const current: Effect.Effect<RequestContext> = Effect.map(
  CurrentTurn,
  (turn): RequestContext =>
    turn === undefined ?
      { requestId: "", correlationId: "", metadata: emptyMetadata } :
      { requestId: String(turn.seq), correlationId: String(turn.correlation), metadata: turn.metadata }
)

/**
 * Runs `effect` so that the calls it makes carry this correlation id and metadata
 * (merged over what is already in force). Inside a handler the call chain is kept, so
 * deadlock detection still sees the calls as nested.
 *
 * @since 0.1.0
 */
export const withRequestContext: {
  (context: {
    readonly correlationId?: string | undefined
    readonly metadata?: Readonly<Record<string, string>> | undefined
  }): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>
} = (context) => (effect) =>
  Effect.withFiber((fiber) => {
    const outer = fiber.getRef(CurrentTurn)
    const frame = Turn.contextFrame(
      outer,
      context.correlationId ?? outer?.correlation,
      context.metadata === undefined ? outer?.metadata ?? emptyMetadata : { ...outer?.metadata, ...context.metadata }
    )
    return Effect.provideService(effect, CurrentTurn, frame)
  })


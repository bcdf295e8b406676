/**
 * Log lines written inside a turn say where they come from: `TurnLogs.annotate` wraps any
 * effect `Logger` so that a line logged in a turn carries the actor's address, the message,
 * the request and correlation ids and, under a sampled span, the trace and span ids (names
 * in `Attributes`). Nothing is paid per turn: the logger looks the turn up from the fiber
 * when a line is written.
 *
 * Sampling for hot actors: with `maxLinesPerActorPerSecond`, an actor's lines at Info and
 * below beyond that many in a second are dropped, and the next line it writes says how many
 * were (`quark.logs_suppressed`). Warnings and errors are never dropped.
 *
 * @since 0.2.0
 */
import { Context, type Fiber, Logger, LogLevel, References, Tracer } from "effect"
import { formatAddress } from "../Actor/ActorAddress.ts"
import { CurrentTurn } from "../Actor/internal/Turn.ts"
import * as Attributes from "./Attributes.ts"

/**
 * How turn log lines are annotated and sampled.
 *
 * @since 0.2.0
 */
export interface TurnLogOptions {
  /** At most this many Info-or-lower lines per actor per second; default: no limit. */
  readonly maxLinesPerActorPerSecond?: number | undefined
}

/** Per actor, the sampling window: its start, lines kept in it, lines dropped since the last kept. */
interface Window {
  start: number
  kept: number
  dropped: number
}

/** Windows kept at most: past it the oldest are forgotten (an actor's count starts again). */
const maxWindows = 10_000

/**
 * `logger` with turn annotations (and sampling, if asked for).
 *
 * @since 0.2.0
 */
export const annotate = <Message, Output>(
  logger: Logger.Logger<Message, Output>,
  options: TurnLogOptions = {}
): Logger.Logger<Message, Output | undefined> => {
  const limit = options.maxLinesPerActorPerSecond
  const windows = new Map<string, Window>()
  return Logger.make((entry) => {
    const fiber = entry.fiber
    const turn = fiber.getRef(CurrentTurn)
    const act = turn?.activation
    if (turn === undefined || act === undefined) return logger.log(entry)
    const address = formatAddress(act.address)
    let dropped = 0
    if (limit !== undefined && !LogLevel.isGreaterThan(entry.logLevel, "Info")) {
      const now = entry.date.getTime()
      let window = windows.get(address)
      if (window === undefined || now - window.start >= 1000) {
        if (window === undefined && windows.size >= maxWindows) windows.delete(windows.keys().next().value!)
        window = { start: now, kept: 0, dropped: window?.dropped ?? 0 }
        windows.set(address, window)
      }
      if (window.kept >= limit) {
        window.dropped++
        return undefined
      }
      window.kept++
      dropped = window.dropped
      window.dropped = 0
    }
    const annotations: Record<string, unknown> = { ...fiber.getRef(References.CurrentLogAnnotations) }
    annotations[Attributes.actorAddress] = address
    if (turn.info !== undefined) annotations[Attributes.message] = turn.info.tag
    annotations[Attributes.requestId] = String(turn.seq)
    annotations[Attributes.correlationId] = String(turn.correlation)
    const span = Context.getOrUndefined(fiber.context, Tracer.ParentSpan)
    if (span !== undefined && span.sampled) {
      annotations[Attributes.traceId] = span.traceId
      annotations[Attributes.spanId] = span.spanId
    }
    if (dropped > 0) annotations[Attributes.logsSuppressed] = dropped
    return withAnnotations(fiber, annotations, () => logger.log(entry))
  })
}

/** Runs `log` with the fiber's log annotations replaced, then puts them back. */
const withAnnotations = <A>(fiber: Fiber.Fiber<unknown, unknown>, annotations: Record<string, unknown>, log: () => A): A => {
  const previous = fiber.context
  fiber.setContext(Context.add(previous, References.CurrentLogAnnotations, annotations))
  try {
    return log()
  } finally {
    fiber.setContext(previous)
  }
}

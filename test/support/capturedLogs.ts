/**
 * A logger for tests that records every line (level, message, annotations) into an array
 * the test reads.
 */
import { Effect, Logger, References } from "effect"

export interface Captured {
  readonly level: string
  readonly message: string
  readonly annotations: Readonly<Record<string, unknown>>
}

/** Runs an effect with a logger that records into `into` (and nowhere else). */
export const capturingLogs = (into: Array<Captured>) =>
  Effect.provide(Logger.layer([
    Logger.make((options) => {
      into.push({
        level: options.logLevel,
        message: (Array.isArray(options.message) ? options.message : [options.message]).join(" "),
        annotations: options.fiber.getRef(References.CurrentLogAnnotations)
      })
    })
  ]))

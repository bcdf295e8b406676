/**
 * When a reminder fires, as data that can be stored: one shot at a time, a fixed period, or
 * a cron expression in a named time zone. Plus what happens to ticks that were missed (all
 * silos down, or the owner slow), how much jitter is added, and when the reminder ends.
 *
 * Everything here is plain, serializable data with a `Schema`, so a reminder survives every
 * silo restarting. Times are epoch milliseconds on the Effect `Clock` (so `TestClock` drives
 * every test).
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * The shortest period a reminder may have. Ticks are driven by the earliest due time, not by
 * polling, so the floor is set by what a tick costs (a turn, and on Redis or PostgreSQL two
 * writes), not by a poll interval.
 *
 * @since 0.1.0
 */
export const minimumPeriodMillis = 10

/**
 * One tick at `at` (epoch milliseconds).
 *
 * @since 0.1.0
 */
export const At = Schema.TaggedStruct("At", { at: Schema.Number })

/**
 * A tick every `periodMillis`, the first at `startAt` (epoch milliseconds).
 *
 * @since 0.1.0
 */
export const Every = Schema.TaggedStruct("Every", { periodMillis: Schema.Number, startAt: Schema.Number })

/**
 * A tick at each time a cron expression (5 or 6 fields, as effect's `Cron.parse` reads them)
 * matches in `timeZone` (an IANA name such as "Europe/Berlin", or "UTC").
 *
 * @since 0.1.0
 */
export const CronTiming = Schema.TaggedStruct("Cron", { expression: Schema.String, timeZone: Schema.String })

/**
 * @since 0.1.0
 */
export const Timing = Schema.Union([At, Every, CronTiming])

/**
 * @since 0.1.0
 */
export type Timing = typeof Timing.Type

/**
 * What happens to ticks whose due time passed while nobody could fire them. A tick is
 * *missed* when the due time of the tick after it has passed too; the latest due tick is
 * the current one, late, and fires under every policy (so a one-shot, or an owner a few
 * milliseconds behind, never loses its tick):
 * - `Skip`: the missed ticks are dropped; only the current one fires.
 * - `FireOnce` (the default): one catch-up tick fires for all the missed ones (at the due
 *   time of the last of them), then the current one.
 * - `FireEach`: the latest `max` due ticks fire, oldest first, the current one included.
 * Then the reminder goes on with its first due time in the future. The rules and their
 * reasons are in `internal/DueTimes.ts`.
 *
 * @since 0.1.0
 */
export const MissedTicks = Schema.Union([
  Schema.TaggedStruct("Skip", {}),
  Schema.TaggedStruct("FireOnce", {}),
  Schema.TaggedStruct("FireEach", { max: Schema.Number })
])

/**
 * @since 0.1.0
 */
export type MissedTicks = typeof MissedTicks.Type

/**
 * The stored description of a reminder's timing, besides its kind.
 *
 * @since 0.1.0
 */
export const TimingOptions = Schema.Struct({
  timing: Timing,
  missed: MissedTicks,
  /** Each tick fires up to this many milliseconds after its due time (0: none). */
  jitterMillis: Schema.Number,
  /** No tick is due after this time (epoch milliseconds). */
  endAt: Schema.optional(Schema.Number),
  /** The reminder ends after this many ticks. */
  maxTicks: Schema.optional(Schema.Number)
})

/**
 * @since 0.1.0
 */
export type TimingOptions = typeof TimingOptions.Type

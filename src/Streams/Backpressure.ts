/**
 * What a subscriber's buffer does when events arrive faster than its turns take them.
 *
 * Each subscription of each stream has a buffer of its own on the silo that delivers the
 * stream's partition, so a slow subscriber holds up only itself, except under `suspend`,
 * where holding up the producer is the point:
 *
 * | strategy | when the buffer is full | events lost |
 * |---|---|---|
 * | `suspend(capacity)` (default, 1,024) | the partition stops reading until there is room: every stream of the partition waits, and with the memory provider the producer's `publish` waits too (see `MemoryStreamProvider`'s `maxBacklog`) | none |
 * | `dropOldest(capacity)` | the oldest buffered event is dropped for the new one | oldest |
 * | `dropNewest(capacity)` | the new event is dropped | newest |
 * | `slidingWindow(window, capacity)` | as `dropOldest`; besides, an event older than `window` (by its token's time) when its turn comes is dropped | stale ones |
 * | `sample(every)` | one event is buffered: a newer one replaces it; at most one delivery per `every` | all but the latest of each interval |
 *
 * A dropped event counts as handled: it is acknowledged with the rest and shows in the
 * subscription's `dropped` count (`Streams.lag`) and in `quark_stream_events_total`.
 *
 * @since 0.2.0
 */
import { Duration, Schema } from "effect"

/**
 * A strategy as stored with a durable subscription.
 *
 * @since 0.2.0
 */
export const Backpressure = Schema.Union([
  Schema.TaggedStruct("Suspend", { capacity: Schema.Int }),
  Schema.TaggedStruct("DropOldest", { capacity: Schema.Int }),
  Schema.TaggedStruct("DropNewest", { capacity: Schema.Int }),
  Schema.TaggedStruct("SlidingWindow", { windowMillis: Schema.Number, capacity: Schema.Int }),
  Schema.TaggedStruct("Sample", { everyMillis: Schema.Number })
])

/**
 * @since 0.2.0
 */
export type Backpressure = typeof Backpressure.Type

/**
 * The default buffer size of a subscription.
 *
 * @since 0.2.0
 */
export const defaultCapacity = 1_024

const capacityOf = (capacity: number | undefined): number => {
  const value = capacity ?? defaultCapacity
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`a backpressure capacity must be a positive integer, not ${value}`)
  return value
}

const millisOf = (input: Duration.Input, what: string): number => {
  const millis = Duration.toMillis(Duration.fromInputUnsafe(input))
  if (!(millis > 0) || !Number.isFinite(millis)) throw new RangeError(`${what} must be a positive duration`)
  return millis
}

/**
 * Hold up the partition (and an in-process producer) while the buffer is full. Loses nothing.
 *
 * @since 0.2.0
 */
export const suspend = (capacity?: number): Backpressure => ({ _tag: "Suspend", capacity: capacityOf(capacity) })

/**
 * Drop the oldest buffered event for the new one.
 *
 * @since 0.2.0
 */
export const dropOldest = (capacity?: number): Backpressure => ({ _tag: "DropOldest", capacity: capacityOf(capacity) })

/**
 * Drop the new event.
 *
 * @since 0.2.0
 */
export const dropNewest = (capacity?: number): Backpressure => ({ _tag: "DropNewest", capacity: capacityOf(capacity) })

/**
 * Deliver only events younger than `window` when their turn comes (and, when full, drop the oldest).
 *
 * @since 0.2.0
 */
export const slidingWindow = (window: Duration.Input, capacity?: number): Backpressure => ({
  _tag: "SlidingWindow",
  windowMillis: millisOf(window, "a sliding window"),
  capacity: capacityOf(capacity)
})

/**
 * Deliver at most one event per `every`: the latest one that arrived.
 *
 * @since 0.2.0
 */
export const sample = (every: Duration.Input): Backpressure => ({ _tag: "Sample", everyMillis: millisOf(every, "a sample interval") })

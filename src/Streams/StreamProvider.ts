/**
 * Where streams live: the interface a stream provider implements (memory, Redis Streams).
 *
 * A provider is a set of `partitions`, each an ordered log of entries. Every event of one
 * stream goes to one partition (the `Streams` layer picks it by hashing the stream id), so
 * the order of a partition is the order of each of its streams. A partition is consumed by
 * one consumer at a time (its agent, a system actor with the cluster's single-activation
 * guarantee) through a consumer group:
 *
 * - `next` hands out entries not yet handed to anyone, in order, and makes them *pending*
 *   for the consumer that read them;
 * - `ack` retires pending entries (delivered, or given up on);
 * - `claim(minIdleMillis)` makes every pending entry of the partition that has waited at
 *   least that long, whoever read it, pending for the caller and returns them in order. A new
 *   consumer (a partition agent starting) claims them all (`claim(0)`), so that what a dead
 *   one read and did not acknowledge is delivered again (at least once). A positive bound
 *   leaves alone what a live consumer read recently (Redis's `XAUTOCLAIM` min-idle).
 * - `consume` fences: the newest consumer of a partition is its only reader. An older one's
 *   `next` and `claim` fail with {@link ConsumerFenced} and take nothing, whenever they
 *   reach the provider (a paused silo's read arriving after a survivor's agent started is
 *   refused, instead of taking entries that would stay pending under a consumer no one
 *   reads for). Its `ack` still works: what it delivered is done.
 *
 * Entries are kept after acknowledgement as history (for rewind) up to the provider's
 * retention, and never trimmed while pending. Durable subscriptions are stored here too,
 * so one provider is all a silo needs to configure.
 *
 * Every provider passes the conformance suite in `test/streams/conformance.ts`.
 *
 * @since 0.2.0
 */
import { type Effect, Schema, type Scope } from "effect"

/**
 * The provider failed (connection lost, server error). Whether a write happened is unknown.
 *
 * @since 0.2.0
 */
export class StreamProviderError extends Schema.TaggedError<StreamProviderError>()("StreamProviderError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `stream provider ${this.operation}: ${this.reason}`
  }
}

/**
 * A newer consumer of the partition has started (see `consume`): this one reads no more.
 * Not a failure of the provider: its agent was replaced and stops reading.
 *
 * @since 0.2.0
 */
export class ConsumerFenced extends Schema.TaggedError<ConsumerFenced>()("ConsumerFenced", {
  partition: Schema.Number,
  consumer: Schema.String
}) {
  override get message(): string {
    return `stream partition ${this.partition}: consumer ${this.consumer} was replaced by a newer one`
  }
}

/**
 * An event to append.
 *
 * @since 0.2.0
 */
export interface NewEntry {
  readonly namespace: string
  readonly key: string
  /** The event: a JSON value if the provider `encodes`, else the value itself. */
  readonly payload: unknown
}

/**
 * An entry of a partition.
 *
 * @since 0.2.0
 */
export interface StreamEntry extends NewEntry {
  /** Assigned by the provider at append: increasing within the partition (see `StreamToken`). */
  readonly token: string
}

/**
 * Where a read starts.
 *
 * @since 0.2.0
 */
export type Position =
  /** The oldest entry still kept. */
  | { readonly _tag: "Earliest" }
  /** The first entry after this token. */
  | { readonly _tag: "After"; readonly token: string }
  /** The first entry accepted at or after this time (epoch milliseconds). */
  | { readonly _tag: "Time"; readonly millis: number }

/**
 * The consumer of one partition (see the module doc).
 *
 * @since 0.2.0
 */
export interface PartitionConsumer {
  /**
   * Every pending entry of the partition (whoever read it) read at least `minIdleMillis`
   * ago (or claimed that long ago), now pending for this consumer and read now, in order.
   */
  readonly claim: (minIdleMillis: number) => Effect.Effect<ReadonlyArray<StreamEntry>, StreamProviderError | ConsumerFenced>
  /**
   * Up to `max` entries no consumer has read yet, in order, now pending for this one. With
   * none there, waits up to `waitMillis` for some (and returns none if none came).
   * Interruptible.
   */
  readonly next: (
    max: number,
    waitMillis: number
  ) => Effect.Effect<ReadonlyArray<StreamEntry>, StreamProviderError | ConsumerFenced>
  /** Retires pending entries (in any order; unknown tokens are ignored). */
  readonly ack: (tokens: ReadonlyArray<string>) => Effect.Effect<void, StreamProviderError>
}

/**
 * A reader of one partition outside the consumer group (pull consumers, rewind): reads
 * move nothing to pending and acknowledge nothing.
 *
 * @since 0.2.0
 */
export interface PartitionReader {
  /**
   * Up to `max` entries from `from`, in order. With none there, waits up to `waitMillis`
   * for some (0: does not wait). Interruptible.
   */
  readonly read: (from: Position, max: number, waitMillis: number) => Effect.Effect<ReadonlyArray<StreamEntry>, StreamProviderError>
}

/**
 * A durable subscription as stored: its id and the `Streams` layer's encoding of it.
 *
 * @since 0.2.0
 */
export interface StoredSubscription {
  readonly id: string
  readonly data: string
}

/**
 * @since 0.2.0
 */
export interface StreamProvider {
  /** For logs and metrics ("memory", "redis"). */
  readonly name: string
  /** How many partitions; fixed for the life of the provider's data. */
  readonly partitions: number
  /** Whether payloads must be JSON values (they cross a process boundary). */
  readonly encodes: boolean
  /** Appends entries to a partition, in order; returns their tokens once the provider has accepted them. */
  readonly append: (
    partition: number,
    entries: ReadonlyArray<NewEntry>
  ) => Effect.Effect<ReadonlyArray<string>, StreamProviderError>
  /**
   * The consumer of a partition, named `consumer` (a silo's id). The partition's consumer
   * group is created if it does not exist, at the partition's beginning: entries appended
   * before any consumer existed are delivered too (none is lost for want of a reader).
   * It becomes the partition's only reader: every consumer made before it, of any name, is
   * fenced (see the module doc).
   */
  readonly consume: (
    partition: number,
    consumer: string
  ) => Effect.Effect<PartitionConsumer, StreamProviderError, Scope.Scope>
  /** A reader of a partition outside the group (its own connection, where that matters). */
  readonly reader: (partition: number) => Effect.Effect<PartitionReader, StreamProviderError, Scope.Scope>
  /** The token of the newest entry of a partition, `undefined` if it has none. */
  readonly lastToken: (partition: number) => Effect.Effect<string | undefined, StreamProviderError>
  /** The durable subscriptions of one stream. */
  readonly subscriptions: {
    readonly list: (namespace: string, key: string) => Effect.Effect<ReadonlyArray<StoredSubscription>, StreamProviderError>
    /** Creates or replaces. */
    readonly put: (namespace: string, key: string, subscription: StoredSubscription) => Effect.Effect<void, StreamProviderError>
    /** `false` if there was none. */
    readonly remove: (namespace: string, key: string, id: string) => Effect.Effect<boolean, StreamProviderError>
  }
}

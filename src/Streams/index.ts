/**
 * Streams: publish events to a stream id; durable and implicit actor subscriptions deliver
 * them as turns, in order per stream, with backpressure; programs read them as effect
 * `Stream`s. The in-memory provider is here; Redis Streams is in `quark/persistence/redis`.
 *
 * @since 0.2.0
 */
export * as Streams from "./Streams.ts"
export * as StreamContract from "./StreamContract.ts"
export * as StreamId from "./StreamId.ts"
export * as StreamToken from "./StreamToken.ts"
export * as Backpressure from "./Backpressure.ts"
export * as MemoryStreamProvider from "./MemoryStreamProvider.ts"
export type {
  NewEntry,
  PartitionConsumer,
  PartitionReader,
  Position,
  StoredSubscription,
  StreamEntry,
  StreamProvider
} from "./StreamProvider.ts"
export { ConsumerFenced, StreamProviderError } from "./StreamProvider.ts"

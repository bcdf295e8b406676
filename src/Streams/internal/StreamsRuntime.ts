/**
 * What the partition agents of one silo share: the provider, the implicit subscriptions,
 * the delivery rules and the lanes (for `Streams.lag`).
 *
 * @internal
 */
import { Context, type Effect } from "effect"
import type { Backpressure } from "../Backpressure.ts"
import type { StreamProvider } from "../StreamProvider.ts"
import type { StreamTable } from "./StreamTable.ts"

/** An implicit subscription as the agents route it. */
export interface ImplicitRoute {
  /** `implicit:<type>#<message>`: unique per subscriber type and message. */
  readonly subscription: string
  readonly type: string
  readonly message: string
  readonly idOf: (key: string) => string
  readonly backpressure: Backpressure
}

export interface StreamsRuntimeShape {
  readonly provider: StreamProvider
  /** By namespace. */
  readonly implicit: ReadonlyMap<string, ReadonlyArray<ImplicitRoute>>
  /** Entries a partition agent reads at once. */
  readonly batchSize: number
  /** How long a read waits for entries before it looks again. */
  readonly pollMillis: number
  /** Attempts of a delivery whose turn failed, 100 ms doubling between them. */
  readonly retryAttempts: number
  /** How long an unavailable subscriber (its silo died, it is moving) is waited for. */
  readonly unavailableWaitMillis: number
  /** How long a stopping agent lets its deliveries under way finish. */
  readonly drainMillis: number
  /** How each agent active on this silo stops: all are stopped before the provider closes. */
  readonly agents: Set<Effect.Effect<void>>
  /** The streams (and their lanes) of the agents active on this silo, by partition. */
  readonly lanes: Map<number, StreamTable>
}

export class StreamsRuntime extends Context.Service<StreamsRuntime, StreamsRuntimeShape>()("quark/Streams/Runtime") {}

/** The request-context keys of a delivery. */
export const eventKeys = {
  namespace: "quark.stream.namespace",
  key: "quark.stream.key",
  token: "quark.stream.token",
  attempt: "quark.stream.attempt"
} as const

/**
 * The partition of a stream: FNV-1a of `namespace \0 key`, modulo the partition count. A
 * fixed function (not the ring's hash): every producer and silo computes the same one.
 */
export const partitionOf = (namespace: string, key: string, partitions: number): number => {
  let hash = 0x811c9dc5
  for (let i = 0; i < namespace.length; i++) {
    hash ^= namespace.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  hash = Math.imul(hash, 0x01000193) // the separator, a zero code unit
  for (let i = 0; i < key.length; i++) {
    hash ^= key.charCodeAt(i)
    hash = Math.imul(hash, 0x01000193)
  }
  return (hash >>> 0) % partitions
}

/**
 * A stream contract: the namespace of a kind of stream and the Schema of its events.
 * Producers, subscribers and pull consumers import the contract, as callers import an
 * actor contract; the events cross process boundaries in the Schema's encoded form.
 *
 * ```ts
 * const Reading = Schema.Struct({ celsius: Schema.Number, at: Schema.Number })
 * export const Readings = StreamContract.make("readings", Reading)
 * // an event on stream ("readings", "device-7"):
 * yield* Streams.publish(Readings, "device-7", { celsius: 21.5, at: Date.now() })
 * ```
 *
 * @since 0.2.0
 */
import type { Schema } from "effect"
import { invalidPartReason } from "./StreamId.ts"

/**
 * @since 0.2.0
 */
export interface StreamContract<A, I = A> {
  readonly namespace: string
  readonly schema: Schema.Codec<A, I>
}

/**
 * The event type of a contract.
 *
 * @since 0.2.0
 */
export type Event<Contract> = Contract extends StreamContract<infer A, infer _I> ? A : never

/**
 * Defines a stream contract. Throws on an empty or oversized namespace (a programming
 * error, found when the module loads).
 *
 * @since 0.2.0
 */
export const make = <A, I>(namespace: string, schema: Schema.Codec<A, I>): StreamContract<A, I> => {
  const reason = invalidPartReason("namespace", namespace)
  if (reason !== undefined) throw new Error(`stream contract: ${reason}`)
  return { namespace, schema }
}

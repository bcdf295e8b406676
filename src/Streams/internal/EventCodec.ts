/**
 * The JSON form of a stream contract's events (`Schema.toCodecJson`, as actor state and
 * messages are encoded), for providers whose payloads cross a process boundary.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import type { StreamContract } from "../StreamContract.ts"

/** The JSON form of a contract's events (`Schema.toCodecJson`), as state and messages are encoded. */
const jsonCodecs = new WeakMap<StreamContract<any, any>, Schema.Codec<any, unknown>>()
export const jsonCodecOf = <A, I>(contract: StreamContract<A, I>): Schema.Codec<A, unknown> => {
  let codec = jsonCodecs.get(contract)
  if (codec === undefined) {
    codec = Schema.toCodecJson(contract.schema as Schema.Codec<A, I>) as Schema.Codec<A, unknown>
    jsonCodecs.set(contract, codec)
  }
  return codec
}
/**
 * Encodes a batch of events to their JSON form, synchronously (one Effect per batch, not per
 * event: on the publish path the difference is measurable); the first that does not encode
 * fails the batch.
 */
export const encodeAll = <A, I>(contract: StreamContract<A, I>, events: ReadonlyArray<A>): Effect.Effect<Array<unknown>, Schema.SchemaError> => {
  const encode = Schema.encodeSync(jsonCodecOf(contract))
  return Effect.suspend(() => {
    const encoded = new Array<unknown>(events.length)
    try {
      for (let i = 0; i < events.length; i++) encoded[i] = encode(events[i]!)
    } catch (error) {
      if (Schema.isSchemaError(error)) return Effect.fail(error)
      return Effect.die(error)
    }
    return Effect.succeed(encoded)
  })
}


/**
 * The identity of a silo in the cluster: the address it serves on (`host`, `port`) and a
 * `generation` that tells incarnations of that address apart. A process that restarts on
 * the same host and port gets a new generation, so it is a new member: nothing the old
 * incarnation owned (activations, leases, its membership entry) carries over.
 *
 * The generation is the start time in milliseconds times 1000 plus a random number below
 * 1000 (so two processes started in the same millisecond still differ), read from Effect's
 * `Clock` and `Random`; within one process each call of {@link generate} returns a larger
 * generation than the one before. The value stays below 2^53, so it survives JSON and Lua.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Random, Schema } from "effect"

/**
 * A silo's identity. `id` (`host:port@generation`) is derived, not stored.
 *
 * @since 0.1.0
 */
export class SiloIdentity extends Schema.Class<SiloIdentity>("quark/SiloIdentity")({
  host: Schema.NonEmptyString,
  port: Schema.Int,
  generation: Schema.Int
}) {
  /** `host:port@generation`: unique per incarnation, never reused. */
  get id(): string {
    return formatId(this.host, this.port, this.generation)
  }
  /** `host:port`: the same for every incarnation at this address. */
  get address(): string {
    return `${this.host}:${this.port}`
  }
}

/**
 * Formats an id as `host:port@generation`.
 *
 * @since 0.1.0
 */
export const formatId = (host: string, port: number, generation: number): string => `${host}:${port}@${generation}`

/**
 * Splits an id into its address (`host:port`) and generation, or `undefined` if it is
 * not of the form `…@<digits>`. The generation follows the last `@`, so IPv6 hosts work.
 *
 * @since 0.1.0
 */
export const parseId = (id: string): { readonly address: string; readonly generation: number } | undefined => {
  const at = id.lastIndexOf("@")
  if (at <= 0 || !/^\d+$/.test(id.slice(at + 1))) return undefined
  return { address: id.slice(0, at), generation: Number(id.slice(at + 1)) }
}

let lastGeneration = 0

/**
 * A new generation: `startMillis * 1000 + random(0..999)`, and larger than any this process
 * generated before.
 *
 * @since 0.1.0
 */
export const nextGeneration: Effect.Effect<number> = Effect.gen(function*() {
  const millis = yield* Clock.currentTimeMillis
  const jitter = yield* Random.nextIntBetween(0, 999)
  const generation = Math.max(millis * 1000 + jitter, lastGeneration + 1)
  lastGeneration = generation
  return generation
})

/**
 * The identity of a silo starting now at `host:port`, with a fresh generation.
 *
 * @since 0.1.0
 */
export const generate = (host: string, port: number): Effect.Effect<SiloIdentity> =>
  Effect.map(nextGeneration, (generation) => new SiloIdentity({ host, port, generation }))

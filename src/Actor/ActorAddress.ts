/**
 * The address of a virtual actor: its type name and its id. Together they are the
 * identity of one actor in the whole cluster.
 *
 * @since 0.1.0
 */
import { Schema } from "effect"

/**
 * Longest accepted actor id, in UTF-16 code units. Ids travel in every envelope and
 * key every directory entry, so an unbounded id is a memory and bandwidth hazard.
 *
 * @since 0.1.0
 */
export const maxIdLength = 256

/**
 * An actor address: the stable type name and the id. A plain struct, so building one on
 * the call path costs one small object.
 *
 * @since 0.1.0
 */
export interface ActorAddress {
  readonly type: string
  readonly id: string
}

/**
 * The schema of an address, for errors and envelopes that cross a boundary.
 *
 * @since 0.1.0
 */
export const ActorAddress = Schema.Struct({
  type: Schema.String,
  id: Schema.String
})

/**
 * Formats an address as `Type/id`.
 *
 * @since 0.1.0
 */
export const formatAddress = (address: ActorAddress): string => `${address.type}/${address.id}`

/**
 * Returns the reason an id is invalid, or `undefined` when it is acceptable.
 *
 * @since 0.1.0
 */
export const invalidIdReason = (id: string): string | undefined => {
  if (id.length === 0) return "the id is empty"
  if (id.length > maxIdLength) return `the id is ${id.length} characters long; the limit is ${maxIdLength}`
  return undefined
}

/**
 * Formats a sequence of addresses as `A/1 -> B/2 -> A/1`, as used in deadlock reports.
 *
 * @since 0.1.0
 */
export const formatPath = (path: ReadonlyArray<ActorAddress>): string => path.map(formatAddress).join(" -> ")

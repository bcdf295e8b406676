/**
 * Placement: which silo a new activation of an address goes to. A policy is a pure
 * function of the address and the cluster as one silo sees it, so every silo that asks
 * the same question of the same view gets the same answer where the policy is
 * deterministic (consistent hashing), and policies are easy to test.
 *
 * - `consistentHash` (the default): the ring's owner. Every silo computes it alike, so no
 *   directory entry is needed.
 * - `random`: any alive silo. Silos would not agree, so the activation must be registered
 *   in the directory (`usesDirectory`), where concurrent first calls meet and one wins.
 * - `preferLocal`: the calling silo, if it is a member; otherwise the ring's owner. Also
 *   registered in the directory.
 * - `statelessWorker({ maxLocal })`: the calling silo, always, with up to `maxLocal`
 *   activations of one address on each silo (a call goes to an idle one, a new one while
 *   under the maximum, else the one with the shortest mailbox). For actors without identity
 *   that scale out: no directory, no single-activation guarantee. From a client (which
 *   hosts nothing), any alive silo.
 * - a custom policy implements {@link Placement}.
 *
 * A contract names its placement (`Actor.make(type, messages, { placement })`), so every
 * silo and client agrees on it; every silo of a cluster hosts every actor type.
 *
 * @since 0.1.0
 */
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import { actorKey, type HashRing } from "./HashRing.ts"

/**
 * The cluster as the placing silo sees it.
 *
 * @since 0.1.0
 */
export interface PlacementView {
  /** The placing silo's id. */
  readonly self: string
  /** The ring of alive silos. */
  readonly ring: HashRing
  /** A number in [0, 1): the source of randomness (Effect's `Random` in production, fixed in tests). */
  readonly random: () => number
}

/**
 * A placement policy.
 *
 * @since 0.1.0
 */
export interface Placement {
  readonly name: string
  /** The silo a new activation goes to, or `undefined` when there is no alive silo. */
  readonly place: (address: ActorAddress, view: PlacementView) => string | undefined
  /**
   * Whether the chosen silo must register the activation in the directory: true for every
   * policy whose answer another silo could not compute alike.
   */
  readonly usesDirectory: boolean
  /** Set for stateless workers: the most activations of one address on one silo. */
  readonly maxLocalActivations?: number | undefined
}

/**
 * The ring's owner of `Type/id`. The default.
 *
 * @since 0.1.0
 */
export const consistentHash: Placement = {
  name: "consistent-hash",
  place: (address, view) => view.ring.owner(actorKey(address)),
  usesDirectory: false
}

/**
 * Any alive silo that takes activations (weight above 0), uniformly.
 *
 * @since 0.1.0
 */
export const random: Placement = {
  name: "random",
  place: (_, view) => {
    const members = view.ring.members.filter((member) => (member.weight ?? 1) > 0)
    return members.length === 0 ? undefined : members[Math.floor(view.random() * members.length)].id
  },
  usesDirectory: true
}

/**
 * The placing silo when it is an alive member (calls from a client that hosts nothing
 * fall back to the ring's owner).
 *
 * @since 0.1.0
 */
export const preferLocal: Placement = {
  name: "prefer-local",
  place: (address, view) => view.ring.has(view.self) ? view.self : view.ring.owner(actorKey(address)),
  usesDirectory: true
}

/**
 * Stateless workers: every call runs on the calling silo (a client's on any alive silo),
 * on one of up to `maxLocal` activations of the address there (default 4).
 *
 * @since 0.1.0
 */
export const statelessWorker = (options?: { readonly maxLocal?: number | undefined }): Placement => {
  const maxLocal = options?.maxLocal ?? 4
  if (!Number.isInteger(maxLocal) || maxLocal < 1) {
    throw new RangeError(`statelessWorker: maxLocal must be a positive integer, got ${maxLocal}`)
  }
  return {
    name: "stateless-worker",
    place: (address, view) => view.ring.has(view.self) ? view.self : random.place(address, view),
    usesDirectory: false,
    maxLocalActivations: maxLocal
  }
}

/**
 * Placement: which silo a new activation of an address goes to. A policy is a pure
 * function of the address and the cluster as one silo sees it, so every silo that asks
 * the same question of the same view gets the same answer where the policy is
 * deterministic (consistent hashing), and policies are easy to test.
 *
 * The view a policy gets is the one of the address's type: its `ring` holds only the silos
 * that host the type (each silo announces the types it hosts, see `ClusterSilo`), so every
 * policy chooses among them, and `preferred` narrows that to the hosts that run the
 * caller's application version, when any does.
 *
 * - `consistentHash` (the default): the ring's owner. Every silo computes it alike, so no
 *   directory entry is needed. It does not prefer the caller's version: during a rolling
 *   upgrade a v1 and a v2 caller must agree on one owner, or an address would be activated
 *   on two silos.
 * - `random`: any alive host, among those that run the caller's version if any does. Silos
 *   would not agree, so the activation must be registered in the directory
 *   (`usesDirectory`), where concurrent first calls meet and one wins.
 * - `preferLocal`: the calling silo, if it hosts the type; otherwise the owner on the ring
 *   of the preferred hosts. Also registered in the directory.
 * - `leastLoaded(options)`: the least loaded of two hosts drawn at random (the power of
 *   two choices), by health score, then activation count, from the silos' load reports
 *   (see `Load`). Registered in the directory.
 * - `statelessWorker({ maxLocal })`: the calling silo, always, with up to `maxLocal`
 *   activations of one address on each silo (a call goes to an idle one, a new one while
 *   under the maximum, else the one with the shortest mailbox). For actors without identity
 *   that scale out: no directory, no single-activation guarantee. From a client (which
 *   hosts nothing), any alive silo.
 * - a custom policy implements {@link Placement}.
 *
 * A contract names its placement (`Actor.make(type, messages, { placement })`), so every
 * silo and client agrees on it. With no host of the type alive, every policy answers
 * `undefined` and the call fails with `NoHostForType`.
 *
 * @since 0.1.0
 */
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import { actorKey, type HashRing, type Node } from "./HashRing.ts"
import * as Load from "./Load.ts"
import * as TypeRings from "./internal/TypeRings.ts"

/**
 * The cluster as the placing silo sees it.
 *
 * @since 0.1.0
 */
export interface PlacementView {
  /** The placing silo's id. */
  readonly self: string
  /** The ring of the alive silos that host the address's type. */
  readonly ring: HashRing
  /**
   * Of those, the silos that run the caller's application version (`ClusterSiloConfig.version`,
   * `ClusterClientConfig.version`), as a ring: `ring` itself when none or all of them do.
   * Absent in a view built by hand: read it as `view.preferred ?? view.ring`.
   */
  readonly preferred?: HashRing | undefined
  /** A number in [0, 1): the source of randomness (Effect's `Random` in production, fixed in tests). */
  readonly random: () => number
  /**
   * The load silo `id` last reported (see `Load`), `undefined` when unknown; read by
   * `leastLoaded`. Absent in a view built by hand: every load is then unknown.
   */
  readonly loadOf?: ((id: string) => Load.Load | undefined) | undefined
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

const takesActivations = (member: Node): boolean => (member.weight ?? 1) > 0

/**
 * Any alive host of the type that takes activations (weight above 0), uniformly, among
 * those that run the caller's version if any does.
 *
 * @since 0.1.0
 */
export const random: Placement = {
  name: "random",
  place: (_, view) => {
    let members = (view.preferred ?? view.ring).members.filter(takesActivations)
    if (members.length === 0) members = view.ring.members.filter(takesActivations)
    return members.length === 0 ? undefined : members[Math.floor(view.random() * members.length)].id
  },
  usesDirectory: true
}

/**
 * The placing silo when it is an alive host of the type; otherwise (a client, or a silo
 * that does not host the type) the owner on the ring of the hosts that run the caller's
 * version, if any does, else of all hosts.
 *
 * @since 0.1.0
 */
export const preferLocal: Placement = {
  name: "prefer-local",
  place: (address, view) => {
    if (view.ring.has(view.self)) return view.self
    const key = actorKey(address)
    return (view.preferred ?? view.ring).owner(key) ?? view.ring.owner(key)
  },
  usesDirectory: true
}

/**
 * Options of {@link leastLoaded}.
 *
 * @since 0.2.0
 */
export interface LeastLoadedOptions {
  /** The health score (see `Load`). Default `Load.defaultScore`. */
  readonly score?: Load.Score | undefined
  /** How many hosts are drawn at random and compared. Default 2. */
  readonly choices?: number | undefined
  /** Scores closer than this are taken as equal, and the activation counts decide. Default 0.1. */
  readonly scoreTolerance?: number | undefined
}

/**
 * Load-aware placement: draws `choices` (2) distinct hosts of the type at random (among
 * those that take activations, run the caller's version if any does, and do not say they
 * are draining) and takes the best of them: the healthier by score when the scores differ
 * by more than `scoreTolerance` (0.1), else the one with fewer activations when the counts
 * differ by more than a tenth (and one), else the first drawn. A silo without a report
 * scores 1 and counts as the mean of the drawn ones that reported.
 *
 * Why two at random and not the least loaded of all: reports are seconds old, and every
 * placer reads the same ones, so "the least loaded" is the same silo for everyone until
 * its next report, which then gets every new activation of the cluster (a herd). Two random
 * choices still take the emptier silo most of the time (a silo that just joined is drawn,
 * and wins, in 2 of n placements: twice its share until its report catches up) while
 * spreading concurrent placers, and the maximum load of n silos falls from O(log n / log
 * log n) over the mean (one random choice) to O(log log n) (Mitzenmacher, "The Power of Two
 * Choices in Randomized Load Balancing"). Registered in the directory, like `random`.
 *
 * @since 0.2.0
 */
export const leastLoaded = (options?: LeastLoadedOptions): Placement => {
  const score = options?.score ?? Load.defaultScore
  const choices = options?.choices ?? 2
  const tolerance = options?.scoreTolerance ?? 0.1
  if (!Number.isInteger(choices) || choices < 1) {
    throw new RangeError(`leastLoaded: choices must be a positive integer, got ${choices}`)
  }
  if (!(tolerance >= 0)) throw new RangeError(`leastLoaded: scoreTolerance must be 0 or more, got ${tolerance}`)
  return {
    name: "least-loaded",
    place: (_, view) => {
      const loadOf = view.loadOf
      const open = (member: Node) => takesActivations(member) && loadOf?.(member.id)?.draining !== true
      let members = (view.preferred ?? view.ring).members.filter(open)
      if (members.length === 0) members = view.ring.members.filter(open)
      if (members.length === 0) members = view.ring.members.filter(takesActivations)
      if (members.length <= 1) return members[0]?.id
      // A partial Fisher-Yates shuffle: `choices` distinct members, in random order.
      const drawn = members.slice()
      const k = Math.min(choices, drawn.length)
      for (let i = 0; i < k; i++) {
        const j = i + Math.floor(view.random() * (drawn.length - i))
        const swap = drawn[i]!
        drawn[i] = drawn[j]!
        drawn[j] = swap
      }
      const loads = drawn.slice(0, k).map((member) => loadOf?.(member.id) ?? Load.unknown)
      let known = 0
      let sum = 0
      for (const load of loads) {
        if (load.activations !== undefined) {
          known++
          sum += load.activations
        }
      }
      const mean = known === 0 ? 0 : sum / known
      let best = 0
      let bestScore = Load.scoreOf(score, loads[0]!)
      let bestCount = loads[0]!.activations ?? mean
      for (let i = 1; i < k; i++) {
        const s = Load.scoreOf(score, loads[i]!)
        const count = loads[i]!.activations ?? mean
        const better = Math.abs(s - bestScore) > tolerance ?
          s > bestScore :
          bestCount - count > Math.max(1, 0.1 * Math.max(count, bestCount))
        if (better) {
          best = i
          bestScore = s
          bestCount = count
        }
      }
      return drawn[best]!.id
    },
    usesDirectory: true
  }
}

/**
 * Stateless workers: every call runs on the calling silo when it hosts the type (a
 * client's, or another silo's, on any alive host), on one of up to `maxLocal` activations
 * of the address there (default 4).
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

/**
 * The membership metadata keys a silo publishes about itself (`Member.metadata`): its
 * application version (`quark.version`) and the actor types it hosts with their contract
 * versions (`quark.types`). Every key starting with `quark.` is reserved.
 *
 * @since 0.2.0
 */
export const metadataKeys: { readonly version: "quark.version"; readonly types: "quark.types" } = TypeRings.metadataKeys

/**
 * The actor types a member hosts, read from its metadata (`Member.metadata`), each with its
 * contract version; `undefined` when it hosts every type (it announces none, as a silo of
 * an older Quark, or what it announces does not parse). Quark's own types (names starting
 * with `$`) are hosted by every silo and not listed.
 *
 * @since 0.2.0
 */
export const hostedTypes = (metadata: Readonly<Record<string, string>>): ReadonlyMap<string, number> | undefined => {
  const text = metadata[TypeRings.metadataKeys.types]
  return text === undefined ? undefined : TypeRings.decodeTypes(text)
}

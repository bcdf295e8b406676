/**
 * The activation directory: which silo owns the activation of an actor address. Placements
 * other than consistent hashing (`usesDirectory`) register an activation here before
 * creating it, so concurrent first calls from different silos meet in one place and exactly
 * one silo activates the actor; the others forward to the owner the directory names.
 *
 * Two implementations: `MemoryDirectory` (in-process, on Effect's `Clock`, for tests and
 * single-process use) and `RedisDirectory` (one key per address with a `PX` lease).
 *
 * **The lease rule.** Every entry carries a lease, measured on the directory's own clock
 * (Redis: the server's key expiry; memory: Effect's `Clock`), never the caller's:
 *
 * - `register(address, owner, leaseMillis)` is atomic: if no live entry exists, it creates
 *   one owned by `owner`, live for `leaseMillis` from now, and answers `Registered`; of
 *   concurrent registrations of one address exactly one gets `Registered`, every other gets
 *   `Taken` with the winner's id. Registering again as the current owner answers
 *   `Registered` and restarts the lease, like `renew`.
 * - An entry is live while `now < (time of its last register or renew) + leaseMillis`.
 *   From then on it is gone: `lookup` reads `undefined`, anyone can `register`, and the
 *   former owner's `renew` answers `false`.
 * - `renew(address, owner, leaseMillis)` restarts the lease (live for `leaseMillis` from
 *   now, not added to what remains) if `owner` still owns a live entry, and answers whether
 *   it did. An owner renews well inside the lease (e.g. every third of it) and, when `renew`
 *   answers `false` or it cannot renew before the lease would run out by its own clock
 *   (counted from when it sent the last successful renew), considers the activation lost and
 *   deactivates it: another silo may already have registered it.
 * - `unregister(address, owner)` removes the entry only if `owner` owns it; from anyone
 *   else it does nothing.
 * - `removeSilo(owner)` removes every entry `owner` still owns (for a silo declared dead,
 *   so its actors can be placed again before their leases run out) and answers how many.
 * - `transfer(address, from, to, leaseMillis)` is a compare-and-set: if `from` owns a live
 *   entry, it becomes `to`'s, live for `leaseMillis` from now, and it answers `true`;
 *   otherwise nothing changes and it answers `false`. Of concurrent transfers from one
 *   owner exactly one succeeds. It is how a live migration moves an activation from one
 *   silo to another without a moment where the entry is free (see `Migrator`): an
 *   `unregister` then `register` would let a third silo claim the address in between.
 *
 * Owners are {@link SiloIdentity} ids (`host:port@generation`), so a restarted process (a
 * new generation) never inherits its predecessor's entries.
 *
 * @since 0.1.0
 */
import { Context, Effect, Schema } from "effect"

/**
 * The address of a virtual actor: its type name and id.
 *
 * @since 0.1.0
 */
export interface DirectoryAddress {
  readonly type: string
  readonly id: string
}

/**
 * The outcome of `register`: this silo now owns the activation, or another silo (`owner`)
 * holds a live entry.
 *
 * @since 0.1.0
 */
export type RegisterResult =
  | { readonly _tag: "Registered" }
  | { readonly _tag: "Taken"; readonly owner: string }

/**
 * @since 0.1.0
 */
export const Registered: RegisterResult = { _tag: "Registered" }

/**
 * @since 0.1.0
 */
export const Taken = (owner: string): RegisterResult => ({ _tag: "Taken", owner })

/**
 * The directory could not be reached or answered badly (`operation` names what failed, e.g.
 * `"connect"`, `"register"`), or an argument was invalid (a lease that is not a positive
 * finite number of milliseconds, an empty owner). The outcome of a failed write is unknown.
 *
 * @since 0.1.0
 */
export class DirectoryError extends Schema.TaggedError<DirectoryError>()("DirectoryError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `directory failed to ${this.operation}: ${this.reason}`
  }
}

/**
 * What a directory does (see the lease rule in the module doc).
 *
 * @since 0.1.0
 */
export interface DirectoryShape {
  /** Atomically claims `address` for `owner` unless another owner holds a live entry. */
  readonly register: (
    address: DirectoryAddress,
    owner: string,
    leaseMillis: number
  ) => Effect.Effect<RegisterResult, DirectoryError>
  /** The owner of the live entry of `address`, or `undefined` (none, or its lease ran out). */
  readonly lookup: (address: DirectoryAddress) => Effect.Effect<string | undefined, DirectoryError>
  /** Restarts the lease if `owner` still owns `address`; `false` if it does not any more. */
  readonly renew: (address: DirectoryAddress, owner: string, leaseMillis: number) => Effect.Effect<boolean, DirectoryError>
  /** Removes the entry of `address` if `owner` owns it; otherwise does nothing. */
  readonly unregister: (address: DirectoryAddress, owner: string) => Effect.Effect<void, DirectoryError>
  /** Removes every entry `owner` owns; answers how many there were. */
  readonly removeSilo: (owner: string) => Effect.Effect<number, DirectoryError>
  /**
   * Gives the live entry of `address` from `from` to `to` (lease restarted) if `from` owns
   * it; `false`, changing nothing, otherwise.
   */
  readonly transfer: (
    address: DirectoryAddress,
    from: string,
    to: string,
    leaseMillis: number
  ) => Effect.Effect<boolean, DirectoryError>
}

/**
 * The activation directory of the cluster.
 *
 * @since 0.1.0
 */
export class Directory extends Context.Service<Directory, DirectoryShape>()("quark/Directory") {}

/**
 * Checks the arguments every implementation validates the same way: an owner must be a
 * non-empty string, a lease (if given) a positive finite number of milliseconds (fractions
 * round up). Succeeds with the lease in whole milliseconds (0 when none is given).
 *
 * @since 0.1.0
 */
export const checkArguments = (
  operation: string,
  owner: string,
  leaseMillis?: number
): Effect.Effect<number, DirectoryError> => {
  if (owner.length === 0) return Effect.fail(new DirectoryError({ operation, reason: "the owner is empty" }))
  if (leaseMillis === undefined) return Effect.succeed(0)
  if (!Number.isFinite(leaseMillis) || leaseMillis <= 0) {
    return Effect.fail(
      new DirectoryError({ operation, reason: `the lease must be a positive number of milliseconds, got ${leaseMillis}` })
    )
  }
  return Effect.succeed(Math.ceil(leaseMillis))
}

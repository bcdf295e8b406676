/**
 * Live migration: moving activations from this silo to another while the cluster serves,
 * with no call failing. `ClusterSilo.layer` provides the `Migrator` of its silo.
 *
 * ```ts
 * const migrator = yield* Migrator
 * yield* migrator.migrate({ type: "Room", id: "lobby" })               // to the placement's choice
 * yield* migrator.migrate({ type: "Room", id: "lobby" }, { to: siloId }) // to that silo
 * yield* migrator.migrateType("Room")                                   // every Room held here
 * yield* migrator.migrateShare({ fraction: 0.25 })                      // a quarter of what is held here
 * ```
 *
 * **What moves.** Explicit migration is for directory placements (`Placement.random`,
 * `Placement.preferLocal`, any placement with `usesDirectory`): their owner is whatever the
 * directory says, so it can be changed. A hashed address (the default consistent hashing,
 * or any deterministic placement) has the one owner every silo computes from the ring: it
 * moves only when the ring changes (a silo joins, drains or leaves), through the handoff,
 * which hands its in-memory state over too (below). Asking to migrate one fails with
 * `NotMigratable`, as does a stateless worker (it runs on every calling silo) or a type
 * this silo does not host.
 *
 * **The move of one activation, from A to B** (`internal/Migration.ts`):
 * 1. A stops granting turns to it; the running turn ends, its timers stop, its finalizers
 *    run (state is written as on any deactivation). Calls that arrive meanwhile, on A or
 *    forwarded to A, wait in its mailbox.
 * 2. Its migration participants dehydrate (see `Migration` in `quark`; `ActorState`
 *    records take part on their own).
 * 3. A asks B to prepare: B puts a placeholder in its table (calls that reach B wait there)
 *    and keeps the handed state; B refuses if it does not host the type or is draining.
 * 4. A moves the directory entry to B with one compare-and-set (`Directory.transfer`): the
 *    entry is never free, so no third silo can claim the address in between.
 * 5. A tells B to commit: B activates it with the handed state (its activation effect
 *    runs: timers are registered again there). A sends every call that waited in its
 *    mailbox on to B, in their order, and forwards the later ones that reach it.
 *
 * Single activation holds throughout: B's activation effect starts after A's activation
 * stopped and after the directory names B. If B refuses, or the directory cannot be
 * written, A activates the actor again itself with the state it dehydrated: nothing is
 * lost, and the caller of `migrate` gets `MigrationFailed`. A commit that does not reach B
 * is resolved by B itself: after `requestTimeout` it asks the directory, and activates if it
 * names B, else sends what waited on to the owner. Reminders are stored and routed by
 * address, so they follow; volatile timers are registered again by the activation effect
 * on B (each starts over from its due time).
 *
 * **Callers** see latency, never an error: a call arriving mid-migration waits for the
 * move (one deactivation, one dehydration, two round trips between the silos and one
 * directory write; figures in docs/cluster.md), then runs on B. A sender's messages keep
 * their order: those queued on A go on first, and later ones reach A (which forwards them,
 * after) until the sender learns the new owner.
 *
 * **Bulk moves** (`migrateType`, `migrateShare`, `migrateAway`) move at most `concurrency`
 * activations at a time (default 16) and report what moved and what did not.
 *
 * Numbers (`npm run bench -- --only=cluster.migrate`, two silos in one process, a shared
 * 2-core machine): 5,700–6,100 moves a second handing 1 KiB of state over, 7,400–7,500
 * store-backed; a call sent as its actor starts moving takes 0.47–0.55 ms more than a
 * plain call at p50, 1.3–1.7 ms more at p99. Nothing is added to the turn path.
 *
 * Rejected alternatives: unregister then register the directory entry (a third silo could
 * claim the address in between and activate it twice); have B take the entry itself on a
 * single request (a request lost mid-way leaves A unable to tell whether B will still take
 * it, so A could neither reactivate nor let go safely); ship the queued messages inside the
 * migration request (they are already typed turns with parked callers on A: re-routing them
 * reuses the path a ring change takes, with its ordering); let `migrate` move hashed
 * addresses by overriding the ring (every silo would need to learn the override, which is
 * a directory lookup on every call, what hashing exists to avoid).
 *
 * @since 0.2.0
 */
import { Context, type Effect, Schema } from "effect"
import { ActorAddress } from "../Actor/ActorAddress.ts"

/**
 * The address cannot be migrated explicitly, and retrying will not change that: a hashed
 * placement (it moves only with the ring, see the module doc), a stateless worker, a child
 * actor, or a type this silo does not host. Nothing was done.
 *
 * @since 0.2.0
 */
export class NotMigratable extends Schema.TaggedError<NotMigratable>()("NotMigratable", {
  address: ActorAddress,
  reason: Schema.String
}) {
  override get message(): string {
    return `${this.address.type}/${this.address.id} cannot be migrated: ${this.reason}`
  }
}

/**
 * Why a migration did not happen.
 *
 * - `NotHosted`: this silo holds no activation of the address (it is elsewhere, or not
 *   active). Retrying here will not help.
 * - `Busy`: it is deactivating, or already being migrated. Safe to retry later.
 * - `NoTarget`: no other silo can take it (none in the ring hosts the type, or the chosen
 *   one is not such a silo). Safe to retry once one is.
 * - `Refused`: the target refused or could not be reached, or the directory could not be
 *   written; the actor was activated again on this silo with its state. Safe to retry.
 * - `LeaseLost`: the directory no longer names this silo (its lease ran out); the actor
 *   lives wherever the directory says. Retrying here will not help.
 *
 * @since 0.2.0
 */
export const MigrationFailure = Schema.Literals(["NotHosted", "Busy", "NoTarget", "Refused", "LeaseLost"])

/**
 * @since 0.2.0
 */
export type MigrationFailure = typeof MigrationFailure.Type

/**
 * A migration did not happen (see {@link MigrationFailure}). Every migration error is safe
 * to retry: a failed move leaves the actor active on this silo (with its state) or wherever
 * the directory says, and no call is lost or run twice. `retryable` says whether retrying
 * can succeed.
 *
 * @since 0.2.0
 */
export class MigrationFailed extends Schema.TaggedError<MigrationFailed>()("MigrationFailed", {
  address: ActorAddress,
  failure: MigrationFailure,
  reason: Schema.String
}) {
  /** Whether a retry can succeed (`Busy`, `NoTarget`, `Refused`). */
  get retryable(): boolean {
    return this.failure === "Busy" || this.failure === "NoTarget" || this.failure === "Refused"
  }
  override get message(): string {
    return `${this.address.type}/${this.address.id} was not migrated (${this.failure}): ${this.reason}`
  }
}

/**
 * One activation that moved.
 *
 * @since 0.2.0
 */
export interface Moved {
  readonly address: ActorAddress
  readonly from: string
  readonly to: string
  /** Whether in-memory state went along (the type has migration participants). */
  readonly handedState: boolean
  /** From the request to the commit, in milliseconds. */
  readonly millis: number
}

/**
 * What a bulk migration did: what moved, and why the rest did not.
 *
 * @since 0.2.0
 */
export interface MigrationReport {
  readonly moved: ReadonlyArray<Moved>
  readonly failed: ReadonlyArray<MigrationFailed | NotMigratable>
}

/**
 * Options of `migrate`.
 *
 * @since 0.2.0
 */
export interface MigrateOptions {
  /**
   * The silo to move to (a member that hosts the type). Default: the placement's choice on
   * the ring without this silo (`random`: any other host; `preferLocal`: the ring's owner).
   */
  readonly to?: string | undefined
}

/**
 * Options of the bulk moves.
 *
 * @since 0.2.0
 */
export interface MigrateManyOptions extends MigrateOptions {
  /** Activations moved at a time. Default 16. */
  readonly concurrency?: number | undefined
}

/**
 * How much of this silo's activations `migrateShare` moves: a fraction of the migratable
 * ones (rounded up), or a count.
 *
 * @since 0.2.0
 */
export type Share = { readonly fraction: number } | { readonly count: number }

/**
 * @since 0.2.0
 */
export interface MigratorShape {
  /** Moves the activation of `address`, held on this silo, to another silo. */
  readonly migrate: (
    address: ActorAddress,
    options?: MigrateOptions
  ) => Effect.Effect<Moved, MigrationFailed | NotMigratable>
  /** Moves every activation of `type` held on this silo (oldest first). */
  readonly migrateType: (type: string, options?: MigrateManyOptions) => Effect.Effect<MigrationReport, NotMigratable>
  /**
   * Moves a share of this silo's migratable activations (directory placements; oldest
   * first), each to its placement's choice unless `to` is given: the building block of a
   * rebalancer.
   */
  readonly migrateShare: (share: Share, options?: MigrateManyOptions) => Effect.Effect<MigrationReport>
  /**
   * Moves these activations away from this silo, each to its placement's choice unless `to`
   * is given; those that cannot move are reported, not fatal: the building block of a drain.
   */
  readonly migrateAway: (
    addresses: Iterable<ActorAddress>,
    options?: MigrateManyOptions
  ) => Effect.Effect<MigrationReport>
}

/**
 * The live migration of a cluster silo's activations (provided by `ClusterSilo.layer`).
 *
 * @since 0.2.0
 */
export class Migrator extends Context.Service<Migrator, MigratorShape>()("quark/Migrator") {}

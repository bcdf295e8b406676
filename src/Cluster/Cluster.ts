/**
 * What a program sees of the cluster it is part of, whether it runs a silo
 * (`ClusterSilo.layer`) or only calls into the cluster (`ClusterClient.layer`): the alive
 * silos, and where an address's activation lives.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import type { Member, SiloDeclaredDead } from "./Membership.ts"
import type { SiloIdentity } from "./SiloIdentity.ts"

/**
 * @since 0.1.0
 */
export interface ClusterShape {
  /**
   * This silo as it is a member now; `undefined` in a client. A silo declared dead joins
   * again with a new generation (see `ClusterSilo`), so this changes then.
   */
  readonly self: SiloIdentity | undefined
  /** The ids of the silos in this program's ring (alive and suspected), ordered. */
  readonly members: Effect.Effect<ReadonlyArray<string>>
  /** This program's view of the membership: every member with its status and last heartbeat, ordered by id. */
  readonly view: Effect.Effect<ReadonlyArray<Member>>
  /**
   * The silo the activation of `address` lives on (or would be placed on) as this program
   * sees it now: the ring's owner, the directory's entry, or, for a stateless worker, the
   * calling silo.
   */
  readonly ownerOf: (address: ActorAddress) => Effect.Effect<string | undefined>
  /**
   * Completes once this silo is declared dead (the first time). It then serves nothing, and
   * joins again under a new generation unless configured to stop (`onDeclaredDead`); never
   * in a client.
   */
  readonly declaredDead: Effect.Effect<SiloDeclaredDead>
  /**
   * Drains this silo: it reports itself draining (`/ready`, its membership record), leaves
   * the membership, hands every activation to its next owner (running turns finish, state
   * is written), forwards the calls that still reach it and answers those in flight, within
   * `drainTimeout` (30 s by default). Completes when done; the silo then serves nothing, and
   * the process is expected to exit (closing the silo's layer does this drain itself, so a
   * SIGTERM needs no call). Run once, whoever asks first; in a client, done at once.
   */
  readonly drain: Effect.Effect<void>
  /** Completes once this silo has drained, whoever started the drain (never before one starts). */
  readonly drained: Effect.Effect<void>
}

/**
 * @since 0.1.0
 */
export class Cluster extends Context.Service<Cluster, ClusterShape>()("quark/Cluster") {}

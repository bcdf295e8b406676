/**
 * What a program sees of the cluster it is part of, whether it runs a silo
 * (`ClusterSilo.layer`) or only calls into the cluster (`ClusterClient.layer`): the alive
 * silos, and where an address's activation lives.
 *
 * @since 0.1.0
 */
import { Context, type Effect } from "effect"
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import type { SiloDeclaredDead } from "./Membership.ts"
import type { SiloIdentity } from "./SiloIdentity.ts"

/**
 * @since 0.1.0
 */
export interface ClusterShape {
  /** This silo; `undefined` in a client. */
  readonly self: SiloIdentity | undefined
  /** The ids of the silos in this program's ring (alive and suspected), ordered. */
  readonly members: Effect.Effect<ReadonlyArray<string>>
  /**
   * The silo the activation of `address` lives on (or would be placed on) as this program
   * sees it now: the ring's owner, the directory's entry, or, for a stateless worker, the
   * calling silo.
   */
  readonly ownerOf: (address: ActorAddress) => Effect.Effect<string | undefined>
  /** Completes if this silo is declared dead (it then serves nothing); never in a client. */
  readonly declaredDead: Effect.Effect<SiloDeclaredDead>
}

/**
 * @since 0.1.0
 */
export class Cluster extends Context.Service<Cluster, ClusterShape>()("quark/Cluster") {}

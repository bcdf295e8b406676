/**
 * The errors the runtime answers with when a call cannot run here at all.
 *
 * @internal
 */
import { ActorStopped, ActorUnavailable } from "../ActorError.ts"
import type { ActorAddress } from "../ActorAddress.ts"

/** @internal */
export const siloShuttingDown = (address: ActorAddress): ActorUnavailable =>
  new ActorUnavailable({ address, reason: "the silo is shutting down" })

/** A turn refused because the silo cannot show it is still a cluster member: it did not run. @internal */
export const noLease = (address: ActorAddress): ActorUnavailable =>
  new ActorUnavailable({ address, reason: "its silo cannot show it is still a cluster member; the message did not run" })

/** @internal */
export const stoppedChild = (address: ActorAddress): ActorStopped =>
  new ActorStopped({ address, reason: "the child actor has stopped" })

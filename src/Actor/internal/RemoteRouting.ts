/**
 * The seam between the local router and a cluster: how a clustered silo (or a client)
 * reaches addresses it does not host.
 *
 * @internal
 */
import type { Effect, Fiber } from "effect"
import type { CallOptions } from "../CallOptions.ts"
import type { SendError } from "../ActorError.ts"
import type { Activation } from "./Activation.ts"
import type { MessageEntry } from "./HostedType.ts"
import type { TypeSlot } from "./TypeSlot.ts"

/**
 * The local router asks it first whenever the address has no activation here; a single
 * silo has none.
 *
 * @internal
 */
export interface RemoteRouting {
  /**
   * The effect that delivers this ask (made on `fiber`) elsewhere, or decides where first;
   * `undefined` to run it here.
   */
  readonly ask: (
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown,
    options: CallOptions | undefined
  ) => Effect.Effect<any, any> | undefined
  /** Likewise for a one-way message. */
  readonly tell: (
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown,
    options: CallOptions | undefined
  ) => Effect.Effect<void, SendError> | undefined
  /** Whether a new activation of the address belongs on this silo now. */
  readonly ownsHere: (slot: TypeSlot, id: string) => boolean
  /** An activation left the silo. */
  readonly removed: (act: Activation) => void
}


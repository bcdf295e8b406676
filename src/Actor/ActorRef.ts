/**
 * Typed references to actors. A ref is an address bound to the silo that routes it; each
 * message of the contract is a method: `ref.Increment({ by: 1 })` asks and awaits the
 * reply, `ref.tell.Increment({ by: 1 })` sends one-way and returns once the mailbox
 * accepted the message.
 *
 * @since 0.1.0
 */
import type { Effect } from "effect"
import type { Rpc } from "effect/rpc"
import type { ActorAddress } from "./ActorAddress.ts"
import type { CallError, SendError } from "./ActorError.ts"
import type { CallOptions } from "./CallOptions.ts"

type Args<R extends Rpc.Any> = [Rpc.Payload<R>] extends [void] ? [options?: CallOptions]
  : [payload: Rpc.Payload<R>, options?: CallOptions]

/**
 * A typed reference to one actor.
 *
 * @since 0.1.0
 */
export type ActorRef<Rpcs extends Rpc.Any> =
  & {
    readonly address: ActorAddress
    /** One-way sends: complete once the message is in the mailbox. */
    readonly tell: {
      readonly [R in Rpcs as R["_tag"]]: (...args: Args<R>) => Effect.Effect<void, SendError>
    }
  }
  & {
    readonly [R in Rpcs as R["_tag"]]: (...args: Args<R>) => Effect.Effect<Rpc.Success<R>, Rpc.Error<R> | CallError>
  }

/**
 * Any actor ref, whatever its messages.
 *
 * @since 0.1.0
 */
export interface AnyActorRef {
  readonly address: ActorAddress
}

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
import type { LocalRouter } from "./internal/LocalRouter.ts"
import type { TypeSlot } from "./internal/TypeSlot.ts"
import type { MessageEntry } from "./internal/HostedType.ts"

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

/** The fields every ref instance carries; methods live on a per-contract prototype. @internal */
export interface RefFields {
  readonly router: LocalRouter
  readonly slot: TypeSlot
  readonly id: string
}

/** @internal */
export type RefClass = new(router: LocalRouter, slot: TypeSlot, id: string) => RefFields

/**
 * Builds the ref class of a contract once, with one prototype method per message, so a
 * ref costs one small object and a call no lookup of the message by name.
 *
 * @internal
 */
export const makeRefClass = (type: string, messages: Readonly<Record<string, MessageEntry>>): RefClass => {
  class Ref implements RefFields {
    readonly router: LocalRouter
    readonly slot: TypeSlot
    readonly id: string
    private tellProxy: object | undefined = undefined
    constructor(router: LocalRouter, slot: TypeSlot, id: string) {
      this.router = router
      this.slot = slot
      this.id = id
    }
    get address(): ActorAddress {
      return { type, id: this.id }
    }
    get tell(): object {
      return this.tellProxy ??= new Tell(this)
    }
  }
  class Tell {
    readonly ref: Ref
    constructor(ref: Ref) {
      this.ref = ref
    }
  }
  for (const tag in messages) {
    const info = messages[tag]
    const askMethod = info.hasPayload ?
      function(this: Ref, payload: unknown, options?: CallOptions) {
        return this.router.ask(this.slot, this.id, info, payload, options)
      } :
      function(this: Ref, options?: CallOptions) {
        return this.router.ask(this.slot, this.id, info, undefined, options)
      }
    const tellMethod = info.hasPayload ?
      function(this: Tell, payload: unknown, options?: CallOptions) {
        return this.ref.router.tell(this.ref.slot, this.ref.id, info, payload, options)
      } :
      function(this: Tell, options?: CallOptions) {
        return this.ref.router.tell(this.ref.slot, this.ref.id, info, undefined, options)
      }
    Object.defineProperty(Ref.prototype, tag, { value: askMethod })
    Object.defineProperty(Tell.prototype, tag, { value: tellMethod })
  }
  return Ref
}

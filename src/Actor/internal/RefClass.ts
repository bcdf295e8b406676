/**
 * The run-time side of refs: one class per contract, with a prototype method per message.
 *
 * @internal
 */
import type { ActorAddress } from "../ActorAddress.ts"
import type { CallOptions } from "../CallOptions.ts"
import type { Activation } from "./Activation.ts"
import type { MessageEntry } from "./HostedType.ts"
import type { LocalRouter } from "./LocalRouter.ts"
import type { TypeSlot } from "./TypeSlot.ts"

/** The fields every ref instance carries; methods live on a per-contract prototype. @internal */
export interface RefFields {
  readonly router: LocalRouter
  readonly slot: TypeSlot
  readonly id: string
  /** The activation this ref last reached here: trusted while it is active (see `LocalRouter.askIn`). */
  activation: Activation | undefined
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
    activation: Activation | undefined = undefined
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
        return this.router.ask(this.slot, this.id, info, payload, options, this)
      } :
      function(this: Ref, options?: CallOptions) {
        return this.router.ask(this.slot, this.id, info, undefined, options, this)
      }
    const tellMethod = info.hasPayload ?
      function(this: Tell, payload: unknown, options?: CallOptions) {
        return this.ref.router.tell(this.ref.slot, this.ref.id, info, payload, options, this.ref)
      } :
      function(this: Tell, options?: CallOptions) {
        return this.ref.router.tell(this.ref.slot, this.ref.id, info, undefined, options, this.ref)
      }
    Object.defineProperty(Ref.prototype, tag, { value: askMethod })
    Object.defineProperty(Tell.prototype, tag, { value: tellMethod })
  }
  return Ref
}

/**
 * The `Silo` service tag and its shape, apart from the silo's implementation: a contract
 * (`Actor.make`) needs the tag to find its silo, and importing a contract must not load
 * the runtime. `Silo.ts` re-exports all of it.
 *
 * @internal
 */
import { Context, type Effect } from "effect"
import type { Placement } from "../../Cluster/Placement.ts"
import type { ActorAddress } from "../ActorAddress.ts"
import type { DispatchError, InvalidActorId } from "../ActorError.ts"
import type { RefClass } from "./RefClass.ts"
import type { LocalRouter } from "./LocalRouter.ts"

/**
 * One row of the activation listing.
 *
 * @since 0.1.0
 */
export interface ActivationInfo {
  readonly address: ActorAddress
  readonly state: string
  readonly mailboxDepth: number
  readonly runningTurns: number
  readonly ageMillis: number
  /** Of a child actor: the actor that spawned it. */
  readonly parent?: ActorAddress | undefined
}

/**
 * A message from untyped input (an admin API, a transport): decoded with the message's
 * schema where it enters.
 *
 * @since 0.1.0
 */
export interface UntypedRequest {
  readonly type: string
  readonly id: string
  readonly tag: string
  readonly payload: unknown
}

/**
 * The silo's services.
 *
 * @since 0.1.0
 */
export interface SiloShape {
  /** @internal */
  readonly router: LocalRouter
  /** @internal */
  readonly ref: (contract: RefContract, id: string) => Effect.Effect<any, InvalidActorId>
  /** The activations of one type (or all), with mailbox depth and age. */
  readonly activations: (type?: string) => Effect.Effect<ReadonlyArray<ActivationInfo>>
  /**
   * Deactivates an activation, waiting for its running turns and its finalizers (these at
   * most its type's `deactivationTimeout`); `false` if it was not active.
   */
  readonly deactivate: (address: ActorAddress) => Effect.Effect<boolean>
  /**
   * What the activation at `address` on this silo shows of its state (see
   * `ActorContext.describe`): `undefined` when it is not active here or did not opt in. A
   * summary that throws answers `{ summaryFailed: <its message> }`.
   *
   * @since 0.2.0
   */
  readonly describe: (address: ActorAddress) => Effect.Effect<unknown>
  /**
   * Checks and decodes untyped input, then asks. The reply comes back encoded with the
   * message's success schema, a declared error as a `DeclaredError` holding it encoded with
   * the message's error schema.
   */
  readonly dispatch: (request: UntypedRequest) => Effect.Effect<unknown, DispatchError>
}

/** What `ref` needs of a contract. @internal */
export interface RefContract {
  readonly type: string
  readonly refClass: RefClass
  readonly placement: Placement | undefined
}

/**
 * The silo: the process-local host of activations.
 *
 * @since 0.1.0
 */
export class Silo extends Context.Service<Silo, SiloShape>()("quark/Silo") {}


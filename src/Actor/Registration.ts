/**
 * An actor type as the silo hosts it: the contract's messages with their scheduling facts,
 * the activation effect, and the per-type options resolved against silo defaults.
 *
 * @since 0.1.0
 */
import { Duration, type Context, type Effect, type Scope } from "effect"
import * as Supervisor from "../Supervision/Strategy.ts"
import type { Placement } from "../Cluster/Placement.ts"
import type { ActorContext } from "./ActorContext.ts"
import type { MessageInfo } from "./Turn.ts"

/**
 * What to do when a mailbox is full: fail the send with `MailboxFull`, or suspend the
 * sender until there is room.
 *
 * @since 0.1.0
 */
export type WhenFull = "fail" | "suspend"

/**
 * Per-type options, given to `Contract.toLayer`. Each falls back to the silo's default.
 *
 * @since 0.1.0
 */
export interface ActorTypeOptions {
  /** Passivate an activation after this long without turns. `"never"` keeps it. */
  readonly idleTimeout?: Duration.Input | "never" | undefined
  /** Messages that may wait in one activation's mailbox. */
  readonly mailboxCapacity?: number | undefined
  readonly whenFull?: WhenFull | undefined
  /** Let any call re-enter an activation that is waiting in its call chain. Default false. */
  readonly reentrant?: boolean | undefined
  /** Fail an ask with `CallTimeout` after this long. Default: no timeout for local calls. */
  readonly callTimeout?: Duration.Input | undefined
  /**
   * How long the activation effect may run. Past it the activation fails with
   * `ActivationFailed` (its waiting calls too), its scope is closed and the next call tries
   * again. Default: the silo's, 30 seconds.
   */
  readonly activationTimeout?: Duration.Input | undefined
  /**
   * How long deactivation waits for the finalizers (the activation scope's, children's).
   * Past it a warning is logged and the activation counts as stopped while they finish in
   * the background, if ever. Default: the silo's, 30 seconds.
   */
  readonly deactivationTimeout?: Duration.Input | undefined
  /** How this actor supervises the children it spawns. Default `Supervisor.oneForOne()`. */
  readonly supervisor?: Supervisor.Strategy | undefined
  /**
   * How the silo root supervises this virtual actor type's activations. Default
   * `Supervisor.resume`: a failed turn fails its call and the activation goes on.
   */
  readonly rootSupervisor?: Supervisor.Strategy | undefined
  /** `_tag`s of declared errors that are failures (go to the supervisor), not just replies. */
  readonly fatal?: ReadonlyArray<string> | undefined
}

/**
 * Silo-wide defaults for {@link ActorTypeOptions}.
 *
 * @since 0.1.0
 */
export interface ActorDefaults {
  readonly idleTimeout: Duration.Input | "never"
  readonly mailboxCapacity: number
  readonly whenFull: WhenFull
  readonly activationTimeout: Duration.Input
  readonly deactivationTimeout: Duration.Input
}

/**
 * The documented defaults: idle passivation after 1 minute (as effect/cluster's
 * `maxIdleTime`), 10,000 queued messages, fail when full, 30 seconds for an activation
 * effect and for the finalizers of a deactivation (as Orleans' `ActivationTimeout` and
 * `DeactivationTimeout`).
 *
 * @since 0.1.0
 */
export const defaultActorDefaults: ActorDefaults = {
  idleTimeout: "1 minute",
  mailboxCapacity: 10_000,
  whenFull: "fail",
  activationTimeout: "30 seconds",
  deactivationTimeout: "30 seconds"
}

/** A handler table: one function per message tag. @internal */
export type Handlers = Record<string, (payload: any) => Effect.Effect<any, any>>

/** The message facts plus the rpc schemas, for untyped entry points. @internal */
export interface MessageEntry extends MessageInfo {
  readonly payloadSchema: any
  readonly successSchema: any
  readonly errorSchema: any
  /** False for messages declared without a payload: their ref method takes only options. */
  readonly hasPayload: boolean
}

/** What `toLayer` hands to the silo. @internal */
export interface Registration {
  readonly type: string
  readonly messages: Readonly<Record<string, MessageEntry>>
  readonly build: Effect.Effect<Handlers, unknown, Scope.Scope | ActorContext>
  /** The services the activation effect and the handlers need, captured when the layer was built. */
  readonly context: Context.Context<never>
  readonly options: ActorTypeOptions
  /** The contract's placement (children have none). */
  readonly placement?: Placement | undefined
}

/**
 * The entry of message `tag`, looked up as an own property: a tag from the wire
 * (`constructor`, `__proto__`) never finds something inherited. @internal
 */
export const messageEntry = (registration: Registration, tag: string): MessageEntry | undefined =>
  Object.hasOwn(registration.messages, tag) ? registration.messages[tag] : undefined

/** A registration with its options resolved. @internal */
export interface ResolvedOptions {
  readonly idleMillis: number
  readonly capacity: number
  readonly whenFull: WhenFull
  readonly reentrant: boolean
  readonly callTimeout: Duration.Duration | undefined
  readonly activationTimeout: Duration.Duration
  readonly deactivationTimeout: Duration.Duration
  readonly supervisor: Supervisor.Strategy
  readonly rootSupervisor: Supervisor.Strategy
  readonly fatal: ReadonlySet<string> | undefined
}

const defaultChildSupervisor = Supervisor.oneForOne()

/** @internal */
export const resolveOptions = (options: ActorTypeOptions, defaults: ActorDefaults): ResolvedOptions => {
  const idle = options.idleTimeout ?? defaults.idleTimeout
  return {
    idleMillis: idle === "never" ? Infinity : Duration.toMillis(idle),
    capacity: options.mailboxCapacity ?? defaults.mailboxCapacity,
    whenFull: options.whenFull ?? defaults.whenFull,
    reentrant: options.reentrant ?? false,
    callTimeout: options.callTimeout === undefined ? undefined : Duration.fromInputUnsafe(options.callTimeout),
    activationTimeout: Duration.fromInputUnsafe(options.activationTimeout ?? defaults.activationTimeout),
    deactivationTimeout: Duration.fromInputUnsafe(options.deactivationTimeout ?? defaults.deactivationTimeout),
    supervisor: options.supervisor ?? defaultChildSupervisor,
    rootSupervisor: options.rootSupervisor ?? Supervisor.resume,
    fatal: options.fatal === undefined || options.fatal.length === 0 ? undefined : new Set(options.fatal)
  }
}

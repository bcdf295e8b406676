/**
 * An actor type as the silo hosts it: the contract's messages with their scheduling facts,
 * the activation effect, and the per-type options resolved against silo defaults.
 *
 * @internal
 */
import { Duration, type Context, type Effect, type Scope } from "effect"
import * as Supervisor from "../../Supervision/Strategy.ts"
import type { Placement } from "../../Cluster/Placement.ts"
import type { ActorContext } from "../ActorContext.ts"
import type { ActorDefaults, ActorTypeOptions, WhenFull } from "../ActorOptions.ts"
import type { MessageInfo } from "./Turn.ts"

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
export interface HostedType {
  readonly type: string
  readonly messages: Readonly<Record<string, MessageEntry>>
  readonly build: Effect.Effect<Handlers, unknown, Scope.Scope | ActorContext>
  /** The services the activation effect and the handlers need, captured when the layer was built. */
  readonly context: Context.Context<never>
  readonly options: ActorTypeOptions
  /** The contract's placement (children have none). */
  readonly placement?: Placement | undefined
  /** The contract's version (default 1), which a cluster silo announces with the type. */
  readonly version?: number | undefined
}

/**
 * The entry of message `tag`, looked up as an own property: a tag from the wire
 * (`constructor`, `__proto__`) never finds something inherited. @internal
 */
export const messageEntry = (type: HostedType, tag: string): MessageEntry | undefined =>
  Object.hasOwn(type.messages, tag) ? type.messages[tag] : undefined

/** A hosted type with its options resolved. @internal */
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

/**
 * Actor contracts. A contract is a stable type name plus messages, each an `effect/rpc`
 * `Rpc` with payload, success and error schemas. Callers import only the contract; the
 * implementation is a Layer built from it, so two actors can call each other without
 * their implementations importing each other.
 *
 * ```ts
 * const Increment = Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
 * const Get = Rpc.make("Get", { success: Schema.Int }).annotate(ActorSchema.ReadOnly, true)
 * export const Counter = Actor.make("Counter", [Increment, Get])
 *
 * export const CounterLive = Counter.toLayer(Effect.gen(function*() {
 *   const count = yield* Ref.make(0)
 *   return Counter.of({
 *     Increment: ({ by }) => Ref.updateAndGet(count, (n) => n + by),
 *     Get: () => Ref.get(count)
 *   })
 * }))
 *
 * const program = Effect.gen(function*() {
 *   const counter = yield* Counter.ref("c-1")
 *   yield* counter.Increment({ by: 1 })
 * })
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, Schema, type Scope } from "effect"
import type { Rpc } from "effect/rpc"
import type { Placement } from "../Cluster/Placement.ts"
import type { ActorContext } from "./ActorContext.ts"
import { type CallError, callErrorClasses, type InvalidActorId } from "./ActorError.ts"
import type { ActorRef } from "./ActorRef.ts"
import { makeRefClass, type RefClass } from "./internal/RefClass.ts"
import { AlwaysInterleave, ReadOnly } from "./ActorSchema.ts"
import type { ActorTypeOptions } from "./ActorOptions.ts"
import type { Handlers, MessageEntry } from "./internal/HostedType.ts"
import { Silo } from "./internal/SiloTag.ts"
import { systemContract } from "./internal/SystemContract.ts"

/**
 * The handlers an implementation returns: one per message, taking the payload and
 * returning the success or a declared error.
 *
 * @since 0.1.0
 */
export type HandlersFrom<Rpcs extends Rpc.Any, Services = never> = {
  readonly [R in Rpcs as R["_tag"]]: (
    payload: Rpc.Payload<R>
  ) => Effect.Effect<Rpc.Success<R>, Rpc.Error<R>, Services>
}

/**
 * An actor contract.
 *
 * @since 0.1.0
 */
export interface Actor<Type extends string, Rpcs extends Rpc.Any> {
  readonly type: Type
  readonly rpcs: ReadonlyArray<Rpcs>
  /** Where activations go in a cluster; `undefined` is consistent hashing. */
  readonly placement: Placement | undefined
  /** The contract's version (`ContractOptions.version`, default 1), announced by the silos that host it. */
  readonly version: number
  /** @internal */
  readonly messages: Readonly<Record<string, MessageEntry>>
  /** @internal */
  readonly refClass: RefClass
  /** A typed reference to the actor with this id; fails with `InvalidActorId` on an empty or oversized id. */
  readonly ref: (id: string) => Effect.Effect<ActorRef<Rpcs>, InvalidActorId, Silo>
  /**
   * `ref` for an id known to be valid (a literal, or one checked where it entered): an
   * invalid id is a defect instead of an `InvalidActorId` in the error channel.
   */
  readonly refOrDie: (id: string) => Effect.Effect<ActorRef<Rpcs>, never, Silo>
  /** Types a handler table (identity at run time). */
  readonly of: <Services = never>(handlers: HandlersFrom<Rpcs, Services>) => HandlersFrom<Rpcs, Services>
  /**
   * The implementation: `build` runs once per activation, in the activation's scope (its
   * finalizers run at deactivation), and returns the handlers. State kept in that scope
   * (a `Ref`, say) lives exactly as long as the activation. Handlers run with the services
   * the layer was built with (the `Silo` among them, so they can call other actors).
   */
  readonly toLayer: <E, R, Services = never>(
    build: Effect.Effect<HandlersFrom<Rpcs, Services>, E, R>,
    options?: ActorTypeOptions
  ) => Layer.Layer<never, never, Exclude<R, Scope.Scope | ActorContext> | Exclude<Services, Silo> | Silo>
}

/**
 * The type of a contract's refs, for fields and parameters:
 * `const counters: Array<Actor.Ref<typeof Counter>> = []`.
 *
 * @since 0.1.0
 */
export type Ref<Contract> = Contract extends Actor<string, infer Rpcs> ? ActorRef<Rpcs> : never

const isCallError = (error: unknown): error is CallError | InvalidActorId =>
  callErrorClasses.some((errorClass) => error instanceof errorClass)

/**
 * Keeps an effect's declared errors and turns Quark's own call errors (`CallError` and
 * `InvalidActorId`: the callee was unavailable, timed out, died...) into defects. The
 * common pattern of a handler that calls other actors and declares only its domain errors:
 * the defect then fails the handler's own turn, and its caller gets `ActorDefect`.
 *
 * ```ts
 * Withdraw: ({ amount }) => Actor.orDieOnCallError(ledger.Debit({ amount }))
 * ```
 *
 * @since 0.1.0
 */
export const orDieOnCallError = <A, E, R>(
  self: Effect.Effect<A, E, R>
): Effect.Effect<A, Exclude<E, CallError | InvalidActorId>, R> =>
  Effect.catch(self, (error) => isCallError(error) ? Effect.die(error) : Effect.fail(error)) as Effect.Effect<
    A,
    Exclude<E, CallError | InvalidActorId>,
    R
  >

/** Tags a message may not use: they are taken by the ref itself. */
const reservedTags = new Set(["address", "tell"])

/**
 * What a contract declares besides its messages; every silo and client shares it.
 *
 * @since 0.1.0
 */
export interface ContractOptions {
  /** Where activations go in a cluster (see `Placement`). Default: consistent hashing. */
  readonly placement?: Placement | undefined
  /**
   * The contract's version, a positive integer; default 1. A cluster silo announces it with
   * each type it hosts (`Type@version` in its membership metadata, see `ClusterSilo`), so an
   * operator sees which silos run which version during a rolling upgrade. Routing does not
   * depend on it: a new version must stay wire-compatible with the old one (add optional
   * fields, add messages), since a caller of either version may reach a host of either.
   */
  readonly version?: number | undefined
}

/**
 * Defines an actor contract from a stable type name and its messages.
 *
 * @since 0.1.0
 */
export const make = <const Type extends string, const Rpcs extends ReadonlyArray<Rpc.Any>>(
  type: Type,
  rpcs: Rpcs,
  options?: ContractOptions
): Actor<Type, Rpcs[number]> => {
  if (type.length === 0) throw new Error("an actor type name must not be empty")
  if (type.startsWith("$") && (options as { readonly [systemContract]?: boolean } | undefined)?.[systemContract] !== true) {
    throw new Error(`actor type "${type}": names starting with "$" are reserved for Quark`)
  }
  // No prototype: a tag read from the wire ("constructor", "__proto__") finds nothing inherited.
  const messages: Record<string, MessageEntry> = Object.create(null)
  for (const rpc of rpcs as unknown as ReadonlyArray<Rpc.AnyWithProps>) {
    if (reservedTags.has(rpc._tag)) throw new Error(`actor type "${type}": "${rpc._tag}" is a reserved name`)
    if (messages[rpc._tag] !== undefined) throw new Error(`actor type "${type}": message "${rpc._tag}" is defined twice`)
    messages[rpc._tag] = {
      tag: rpc._tag,
      readOnly: Context.get(rpc.annotations, ReadOnly),
      interleave: Context.get(rpc.annotations, AlwaysInterleave),
      keepAlive: true,
      payloadSchema: rpc.payloadSchema,
      successSchema: rpc.successSchema,
      errorSchema: rpc.errorSchema,
      hasPayload: rpc.payloadSchema !== Schema.Void
    }
  }
  const version = options?.version ?? 1
  if (!Number.isSafeInteger(version) || version < 1) {
    throw new Error(`actor type "${type}": version must be a positive integer, got ${version}`)
  }
  const RefClass = makeRefClass(type, messages)
  const placement = options?.placement
  const contract: Actor<Type, Rpcs[number]> = {
    type,
    rpcs: rpcs as ReadonlyArray<Rpcs[number]>,
    placement,
    version,
    messages,
    refClass: RefClass,
    ref: (id) => Effect.flatMap(Silo, (silo) => silo.ref(contract, id)),
    refOrDie: (id) => Effect.orDie(contract.ref(id)),
    of: (handlers) => handlers,
    toLayer: (build, options) =>
      Layer.effectDiscard(
        Effect.gen(function*() {
          const silo = yield* Silo
          const context = yield* Effect.context<never>()
          yield* silo.router.register({
            type,
            messages,
            build: build as unknown as Effect.Effect<Handlers, unknown, Scope.Scope | ActorContext>,
            context,
            options: options ?? {},
            placement,
            version
          })
        })
      ) as any
  }
  return contract
}

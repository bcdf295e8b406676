/**
 * Streams: an actor (or any program) publishes events to a stream id; subscribers receive
 * them in order, as turns. Explicit subscriptions are durable; implicit ones activate the
 * actor whose id is the stream's key, without anyone subscribing it; programs outside actors
 * read a stream as an effect `Stream`.
 *
 * ```ts
 * const Readings = StreamContract.make("readings", Reading)
 * const Record = Rpc.make("Record", { payload: Reading })
 * const Device = Actor.make("Device", [Record])
 * // every event of ("readings", k) is a Record turn of Device/k:
 * const DeviceReadings = Streams.implicit(Readings, Device, "Record")
 *
 * const Live = Layer.mergeAll(DeviceLive, Streams.layer({ implicit: [DeviceReadings] })).pipe(Layer.provideMerge(Silo.layer()))
 * yield* Streams.publish(Readings, "device-7", { celsius: 21.5 })
 * ```
 *
 * The rules, with their numbers:
 * - **Partitions.** A stream's events go to one of the provider's partitions (FNV-1a of the
 *   stream id), and each partition is delivered by one agent, a system actor the cluster
 *   keeps activated on exactly one silo (`internal/PartitionAgent.ts`).
 * - **A delivery is a turn** of the subscriber: the message the subscription names, whose
 *   payload is the event; {@link currentEvent} reads the stream id and the event's token.
 *   Per stream and subscriber, events arrive in order, one turn at a time.
 * - **Publish** returns once the provider has accepted the event (see each provider).
 * - **At least once** on a provider that outlives a silo (Redis Streams): an event is
 *   acknowledged after every subscriber's delivery is done, so a silo that dies with
 *   deliveries under way has them made again by the partition's next owner, in order. A
 *   subscriber that must not act twice skips tokens that are not after the last it handled
 *   (`StreamToken.isAfter`). In memory, events live as long as the process.
 * - **Backpressure** per subscription: a bounded buffer and a strategy (`Backpressure`); a
 *   slow subscriber holds up no other unless its strategy is `suspend`.
 * - **Failures.** A delivery is retried while the subscriber is unavailable (250 ms apart, up
 *   to 30 s) and after a failed turn (5 attempts, 100 ms doubling); then it is logged and
 *   counted (`quark_stream_events_total{outcome="failed"}`) and the subscriber gets the next.
 *
 * @since 0.2.0
 */
import { Clock, Context, Duration, Effect, Layer, Option, Schema, type Scope, Stream } from "effect"
import type { Rpc } from "effect/rpc"
import type { Actor } from "../Actor/Actor.ts"
import { type ActorAddress, invalidIdReason } from "../Actor/ActorAddress.ts"
import { type CallError, InvalidActorId } from "../Actor/ActorError.ts"
import * as RequestContext from "../Actor/RequestContext.ts"
import { Silo } from "../Actor/Silo.ts"
import { keepActive } from "../Cluster/internal/KeepActive.ts"
import * as ProcessMetrics from "../Telemetry/internal/ProcessMetrics.ts"
import { type Backpressure, suspend } from "./Backpressure.ts"
import { encodeAll, jsonCodecOf } from "./internal/EventCodec.ts"
import { Agent, AgentLive } from "./internal/PartitionAgent.ts"
import { decodeRecord, explicitId, implicitId } from "./internal/SubscriptionRecord.ts"
import { eventKeys, type ImplicitRoute, partitionOf, StreamsRuntime, type StreamsRuntimeShape } from "./internal/StreamsRuntime.ts"
import * as MemoryStreamProvider from "./MemoryStreamProvider.ts"
import type { StreamContract } from "./StreamContract.ts"
import { InvalidStreamId, invalidPartReason, type StreamId } from "./StreamId.ts"
import { InvalidStreamToken, parse as parseToken } from "./StreamToken.ts"
import type { Position, StreamProvider, StreamProviderError } from "./StreamProvider.ts"

/**
 * The streams of this program's silo (or client).
 *
 * @since 0.2.0
 */
export interface StreamsShape {
  readonly provider: StreamProvider
}

/**
 * @since 0.2.0
 */
export class Streams extends Context.Service<Streams, StreamsShape>()("quark/Streams") {}

interface Attached {
  readonly provider: StreamProvider
  readonly runtime: StreamsRuntimeShape | undefined
}

/**
 * The streams attached to each silo by its layer, found through the `Silo` (which every
 * handler has), as `Reminders` does: an actor that publishes or subscribes would otherwise
 * need the streams layer, which needs the silo, which is built with that actor.
 */
const attached = new WeakMap<object, Attached>()

const current: Effect.Effect<Attached, never, Silo> = Effect.flatMap(Silo, (silo) => {
  const streams = attached.get(silo.router)
  return streams === undefined
    ? Effect.die(new Error("streams are not set up in this program: provide Streams.layer (or Streams.layerClient)"))
    : Effect.succeed(streams)
})

/**
 * The message tags of a contract whose payload takes events of type `A`.
 *
 * @since 0.2.0
 */
export type AcceptingTag<Rpcs extends Rpc.Any, A> = Rpcs extends infer R extends Rpc.Any
  ? [A] extends [Rpc.Payload<R>] ? R["_tag"] : never
  : never

/**
 * An implicit subscription: every event of every stream of a namespace is delivered to the
 * actor the stream's key names. Pass it to `Streams.layer({ implicit })` on every silo.
 *
 * @since 0.2.0
 */
export interface ImplicitSubscription {
  readonly namespace: string
  /** @internal */
  readonly route: ImplicitRoute
}

const checkMessage = (actor: { readonly type: string; readonly messages: Readonly<Record<string, unknown>> }, message: string): void => {
  if (!Object.hasOwn(actor.messages, message)) throw new Error(`${actor.type} has no message ${message}`)
}

/**
 * Declares that `actor` receives the namespace of `stream`: an event on stream
 * (namespace, key) is a `message` turn of the actor with id `key` (or `options.id(key)`,
 * which must be the same function on every silo), activating it if needed.
 *
 * @since 0.2.0
 */
export const implicit = <A, I, Type extends string, Rpcs extends Rpc.Any, const Tag extends AcceptingTag<Rpcs, A>>(
  stream: StreamContract<A, I>,
  actor: Actor<Type, Rpcs>,
  message: Tag,
  options?: {
    readonly id?: ((key: string) => string) | undefined
    readonly backpressure?: Backpressure | undefined
  }
): ImplicitSubscription => {
  checkMessage(actor, message)
  return {
    namespace: stream.namespace,
    route: {
      subscription: implicitId(actor.type, message),
      type: actor.type,
      message,
      idOf: options?.id ?? ((key) => key),
      backpressure: options?.backpressure ?? suspend()
    }
  }
}

const checkKey = (namespace: string, key: string): Effect.Effect<void, InvalidStreamId> => {
  const reason = invalidPartReason("key", key)
  return reason === undefined ? Effect.void : Effect.fail(new InvalidStreamId({ namespace, key: String(key), reason }))
}

/**
 * Publishes one event to stream (contract's namespace, `key`); returns its token once the
 * provider has accepted it.
 *
 * @since 0.2.0
 */
export const publish = <A, I>(
  contract: StreamContract<A, I>,
  key: string,
  event: A
): Effect.Effect<string, InvalidStreamId | StreamProviderError | Schema.SchemaError, Silo> =>
  Effect.map(publishAll(contract, key, [event]), (tokens) => tokens[0]!)

/**
 * Publishes events to one stream, in order, in one append; returns their tokens.
 *
 * @since 0.2.0
 */
export const publishAll = <A, I>(
  contract: StreamContract<A, I>,
  key: string,
  events: ReadonlyArray<A>
): Effect.Effect<ReadonlyArray<string>, InvalidStreamId | StreamProviderError | Schema.SchemaError, Silo> =>
  Effect.flatMap(current, ({ provider }): Effect.Effect<ReadonlyArray<string>, InvalidStreamId | StreamProviderError | Schema.SchemaError> => {
    const namespace = contract.namespace
    const reason = invalidPartReason("key", key)
    if (reason !== undefined) return Effect.fail(new InvalidStreamId({ namespace, key: String(key), reason }))
    const partition = partitionOf(namespace, key, provider.partitions)
    const appended = (payloads: ReadonlyArray<unknown>) => {
      const entries = payloads.map((payload) => ({ namespace, key, payload }))
      return Effect.map(provider.append(partition, entries), (tokens) => {
        ProcessMetrics.streamEventsPublished.value += tokens.length
        return tokens
      })
    }
    if (!provider.encodes) return appended(events)
    return Effect.flatMap(encodeAll(contract, events), appended)
  })

/**
 * Where a subscription or a read starts: the oldest event the provider still keeps, the
 * first after a token, or the first accepted at or after a time.
 *
 * @since 0.2.0
 */
export type From = "earliest" | { readonly after: string } | { readonly time: Date | number }

const positionOf = (from: From): Effect.Effect<Position, InvalidStreamToken> => {
  if (from === "earliest") return Effect.succeed({ _tag: "Earliest" })
  if ("after" in from) {
    const token = from.after
    return typeof token === "string" && parseToken(token) !== undefined
      ? Effect.succeed({ _tag: "After", token })
      : Effect.fail(new InvalidStreamToken({ token: String(token) }))
  }
  const millis = typeof from.time === "number" ? from.time : from.time.getTime()
  return Number.isFinite(millis) ? Effect.succeed({ _tag: "Time", millis }) : Effect.fail(new InvalidStreamToken({ token: `time ${String(from.time)}` }))
}

/**
 * A durable subscription.
 *
 * @since 0.2.0
 */
export interface Subscription {
  readonly id: string
  readonly stream: StreamId
  readonly subscriber: ActorAddress
  readonly message: string
  readonly backpressure: Backpressure
}

/**
 * Subscribes the actor `subscriber.actor`/`subscriber.id` to a stream: each event becomes a
 * `message` turn of it. Durable: it survives the actor's deactivation and every silo
 * restarting (kept by the provider). One subscription per actor, stream and message:
 * subscribing again replaces it. With `from`, the subscriber first gets the stream's
 * history since then (on a provider that keeps it), then the live events.
 *
 * @since 0.2.0
 */
export const subscribe = <A, I, Type extends string, Rpcs extends Rpc.Any, const Tag extends AcceptingTag<Rpcs, A>>(
  stream: StreamContract<A, I>,
  key: string,
  subscriber: {
    readonly actor: Actor<Type, Rpcs>
    readonly id: string
    readonly message: Tag
    readonly backpressure?: Backpressure | undefined
    readonly from?: From | undefined
  }
): Effect.Effect<Subscription, InvalidStreamId | InvalidActorId | InvalidStreamToken | StreamProviderError | CallError, Silo> =>
  Effect.gen(function*() {
    const { provider } = yield* current
    const namespace = stream.namespace
    yield* checkKey(namespace, key)
    const { actor, id, message } = subscriber
    const idReason = invalidIdReason(id)
    if (idReason !== undefined) return yield* new InvalidActorId({ type: actor.type, id, reason: idReason })
    yield* Effect.try({ try: () => checkMessage(actor, message), catch: (error) => error }).pipe(Effect.orDie)
    const backpressure = subscriber.backpressure ?? suspend()
    const subscription = explicitId(actor.type, id, message)
    const record = { type: actor.type, id, message, backpressure, createdAt: yield* Clock.currentTimeMillis }
    const agent = yield* Agent.refOrDie(String(partitionOf(namespace, key, provider.partitions)))
    const from = subscriber.from === undefined ? undefined : yield* positionOf(subscriber.from)
    yield* agent.Subscribe({ namespace, key, id: subscription, record, ...(from === undefined ? {} : { from }) })
    return { id: subscription, stream: { namespace, key }, subscriber: { type: actor.type, id }, message, backpressure }
  })

/**
 * Removes a durable subscription; `false` if there was none. Events buffered for it are
 * dropped; a delivery under way completes.
 *
 * @since 0.2.0
 */
export const unsubscribe = (
  subscription: Pick<Subscription, "id" | "stream">
): Effect.Effect<boolean, StreamProviderError | CallError, Silo> =>
  Effect.gen(function*() {
    const { provider } = yield* current
    const { key, namespace } = subscription.stream
    const agent = yield* Agent.refOrDie(String(partitionOf(namespace, key, provider.partitions)))
    return yield* agent.Unsubscribe({ namespace, key, id: subscription.id })
  })

/**
 * The durable subscriptions of a stream, as stored (implicit ones are not stored).
 *
 * @since 0.2.0
 */
export const subscriptions = <A, I>(
  stream: StreamContract<A, I>,
  key: string
): Effect.Effect<ReadonlyArray<Subscription>, StreamProviderError, Silo> =>
  Effect.gen(function*() {
    const { provider } = yield* current
    const stored = yield* provider.subscriptions.list(stream.namespace, key)
    const listed: Array<Subscription> = []
    for (const { data, id } of stored) {
      try {
        const record = decodeRecord(data)
        listed.push({
          id,
          stream: { namespace: stream.namespace, key },
          subscriber: { type: record.type, id: record.id },
          message: record.message,
          backpressure: record.backpressure
        })
      } catch {
        continue // logged by the agent that delivers the stream
      }
    }
    return listed
  })

/**
 * An event as a pull consumer reads it.
 *
 * @since 0.2.0
 */
export interface Delivered<A> {
  readonly stream: StreamId
  readonly token: string
  readonly event: A
}

/**
 * A stream's events as an effect `Stream`, read from the provider as the consumer pulls
 * (no subscription is stored, nothing is acknowledged): from `"now"` (the default: events
 * published after the read starts), `"earliest"`, after a token, or from a time. It waits
 * for new events, so it ends only when interrupted (`Stream.take`, `Stream.takeUntil`...).
 *
 * @since 0.2.0
 */
export const stream = <A, I>(
  contract: StreamContract<A, I>,
  key: string,
  options?: { readonly from?: From | "now" | undefined; readonly batchSize?: number | undefined }
): Stream.Stream<Delivered<A>, InvalidStreamId | InvalidStreamToken | StreamProviderError | Schema.SchemaError, Silo> =>
  Stream.unwrap(Effect.gen(function*() {
    const { provider } = yield* current
    const namespace = contract.namespace
    yield* checkKey(namespace, key)
    const partition = partitionOf(namespace, key, provider.partitions)
    const reader = yield* provider.reader(partition)
    const from = options?.from ?? "now"
    let start: Position
    if (from === "now") {
      const last = yield* provider.lastToken(partition)
      start = last === undefined ? { _tag: "Earliest" } : { _tag: "After", token: last }
    } else start = yield* positionOf(from)
    const decode = Schema.decodeUnknownEffect(jsonCodecOf(contract))
    const batchSize = options?.batchSize ?? 256
    const streamId = { namespace, key }
    return Stream.paginate(start, (position: Position) =>
      Effect.gen(function*() {
        const entries = yield* reader.read(position, batchSize, 1_000)
        if (entries.length === 0) return [[], Option.some(position)] as const
        const events: Array<Delivered<A>> = []
        for (const entry of entries) {
          if (entry.namespace !== namespace || entry.key !== key) continue
          const event = provider.encodes ? yield* decode(entry.payload) : entry.payload as A
          events.push({ stream: streamId, token: entry.token, event })
        }
        const next: Position = { _tag: "After", token: entries[entries.length - 1]!.token }
        return [events, Option.some(next)] as const
      }))
  }))

/**
 * What the handler of a delivery can read of it.
 *
 * @since 0.2.0
 */
export interface EventContext {
  readonly stream: StreamId
  /** The event's token (see `StreamToken`). */
  readonly token: string
  /** 1 for the first delivery by this agent, more on retries. */
  readonly attempt: number
}

/**
 * Inside the turn of a stream delivery: which stream, which event; `undefined` in any
 * other turn.
 *
 * @since 0.2.0
 */
export const currentEvent: Effect.Effect<EventContext | undefined> = Effect.map(RequestContext.current, ({ metadata }) => {
  const token = metadata[eventKeys.token]
  if (token === undefined) return undefined
  return {
    stream: { namespace: metadata[eventKeys.namespace]!, key: metadata[eventKeys.key]! },
    token,
    attempt: Number(metadata[eventKeys.attempt])
  }
})

/**
 * One subscription's lane on this silo: what is buffered, what became of its events.
 *
 * @since 0.2.0
 */
export interface SubscriptionLag {
  readonly stream: StreamId
  /** The subscription's id (`implicit:…` for an implicit one). */
  readonly subscription: string
  readonly subscriber: ActorAddress
  readonly message: string
  readonly strategy: Backpressure["_tag"]
  /** Events waiting in the buffer. */
  readonly buffered: number
  /** The age of the oldest of them, by its token's time (0 with none). */
  readonly lagMillis: number
  readonly delivered: number
  readonly dropped: number
  readonly failed: number
  /** The last event delivered (or failed). */
  readonly lastToken: string | undefined
}

/**
 * The lanes of the partitions this silo delivers (each subscription of each stream seen
 * recently), for dashboards and tests. A lane idle for a minute is forgotten.
 *
 * @since 0.2.0
 */
export const lag: Effect.Effect<ReadonlyArray<SubscriptionLag>, never, Silo> = Effect.flatMap(current, ({ runtime }) =>
  Effect.map(Clock.currentTimeMillis, (now) => {
    const lanes: Array<SubscriptionLag> = []
    for (const table of runtime?.lanes.values() ?? []) for (const lane of table.lanes()) lanes.push(lane.lagOf(now))
    return lanes
  }))

/**
 * @since 0.2.0
 */
export interface StreamsConfig {
  /** Where streams live (default: `MemoryStreamProvider.make()`, this process's memory). */
  readonly provider?: StreamProvider | Effect.Effect<StreamProvider, StreamProviderError, Scope.Scope> | undefined
  /** Implicit subscriptions; every silo of a cluster needs the same ones. */
  readonly implicit?: ReadonlyArray<ImplicitSubscription> | undefined
  /** Entries an agent reads at once (default 512). */
  readonly batchSize?: number | undefined
  /**
   * How long an agent's read waits for new entries before it looks again (default 500 ms).
   * A read that reached Redis inside the silo's lease ends this long after at most: kept
   * under `deadAfter − lease` (500 ms with the default timings), what it took is pending
   * before a survivor claims the partition (a read a pause delays is another matter: see
   * docs/streams.md, "When a silo is paused").
   */
  readonly pollInterval?: Duration.Input | undefined
  /** Attempts of a delivery whose turn fails (default 5, 100 ms doubling between). */
  readonly retryAttempts?: number | undefined
  /** How long an unavailable subscriber is waited for (default 30 s). */
  readonly unavailableWait?: Duration.Input | undefined
  /** How long a stopping agent lets deliveries under way finish (default 5 s). */
  readonly drainTimeout?: Duration.Input | undefined
  /** How often each partition agent is made sure to be active on its owner (default 1 s). */
  readonly keepInterval?: Duration.Input | undefined
}

const providerOf = (
  provider: StreamsConfig["provider"]
): Effect.Effect<StreamProvider, StreamProviderError, Scope.Scope> =>
  provider === undefined ? Effect.sync(() => MemoryStreamProvider.make())
  : Effect.isEffect(provider) ? provider
  : Effect.succeed(provider)

const millis = (input: Duration.Input | undefined, fallback: number): number =>
  input === undefined ? fallback : Duration.toMillis(Duration.fromInputUnsafe(input))

/**
 * Streams on this silo: it delivers the partitions it owns (all of them on a single silo)
 * and publishes. Every silo of a cluster needs the same provider (same data) and the same
 * implicit subscriptions, and hosts every subscriber type.
 *
 * @since 0.2.0
 */
export const layer = (config?: StreamsConfig): Layer.Layer<Streams, StreamProviderError, Silo> =>
  Layer.effectContext(Effect.gen(function*() {
    const provider = yield* providerOf(config?.provider)
    const implicitRoutes = new Map<string, Array<ImplicitRoute>>()
    for (const { namespace, route } of config?.implicit ?? []) {
      const routes = implicitRoutes.get(namespace) ?? []
      if (routes.some((r) => r.subscription === route.subscription)) {
        return yield* Effect.die(new Error(`Streams.layer: ${route.type} receives ${namespace} as ${route.message} twice`))
      }
      routes.push(route)
      implicitRoutes.set(namespace, routes)
    }
    const runtime = StreamsRuntime.of({
      provider,
      implicit: implicitRoutes,
      batchSize: config?.batchSize ?? 512,
      pollMillis: millis(config?.pollInterval, 500),
      retryAttempts: config?.retryAttempts ?? 5,
      unavailableWaitMillis: millis(config?.unavailableWait, 30_000),
      drainMillis: millis(config?.drainTimeout, 5_000),
      agents: new Set(),
      lanes: new Map()
    })
    // Before the provider closes (finalizers run in reverse order): every agent on this silo
    // stops and acknowledges what it delivered, or that would be delivered again.
    yield* Effect.addFinalizer(() => Effect.forEach([...runtime.agents], (stop) => stop, { concurrency: "unbounded", discard: true }))
    const silo = yield* Silo
    attached.set(silo.router, { provider, runtime })
    yield* Layer.build(AgentLive.pipe(Layer.provide(Layer.succeed(StreamsRuntime, runtime))))
    const agents = yield* Effect.forEach(Array.from({ length: provider.partitions }, (_, i) => String(i)), Agent.refOrDie)
    // An agent that cannot start (the provider refuses it, say) is tried again every touch;
    // each new reason is logged once, so a partition that delivers nothing says why.
    const lastFailure = new Map<number, string>()
    const touch = (agent: (typeof agents)[number], partition: number) =>
      agent.Touch().pipe(
        Effect.tap(() => Effect.sync(() => lastFailure.delete(partition))),
        Effect.catch((error) => {
          if (error._tag === "ActorUnavailable" || lastFailure.get(partition) === error.message) return Effect.void
          lastFailure.set(partition, error.message)
          return Effect.logWarning(`stream partition ${partition}: its agent does not start (${error.message}); it is tried again every keep interval`)
        })
      )
    const touchAll = Effect.forEach(agents, touch, { concurrency: 16, discard: true })
    yield* Effect.forkScoped(keepActive(touchAll, Duration.millis(millis(config?.keepInterval, 1_000))))
    return Context.make(Streams, Streams.of({ provider }))
  }))

/**
 * Streams from a program that hosts no actors (a `ClusterClient`, a script): publish,
 * subscribe actors, read streams; the silos deliver. Same provider as the silos.
 *
 * @since 0.2.0
 */
export const layerClient = (
  config?: Pick<StreamsConfig, "provider">
): Layer.Layer<Streams, StreamProviderError, Silo> =>
  Layer.effect(
    Streams,
    Effect.gen(function*() {
      const provider = yield* providerOf(config?.provider)
      attached.set((yield* Silo).router, { provider, runtime: undefined })
      return Streams.of({ provider })
    })
  )

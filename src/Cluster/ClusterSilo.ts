/**
 * A silo that is a member of a cluster: `ClusterSilo.layer(config)` provides the `Silo`
 * (so every contract's `ref` reaches its actor wherever it lives) and the `Cluster` view.
 * It needs a `Membership` layer (Redis in production, memory in tests) and, for directory
 * placements, a `Directory` layer.
 *
 * Starting: listen on `host:port` (port 0 picks a free one), take a new identity
 * (`host:port@generation`), follow the membership, then join it. Stopping (closing the
 * scope): leave the membership, so the others route elsewhere (and ask this silo to release
 * each address it still holds before they activate it, see `Handoff`); let every
 * activation finish its turn and deactivate (finalizers write state); answer the requests
 * still in flight (`drainTimeout`); then close the listener and connections.
 *
 * A silo serves only within its membership lease (see `Membership`): no turn starts
 * outside it. A silo declared dead, or whose lease ran out, stops serving at once: it
 * answers every call with `ActorUnavailable`, deactivates everything (another silo may
 * already host its actors), and then joins again as a new generation at the same address
 * (`onDeclaredDead: "rejoin"`, the default) or stays out (`"stop"`: its process is
 * expected to exit). `Cluster.declaredDead` completes the first time.
 *
 * Every silo of a cluster hosts every actor type. A call on the ref of an actor another
 * silo owns goes over one multiplexed TCP connection per pair of silos; an actor on the
 * calling silo is called directly, with nothing encoded.
 *
 * @since 0.1.0
 */
import { Clock, Context, Deferred, Duration, Effect, Exit, Layer, Option, Schedule, Scope } from "effect"
import { ActorUnavailable } from "../Actor/ActorError.ts"
import type { LocalRouter } from "../Actor/internal/LocalRouter.ts"
import * as Silo from "../Actor/Silo.ts"
import * as Connection from "../Transport/Connection.ts"
import type { ReplyOutcome, RequestEnvelope } from "../Transport/Envelope.ts"
import * as Server from "../Transport/Server.ts"
import { Cluster } from "./Cluster.ts"
import { Directory } from "./Directory.ts"
import * as HashRing from "./HashRing.ts"
import * as Control from "./internal/Control.ts"
import { handler } from "./internal/Inbound.ts"
import {
  type DuplicateSilo,
  Membership,
  type MembershipError,
  type Metadata,
  type Registration,
  type SiloDeclaredDead
} from "./Membership.ts"
import { encodeQuarkError } from "./internal/MessageCodec.ts"
import { Peers } from "./internal/Peers.ts"
import { RemoteRouter } from "./internal/RemoteRouter.ts"
import { HaltHook } from "./internal/TestHooks.ts"
import * as SiloIdentity from "./SiloIdentity.ts"
import * as Topology from "./internal/Topology.ts"

/**
 * Cluster silo configuration; every field has a documented default.
 *
 * @since 0.1.0
 */
export interface ClusterSiloConfig extends Silo.SiloConfig {
  /** The address to listen on and to be reached at. Default `127.0.0.1`. */
  readonly host?: string | undefined
  /** Default 0: any free port. */
  readonly port?: number | undefined
  /** Largest frame sent or accepted. Default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
  /** Timeout of a remote call without its own or its type's `callTimeout`. Default 30 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
  /** Lease of a directory entry; renewed every third of it. Default 10 seconds. */
  readonly directoryLease?: Duration.Input | undefined
  /** Labels published with this silo's membership. */
  readonly metadata?: Metadata | undefined
  /**
   * What a silo declared dead does once it has stopped serving: join again with a new
   * generation as soon as the registry takes it (`"rejoin"`, the default), or stay out
   * (`"stop"`: the process is expected to exit and restart).
   */
  readonly onDeclaredDead?: "rejoin" | "stop" | undefined
  /**
   * How long after a ring change a new owner asks the previous owner to release an address
   * before activating it. Default 30 seconds.
   */
  readonly handoffWindow?: Duration.Input | undefined
  /** Bound on a graceful stop's wait for in-flight requests to be answered. Default 10 seconds. */
  readonly drainTimeout?: Duration.Input | undefined
}

interface Incarnation {
  readonly identity: SiloIdentity.SiloIdentity
  readonly registration: Registration
  readonly scope: Scope.Closeable
}

const make = Effect.fnUntraced(function*(config: ClusterSiloConfig) {
  const membership = yield* Membership
  const directory = Option.getOrUndefined(yield* Effect.serviceOption(Directory))
  const hasher = yield* HashRing.xxhash32
  const clock = yield* Clock.Clock
  const host = config.host ?? "127.0.0.1"
  const leaseMillis = Duration.toMillis(config.directoryLease ?? "10 seconds")
  const layerScope = yield* Effect.scope
  const haltHook = yield* Effect.serviceOption(HaltHook)

  const peers = new Peers({
    maxFrameBytes: config.maxFrameBytes,
    defaultTimeout: config.requestTimeout ?? Connection.defaultTimeout,
    context: yield* Effect.context<never>()
  })
  yield* Effect.addFinalizer(() => peers.close)

  // The listener comes first so that it closes last: the silo's shutdown (before it)
  // answers late calls with ActorUnavailable instead of dropping them.
  let handle = notYetServing
  const serverScope = yield* Scope.fork(layerScope)
  const server = yield* Server.make({
    host,
    port: config.port ?? 0,
    maxFrameBytes: config.maxFrameBytes,
    handle: (request: RequestEnvelope) => handle(request)
  }).pipe(Scope.provide(serverScope))
  // After every activation stopped (the silo's finalizer, which runs before this one):
  // answer what is still in flight before the listener closes.
  yield* Effect.addFinalizer(() => server.drain(config.drainTimeout ?? "10 seconds"))
  const silo = yield* Silo.make(config)
  const remote = new RemoteRouter(silo.router, peers, directory, HashRing.makeWith(hasher, []), {
    leaseMillis,
    random: Math.random,
    handoffMillis: Duration.toMillis(config.handoffWindow ?? "30 seconds"),
    releaseTimeoutMillis: Duration.toMillis(config.requestTimeout ?? Connection.defaultTimeout),
    now: () => Number(clock.monotonicTimeNanosUnsafe() / 1_000_000n)
  })
  silo.router.remote = remote

  let current: Incarnation | undefined
  /** When this silo left the membership gracefully. */
  let leftAt: number | undefined
  handle = handler(remote, {
    self: () => remote.self,
    reachesRegistry: () => current?.registration.reachesRegistry() ?? false,
    release: (address) => remote.release(address)
  })
  const refresh = yield* Topology.follow(membership, remote, hasher, directory)

  /** Takes a new identity and joins; serves from then on. */
  const join = Effect.gen(function*() {
    const identity = yield* SiloIdentity.generate(host, server.port)
    const scope = yield* Scope.fork(layerScope)
    // Known before the join is announced: the ring change it causes here is a handoff too.
    remote.self = identity.id
    const registration = yield* membership.join(identity, {
      metadata: config.metadata,
      confirmOutage: confirmOutage(remote, membership.timings.heartbeatMillis)
    }).pipe(
      Scope.provide(scope),
      Effect.onError(() => Scope.close(scope, Exit.void))
    )
    current = { identity, registration, scope }
    // Runs before the leave (finalizers run last-in first-out): a silo that leaves on purpose
    // keeps serving what it holds until it has handed it over, since the new owners ask it to
    // release each address first (for `handoffWindow`).
    yield* Scope.addFinalizer(scope, Effect.sync(() => {
      if (!remote.dead) leftAt = remote.options.now()
    }))
    remote.dead = false
    silo.router.shuttingDown = false
    silo.router.lease = () =>
      registration.leaseValid() || (leftAt !== undefined && remote.options.now() < leftAt + remote.options.handoffMillis)
    silo.router.annotateTurns({ "quark.silo": identity.id })
    yield* refresh
    return current
  })

  const first = yield* join
  const firstDeath = yield* Deferred.make<SiloDeclaredDead>()

  /** Declared dead: stop serving (everything deactivates), then join again unless told to stop. */
  const onDeath = (incarnation: Incarnation): Effect.Effect<void> =>
    Effect.gen(function*() {
      const dead = yield* incarnation.registration.declaredDead
      yield* Deferred.succeed(firstDeath, dead)
      yield* Effect.logError("this silo was declared dead: it stops serving").pipe(
        Effect.annotateLogs({ silo: incarnation.identity.id, reason: dead.reason })
      )
      remote.markDead(incarnation.identity.id)
      yield* stopServing(remote, silo.router)
      // A turn that hangs must not keep the silo out for good; it ends on this silo's old
      // activation, which new calls here still queue behind.
      yield* Effect.timeoutOrElse(deactivated(silo.router), {
        duration: config.shutdownTimeout ?? "10 seconds",
        orElse: () => Effect.logWarning("some activations are still deactivating; joining again all the same")
      })
      yield* Scope.close(incarnation.scope, Exit.void)
      if (config.onDeclaredDead === "stop") return yield* Effect.never
      const next = yield* join.pipe(
        Effect.tapError((error) => Effect.logWarning("joining the cluster again failed; retrying", error)),
        Effect.retry(Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("5 seconds")])),
        Effect.orDie // retried forever: never fails
      )
      yield* Effect.logInfo("joined the cluster again").pipe(
        Effect.annotateLogs({ silo: next.identity.id, previous: incarnation.identity.id })
      )
      return yield* onDeath(next)
    })
  yield* Effect.forkScoped(onDeath(first))
  if (directory !== undefined) yield* Effect.forkScoped(renewLeases(remote, leaseMillis))

  const cluster = Cluster.of(
    Topology.view(remote, membership, () => current?.identity, Deferred.await(firstDeath))
  )
  // Tests only (`TestCluster`'s crash): stop serving at once and cut every connection,
  // without leaving the membership or waiting for anything.
  if (Option.isSome(haltHook)) {
    haltHook.value.register(
      Effect.andThen(stopServing(remote, silo.router), Effect.andThen(Scope.close(serverScope, Exit.void), peers.close))
    )
  }
  return Context.make(Silo.Silo, silo).pipe(Context.add(Cluster, cluster))
})

/**
 * Asks every other member of the ring whether it reaches the registry: `true` when each
 * answers that it does not (or is gone), i.e. the registry is down for everyone.
 */
const confirmOutage = (remote: RemoteRouter, timeoutMillis: number): Effect.Effect<boolean> =>
  Effect.suspend(() => {
    const others = remote.ring.members.map((member) => member.id).filter((id) => id !== remote.self)
    return Effect.forEach(
      others,
      (id) => Effect.suspend(() => Control.askRegistryStatus(remote.peers.get(id), id, timeoutMillis)),
      { concurrency: "unbounded" }
    ).pipe(
      Effect.map((answers) => answers.every((status) => status === "unreachable" || status === "gone")),
      Effect.catchDefect(() => Effect.succeed(false))
    )
  })

const notYetServing = (request: RequestEnvelope): Effect.Effect<ReplyOutcome> =>
  Effect.succeed({
    _tag: "Failure",
    error: encodeQuarkError(new ActorUnavailable({ address: request.target, reason: "the silo is starting" }))
  })

/** After being declared dead: refuse everything, deactivate everything. */
const stopServing = (remote: RemoteRouter, router: LocalRouter): Effect.Effect<void> =>
  Effect.sync(() => {
    remote.dead = true
    router.shuttingDown = true
    for (const slot of router.slots.values()) {
      for (const act of slot.activations.values()) act.deactivate()
    }
  })

/** Waits until no activation is left. */
const deactivated = (router: LocalRouter): Effect.Effect<void> =>
  Effect.suspend(() => {
    const all = [...router.slots.values()].flatMap((slot) => [...slot.activations.values()])
    return Effect.forEach(all, (act) => Effect.callback<void>((resume) => act.onStopped(() => resume(Effect.void))), {
      discard: true
    })
  })

/** Renews the directory leases every third of a lease, for the life of the scope. */
const renewLeases = (remote: RemoteRouter, leaseMillis: number): Effect.Effect<void> =>
  Effect.gen(function*() {
    let confirmed = yield* Clock.currentTimeMillis
    yield* Effect.schedule(
      Effect.gen(function*() {
        const now = yield* Clock.currentTimeMillis
        confirmed = yield* remote.renewLeases(confirmed, now)
      }),
      Schedule.spaced(Duration.millis(Math.max(1, Math.floor(leaseMillis / 3))))
    )
  })

/**
 * A cluster member silo: provides `Silo` and `Cluster`; needs `Membership` (and
 * `Directory` for directory placements).
 *
 * @since 0.1.0
 */
export const layer = (
  config: ClusterSiloConfig = {}
): Layer.Layer<Silo.Silo | Cluster, Server.ServerError | MembershipError | DuplicateSilo, Membership> =>
  Layer.effectContext(make(config))

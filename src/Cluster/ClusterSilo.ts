/**
 * A silo that is a member of a cluster: `ClusterSilo.layer(config)` provides the `Silo`
 * (so every contract's `ref` reaches its actor wherever it lives) and the `Cluster` view.
 * It needs a `Membership` layer (Redis in production, memory in tests) and, for directory
 * placements, a `Directory` layer.
 *
 * Starting: listen on `host:port` (port 0 picks a free one), take a new identity
 * (`host:port@generation`), follow the membership, then join it. Stopping (closing the
 * scope, e.g. on SIGTERM) drains the silo first, as `Cluster.drain` does: it says it is
 * draining, leaves the membership, hands every activation to its next owner (each finishes
 * its turn and deactivates, finalizers write state; the next owners ask this silo to
 * release each address before they activate it, see `Handoff`), forwards the calls that
 * still reach it, answers those in flight, all within `drainTimeout` (see `internal/Drain.ts`);
 * then it closes the listener and connections.
 *
 * A silo serves only within its membership lease (see `Membership`): no turn starts
 * outside it. A silo declared dead, or whose lease ran out, stops serving at once: it
 * answers every call with `ActorUnavailable`, deactivates everything (another silo may
 * already host its actors), and then joins again as a new generation at the same address
 * (`onDeclaredDead: "rejoin"`, the default) or stays out (`"stop"`: its process is
 * expected to exit). `Cluster.declaredDead` completes the first time.
 *
 * A silo hosts the actor types whose implementations it was built with, and announces
 * them with its application `version` in its membership metadata (`quark.types`,
 * `quark.version`): silos may host different types, and every placement chooses among the
 * silos that host the address's type (a call for a type no live silo hosts fails at once
 * with `NoHostForType`; see `internal/TypeRings.ts`). It also publishes its load there every
 * `loadReportInterval` (`quark.load.*`, see `Load`), for `Placement.leastLoaded` and the
 * `Rebalancer`; every write of its metadata (types, status, load) goes through one writer
 * that merges them (`internal/MetadataPublisher.ts`). A call on the ref of an actor another
 * silo owns goes over one multiplexed TCP connection per pair of silos; an actor on the
 * calling silo is called directly, with nothing encoded. Connections are TLS with `tls`
 * (mutual when it has a CA) and open with a handshake: peers of another `clusterId`, and
 * with `clusterSecret` silos that cannot prove it, are refused. A silo listening on a
 * non-loopback host without TLS warns when it starts, or fails with `requireTls`.
 *
 * @since 0.1.0
 */
import { Clock, Context, Deferred, Duration, Effect, Exit, Layer, Option, type Redacted, Schedule, Scope } from "effect"
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import { ActorUnavailable } from "../Actor/ActorError.ts"
import type { LocalRouter } from "../Actor/internal/LocalRouter.ts"
import * as Silo from "../Actor/Silo.ts"
import * as Connection from "../Transport/Connection.ts"
import type { ReplyOutcome, RequestEnvelope } from "../Transport/Envelope.ts"
import type { PeerInfo } from "../Transport/PeerInfo.ts"
import * as Server from "../Transport/Server.ts"
import * as Tls from "../Transport/Tls.ts"
import { Cluster } from "./Cluster.ts"
import { Directory } from "./Directory.ts"
import * as HashRing from "./HashRing.ts"
import * as Control from "./internal/Control.ts"
import * as Hosting from "./internal/Hosting.ts"
import * as LoadReport from "./internal/LoadReport.ts"
import { MetadataPublisher } from "./internal/MetadataPublisher.ts"
import * as Load from "./Load.ts"
import * as Drain from "./internal/Drain.ts"
import { handler } from "./internal/Inbound.ts"
import {
  type DuplicateSilo,
  Membership,
  MembershipError,
  type Metadata,
  type Registration,
  type SiloDeclaredDead
} from "./Membership.ts"
import { encodeQuarkError } from "./internal/MessageCodec.ts"
import { Peers } from "./internal/Peers.ts"
import { RemoteRouter } from "./internal/RemoteRouter.ts"
import { Migrations } from "./internal/Migration.ts"
import { Migrator } from "./Migrator.ts"
import { HaltHook } from "./internal/TestHooks.ts"
import * as SiloIdentity from "./SiloIdentity.ts"
import * as Topology from "./internal/Topology.ts"
import { TypeRings } from "./internal/TypeRings.ts"

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
  /**
   * Labels published with this silo's membership. Keys starting with `quark.` are Quark's
   * own (see `version`); using one fails the layer with a `MembershipError` (`configure`).
   */
  readonly metadata?: Metadata | undefined
  /**
   * The application's version, published as `quark.version` with the actor types this silo
   * hosts (`quark.types`). During a rolling upgrade, directory placements (`random`,
   * `preferLocal`) prefer the silos that host the type and run the caller's version; hashed
   * owners do not (one owner that every caller agrees on comes first). Default `"0"`.
   */
  readonly version?: string | undefined
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
  /**
   * Bound on a drain (a graceful stop): handing every activation over, forwarding late
   * calls and answering those in flight. Default 30 seconds.
   */
  readonly drainTimeout?: Duration.Input | undefined
  /**
   * How often this silo publishes its load in its membership metadata (`quark.load.*`: its
   * activation counts, CPU share, event-loop delay and memory; see `Load`), for load-aware
   * placement (`Placement.leastLoaded`) and the `Rebalancer`. Default 5 seconds; `0` or
   * `"off"` publishes none. Each report is one membership update announced to every view,
   * so keep it to seconds.
   */
  readonly loadReportInterval?: Duration.Input | "off" | undefined
  /** Where the CPU, event-loop and memory figures come from. Default `Load.processSource`, this process's. */
  readonly loadSource?: Load.LoadSource | undefined
  /** The cluster's name: silos and clients of another cluster id are refused. Default `"quark"`. */
  readonly clusterId?: string | undefined
  /**
   * A secret every silo of the cluster shares: a peer claiming to be a silo must prove it
   * (clients need not). Default none. Never logged.
   */
  readonly clusterSecret?: Redacted.Redacted<string> | string | undefined
  /**
   * TLS for the listener and the connections to other silos (mutual when a CA is given):
   * a config, or credentials made with `Tls.make` (to call their `reload` yourself).
   * Default: plain TCP.
   */
  readonly tls?: Tls.TlsConfig | Tls.Credentials | undefined
  /**
   * Refuse to start without `tls` when `host` is not a loopback address (the layer fails
   * with a `TlsError`). Default `false`: such a silo starts, with a warning.
   */
  readonly requireTls?: boolean | undefined
}

interface Incarnation {
  readonly identity: SiloIdentity.SiloIdentity
  readonly registration: Registration
  readonly scope: Scope.Closeable
}

const make = Effect.fnUntraced(function*(config: ClusterSiloConfig) {
  yield* Hosting.checkMetadata(config.metadata)
  const version = config.version ?? Hosting.defaultVersion
  const membership = yield* Membership
  const directory = Option.getOrUndefined(yield* Effect.serviceOption(Directory))
  const hasher = yield* HashRing.xxhash32
  const clock = yield* Clock.Clock
  const host = config.host ?? "127.0.0.1"
  const leaseMillis = Duration.toMillis(config.directoryLease ?? "10 seconds")
  const layerScope = yield* Effect.scope
  const haltHook = yield* Effect.serviceOption(HaltHook)
  const loadReportMillis = yield* Effect.try({
    try: () => LoadReport.intervalMillis(config.loadReportInterval),
    catch: (error) => new MembershipError({ operation: "configure", reason: String(error) })
  })
  // Every write of this silo's membership metadata goes through it (types, status, load).
  const publisher = new MetadataPublisher()

  const tls = yield* secured(config, host)
  // Read at each handshake: this silo's id changes when it joins again.
  let self = (): string | undefined => undefined
  const peers = new Peers({
    maxFrameBytes: config.maxFrameBytes,
    defaultTimeout: config.requestTimeout ?? Connection.defaultTimeout,
    context: yield* Effect.context<never>(),
    clusterId: config.clusterId,
    clusterSecret: config.clusterSecret,
    role: "silo",
    siloId: () => self(),
    tls
  })
  yield* Effect.addFinalizer(() => peers.close)

  // The listener comes first so that it closes last: the silo's shutdown (before it)
  // answers late calls with ActorUnavailable instead of dropping them.
  let handle: (request: RequestEnvelope, peer: PeerInfo) => Effect.Effect<ReplyOutcome> = notYetServing
  const serverScope = yield* Scope.fork(layerScope)
  const server = yield* Server.make({
    host,
    port: config.port ?? 0,
    maxFrameBytes: config.maxFrameBytes,
    handle: (request, peer) => handle(request, peer),
    clusterId: config.clusterId,
    clusterSecret: config.clusterSecret,
    siloId: () => self(),
    tls
  }).pipe(Scope.provide(serverScope))
  const silo = yield* Silo.make(config)
  const remote = new RemoteRouter(silo.router, peers, directory, TypeRings.make(hasher, [], { version }), {
    leaseMillis,
    random: Math.random,
    handoffMillis: Duration.toMillis(config.handoffWindow ?? "30 seconds"),
    releaseTimeoutMillis: Duration.toMillis(config.requestTimeout ?? Connection.defaultTimeout),
    settleMillis: membership.timings.deadMillis,
    now: () => Number(clock.monotonicTimeNanosUnsafe() / 1_000_000n)
  })
  silo.router.remote = remote
  self = () => remote.self
  const migrations = new Migrations(remote, {
    leaseMillis,
    requestTimeoutMillis: remote.options.releaseTimeoutMillis,
    prepareTimeoutMillis: remote.options.releaseTimeoutMillis,
    handoffMillis: remote.options.handoffMillis
  })
  remote.handoff.received = (slot, id, state) => migrations.received(slot, id, state)
  yield* Effect.addFinalizer(() => migrations.close)

  let current: Incarnation | undefined
  /** When this silo left the membership gracefully. */
  let leftAt: number | undefined
  handle = handler(remote, {
    self: () => remote.self,
    address: `${host}:${server.port}`,
    reachesRegistry: () => current?.registration.reachesRegistry() ?? false,
    release: (address, to) => migrations.release(address, remote.release(address, to)),
    migrate: (tag, payload) => migrations.handle(tag, payload)
  })
  const refresh = yield* Topology.follow(membership, remote, hasher, directory)

  /** Takes a new identity and joins; serves from then on. */
  const join = Effect.gen(function*() {
    const identity = yield* SiloIdentity.generate(host, server.port)
    const scope = yield* Scope.fork(layerScope)
    // Known before the join is announced: the ring change it causes here is a handoff too.
    remote.self = identity.id
    const joined = Hosting.joinMetadata(config.metadata, version, silo.router)
    const registration = yield* membership.join(identity, {
      metadata: joined,
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
    // After joining again: what was published besides the join's metadata (the last load report) comes back.
    yield* publisher.attach(registration, joined)
    return current
  })

  const first = yield* join
  // The implementations register after this layer is built, so after the join: each
  // registration publishes the types hosted so far (see `Hosting`).
  silo.router.registered = Hosting.announcer({ router: silo.router, publisher, refresh })
  if (loadReportMillis > 0) {
    yield* Effect.forkScoped(LoadReport.run({
      router: silo.router,
      publisher,
      source: config.loadSource ?? Load.processSource,
      intervalMillis: loadReportMillis
    }))
  }
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
      yield* Effect.timeoutOrElse(Drain.deactivated(silo.router), {
        duration: config.shutdownTimeout ?? "10 seconds",
        orElse: () => Effect.logWarning("some activations are still deactivating; joining again all the same")
      })
      yield* Scope.close(incarnation.scope, Exit.void)
      if (config.onDeclaredDead === "stop" || silo.router.draining) return yield* Effect.never
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

  const drain = Drain.make({
    router: silo.router,
    remote,
    // Merged by the publisher into the rest of the record (types, load): nothing is lost.
    announce: publisher.set({ [statusKey]: "draining" }).pipe(
      Effect.asVoid,
      Effect.catch((error) => Effect.logWarning("draining: could not say so in the membership", error))
    ),
    handOver: Effect.suspend(() => {
      // The last silo standing has nobody to hand to: its finalizers write what must survive.
      if (remote.self === undefined || remote.ring.members.every((member) => member.id === remote.self)) return Effect.void
      const movable: Array<ActorAddress> = []
      for (const slot of silo.router.slots.values()) {
        if (!slot.virtual || slot.maxWorkers > 1 || slot.placement?.usesDirectory !== true) continue
        for (const act of slot.activations.values()) movable.push(act.address)
      }
      if (movable.length === 0) return Effect.void
      return Effect.flatMap(migrations.service.migrateAway(movable), (report) =>
        report.failed.length === 0 ? Effect.void : Effect.logWarning("draining: some activations could not be migrated; they deactivate here").pipe(
          Effect.annotateLogs({ moved: report.moved.length, failed: report.failed.length, first: report.failed[0]!.message })
        ))
    }),
    pushParked: migrations.parking.pushAll,
    leave: Effect.suspend(() => current === undefined ? Effect.void : Scope.close(current.scope, Exit.void)),
    drainServer: (millis) => server.drain(millis),
    disconnected: server.disconnected,
    settleMillis: remote.options.settleMillis ?? 0,
    timeoutMillis: Duration.toMillis(config.drainTimeout ?? "30 seconds")
  })
  const cluster = Cluster.of(
    Topology.view(remote, membership, () => current?.identity, Deferred.await(firstDeath), drain)
  )
  // Tests only (`TestCluster`'s crash): stop serving at once and cut every connection,
  // without leaving the membership or waiting for anything.
  if (Option.isSome(haltHook)) {
    haltHook.value.register(
      Effect.andThen(stopServing(remote, silo.router), Effect.andThen(Scope.close(serverScope, Exit.void), peers.close))
    )
  }
  // Registered last, so it runs first: the drain needs everything else still up.
  yield* Effect.addFinalizer(() => drain.drain)
  return Context.make(Silo.Silo, silo).pipe(Context.add(Cluster, cluster), Context.add(Migrator, migrations.service))
})

/** Loopback hosts: nothing but this machine reaches a silo listening there. */
const isLoopback = (host: string): boolean => host === "localhost" || host === "::1" || /^127\./.test(host)

/**
 * The silo's TLS credentials; without TLS on a non-loopback host, a warning, or the
 * layer's failure with `requireTls`.
 */
const secured = (config: ClusterSiloConfig, host: string): Effect.Effect<Tls.Credentials | undefined, Tls.TlsError, Scope.Scope> => {
  if (isLoopback(host)) return config.tls === undefined ? Effect.succeed(undefined) : Tls.resolve(config.tls)
  // Without a secret, a peer is a silo because it says so: it may forward calls with any
  // principal and send control requests.
  const unproven = config.clusterSecret === undefined ?
    Effect.logWarning(
      `this silo listens on ${host} without clusterSecret: any peer that reaches it can claim to be a silo of the cluster (set clusterSecret)`
    ).pipe(Effect.annotateLogs({ host })) :
    Effect.void
  if (config.tls !== undefined) return Effect.andThen(unproven, Tls.resolve(config.tls))
  const what = `this silo listens on ${host} without TLS: anyone who reaches that address can call its actors and read its traffic`
  return config.requireTls === true ?
    Effect.fail(new Tls.TlsError({ reason: `requireTls: ${what}; set tls` })) :
    Effect.as(
      Effect.andThen(unproven, Effect.logWarning(`${what} (set tls, and requireTls to refuse this)`).pipe(Effect.annotateLogs({ host }))),
      undefined
    )
}

/** The membership metadata key of a silo's status: `draining` once it began to drain. */
const statusKey = "quark.status"

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
 * A cluster member silo: provides `Silo`, `Cluster` and its `Migrator` (live migration);
 * needs `Membership` (and
 * `Directory` for directory placements).
 *
 * @since 0.1.0
 */
export const layer = (
  config: ClusterSiloConfig = {}
): Layer.Layer<Silo.Silo | Cluster | Migrator, Server.ServerError | MembershipError | DuplicateSilo | Tls.TlsError, Membership> =>
  Layer.effectContext(make(config))

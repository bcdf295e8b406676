/**
 * A silo that is a member of a cluster: `ClusterSilo.layer(config)` provides the `Silo`
 * (so every contract's `ref` reaches its actor wherever it lives) and the `Cluster` view.
 * It needs a `Membership` layer (Redis in production, memory in tests) and, for directory
 * placements, a `Directory` layer.
 *
 * Starting: listen on `host:port` (port 0 picks a free one), take a new identity
 * (`host:port@generation`), follow the membership, then join it. Stopping (closing the
 * scope): leave the membership, so the others stop routing here; deactivate every
 * activation (finalizers write state); close the listener and connections.
 *
 * A silo declared dead (see `Membership`) stops serving at once: it deactivates everything
 * and answers every call with `ActorUnavailable`, since another silo may already host its
 * actors. `Cluster.declaredDead` completes then; a process usually exits and restarts as a
 * new member.
 *
 * Every silo of a cluster hosts every actor type. A call on the ref of an actor another
 * silo owns goes over one multiplexed TCP connection per pair of silos; an actor on the
 * calling silo is called directly, with nothing encoded.
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Exit, Layer, Option, Schedule, Scope } from "effect"
import { ActorUnavailable } from "../Actor/ActorError.ts"
import type { LocalRouter } from "../Actor/LocalRouter.ts"
import * as Silo from "../Actor/Silo.ts"
import * as Connection from "../Transport/Connection.ts"
import type { ReplyOutcome, RequestEnvelope } from "../Transport/Envelope.ts"
import * as Server from "../Transport/Server.ts"
import { Cluster } from "./Cluster.ts"
import { Directory } from "./Directory.ts"
import * as HashRing from "./HashRing.ts"
import { handler } from "./Inbound.ts"
import { type DuplicateSilo, Membership, type MembershipError, type Metadata } from "./Membership.ts"
import { encodeQuarkError } from "./MessageCodec.ts"
import { Peers } from "./Peers.ts"
import { RemoteRouter } from "./RemoteRouter.ts"
import * as SiloIdentity from "./SiloIdentity.ts"
import * as Topology from "./Topology.ts"

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
}

const make = Effect.fnUntraced(function*(config: ClusterSiloConfig) {
  const membership = yield* Membership
  const directory = Option.getOrUndefined(yield* Effect.serviceOption(Directory))
  const hasher = yield* HashRing.xxhash32
  const host = config.host ?? "127.0.0.1"
  const leaseMillis = Duration.toMillis(config.directoryLease ?? "10 seconds")

  const peers = new Peers({ maxFrameBytes: config.maxFrameBytes, defaultTimeout: config.requestTimeout ?? Connection.defaultTimeout })
  yield* Effect.addFinalizer(() => peers.close)

  // The listener comes first so that it closes last: the silo's shutdown (before it)
  // answers late calls with ActorUnavailable instead of dropping them.
  let handle = notYetServing
  const serverScope = yield* Scope.fork(yield* Effect.scope)
  const server = yield* Server.make({
    host,
    port: config.port ?? 0,
    maxFrameBytes: config.maxFrameBytes,
    handle: (request: RequestEnvelope) => handle(request)
  }).pipe(Scope.provide(serverScope))
  const silo = yield* Silo.make(config)
  const remote = new RemoteRouter(silo.router, peers, directory, HashRing.makeWith(hasher, []), {
    leaseMillis,
    random: Math.random
  })
  const identity = yield* SiloIdentity.generate(host, server.port)
  remote.self = identity.id
  silo.router.remote = remote
  handle = handler(remote)

  const refresh = yield* Topology.follow(membership, remote, hasher, directory)
  const registration = yield* membership.join(identity, { metadata: config.metadata })
  yield* refresh

  yield* Effect.forkScoped(Effect.flatMap(registration.declaredDead, (dead) =>
    Effect.andThen(
      Effect.logError("this silo was declared dead: it stops serving").pipe(
        Effect.annotateLogs({ silo: identity.id, reason: dead.reason })
      ),
      stopServing(remote, silo.router)
    )))
  if (directory !== undefined) yield* Effect.forkScoped(renewLeases(remote, leaseMillis))

  const cluster = Cluster.of(Topology.view(remote, identity, registration.declaredDead))
  halts.set(cluster, Effect.andThen(stopServing(remote, silo.router), Effect.andThen(Scope.close(serverScope, Exit.void), peers.close)))
  return Context.make(Silo.Silo, silo).pipe(Context.add(Cluster, cluster))
})

const halts = new WeakMap<object, Effect.Effect<void>>()

/**
 * For tests that simulate a crash in-process: stops serving at once and cuts every
 * connection, without leaving the membership or waiting for anything.
 *
 * @internal
 */
export const halt = (cluster: object): Effect.Effect<void> => halts.get(cluster) ?? Effect.void

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
 * A cluster member silo: provides `Silo` and `Cluster`; needs `Membership` (and
 * `Directory` for directory placements).
 *
 * @since 0.1.0
 */
export const layer = (
  config: ClusterSiloConfig = {}
): Layer.Layer<Silo.Silo | Cluster, Server.ServerError | MembershipError | DuplicateSilo, Membership> =>
  Layer.effectContext(make(config))

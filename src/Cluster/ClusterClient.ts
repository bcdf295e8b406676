/**
 * A cluster client: a program that calls actors in a cluster but hosts none.
 * `ClusterClient.layer(config)` provides a `Silo` with no activations of its own, so the
 * same refs work (`Counter.ref("c-1")`), and the `Cluster` view. It reads the membership
 * (it does not join it) and sends each call straight to the silo that owns the address:
 * one hop, one encode each way.
 *
 * A `Directory` is optional: with one, directory-placed actors are found with a lookup;
 * without, the call goes to the placement's choice, which forwards it if the actor lives
 * elsewhere.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Layer, Option } from "effect"
import * as Silo from "../Actor/Silo.ts"
import * as Connection from "../Transport/Connection.ts"
import * as Tls from "../Transport/Tls.ts"
import { Cluster } from "./Cluster.ts"
import { Directory } from "./Directory.ts"
import * as HashRing from "./HashRing.ts"
import { Membership } from "./Membership.ts"
import { Peers } from "./internal/Peers.ts"
import { RemoteRouter } from "./internal/RemoteRouter.ts"
import * as Topology from "./internal/Topology.ts"
import * as Hosting from "./internal/Hosting.ts"
import { TypeRings } from "./internal/TypeRings.ts"

/**
 * @since 0.1.0
 */
export interface ClusterClientConfig {
  /** Largest frame sent or accepted. Default 16 MiB. */
  readonly maxFrameBytes?: number | undefined
  /** Timeout of a call without its own or its type's `callTimeout`. Default 30 seconds. */
  readonly requestTimeout?: Duration.Input | undefined
  /**
   * The application's version: directory placements made from this client prefer the silos
   * that run it (see `ClusterSiloConfig.version`). Default `"0"`.
   */
  readonly version?: string | undefined
  /** The cluster this client calls: silos of another cluster id refuse it. Default `"quark"`. */
  readonly clusterId?: string | undefined
  /** TLS to the silos (a certificate too when they require mutual TLS). Default: plain TCP. */
  readonly tls?: Tls.TlsConfig | Tls.Credentials | undefined
}

/** A client holds nothing: its drain is done at once. */
const clientDrain = { drain: Effect.void, drained: Effect.void }

const make = Effect.fnUntraced(function*(config: ClusterClientConfig) {
  const membership = yield* Membership
  const directory = Option.getOrUndefined(yield* Effect.serviceOption(Directory))
  const hasher = yield* HashRing.xxhash32
  const peers = new Peers({
    maxFrameBytes: config.maxFrameBytes,
    defaultTimeout: config.requestTimeout ?? Connection.defaultTimeout,
    context: yield* Effect.context<never>(),
    clusterId: config.clusterId,
    role: "client",
    tls: config.tls === undefined ? undefined : yield* Tls.resolve(config.tls)
  })
  yield* Effect.addFinalizer(() => peers.close)
  const silo = yield* Silo.make({})
  const rings = TypeRings.make(hasher, [], { version: config.version ?? Hosting.defaultVersion })
  const remote = new RemoteRouter(silo.router, peers, directory, rings, {
    leaseMillis: 0,
    random: Math.random,
    // A client hosts nothing: it never hands an address over.
    handoffMillis: 0,
    releaseTimeoutMillis: 0,
    now: () => 0
  })
  silo.router.remote = remote
  yield* Topology.follow(membership, remote, hasher, undefined)
  const cluster = Cluster.of(Topology.view(remote, membership, () => undefined, Effect.never, clientDrain))
  return Context.make(Silo.Silo, silo).pipe(Context.add(Cluster, cluster))
})

/**
 * A client of the cluster: provides `Silo` (hosting nothing) and `Cluster`; needs
 * `Membership` (and optionally `Directory`).
 *
 * @since 0.1.0
 */
export const layer = (config: ClusterClientConfig = {}): Layer.Layer<Silo.Silo | Cluster, Tls.TlsError, Membership> =>
  Layer.effectContext(make(config))

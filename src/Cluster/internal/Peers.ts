/**
 * The connections from one silo (or client) to the other silos: one multiplexed
 * connection per peer, opened on first use and closed when the peer leaves the
 * membership. A peer is named by its silo id (`host:port@generation`), so a restarted
 * process at the same address is a new peer with a new connection.
 *
 * @internal
 */
import { Clock, Context, Effect, Exit, Scope } from "effect"
import * as Connection from "../../Transport/Connection.ts"
import type { Credentials } from "../../Transport/Tls.ts"
import { parseId } from "../SiloIdentity.ts"

/** @internal */
export interface PeerOptions {
  readonly maxFrameBytes?: number | undefined
  readonly defaultTimeout?: Connection.ConnectionOptions["defaultTimeout"]
  /**
   * The services connections run with: the silo's, so that what the transport logs goes
   * to the application's loggers. Its clock is left out: request timeouts are real time,
   * also in a test that moves a `TestClock` for the membership.
   */
  readonly context?: Context.Context<never> | undefined
  /** What the connections say in their handshakes, and their TLS (see `Connection`). */
  readonly clusterId?: string | undefined
  readonly clusterSecret?: Connection.ConnectionOptions["clusterSecret"]
  readonly role?: "silo" | "client" | undefined
  readonly siloId?: (() => string | undefined) | undefined
  readonly tls?: Credentials | undefined
}

interface Peer {
  readonly connection: Connection.Connection
  readonly scope: Scope.Closeable
}

const noIds: ReadonlySet<string> = new Set()

/** @internal */
export class Peers {
  readonly #peers = new Map<string, Peer>()
  readonly #options: PeerOptions
  #closed = false
  /** The members as of the last `retain`; `undefined` before the first. */
  #members: ReadonlySet<string> | undefined = undefined

  readonly #runSync: <A, E>(effect: Effect.Effect<A, E>) => A

  constructor(options: PeerOptions) {
    this.#options = options
    this.#runSync = Effect.runSyncWith(Context.omit(Clock.Clock)(options.context ?? Context.empty()))
  }

  /** The connection to silo `id`, opened now if there is none. Throws on an id that names no address. */
  get(id: string): Connection.Connection {
    const peer = this.#peers.get(id)
    if (peer !== undefined) return peer.connection
    if (this.#closed) throw new Error("the silo's connections are closed")
    const parsed = parseId(id)
    const colon = parsed?.address.lastIndexOf(":") ?? -1
    if (parsed === undefined || colon <= 0) throw new Error(`silo id "${id}" names no host:port`)
    const scope = Scope.makeUnsafe()
    // Opening only forks the connect loop, so this runs to completion synchronously.
    const connection = this.#runSync(
      Scope.provide(
        Connection.make({
          host: parsed.address.slice(0, colon),
          port: Number(parsed.address.slice(colon + 1)),
          maxFrameBytes: this.#options.maxFrameBytes,
          defaultTimeout: this.#options.defaultTimeout,
          clusterId: this.#options.clusterId,
          clusterSecret: this.#options.clusterSecret,
          role: this.#options.role,
          siloId: this.#options.siloId,
          tls: this.#options.tls
        }),
        scope
      )
    )
    this.#peers.set(id, { connection, scope })
    return connection
  }

  /**
   * `alive` are the members now: connections to others are closed when idle, or at once if
   * they are in `dead`.
   */
  retain(alive: ReadonlySet<string>, dead: ReadonlySet<string> = noIds): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.#members = alive
      const gone = [...this.#peers].filter(([id]) => dead.has(id))
      return Effect.andThen(this.#closeAll(gone), this.sweep)
    })
  }

  /** Closes the idle connections to silos that are not members. */
  get sweep(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const members = this.#members
      if (members === undefined) return Effect.void
      return Effect.flatMap(
        Effect.filter([...this.#peers].filter(([id]) => !members.has(id)), ([, peer]) =>
          Effect.map(peer.connection.inFlight, (n) => n === 0)),
        (idle) => this.#closeAll(idle)
      )
    })
  }

  #closeAll(peers: ReadonlyArray<[string, Peer]>): Effect.Effect<void> {
    for (const [id, peer] of peers) if (this.#peers.get(id) === peer) this.#peers.delete(id)
    return Effect.forEach(peers, ([, peer]) => Scope.close(peer.scope, Exit.void), { discard: true })
  }

  /** The ids of the silos with an open connection. */
  get ids(): ReadonlyArray<string> {
    return [...this.#peers.keys()]
  }

  /** Closes every connection. */
  get close(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.#closed = true
      return this.#closeAll([...this.#peers])
    })
  }
}

/**
 * An in-process cluster for tests: several silos in one process, on one in-memory
 * membership registry and one in-memory directory, talking over real TCP on 127.0.0.1
 * (port 0). Membership runs on Effect's `Clock`, so inside `it.effect` the `TestClock`
 * decides when a silent silo is suspected and declared dead.
 *
 * ```ts
 * it.effect("lands on the owner", () =>
 *   Effect.gen(function*() {
 *     const cluster = yield* TestCluster.make({ silos: 3, implementations: CounterLive })
 *     const [a, b] = cluster.silos
 *     yield* a.run(Effect.flatMap(Counter.ref("c-1"), (c) => c.Increment({ by: 1 })))
 *   }).pipe(Effect.scoped))
 * ```
 *
 * @since 0.1.0
 */
import { Context, Effect, Exit, Layer, Scope } from "effect"
import * as Silo from "../Actor/Silo.ts"
import { Cluster } from "./Cluster.ts"
import * as ClusterClient from "./ClusterClient.ts"
import * as ClusterSilo from "./ClusterSilo.ts"
import { Directory, type DirectoryShape } from "./Directory.ts"
import * as MemoryDirectory from "./MemoryDirectory.ts"
import { Migrator, NotMigratable } from "./Migrator.ts"
import type { MembershipTimings } from "./Membership.ts"
import * as MemoryMembership from "./MemoryMembership.ts"
import type { RemoteRouter } from "./internal/RemoteRouter.ts"
import { HaltHook } from "./internal/TestHooks.ts"

/**
 * @since 0.1.0
 */
export interface TestClusterOptions {
  /** How many silos to start. */
  readonly silos: number
  /** The actor implementations every silo hosts (layers that need `Silo`, and may need its `Cluster` and `Migrator`: a `Rebalancer.layer`, say). */
  readonly implementations: Layer.Layer<never, any, Silo.Silo | Cluster | Migrator>
  /** Membership timings (default: the production ones). */
  readonly timings?: MembershipTimings | undefined
  /** Configuration of every silo. */
  readonly config?: ClusterSilo.ClusterSiloConfig | undefined
}

/**
 * A member (or client) of a test cluster.
 *
 * @since 0.1.0
 */
export interface TestMember {
  /** The silo's id; `"client"` for a client. */
  readonly id: string
  /** A client's `Migrator` moves nothing (it hosts nothing): every `migrate` fails with `NotMigratable`. */
  readonly context: Context.Context<Silo.Silo | Cluster | Migrator>
  /** Runs `effect` as this member: its refs route from here. */
  readonly run: <A, E>(effect: Effect.Effect<A, E, Silo.Silo | Cluster | Migrator>) => Effect.Effect<A, E>
  /** Stops gracefully: leaves the membership, deactivates everything, closes its connections. */
  readonly stop: Effect.Effect<void>
  /**
   * Crashes, as far as one process can: its membership stops heartbeating and does not
   * leave (so the others declare it dead after `deadAfter`), it stops serving and its
   * connections drop at once; then it closes in the background (its activations'
   * finalizers still run, unlike a real crash).
   */
  readonly crash: Effect.Effect<void>
}

/**
 * @since 0.1.0
 */
export interface TestCluster {
  /** The silos started so far, in start order (stopped ones included). */
  readonly silos: ReadonlyArray<TestMember>
  readonly registry: MemoryMembership.MemoryRegistry
  /** The directory every member shares. */
  readonly directory: DirectoryShape
  /** Starts one more silo. */
  readonly addSilo: Effect.Effect<TestMember>
  /**
   * Starts one more silo with its own implementations (the actor types it hosts) or
   * configuration (its `version`, say), in place of the cluster's: for heterogeneous silos.
   */
  readonly addSiloWith: (options: {
    readonly implementations?: Layer.Layer<never, any, Silo.Silo | Cluster | Migrator> | undefined
    readonly config?: ClusterSilo.ClusterSiloConfig | undefined
  }) => Effect.Effect<TestMember>
  /** Starts a client (no activations). */
  readonly addClient: Effect.Effect<TestMember>
  /** Starts a client with this configuration (its `version`, say). */
  readonly addClientWith: (config: ClusterClient.ClusterClientConfig) => Effect.Effect<TestMember>
  /**
   * Waits until every running member's ring holds exactly the running silos, and every
   * member sees the same actor types hosted by each (the types a silo registered
   * included); dies after 10,000 scheduler yields without that. Needs no time to pass:
   * announcements are applied by fibers, not timers.
   */
  readonly settle: Effect.Effect<void>
}

const hostsNothing = (address: { readonly type: string; readonly id: string }) =>
  new NotMigratable({ address: { type: address.type, id: address.id }, reason: "a client hosts nothing" })

/** A client's `Migrator`: nothing to move. */
const clientMigrator = Layer.succeed(
  Migrator,
  Migrator.of({
    migrate: (address) => Effect.fail(hostsNothing(address)),
    migrateType: (type) => Effect.fail(hostsNothing({ type, id: "*" })),
    migrateShare: () => Effect.succeed({ moved: [], failed: [] }),
    migrateAway: (addresses) => Effect.succeed({ moved: [], failed: [...addresses].map(hostsNothing) })
  })
)

/**
 * Starts a test cluster for the life of the scope.
 *
 * @since 0.1.0
 */
export const make = (options: TestClusterOptions): Effect.Effect<TestCluster, never, Scope.Scope> =>
  Effect.gen(function*() {
    const registry = MemoryMembership.makeRegistry()
    const directory = yield* MemoryDirectory.make
    const directoryLayer = Layer.succeed(Directory, directory)
    const outer = yield* Effect.scope
    const silos: Array<TestMember> = []
    const running = new Set<TestMember>()

    const start = (layer: Layer.Layer<Silo.Silo | Cluster | Migrator, unknown>, client: boolean) =>
      Effect.gen(function*() {
        const scope = yield* Scope.fork(outer)
        // A silo hands over how to halt it (see `TestHooks`); a client has nothing to halt.
        let halt: Effect.Effect<void> = Effect.void
        const haltHook = Layer.succeed(HaltHook, HaltHook.of({ register: (effect) => void (halt = effect) }))
        const context = yield* Layer.buildWithScope(Layer.provide(layer, haltHook), scope).pipe(Effect.orDie)
        const id = client ? "client" : Context.get(context, Cluster).self!.id
        const stop = Effect.suspend(() => {
          running.delete(member)
          return Scope.close(scope, Exit.void)
        })
        const member: TestMember = {
          id,
          context,
          run: (effect) => Effect.provideContext(effect, context),
          stop,
          crash: Effect.gen(function*() {
            running.delete(member)
            yield* registry.freeze(id)
            yield* halt
            // Detached on purpose: the crashed silo closes in the background, like a process
            // that is gone, and the test (or the outer scope's close) does not wait for it:
            // under the TestClock its drain would otherwise wait for time nobody advances.
            yield* Effect.forkDetach(Scope.close(scope, Exit.void))
          })
        }
        running.add(member)
        return member
      })

    const membership = MemoryMembership.layer(registry, options.timings)
    const addSiloWith = (silo: {
      readonly implementations?: Layer.Layer<never, any, Silo.Silo | Cluster | Migrator> | undefined
      readonly config?: ClusterSilo.ClusterSiloConfig | undefined
    }) =>
      Effect.tap(
        start(
          (silo.implementations ?? options.implementations).pipe(
            Layer.provideMerge(ClusterSilo.layer(silo.config ?? options.config)),
            Layer.provide(membership),
            Layer.provide(directoryLayer)
          ),
          false
        ),
        (started) => Effect.sync(() => silos.push(started))
      )
    const addSilo = addSiloWith({})
    const addClientWith = (config: ClusterClient.ClusterClientConfig) =>
      start(
        Layer.merge(ClusterClient.layer(config).pipe(Layer.provide(membership), Layer.provide(directoryLayer)), clientMigrator),
        true
      )
    const addClient = addClientWith({})
    const routing = (member: TestMember) => Context.get(member.context, Silo.Silo).router.remote as RemoteRouter
    const converged = Effect.gen(function*() {
      const want = [...running].filter((member) => member.id !== "client").map((member) => member.id).sort()
      const views = new Set<string>()
      for (const member of running) {
        const members = yield* Effect.provideContext(Effect.flatMap(Cluster, (cluster) => cluster.members), member.context)
        if (members.join() !== want.join()) return false
        views.add(routing(member).rings.signature)
      }
      if (views.size > 1) return false
      // Each silo's types are announced after its join (see `ClusterSilo`): seen by all, alike.
      for (const member of running) {
        if (member.id === "client") continue
        const remote = routing(member)
        for (const slot of remote.router.slots.values()) {
          if (slot.registration !== undefined && slot.virtual && !remote.rings.hosts(member.id, slot.name)) return false
        }
      }
      return true
    })
    const settle = Effect.gen(function*() {
      for (let i = 0; i < 10_000; i++) {
        if (yield* converged) return
        yield* Effect.yieldNow
      }
      return yield* Effect.die(new Error("the test cluster's views did not converge"))
    })
    for (let i = 0; i < options.silos; i++) yield* addSilo
    yield* settle
    return { silos, registry, directory, addSilo, addSiloWith, addClient, addClientWith, settle }
  })

/**
 * The logic both membership implementations share: the local view, the announcement
 * listener and the periodic full read (see the rule in `Membership.ts`), over a small
 * `Backend` interface that says where the registry lives. A silo's own registration (its
 * heartbeats, lease and self-fencing, metadata updates) is in `Registration.ts`.
 *
 * Metrics (process-wide, see `MetricCatalog`): `quark_cluster_silos{status}` counts the
 * members of the view by status (alive, suspected; a dead member leaves the view), read at
 * scrape time, and `quark_cluster_failovers_total` counts the members the view saw declared
 * dead. Both follow the newest view still open in the process: a silo runs one, but tests
 * run several silos in one process, whose views would add up to a multiple of the cluster.
 *
 * @internal
 */
import { Clock, Duration, Effect, Layer, Option, PubSub, Scope, Semaphore, Stream } from "effect"
import {
  Dead,
  type DeathReason,
  type DuplicateSilo,
  Joined,
  Left,
  Member,
  MemberStatus,
  Membership,
  MembershipError,
  MembershipEvent,
  type MembershipShape,
  Metadata,
  Recovered,
  type ResolvedTimings,
  Suspected,
  Updated
} from "../Membership.ts"
import { SiloIdentity } from "../SiloIdentity.ts"
import { clusterSilos } from "../../Telemetry/MetricCatalog.ts"
import * as ProcessMetrics from "../../Telemetry/internal/ProcessMetrics.ts"
import { bounded, fence, makeJoin, markFenced, type RegistrationState, serving } from "./Registration.ts"
import { MembershipBackendHook } from "./TestHooks.ts"

/**
 * A member as the registry stores it.
 *
 * @since 0.1.0
 * @internal
 */
export interface MemberRecord {
  readonly identity: SiloIdentity
  readonly metadata: Metadata
}

/**
 * Why an entry left the registry, as its tombstone records it.
 *
 * @since 0.1.0
 * @internal
 */
export type GoneReason = "left" | "timeout" | "superseded"

/**
 * An announcement on the registry's channel; `version` is the registry version the change
 * produced, `at` the registry time, `epoch` the registry's incarnation (see {@link Snapshot}).
 *
 * @since 0.1.0
 * @internal
 */
export type Notice =
  | { readonly kind: "Joined"; readonly member: MemberRecord; readonly version: number; readonly at: number; readonly epoch: number }
  | { readonly kind: "Left"; readonly member: MemberRecord; readonly version: number; readonly at: number; readonly epoch: number }
  | { readonly kind: "Updated"; readonly member: MemberRecord; readonly version: number; readonly at: number; readonly epoch: number }
  | {
    readonly kind: "Dead"
    readonly reason: "timeout" | "superseded"
    readonly member: MemberRecord
    readonly version: number
    readonly at: number
    readonly epoch: number
  }

/**
 * A full read: every member with its last heartbeat, the recent tombstones, the registry
 * version and time, all read at one instant.
 *
 * @since 0.1.0
 * @internal
 */
export interface Snapshot {
  /**
   * The registry's incarnation: the registry time at which it was found empty and started
   * over (a Redis restarted without its data). Versions only compare within one epoch; a
   * later epoch means every member must register again.
   */
  readonly epoch: number
  readonly version: number
  readonly now: number
  readonly members: ReadonlyArray<{ readonly record: MemberRecord; readonly lastHeartbeat: number }>
  readonly gone: ReadonlyMap<string, GoneReason>
}

/**
 * What a heartbeat found.
 *
 * @since 0.1.0
 * @internal
 */
export type HeartbeatResult = "ok" | "gone" | "reset"

/**
 * What a metadata update found: the version it produced (and the registry time and epoch),
 * or, as a heartbeat's, `"gone"` / `"reset"`.
 *
 * @since 0.2.0
 * @internal
 */
export type UpdateResult =
  | { readonly version: number; readonly at: number; readonly epoch: number }
  | "gone"
  | "reset"

/**
 * The storage side of membership. Each operation is atomic in the registry.
 *
 * @since 0.1.0
 * @internal
 */
export interface Backend {
  /** Adds the member (heartbeat = now), declares older generations at its address dead, announces `Joined`. */
  readonly register: (
    record: MemberRecord
  ) => Effect.Effect<{ readonly version: number; readonly at: number; readonly epoch: number }, MembershipError | DuplicateSilo>
  /**
   * Refreshes the heartbeat of a member registered in `epoch`: `"ok"`; `"gone"` if it is no
   * member (it was removed); `"reset"` if the registry's epoch is another (it started over
   * empty, so the member must register again).
   */
  readonly heartbeat: (id: string, epoch: number) => Effect.Effect<HeartbeatResult, MembershipError>
  /**
   * Replaces the metadata of a member registered in `epoch` with `record`'s and announces
   * `Updated` (the whole record); `"gone"` / `"reset"` as for `heartbeat`. Never creates an entry.
   */
  readonly update: (record: MemberRecord, epoch: number) => Effect.Effect<UpdateResult, MembershipError>
  /** Removes the member with a `left` tombstone and announces `Left`; the new version, or `undefined` if it was not a member. */
  readonly leave: (id: string) => Effect.Effect<number | undefined, MembershipError>
  /** Declares members without a heartbeat for `deadAfter` dead (announcing each), then reads everything. */
  readonly snapshot: Effect.Effect<Snapshot, MembershipError>
  /** Subscribes to the announcements; subscribed when this returns. */
  readonly subscribe: Effect.Effect<Stream.Stream<Notice>, MembershipError, Scope.Scope>
}

// ---------------------------------------------------------------------------------------
// The shared implementation
// ---------------------------------------------------------------------------------------

interface ViewEntry {
  readonly identity: SiloIdentity
  metadata: Metadata
  /** The registry version `metadata` is known current at: an older announcement or full read does not replace it. */
  metadataAt: number
  lastHeartbeat: number
  status: MemberStatus
  /** The registry version this entry was learned at: a full read older than that does not remove it. */
  knownAt: number
  /**
   * Set when the registry started over (a new epoch) without this member: until this
   * (monotonic) time it is kept, so that it can register again.
   */
  orphanedUntil: number | undefined
}

/**
 * One change of the view (see `makeWithBackend`'s `locked`): the events it publishes and
 * the registrations it declares dead, fenced once the events are published.
 *
 * @internal
 */
export type Step = { readonly events: Array<MembershipEvent>; readonly fenced: Array<[RegistrationState, DeathReason]> }

const reasonOf = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

const sameMetadata = (a: Metadata, b: Metadata): boolean => {
  const keys = Object.keys(a)
  return keys.length === Object.keys(b).length && keys.every((key) => Object.hasOwn(b, key) && a[key] === b[key])
}

/** The views open in this process, oldest first: the metrics follow the last. */
const openViews: Array<Map<string, ViewEntry>> = []

const newestView = (): Map<string, ViewEntry> | undefined => openViews[openViews.length - 1]

const countStatus = (status: MemberStatus): number => {
  const view = newestView()
  if (view === undefined) return 0
  let count = 0
  for (const entry of view.values()) if (entry.status === status) count++
  return count
}

const memberStatuses: ReadonlyArray<MemberStatus> = ["alive", "suspected"]

/**
 * Builds the service on a backend: the local view, the heartbeats, the announcement
 * listener and the periodic full read (which runs once before this returns, so a registry
 * that cannot be read fails here).
 *
 * @since 0.1.0
 * @internal
 */
export const makeWithBackend = Effect.fnUntraced(function*(registry: Backend, timings: ResolvedTimings) {
  // Tests may wrap the backend (see `TestHooks`); nothing does in production.
  const hook = yield* Effect.serviceOption(MembershipBackendHook)
  const backend = Option.isSome(hook) ? hook.value.wrap(registry) : registry
  const lock = yield* Semaphore.make(1)
  const refreshLock = yield* Semaphore.make(1)
  const events = yield* PubSub.unbounded<MembershipEvent>()
  yield* Effect.addFinalizer(() => PubSub.shutdown(events))
  // Read synchronously by `leaseValid` before every turn, so captured once.
  const clock = yield* Clock.Clock
  const monotonicNow = () => Number(clock.monotonicTimeNanosUnsafe() / 1_000_000n)

  const view = new Map<string, ViewEntry>()
  openViews.push(view)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      const at = openViews.indexOf(view)
      if (at >= 0) openViews.splice(at, 1)
    })
  )
  // Registered with the first view (the same gauge again is a no-op): a process that never
  // joins a cluster exports none.
  for (const status of memberStatuses) ProcessMetrics.gauge(clusterSilos, { status }, () => countStatus(status))
  /** Ids removed by an announcement newer than the last full read: a stale read must not bring them back. */
  const gone = new Map<string, number>()
  let epoch = -1
  let snapshotVersion = -1
  const registrations = new Map<string, RegistrationState>()

  // Every change of the view runs under `lock` and publishes its events before releasing it,
  // so subscribers see changes in the order they were made.
  const locked = (change: (step: Step) => void): Effect.Effect<void> =>
    lock.withPermits(1)(Effect.suspend(() => {
      const step: Step = { events: [], fenced: [] }
      change(step)
      if (newestView() === view) {
        for (const event of step.events) if (event._tag === "Dead") ProcessMetrics.failovers.value++
      }
      return Effect.andThen(
        step.events.length === 0 ? Effect.void : PubSub.publishAll(events, step.events),
        Effect.forEach(step.fenced, ([reg, reason]) => fence(reg, reason), { discard: true })
      )
    }))

  /** Takes `metadata` as the member's unless the view holds metadata of a newer version. */
  const adoptMetadata = (step: Step, entry: ViewEntry, metadata: Metadata, version: number) => {
    if (version <= entry.metadataAt) return
    entry.metadataAt = version
    if (sameMetadata(entry.metadata, metadata)) return
    entry.metadata = metadata
    step.events.push(new Updated({ identity: entry.identity, metadata }))
  }

  /** A notice of a later epoch than this view's means the registry started over: read it whole. */
  const applyNotice = (notice: Notice): Effect.Effect<void> =>
    notice.epoch > epoch ? Effect.ignore(refresh) : locked((step) => {
      if (notice.epoch < epoch || notice.version <= snapshotVersion) return // stale, or already reflected
      const identity = notice.member.identity
      const id = identity.id
      if (notice.kind === "Joined" || notice.kind === "Updated") {
        if (gone.has(id)) return
        const metadata = notice.member.metadata
        const entry = view.get(id)
        if (entry !== undefined) {
          // An update, or registered again after the registry started over (with the metadata
          // of its last update): a member at this version either way.
          entry.knownAt = Math.max(entry.knownAt, notice.version)
          entry.orphanedUntil = undefined
          adoptMetadata(step, entry, metadata, notice.version)
          return
        }
        // An update of a member whose Joined this view missed: a member all the same.
        view.set(id, {
          identity,
          metadata,
          metadataAt: notice.version,
          lastHeartbeat: notice.at,
          status: "alive",
          knownAt: notice.version,
          orphanedUntil: undefined
        })
        step.events.push(new Joined({ identity, metadata }))
        return
      }
      gone.set(id, notice.version)
      if (view.delete(id)) {
        step.events.push(notice.kind === "Left" ? new Left({ identity }) : new Dead({ identity, reason: notice.reason }))
      }
      const reg = registrations.get(id)
      if (reg !== undefined && reg.epoch === notice.epoch) {
        markFenced(step, reg, notice.kind === "Dead" ? notice.reason : "removed")
      }
    })

  const applySnapshot = (snapshot: Snapshot, readAt: number) =>
    locked((step) => {
      if (snapshot.epoch < epoch) return // read before a restart this view already saw
      if (snapshot.epoch > epoch) {
        // The registry started over empty: what we know of versions and removals is void, and
        // members we knew get the time a paused or cut-off silo may still serve to register again.
        const first = epoch === -1
        epoch = snapshot.epoch
        snapshotVersion = -1
        gone.clear()
        for (const entry of view.values()) {
          entry.knownAt = -1
          entry.metadataAt = -1
          if (!first) entry.orphanedUntil = readAt + timings.outageGraceMillis + timings.deadMillis
        }
      }
      snapshotVersion = snapshot.version
      const present = new Set<string>()
      for (const { lastHeartbeat, record } of snapshot.members) {
        const identity = record.identity
        const id = identity.id
        present.add(id)
        if (gone.has(id)) continue // removed by a newer announcement
        const status: MemberStatus = snapshot.now - lastHeartbeat >= timings.suspectMillis ? "suspected" : "alive"
        const entry = view.get(id)
        if (entry === undefined) {
          view.set(id, {
            identity,
            metadata: record.metadata,
            metadataAt: snapshot.version,
            lastHeartbeat,
            status,
            knownAt: snapshot.version,
            orphanedUntil: undefined
          })
          step.events.push(new Joined({ identity, metadata: record.metadata }))
          if (status === "suspected") step.events.push(new Suspected({ identity, lastHeartbeat }))
        } else {
          // Repairs a lost `Updated`; metadata of a newer announcement stays.
          adoptMetadata(step, entry, record.metadata, snapshot.version)
          entry.lastHeartbeat = lastHeartbeat
          entry.orphanedUntil = undefined
          if (entry.status !== status) {
            entry.status = status
            step.events.push(status === "suspected" ? new Suspected({ identity, lastHeartbeat }) : new Recovered({ identity }))
          }
        }
        const reg = registrations.get(id)
        if (reg !== undefined && serving(reg)) reg.status = status
      }
      const reasonFor = (id: string): DeathReason | "left" => {
        const tombstone = snapshot.gone.get(id)
        return tombstone === undefined ? "removed" : tombstone
      }
      for (const [id, entry] of view) {
        if (present.has(id) || entry.knownAt > snapshot.version) continue
        if (entry.orphanedUntil !== undefined && readAt < entry.orphanedUntil) continue
        view.delete(id)
        const reason = reasonFor(id)
        step.events.push(
          reason === "left" ? new Left({ identity: entry.identity }) : new Dead({ identity: entry.identity, reason })
        )
      }
      for (const [id, version] of gone) if (version <= snapshot.version) gone.delete(id)
      for (const [id, reg] of registrations) {
        // Registered in another epoch: its heartbeat registers it again (or fences it).
        if (present.has(id) || reg.epoch !== snapshot.epoch || reg.version > snapshot.version) continue
        const reason = reasonFor(id)
        markFenced(step, reg, reason === "left" ? "removed" : reason)
      }
    })

  const refresh: Effect.Effect<void, MembershipError> = refreshLock.withPermits(1)(
    Effect.flatMap(
      bounded("read the membership", timings.deadMillis, backend.snapshot),
      (snapshot) => applySnapshot(snapshot, monotonicNow())
    )
  )

  // Announcements first, then the first full read: nothing between the two is missed.
  const notices = yield* backend.subscribe
  yield* Effect.forkScoped(Stream.runForEach(notices, applyNotice))
  yield* refresh
  yield* Effect.forkScoped(
    Effect.forever(
      Effect.andThen(
        Effect.sleep(Duration.millis(timings.refreshMillis)),
        Effect.catch(refresh, (error) => Effect.logWarning("membership full read failed", error))
      )
    )
  )

  const join = makeJoin({ applyNotice, backend, locked, monotonicNow, refresh, registrations, timings })

  const members = Effect.sync(() =>
    [...view.values()]
      .sort((a, b) => (a.identity.id < b.identity.id ? -1 : a.identity.id > b.identity.id ? 1 : 0))
      .map((entry) =>
        new Member({
          identity: entry.identity,
          status: entry.status,
          lastHeartbeat: entry.lastHeartbeat,
          metadata: entry.metadata
        })
      )
  )

  const service: MembershipShape = {
    join,
    members,
    changes: Stream.fromPubSub(events),
    subscribe: Effect.map(PubSub.subscribe(events), Stream.fromSubscription),
    refresh,
    timings
  }
  return service
})

/**
 * A layer from a scoped constructor of the service.
 *
 * @since 0.1.0
 * @internal
 */
export const layerFrom = <E>(make: Effect.Effect<MembershipShape, E, Scope.Scope>): Layer.Layer<Membership, E> =>
  Layer.effect(Membership, make)

/**
 * The message of a thrown value.
 *
 * @since 0.1.0
 * @internal
 */
export const errorReason = reasonOf

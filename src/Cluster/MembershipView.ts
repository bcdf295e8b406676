/**
 * The logic both membership implementations share: the local view, heartbeats, the
 * periodic full read and self-fencing (see the rule in `Membership.ts`), over a small
 * `Backend` interface that says where the registry lives.
 *
 * @internal
 */
import { Clock, Deferred, Duration, Effect, Layer, PubSub, Scope, Semaphore, Stream } from "effect"
import {
  Dead,
  DeathReason,
  DuplicateSilo,
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
  type Registration,
  type ResolvedTimings,
  type SelfStatus,
  SiloDeclaredDead,
  Suspected
} from "./Membership.ts"
import { SiloIdentity } from "./SiloIdentity.ts"

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
 * produced, `at` the registry time.
 *
 * @since 0.1.0
 * @internal
 */
export type Notice =
  | { readonly kind: "Joined"; readonly member: MemberRecord; readonly version: number; readonly at: number }
  | { readonly kind: "Left"; readonly member: MemberRecord; readonly version: number; readonly at: number }
  | {
    readonly kind: "Dead"
    readonly reason: "timeout" | "superseded"
    readonly member: MemberRecord
    readonly version: number
    readonly at: number
  }

/**
 * A full read: every member with its last heartbeat, the recent tombstones, the registry
 * version and time, all read at one instant.
 *
 * @since 0.1.0
 * @internal
 */
export interface Snapshot {
  readonly version: number
  readonly now: number
  readonly members: ReadonlyArray<{ readonly record: MemberRecord; readonly lastHeartbeat: number }>
  readonly gone: ReadonlyMap<string, GoneReason>
}

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
  ) => Effect.Effect<{ readonly version: number; readonly at: number }, MembershipError | DuplicateSilo>
  /** Refreshes the heartbeat; `false` if the id is not a member (it was removed). */
  readonly heartbeat: (id: string) => Effect.Effect<boolean, MembershipError>
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
  readonly metadata: Metadata
  lastHeartbeat: number
  status: MemberStatus
  /** The registry version this entry was learned at: a full read older than that does not remove it. */
  readonly knownAt: number
}

interface RegistrationState {
  readonly identity: SiloIdentity
  readonly version: number
  status: SelfStatus
  /** Monotonic millis at which the last acknowledged heartbeat (or the registration) was sent. */
  lastAcknowledged: number
  readonly dead: Deferred.Deferred<SiloDeclaredDead>
}

const monotonicMillis = Effect.map(Clock.monotonicTimeNanos, (nanos) => Number(nanos / 1_000_000n))

const reasonOf = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/** Bounds a registry call: a call that takes longer than `millis` fails. */
const bounded = <A, E>(operation: string, millis: number, effect: Effect.Effect<A, E>) =>
  Effect.timeoutOrElse(effect, {
    duration: Duration.millis(millis),
    orElse: () => Effect.fail(new MembershipError({ operation, reason: `no answer within ${millis} ms` }))
  })

/**
 * Builds the service on a backend: the local view, the heartbeats, the announcement
 * listener and the periodic full read (which runs once before this returns, so a registry
 * that cannot be read fails here).
 *
 * @since 0.1.0
 * @internal
 */
export const makeWithBackend = Effect.fnUntraced(function*(backend: Backend, timings: ResolvedTimings) {
  const lock = yield* Semaphore.make(1)
  const refreshLock = yield* Semaphore.make(1)
  const events = yield* PubSub.unbounded<MembershipEvent>()
  yield* Effect.addFinalizer(() => PubSub.shutdown(events))

  const view = new Map<string, ViewEntry>()
  /** Ids removed by an announcement newer than the last full read: a stale read must not bring them back. */
  const gone = new Map<string, number>()
  let snapshotVersion = -1
  const registrations = new Map<string, RegistrationState>()

  // Every change of the view runs under `lock` and publishes its events before releasing it,
  // so subscribers see changes in the order they were made.
  type Step = { readonly events: Array<MembershipEvent>; readonly fenced: Array<[RegistrationState, DeathReason]> }
  const locked = (change: (step: Step) => void): Effect.Effect<void> =>
    lock.withPermits(1)(Effect.suspend(() => {
      const step: Step = { events: [], fenced: [] }
      change(step)
      return Effect.andThen(
        step.events.length === 0 ? Effect.void : PubSub.publishAll(events, step.events),
        Effect.forEach(step.fenced, ([reg, reason]) => fence(reg, reason), { discard: true })
      )
    }))

  const markFenced = (step: Step, reg: RegistrationState, reason: DeathReason) => {
    if (reg.status === "dead" || reg.status === "left") return
    reg.status = "dead"
    step.fenced.push([reg, reason])
  }

  const fence = (reg: RegistrationState, reason: DeathReason) =>
    Effect.andThen(
      Deferred.succeed(reg.dead, new SiloDeclaredDead({ id: reg.identity.id, reason })),
      Effect.logWarning("silo declared dead: it must stop serving").pipe(
        Effect.annotateLogs({ silo: reg.identity.id, reason })
      )
    )

  const applyNotice = (notice: Notice) =>
    locked((step) => {
      if (notice.version <= snapshotVersion) return // the last full read already reflects it
      const identity = notice.member.identity
      const id = identity.id
      if (notice.kind === "Joined") {
        if (gone.has(id) || view.has(id)) return
        view.set(id, {
          identity,
          metadata: notice.member.metadata,
          lastHeartbeat: notice.at,
          status: "alive",
          knownAt: notice.version
        })
        step.events.push(new Joined({ identity, metadata: notice.member.metadata }))
        return
      }
      gone.set(id, notice.version)
      if (view.delete(id)) {
        step.events.push(notice.kind === "Left" ? new Left({ identity }) : new Dead({ identity, reason: notice.reason }))
      }
      const reg = registrations.get(id)
      if (reg !== undefined) markFenced(step, reg, notice.kind === "Dead" ? notice.reason : "removed")
    })

  const applySnapshot = (snapshot: Snapshot) =>
    locked((step) => {
      // A lower version than before means the registry was reset (its keys expired or were
      // deleted): what we remember about removals no longer applies.
      if (snapshot.version < snapshotVersion) gone.clear()
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
          view.set(id, { identity, metadata: record.metadata, lastHeartbeat, status, knownAt: snapshot.version })
          step.events.push(new Joined({ identity, metadata: record.metadata }))
          if (status === "suspected") step.events.push(new Suspected({ identity, lastHeartbeat }))
        } else {
          entry.lastHeartbeat = lastHeartbeat
          if (entry.status !== status) {
            entry.status = status
            step.events.push(status === "suspected" ? new Suspected({ identity, lastHeartbeat }) : new Recovered({ identity }))
          }
        }
        const reg = registrations.get(id)
        if (reg !== undefined && (reg.status === "alive" || reg.status === "suspected")) reg.status = status
      }
      const reasonFor = (id: string): DeathReason | "left" => {
        const tombstone = snapshot.gone.get(id)
        return tombstone === undefined ? "removed" : tombstone
      }
      for (const [id, entry] of view) {
        if (present.has(id) || entry.knownAt > snapshot.version) continue
        view.delete(id)
        const reason = reasonFor(id)
        step.events.push(
          reason === "left" ? new Left({ identity: entry.identity }) : new Dead({ identity: entry.identity, reason })
        )
      }
      for (const [id, version] of gone) if (version <= snapshot.version) gone.delete(id)
      for (const [id, reg] of registrations) {
        if (present.has(id) || reg.version > snapshot.version) continue
        const reason = reasonFor(id)
        markFenced(step, reg, reason === "left" ? "removed" : reason)
      }
    })

  const refresh: Effect.Effect<void, MembershipError> = refreshLock.withPermits(1)(
    Effect.flatMap(bounded("read the membership", timings.deadMillis, backend.snapshot), applySnapshot)
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

  const heartbeatLoop = (reg: RegistrationState) =>
    Effect.gen(function*() {
      let failing = false
      while (true) {
        yield* Effect.sleep(Duration.millis(timings.heartbeatMillis))
        if (reg.status === "dead" || reg.status === "left") return
        const sentAt = yield* monotonicMillis
        const result = yield* Effect.result(
          bounded("heartbeat", timings.heartbeatMillis, backend.heartbeat(reg.identity.id))
        )
        if (result._tag === "Success") {
          if (failing) yield* Effect.logInfo("membership heartbeats succeed again").pipe(Effect.annotateLogs({ silo: reg.identity.id }))
          failing = false
          if (result.success) {
            reg.lastAcknowledged = Math.max(reg.lastAcknowledged, sentAt)
          } else {
            // Not a member any more: read why (the tombstone), then make sure it is known.
            yield* Effect.ignore(refresh)
            yield* locked((step) => markFenced(step, reg, "removed"))
            return
          }
        } else if (!failing) {
          failing = true
          yield* Effect.logWarning("membership heartbeat failed", result.failure).pipe(
            Effect.annotateLogs({ silo: reg.identity.id })
          )
        }
      }
    })

  // Self-fencing: no acknowledged heartbeat for deadAfter − heartbeatInterval.
  const fenceAfter = timings.deadMillis - timings.heartbeatMillis
  const watchdog = (reg: RegistrationState) =>
    Effect.gen(function*() {
      while (true) {
        if (reg.status === "dead" || reg.status === "left") return
        const now = yield* monotonicMillis
        const deadline = reg.lastAcknowledged + fenceAfter
        if (now >= deadline) return yield* locked((step) => markFenced(step, reg, "unreachable"))
        yield* Effect.sleep(Duration.millis(deadline - now))
      }
    })

  const leave = (reg: RegistrationState, record: MemberRecord) =>
    Effect.gen(function*() {
      if (reg.status !== "dead") reg.status = "left"
      // Also when dead: a silo that fenced itself (unreachable) removes its entry if it can.
      const left = yield* bounded("leave", timings.deadMillis, backend.leave(reg.identity.id)).pipe(
        Effect.catch((error) =>
          Effect.as(
            Effect.logWarning("membership leave failed; the entry will time out", error).pipe(
              Effect.annotateLogs({ silo: reg.identity.id })
            ),
            undefined
          )
        )
      )
      if (left !== undefined) yield* applyNotice({ kind: "Left", member: record, version: left, at: 0 })
      registrations.delete(reg.identity.id)
    })

  const join = (self: SiloIdentity, metadata: Metadata = {}) =>
    Effect.gen(function*() {
      const record: MemberRecord = { identity: self, metadata }
      // Registered and the leave finalizer in place, uninterruptibly; the leave runs after the
      // heartbeat fibers (forked below, so interrupted first) have stopped.
      const reg = yield* Effect.acquireRelease(
        Effect.gen(function*() {
          const sentAt = yield* monotonicMillis
          const { at, version } = yield* bounded("register", timings.deadMillis, backend.register(record))
          const reg: RegistrationState = {
            identity: self,
            version,
            status: "alive",
            lastAcknowledged: sentAt,
            dead: yield* Deferred.make<SiloDeclaredDead>()
          }
          registrations.set(self.id, reg)
          yield* applyNotice({ kind: "Joined", member: record, version, at })
          return reg
        }),
        (reg) => leave(reg, record)
      )
      yield* Effect.forkScoped(heartbeatLoop(reg))
      yield* Effect.forkScoped(watchdog(reg))
      const registration: Registration = {
        identity: self,
        status: Effect.sync(() => reg.status),
        declaredDead: Deferred.await(reg.dead)
      }
      return registration
    })

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

/**
 * A silo's own registration, what `join` returns: its heartbeats, its lease and
 * self-fencing (extended while every other member confirms a registry outage), registering
 * again when the registry started over, its metadata updates and its leave. The rule it
 * follows is in `Membership`'s module doc.
 *
 * Apart from `MembershipView`, which keeps what the registry says of every member, because
 * this keeps one silo in the registry. The two meet in a few places, all passed in
 * {@link RegistrationContext}: the view's lock (fencing a registration is a change of the
 * view, published in order with the others), its announcement handler (a write applies its
 * own announcement at once) and its full read (a refused heartbeat reads why).
 *
 * @internal
 */
import { Deferred, Duration, Effect, Semaphore } from "effect"
import {
  type DeathReason,
  type JoinOptions,
  MembershipError,
  type Metadata,
  NotAMember,
  type Registration,
  type ResolvedTimings,
  type SelfStatus,
  SiloDeclaredDead
} from "../Membership.ts"
import type { SiloIdentity } from "../SiloIdentity.ts"
import type { Backend, MemberRecord, Notice, Step } from "./MembershipView.ts"

/**
 * One registration of this service, as the heartbeats and the view both update it.
 *
 * @internal
 */
export interface RegistrationState {
  readonly identity: SiloIdentity
  /** What it publishes: the metadata of the last `updateMetadata` (so registering again publishes it). */
  record: MemberRecord
  /**
   * Serializes this registration's writes of its record (an update, registering again): an
   * update racing a re-registration could otherwise send the old record to the new epoch.
   */
  readonly writes: Semaphore.Semaphore
  /** The registry epoch and version it (last) registered at. */
  epoch: number
  version: number
  status: SelfStatus
  /** Monotonic millis at which the last acknowledged heartbeat (or the registration) was sent. */
  lastAcknowledged: number
  /** Monotonic millis until which a confirmed registry outage extends the lease. */
  extendedUntil: number
  /** The last heartbeat failed (the registry did not answer). */
  failing: boolean
  readonly dead: Deferred.Deferred<SiloDeclaredDead>
}

/**
 * Bounds a registry call: a call that takes longer than `millis` fails.
 *
 * @internal
 */
export const bounded = <A, E>(operation: string, millis: number, effect: Effect.Effect<A, E>) =>
  Effect.timeoutOrElse(effect, {
    duration: Duration.millis(millis),
    orElse: () => Effect.fail(new MembershipError({ operation, reason: `no answer within ${millis} ms` }))
  })

/**
 * Whether the registration is a member (alive or suspected): neither left nor dead.
 *
 * @internal
 */
export const serving = (reg: RegistrationState) => reg.status === "alive" || reg.status === "suspected"

/**
 * Declares the registration dead within a change of the view: `fence` runs once the change
 * is published (see `MembershipView`).
 *
 * @internal
 */
export const markFenced = (step: Step, reg: RegistrationState, reason: DeathReason) => {
  if (!serving(reg)) return
  reg.status = "dead"
  step.fenced.push([reg, reason])
}

/**
 * Tells the registration's silo that it was declared dead (`Registration.declaredDead`).
 *
 * @internal
 */
export const fence = (reg: RegistrationState, reason: DeathReason) =>
  Effect.andThen(
    Deferred.succeed(reg.dead, new SiloDeclaredDead({ id: reg.identity.id, reason })),
    Effect.logWarning("silo declared dead: it must stop serving").pipe(
      Effect.annotateLogs({ silo: reg.identity.id, reason })
    )
  )

/**
 * What the registrations need of the view they belong to.
 *
 * @internal
 */
export interface RegistrationContext {
  readonly backend: Backend
  readonly timings: ResolvedTimings
  /** The registrations of this service by silo id: the view fences them on what it learns. */
  readonly registrations: Map<string, RegistrationState>
  /** Runs a change of the view under its lock, then publishes its events and fencings. */
  readonly locked: (change: (step: Step) => void) => Effect.Effect<void>
  /** Applies an announcement to the view (a write's own, at once). */
  readonly applyNotice: (notice: Notice) => Effect.Effect<void>
  /** The view's full read. */
  readonly refresh: Effect.Effect<void, MembershipError>
  /** Monotonic millis of the service's `Clock`. */
  readonly monotonicNow: () => number
}

/**
 * The service's `join`: registers the silo, and runs its heartbeats, its lease's watchdog
 * and (with `confirmOutage`) the outage confirmations in the join's scope, which leaves.
 *
 * @internal
 */
export const makeJoin = (context: RegistrationContext) => {
  const { applyNotice, backend, locked, monotonicNow, refresh, registrations, timings } = context
  const monotonicMillis = Effect.sync(monotonicNow)

  // Self-fencing: no acknowledged heartbeat for deadAfter − heartbeatInterval, unless a
  // registry outage confirmed by every other member extends it (see `Membership`'s module doc).
  const fenceAfter = timings.deadMillis - timings.heartbeatMillis
  /**
   * How far one confirmation of an outage extends the lease from when it was asked: a peer's
   * "I cannot reach the registry either" may be up to two heartbeat intervals old (its
   * interval plus its attempt's bound), so a third of margin is taken off `fenceAfter`.
   */
  const outageExtension = fenceAfter - 2 * timings.heartbeatMillis
  const leaseExpiry = (reg: RegistrationState) => Math.max(reg.lastAcknowledged + fenceAfter, reg.extendedUntil)

  /** The registry started over empty: register again under the same identity, if the lease still holds. */
  const registerAgain = (reg: RegistrationState, sentAt: number) =>
    reg.writes.withPermits(1)(Effect.gen(function*() {
      // Fenced or left while an update held `writes`: it must not come back.
      if (!serving(reg)) return
      if (sentAt >= leaseExpiry(reg)) {
        // Others may have dropped this silo meanwhile: it must not come back as itself.
        return yield* locked((step) => markFenced(step, reg, "unreachable"))
      }
      const result = yield* Effect.result(bounded("register again", timings.heartbeatMillis, backend.register(reg.record)))
      if (result._tag === "Failure") {
        if (result.failure._tag === "DuplicateSilo") return yield* locked((step) => markFenced(step, reg, "removed"))
        reg.failing = true
        return
      }
      const { at, epoch: registeredIn, version } = result.success
      reg.epoch = registeredIn
      reg.version = version
      reg.lastAcknowledged = Math.max(reg.lastAcknowledged, sentAt)
      reg.failing = false
      yield* Effect.logInfo("membership: the registry started over; registered again").pipe(
        Effect.annotateLogs({ silo: reg.identity.id })
      )
      yield* applyNotice({ kind: "Joined", member: reg.record, version, at, epoch: registeredIn })
    }))

  const notAMember = (reg: RegistrationState) =>
    Effect.fail(new NotAMember({ id: reg.identity.id, status: reg.status === "left" ? "left" : "dead" }))

  const updateMetadata = (reg: RegistrationState, metadata: Metadata): Effect.Effect<void, MembershipError | NotAMember> =>
    reg.writes.withPermits(1)(Effect.gen(function*() {
      if (!serving(reg)) return yield* notAMember(reg)
      // Kept before the write: if the registry started over, registering again publishes it.
      const record: MemberRecord = { identity: reg.identity, metadata: { ...metadata } }
      reg.record = record
      const result = yield* bounded("update metadata", timings.deadMillis, backend.update(record, reg.epoch))
      if (result === "reset") return // the heartbeat registers this silo again, with `record`
      if (result === "gone") {
        // As for a refused heartbeat: read why (the tombstone), then make sure it is known.
        yield* Effect.ignore(refresh)
        yield* locked((step) => markFenced(step, reg, "removed"))
        return yield* notAMember(reg)
      }
      yield* applyNotice({ kind: "Updated", member: record, version: result.version, at: result.at, epoch: result.epoch })
    }))

  const heartbeatLoop = (reg: RegistrationState) =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(timings.heartbeatMillis))
        if (!serving(reg)) return
        const sentAt = monotonicNow()
        const result = yield* Effect.result(
          bounded("heartbeat", timings.heartbeatMillis, backend.heartbeat(reg.identity.id, reg.epoch))
        )
        if (result._tag === "Failure") {
          if (!reg.failing) {
            yield* Effect.logWarning("membership heartbeat failed", result.failure).pipe(
              Effect.annotateLogs({ silo: reg.identity.id })
            )
          }
          reg.failing = true
          continue
        }
        if (result.success === "ok") {
          if (reg.failing) yield* Effect.logInfo("membership heartbeats succeed again").pipe(Effect.annotateLogs({ silo: reg.identity.id }))
          reg.failing = false
          reg.lastAcknowledged = Math.max(reg.lastAcknowledged, sentAt)
        } else if (result.success === "reset") {
          yield* registerAgain(reg, sentAt)
        } else {
          // Not a member any more: read why (the tombstone), then make sure it is known.
          yield* Effect.ignore(refresh)
          yield* locked((step) => markFenced(step, reg, "removed"))
          return
        }
      }
    })

  /** While heartbeats fail, asks the other members every interval whether the registry is down for them too. */
  const outageLoop = (reg: RegistrationState, confirmOutage: Effect.Effect<boolean>) =>
    Effect.gen(function*() {
      while (true) {
        yield* Effect.sleep(Duration.millis(timings.heartbeatMillis))
        if (!serving(reg)) return
        if (!reg.failing) continue
        const askedAt = monotonicNow()
        const limit = reg.lastAcknowledged + timings.outageGraceMillis
        if (askedAt >= limit || askedAt >= leaseExpiry(reg)) continue
        const confirmed = yield* Effect.timeoutOrElse(confirmOutage, {
          duration: Duration.millis(timings.heartbeatMillis),
          orElse: () => Effect.succeed(false)
        })
        if (confirmed && reg.failing) reg.extendedUntil = Math.max(reg.extendedUntil, Math.min(askedAt + outageExtension, limit))
      }
    })

  const watchdog = (reg: RegistrationState) =>
    Effect.gen(function*() {
      while (true) {
        if (!serving(reg)) return
        const now = monotonicNow()
        const deadline = leaseExpiry(reg)
        if (now >= deadline) {
          yield* Effect.logWarning("membership: no acknowledged heartbeat and no confirmed registry outage within the lease").pipe(
            Effect.annotateLogs({ silo: reg.identity.id })
          )
          return yield* locked((step) => markFenced(step, reg, "unreachable"))
        }
        yield* Effect.sleep(Duration.millis(deadline - now))
      }
    })

  const leave = (reg: RegistrationState) =>
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
      if (left !== undefined) yield* applyNotice({ kind: "Left", member: reg.record, version: left, at: 0, epoch: reg.epoch })
      registrations.delete(reg.identity.id)
    })

  const join = (self: SiloIdentity, options?: JoinOptions) =>
    Effect.gen(function*() {
      const record: MemberRecord = { identity: self, metadata: options?.metadata ?? {} }
      // Registered and the leave finalizer in place, uninterruptibly; the leave runs after the
      // heartbeat fibers (forked below, so interrupted first) have stopped.
      const reg = yield* Effect.acquireRelease(
        Effect.gen(function*() {
          const sentAt = yield* monotonicMillis
          const { at, epoch: registeredIn, version } = yield* bounded("register", timings.deadMillis, backend.register(record))
          const reg: RegistrationState = {
            identity: self,
            record,
            writes: yield* Semaphore.make(1),
            epoch: registeredIn,
            version,
            status: "alive",
            lastAcknowledged: sentAt,
            extendedUntil: 0,
            failing: false,
            dead: yield* Deferred.make<SiloDeclaredDead>()
          }
          registrations.set(self.id, reg)
          yield* applyNotice({ kind: "Joined", member: record, version, at, epoch: registeredIn })
          return reg
        }),
        leave
      )
      yield* Effect.forkScoped(heartbeatLoop(reg))
      yield* Effect.forkScoped(watchdog(reg))
      const confirmOutage = options?.confirmOutage
      if (confirmOutage !== undefined && outageExtension > 0 && timings.outageGraceMillis > 0) {
        yield* Effect.forkScoped(outageLoop(reg, confirmOutage))
      }
      const registration: Registration = {
        identity: self,
        status: Effect.sync(() => reg.status),
        declaredDead: Deferred.await(reg.dead),
        leaseValid: () => serving(reg) && monotonicNow() < leaseExpiry(reg),
        reachesRegistry: () => serving(reg) && !reg.failing,
        updateMetadata: (metadata) => updateMetadata(reg, metadata)
      }
      return registration
    })

  return join
}

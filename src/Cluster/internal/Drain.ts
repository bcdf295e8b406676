/**
 * A silo's drain: the graceful stop of one member while the cluster goes on serving. It
 * runs on SIGTERM (the layer's scope closing), from `Cluster.drain`, and from the
 * endpoints' `POST /quark/drain`; once, whoever asks first.
 *
 * The rule, in order:
 * 1. The silo says it is draining: `/ready` answers 503, and its membership record carries
 *    `quark.status=draining` so operators and placements see it.
 * 2. It migrates its directory-placed activations to other silos (see `Migration`: the
 *    state is handed over or written, queued calls follow, the directory entry moves
 *    atomically), so they never stop being served.
 * 3. It leaves the membership: every other silo and client drops it from its ring (the
 *    `Left` announcement: a round trip; a missed one is repaired by the next full read).
 * 4. It drops itself from its own ring at once, so that every activation it holds is
 *    deactivated (the running turn finishes, finalizers write state) and every call that
 *    reaches it from then on is forwarded to the address's next owner. A next owner asks it
 *    to release an address before activating it (see `Handoff`), so no address is held
 *    twice; messages queued on a deactivating activation follow the address, in order.
 * 5. It waits until every activation has stopped, has each new owner fetch the in-memory
 *    state its activations left (for types that hand it over, see `Parking`), then keeps
 *    forwarding until every peer
 *    has closed its connection to it (a silo or client closes its idle connection to a silo
 *    as soon as its view drops it), for at most `settleMillis` (the membership's
 *    `deadAfter`, 3 s by default: by then even a view that missed the announcement has
 *    read the registry again several times); then it answers what is still in flight and
 *    stops accepting requests.
 * All of it is bounded by `timeoutMillis` (`drainTimeout`, 30 s by default), on the real
 * clock (a test's `TestClock` does not hold a stop up); what is left then is closed by the
 * silo's shutdown (`shutdownTimeout`).
 *
 * A receiving silo whose view says another silo owns an address that was forwarded to it
 * (the two views disagree, one of them is behind) waits for its own ring to change, up to
 * `settleMillis` (and half the caller's timeout), before it decides again (see `Inbound`),
 * rather than failing a call that a moment later it would serve.
 *
 * Numbers (`test/chaos/RollingRestart.test.ts`, three silos restarted in place twice under
 * load): zero failed calls; see docs/operations.md for the measured latency.
 *
 * Rejected: refusing calls from the moment the stop begins (the first version: callers
 * whose view still had the silo got `ActorUnavailable` for a few milliseconds); closing the
 * listener as soon as the activations stopped (calls in flight from slower views were lost
 * with the connection, `OutcomeUnknown`); an unbounded number of forwards (two views that
 * disagree would bounce a call between them).
 *
 * @internal
 */
import { Clock, Deferred, Effect, Exit } from "effect"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import type { RemoteRouter } from "./RemoteRouter.ts"

/** What a drain needs of its silo. @internal */
export interface DrainHost {
  readonly router: LocalRouter
  readonly remote: RemoteRouter
  /** Says, in the membership, that this silo is draining (failures are logged, not fatal). */
  readonly announce: Effect.Effect<void>
  /** Migrates the activations that can move on their own (directory placements) to other silos. */
  readonly handOver: Effect.Effect<void>
  /**
   * Tells the new owner of each hashed address whose activation left state here (see
   * `Parking`) to fetch it now; completes once they did or refused.
   */
  readonly pushParked: Effect.Effect<void>
  /** Leaves the membership; nothing when not a member. */
  readonly leave: Effect.Effect<void>
  /** Answers the requests in flight and refuses new ones, within the time given. */
  readonly drainServer: (millis: number) => Effect.Effect<void>
  /** Completes once no peer holds a connection to this silo. */
  readonly disconnected: Effect.Effect<void>
  /** How long callers may still reach this silo after it left (see the module doc). */
  readonly settleMillis: number
  /** The bound of the whole drain. */
  readonly timeoutMillis: number
}

/** A silo's drain, run at most once. @internal */
export interface Drain {
  /** Drains this silo (or waits for the drain already under way); completes when it is done. */
  readonly drain: Effect.Effect<void>
  /** Completes once a drain has finished, whoever started it. */
  readonly drained: Effect.Effect<void>
}

/** @internal */
export const make = (host: DrainHost): Drain => {
  const done = Deferred.makeUnsafe<void>()
  let started = false
  const drain = Effect.suspend(() => {
    if (started) return Deferred.await(done)
    started = true
    // Uninterruptible: a caller that stops waiting must not leave the silo half drained.
    return Effect.uninterruptible(Effect.ensuring(run(host), Deferred.done(done, Exit.void)))
  })
  return { drain, drained: Deferred.await(done) }
}

const run = (host: DrainHost): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { remote, router } = host
    const start = performance.now()
    const left = () => Math.max(0, start + host.timeoutMillis - performance.now())
    router.draining = true
    const self = remote.self
    yield* Effect.logDebug("draining: handing this silo's activations over, then leaving").pipe(
      Effect.annotateLogs({ silo: self ?? "none", activations: countActivations(router) })
    )
    yield* host.announce
    if (self !== undefined && !remote.dead) {
      yield* Effect.raceFirst(host.handOver, sleep(left()))
      yield* host.leave
      if (remote.ring.has(self)) remote.setRing(remote.ring.remove(self))
    }
    // Hashed activations were deactivated by the ring change; the others (directory
    // placements, stateless workers, children's parents) go now.
    for (const slot of router.slots.values()) {
      if (!slot.virtual) continue
      for (const act of slot.activations.values()) act.deactivate()
    }
    const stopped = yield* Effect.raceFirst(Effect.as(deactivated(router), true), Effect.as(sleep(left()), false))
    if (!stopped) yield* Effect.logWarning("draining: some activations had not stopped within the drain timeout")
    yield* Effect.raceFirst(host.pushParked, sleep(left()))
    yield* Effect.raceFirst(host.disconnected, sleep(Math.min(host.settleMillis, left())))
    yield* host.drainServer(left())
    yield* Effect.logDebug("drained").pipe(Effect.annotateLogs({ millis: Math.round(performance.now() - start) }))
  })

/** Sleeps on the real clock (as `Silo`'s `shutdownOnRealTime` does), whatever clock the fiber has. */
const sleep = (millis: number): Effect.Effect<void> =>
  Effect.provideService(Effect.sleep(millis), Clock.Clock, Clock.Clock.defaultValue())

const countActivations = (router: LocalRouter): number => {
  let n = 0
  for (const slot of router.slots.values()) n += slot.activations.size
  return n
}

/** Waits until no activation is left on the silo. @internal */
export const deactivated = (router: LocalRouter): Effect.Effect<void> =>
  Effect.suspend(() => {
    const all = [...router.slots.values()].flatMap((slot) => [...slot.activations.values()])
    return Effect.forEach(all, (act) => Effect.callback<void>((resume) => act.onStopped(() => resume(Effect.void))), {
      discard: true
    })
  })

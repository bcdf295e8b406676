/**
 * Cluster membership: which silos are up. A silo `join`s with its {@link SiloIdentity},
 * heartbeats while its scope is open and leaves when the scope closes; every silo keeps a
 * local view (`members`) and publishes what changes in it (`changes`).
 *
 * Two implementations share the logic in `internal/MembershipView.ts` and differ only in where the registry lives:
 * `MemoryMembership` (one in-process registry, for tests and single-process use, driven by
 * Effect's `Clock`) and `RedisMembership` (a Redis hash and sorted set, pub/sub for
 * announcements). All silos of one cluster must use the same timings.
 *
 * **The rule.** The registry keeps, per member, the time of its last heartbeat, on one clock:
 * the registry's own (Redis: the server's `TIME`; memory: Effect's `Clock`), so clock skew
 * between silos plays no part. With `age` = registry time − last heartbeat:
 *
 * - `age < suspectAfter`: alive.
 * - `suspectAfter ≤ age < deadAfter`: suspected. A local observation (each silo derives it
 *   from the ages in its full read), not written anywhere; a later heartbeat makes the
 *   member alive again (`Recovered`). Placement should avoid suspected silos but not yet
 *   move their actors.
 * - `age ≥ deadAfter`: dead. The first silo whose full read sees this removes the member
 *   atomically, leaves a tombstone and publishes `Dead` (once, whoever noticed first).
 *   A dead member never comes back: its heartbeats are refused (a heartbeat only refreshes
 *   an existing entry), and rejoining under the same id fails. A restarted process joins
 *   with a new generation. Joining with a newer generation at the same `host:port` declares
 *   older generations there dead at once (`superseded`): the address is taken, so the old
 *   process is gone, and failover does not wait for the timeout.
 *
 * **Timings (defaults).** Heartbeat every 500 ms; suspected after 1.5 s without one (three
 * missed beats: one slow round trip or GC pause does not raise suspicion); dead after 3 s
 * (six missed beats: a stall of up to 2 s, e.g. a long GC pause or a Redis failover blip,
 * does not cost a healthy silo its membership; past 2.5 s without an acknowledged heartbeat
 * it fences itself, see below); each silo's full read (repair and evaluation) every 500 ms. So a silo killed with `kill -9` is declared dead
 * between `deadAfter` and `deadAfter + refreshInterval` after its last heartbeat, i.e.
 * ≤ 3.5 s after the kill (sooner with more silos, whose reads interleave), and every other
 * silo hears the `Dead` announcement within a round trip: that leaves ≥ 1.5 s of a 5 s
 * failover budget for placement. (Orleans takes 15–20 s; effect/cluster re-reads every 3 s.)
 *
 * **Learning that you are dead.** A silo learns it was declared dead from a `Dead`
 * announcement naming it, from a full read without its entry, or from a refused heartbeat;
 * `Registration.declaredDead` then completes and heartbeats stop. It must stop serving (it
 * cannot undo this: others may already be re-activating its actors), and may join again
 * with a new generation. It also fences itself: its *lease* runs `deadAfter −
 * heartbeatInterval` (2.5 s) from when its last acknowledged heartbeat was sent, and when
 * the lease runs out it declares itself dead (`unreachable`). Its last acknowledged
 * heartbeat was sent before the registry stamped it, so this happens before any other silo
 * can declare it dead (clock rates, not clock values, are all this assumes). A silo starts
 * no turn outside its lease (`Registration.leaseValid`, read before every turn), so a
 * process that was paused (SIGSTOP, a long GC) serves nothing it found queued on waking.
 *
 * **Registry outages.** While its heartbeats fail, a silo asks every other member of its
 * view, once per heartbeat interval, whether it reaches the registry (`JoinOptions.confirmOutage`).
 * If none does (each answers that it cannot, or another incarnation answers at its address:
 * its process is gone), the registry is down for everyone, nobody can declare anybody dead, and the
 * silo's lease is extended to `deadAfter − 3 × heartbeatInterval` (1.5 s) past the question,
 * up to `outageGrace` (30 s) after its last acknowledged heartbeat. So an outage shorter
 * than the grace costs nothing: silos keep serving the addresses they own under the last
 * view (no joins, no ownership changes). A silo that cannot reach the registry while
 * another member can (a partition, or a pause) gets no confirmation and fences at 2.5 s as
 * before. A member that refuses connections confirms nothing: behind a partition that
 * rejects packets it may still reach the registry and declare this silo dead (the first
 * version counted a refusal as "gone", and a rejecting partition served addresses on both
 * sides). The cost: a member that crashed just before or during an outage keeps the others
 * from confirming it, and they fence at 2.5 s. Past the grace every silo fences, and joins
 * again when the registry is back.
 * The registry's side of the same rule, the **silence rule**: a registry that heard no
 * heartbeat or join for `suspectAfter` (1.5 s) was unreachable (or every silo was paused),
 * so heartbeat ages mean nothing; its first script afterwards re-stamps every member
 * `outageGrace` into the future instead of declaring anyone dead. A member that never
 * heartbeats again is declared dead `outageGrace + deadAfter` (33 s) after the registry is
 * heard from again, which is after its lease ran out however it was extended. (The cost:
 * a silo that crashed during an outage, or while every other silo was paused, holds its
 * actors for those 33 s; one restarted at the same `host:port` supersedes it at once.)
 *
 * **A registry that lost its data** (a Redis restarted without persistence, or a failover
 * to an empty replica) starts a new *epoch* (its first script records the time). A silo
 * whose heartbeat finds another epoch registers again under the same identity, if its
 * lease still holds (otherwise it fences, and joins again with a new generation). Every
 * view, a client's too, keeps the members it knew for `outageGrace + deadAfter` after it
 * first sees the new epoch, so that they can register again, and then drops those that did
 * not. Versions compare only within an epoch: announcements and reads of an older epoch
 * are ignored, and one of a newer epoch triggers a full read.
 *
 * **The view.** Announcements (join, leave, dead, metadata update) update every view at
 * once; the periodic full read repairs anything missed (a lost pub/sub message, a
 * reconnect, an entry deleted behind everyone's back, which reads as `Dead` with reason
 * `removed`). Every change to the registry bumps a version, announcements carry it, and a
 * full read returns the version it saw, so a stale read never undoes a newer announcement
 * and vice versa.
 *
 * **Metadata that changes.** A member may replace its published metadata while it is joined
 * (`Registration.updateMetadata`): a silo that is draining says so (`quark.status=draining`),
 * and load figures for load-aware placement are republished every few seconds. An update is
 * one atomic registry write (Redis: one script) that bumps the version and is announced as
 * `Updated`, so every view's `members` carries the new metadata within one announcement round
 * trip (milliseconds), and within one full read (≤ `refreshInterval`, 500 ms) if the
 * announcement is lost. Versions order updates like every other change: a late announcement
 * or a stale read never brings older metadata back, and heartbeats never write metadata (their
 * cost is unchanged). Each update is a message to every view, so it is for changes seconds
 * apart, not a per-call counter.
 *
 * **Rejected alternatives.** Fencing at 2.5 s whatever happens (the first version) turned
 * a 5 s Redis restart into a cluster-wide outage. Extending leases without asking the
 * peers would let a silo cut off from a registry that others still reach serve on after
 * they declared it dead. Peer-to-peer failure detection with votes (Orleans) keeps working
 * without the registry but needs a quorum protocol of its own; the registry stays the one
 * authority here, and the peers are only asked whether it is down.
 *
 * @since 0.1.0
 */
import { Context, Duration, Effect, Schema, type Scope, type Stream } from "effect"
import { SiloIdentity } from "./SiloIdentity.ts"

// ---------------------------------------------------------------------------------------
// Data
// ---------------------------------------------------------------------------------------

/**
 * Free-form labels a silo publishes with itself (e.g. its transport address, zone).
 *
 * @since 0.1.0
 */
export const Metadata = Schema.Record(Schema.String, Schema.String)

/**
 * @since 0.1.0
 */
export type Metadata = typeof Metadata.Type

/**
 * How a member looks from here: `alive`, or `suspected` (no heartbeat for `suspectAfter`).
 * Dead members are not members.
 *
 * @since 0.1.0
 */
export const MemberStatus = Schema.Literals(["alive", "suspected"])

/**
 * @since 0.1.0
 */
export type MemberStatus = typeof MemberStatus.Type

/**
 * One member of the cluster as this silo sees it. `lastHeartbeat` is in the registry's
 * time base (Redis: server time in epoch milliseconds; memory: Effect's `Clock`), updated
 * by each full read (so it lags by up to one `refreshInterval`).
 *
 * @since 0.1.0
 */
export class Member extends Schema.Class<Member>("quark/Member")({
  identity: SiloIdentity,
  status: MemberStatus,
  lastHeartbeat: Schema.Number,
  metadata: Metadata
}) {}

/**
 * Why a member was declared dead:
 * - `timeout`: no heartbeat for `deadAfter`;
 * - `superseded`: a newer generation joined at the same `host:port`;
 * - `removed`: its entry vanished without a tombstone (deleted behind the cluster's back);
 * - `unreachable`: (only for the silo itself) no acknowledged heartbeat for
 *   `deadAfter − heartbeatInterval`, so it fenced itself.
 *
 * @since 0.1.0
 */
export const DeathReason = Schema.Literals(["timeout", "superseded", "removed", "unreachable"])

/**
 * @since 0.1.0
 */
export type DeathReason = typeof DeathReason.Type

/**
 * A silo joined (or, found by a full read, was found to be a member).
 *
 * @since 0.1.0
 */
export class Joined extends Schema.TaggedClass<Joined>()("Joined", { identity: SiloIdentity, metadata: Metadata }) {}

/**
 * A silo left on purpose (its scope closed).
 *
 * @since 0.1.0
 */
export class Left extends Schema.TaggedClass<Left>()("Left", { identity: SiloIdentity }) {}

/**
 * A member has not heartbeated for `suspectAfter`.
 *
 * @since 0.1.0
 */
export class Suspected extends Schema.TaggedClass<Suspected>()("Suspected", {
  identity: SiloIdentity,
  lastHeartbeat: Schema.Number
}) {}

/**
 * A suspected member heartbeated again.
 *
 * @since 0.1.0
 */
export class Recovered extends Schema.TaggedClass<Recovered>()("Recovered", { identity: SiloIdentity }) {}

/**
 * A member was declared dead and removed.
 *
 * @since 0.1.0
 */
export class Dead extends Schema.TaggedClass<Dead>()("Dead", { identity: SiloIdentity, reason: DeathReason }) {}

/**
 * A member replaced its metadata (`Registration.updateMetadata`), announced or found by a full
 * read; `metadata` is the whole new record. Only sent when the metadata this view holds changes.
 *
 * @since 0.2.0
 */
export class Updated extends Schema.TaggedClass<Updated>()("Updated", { identity: SiloIdentity, metadata: Metadata }) {}

/**
 * A change of this silo's view of the membership.
 *
 * @since 0.1.0
 */
export const MembershipEvent = Schema.Union([Joined, Left, Suspected, Recovered, Dead, Updated])

/**
 * @since 0.1.0
 */
export type MembershipEvent = typeof MembershipEvent.Type

// ---------------------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------------------

/**
 * The registry failed (Redis unreachable, a command failed, a timeout) or the options are
 * invalid (`operation: "configure"`).
 *
 * @since 0.1.0
 */
export class MembershipError extends Schema.TaggedError<MembershipError>()("MembershipError", {
  operation: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `membership failed to ${this.operation}: ${this.reason}`
  }
}

/**
 * A join with an id that is already a member, or that left or was declared dead (an
 * incarnation joins once; a restarted process needs a new generation).
 *
 * @since 0.1.0
 */
export class DuplicateSilo extends Schema.TaggedError<DuplicateSilo>()("DuplicateSilo", {
  id: Schema.String,
  detail: Schema.String
}) {
  override get message(): string {
    return `silo ${this.id} cannot join: ${this.detail}`
  }
}

/**
 * This silo was declared dead: it must stop serving. The value of
 * `Registration.declaredDead`.
 *
 * @since 0.1.0
 */
export class SiloDeclaredDead extends Schema.TaggedError<SiloDeclaredDead>()("SiloDeclaredDead", {
  id: Schema.String,
  reason: DeathReason
}) {
  override get message(): string {
    return `silo ${this.id} was declared dead (${this.reason})`
  }
}

/**
 * An operation of a member (`Registration.updateMetadata`) by a silo that is no longer one:
 * it left (its scope closed) or was declared dead (found when the registry no longer has its
 * entry, or by its own fencing). Final for this incarnation: a silo that is dead must stop
 * serving, and may join again with a new generation.
 *
 * @since 0.2.0
 */
export class NotAMember extends Schema.TaggedError<NotAMember>()("NotAMember", {
  id: Schema.String,
  status: Schema.Literals(["dead", "left"])
}) {
  override get message(): string {
    return `silo ${this.id} is no longer a member (${this.status})`
  }
}

// ---------------------------------------------------------------------------------------
// The service
// ---------------------------------------------------------------------------------------

/**
 * A joined silo's own status: `alive`/`suspected` as the last full read saw it, `dead`
 * once declared dead (final), `left` once its scope closed.
 *
 * @since 0.1.0
 */
export type SelfStatus = "alive" | "suspected" | "dead" | "left"

/**
 * What `join` returns, for the owner of the silo.
 *
 * @since 0.1.0
 */
export interface Registration {
  readonly identity: SiloIdentity
  /** The current status of this silo. */
  readonly status: Effect.Effect<SelfStatus>
  /**
   * Completes when this silo is declared dead (never, if it leaves first). The owner must
   * then stop serving, e.g. `Effect.raceFirst(serve, Effect.flatMap(reg.declaredDead, Effect.fail))`.
   */
  readonly declaredDead: Effect.Effect<SiloDeclaredDead>
  /**
   * Whether this silo can still show it is a member, read synchronously (a silo calls it
   * before every turn): its last acknowledged heartbeat was sent less than
   * `deadAfter − heartbeatInterval` ago, or a registry outage confirmed by every other member
   * extends that (see the module doc). False once declared dead or left.
   */
  readonly leaseValid: () => boolean
  /** Whether this silo's last heartbeat reached the registry (what it answers a peer that asks during an outage). */
  readonly reachesRegistry: () => boolean
  /**
   * Replaces the metadata this silo publishes (the whole record, not a merge) and announces
   * `Updated`; this silo's own `members` shows it when this returns, every other view within
   * one announcement round trip (or one full read, if the announcement is lost). Updates by
   * one silo are applied in the order they are made; meant for changes seconds apart (see
   * the module doc). If the registry started over empty, the metadata is published when the
   * heartbeat registers this silo again (within a heartbeat interval).
   *
   * Fails with `MembershipError` when the registry does not answer (within `deadAfter`; the
   * update may or may not have been applied: retry), and with `NotAMember` when this silo
   * left or was declared dead (a registry without its entry also declares it dead here, as a
   * refused heartbeat does).
   */
  readonly updateMetadata: (metadata: Metadata) => Effect.Effect<void, MembershipError | NotAMember>
}

/**
 * Options of `join`.
 *
 * @since 0.1.0
 */
export interface JoinOptions {
  /** Labels published with the member. */
  readonly metadata?: Metadata | undefined
  /**
   * Asked while this silo's heartbeats fail: succeeds with `true` when every other member of
   * the last view confirms that it cannot reach the registry either (the registry is down for
   * everyone, so nobody can declare anyone dead). Each confirmation extends this silo's lease,
   * up to `outageGrace` after its last acknowledged heartbeat. Without it a silo fences itself
   * `deadAfter − heartbeatInterval` after its last acknowledged heartbeat, as before.
   */
  readonly confirmOutage?: Effect.Effect<boolean> | undefined
}

/**
 * @since 0.1.0
 */
export interface MembershipShape {
  /**
   * Registers `self`, heartbeats in the background until the scope closes, then leaves.
   * Returns once registered; `members` includes `self` at once.
   */
  readonly join: (
    self: SiloIdentity,
    options?: JoinOptions
  ) => Effect.Effect<Registration, MembershipError | DuplicateSilo, Scope.Scope>
  /** The members (alive and suspected) as this silo sees them, ordered by id. */
  readonly members: Effect.Effect<ReadonlyArray<Member>>
  /** The changes of the view from when the stream starts. */
  readonly changes: Stream.Stream<MembershipEvent>
  /**
   * Subscribes now: no change after this returns is missed. The pattern for a consumer that
   * needs the full picture: `subscribe`, then read `members`, then consume the stream.
   */
  readonly subscribe: Effect.Effect<Stream.Stream<MembershipEvent>, never, Scope.Scope>
  /** Runs a full read (repair and evaluation) now, as the periodic one does. */
  readonly refresh: Effect.Effect<void, MembershipError>
  /** The timings in force. */
  readonly timings: ResolvedTimings
}

/**
 * @since 0.1.0
 */
export class Membership extends Context.Service<Membership, MembershipShape>()("quark/Membership") {}

// ---------------------------------------------------------------------------------------
// Timings
// ---------------------------------------------------------------------------------------

/**
 * The timings (see the rule in the module doc). Must satisfy
 * `0 < heartbeatInterval < suspectAfter < deadAfter` and `refreshInterval > 0`.
 *
 * @since 0.1.0
 */
export interface MembershipTimings {
  /** How often a joined silo heartbeats. Default 500 ms. */
  readonly heartbeatInterval?: Duration.Input | undefined
  /** Without a heartbeat for this long a member is suspected. Default 1.5 s. */
  readonly suspectAfter?: Duration.Input | undefined
  /** Without a heartbeat for this long a member is declared dead. Default 3 s. */
  readonly deadAfter?: Duration.Input | undefined
  /** How often each silo runs a full read (repair, suspicion, death). Default 500 ms. */
  readonly refreshInterval?: Duration.Input | undefined
  /**
   * How long a silo goes on serving while the registry is unreachable for every member
   * (counted from its last acknowledged heartbeat), and how long members that stopped
   * heartbeating during a registry-wide silence are kept before they can be declared dead.
   * Default 30 s.
   */
  readonly outageGrace?: Duration.Input | undefined
}

/**
 * @since 0.1.0
 */
export interface ResolvedTimings {
  readonly heartbeatMillis: number
  readonly suspectMillis: number
  readonly deadMillis: number
  readonly refreshMillis: number
  readonly outageGraceMillis: number
  /**
   * A registry that heard no heartbeat or registration for this long was unreachable (or
   * every silo was paused): `suspectAfter`. Its first script afterwards re-stamps every
   * member's heartbeat `outageGrace` into the future instead of declaring anyone dead.
   */
  readonly silenceMillis: number
  /** How long tombstones are kept and how long an abandoned registry lives: max(10 × deadAfter, 2 × outageGrace, 1 min). */
  readonly retentionMillis: number
}

/**
 * @since 0.1.0
 */
export const defaultTimings = {
  heartbeatInterval: "500 millis",
  suspectAfter: "1500 millis",
  deadAfter: "3 seconds",
  refreshInterval: "500 millis",
  outageGrace: "30 seconds"
} as const satisfies MembershipTimings

/**
 * Applies the defaults and checks the timings.
 *
 * @since 0.1.0
 */
export const resolveTimings = (timings?: MembershipTimings): Effect.Effect<ResolvedTimings, MembershipError> =>
  Effect.suspend(() => {
    const millis = (input: Duration.Input | undefined, fallback: Duration.Input) => {
      try {
        return Duration.toMillis(Duration.fromInputUnsafe(input ?? fallback))
      } catch {
        return Number.NaN
      }
    }
    const heartbeatMillis = millis(timings?.heartbeatInterval, defaultTimings.heartbeatInterval)
    const suspectMillis = millis(timings?.suspectAfter, defaultTimings.suspectAfter)
    const deadMillis = millis(timings?.deadAfter, defaultTimings.deadAfter)
    const refreshMillis = millis(timings?.refreshInterval, defaultTimings.refreshInterval)
    const outageGraceMillis = millis(timings?.outageGrace, defaultTimings.outageGrace)
    const finite = [heartbeatMillis, suspectMillis, deadMillis, refreshMillis, outageGraceMillis].every(Number.isFinite)
    if (
      !finite ||
      !(heartbeatMillis > 0 && heartbeatMillis < suspectMillis && suspectMillis < deadMillis && refreshMillis > 0 &&
        outageGraceMillis >= 0)
    ) {
      return Effect.fail(
        new MembershipError({
          operation: "configure",
          reason: `timings must satisfy 0 < heartbeatInterval (${heartbeatMillis} ms) < suspectAfter (${suspectMillis} ms) ` +
            `< deadAfter (${deadMillis} ms), refreshInterval (${refreshMillis} ms) > 0 and outageGrace (${outageGraceMillis} ms) >= 0`
        })
      )
    }
    return Effect.succeed({
      heartbeatMillis,
      suspectMillis,
      deadMillis,
      refreshMillis,
      outageGraceMillis,
      silenceMillis: suspectMillis,
      retentionMillis: Math.max(10 * deadMillis, 2 * outageGraceMillis, 60_000)
    })
  })

/**
 * The rebalancer: moves activations from a silo that holds more than its share to silos
 * that hold less, a bounded number per second, with live migration (`Migrator`); and,
 * optionally, evicts a silo whose health stays bad (it drains itself). Provide
 * `Rebalancer.layer(options)` beside the actor implementations of each silo, on a
 * `ClusterSilo` that reports its load (`loadReportInterval`, see `Load`):
 *
 * ```ts
 * const SiloLive = Layer.mergeAll(RoomsLive, Rebalancer.layer({ maxPerSecond: 20 })).pipe(
 *   Layer.provideMerge(ClusterSilo.layer({ port: 4000 })),
 *   Layer.provide(membership),
 *   Layer.provide(directory)
 * )
 * ```
 *
 * **The rule.** Each silo decides for itself, from its own view, every `interval` (10 s)
 * and one second after a silo joins:
 * - It counts its migratable activations (directory placements: the ones live migration can
 *   move; hashed addresses follow the ring, which already spreads them) and reads the counts
 *   the other silos reported (`quark.load.migratable`), of the silos that are alive, not
 *   draining, and host one of its directory-placed types. The target share is their mean.
 * - It starts moving once it holds more than `threshold` (20 %) over the mean and at least
 *   one activation more, or, after a silo joined, as soon as it holds one activation more
 *   than the mean (one silo joining ten leaves each of them 10 % over: under the threshold,
 *   but the joiner would get nothing but new placements); it then moves, every second, up to
 *   `maxPerSecond` (10) activations, and at most its excess, until it is within one
 *   activation of the mean. Reports are up to an interval old, and one that predates a
 *   burst of new activations makes a silo look emptier than it is: an excess starts a
 *   rebalancing only once every other silo has reported again since it was seen (report
 *   numbers, `quark.load.seq`) and it is still there (without this, two silos sent each
 *   other activations in turn in the tests).
 *   So a silo moves only its own excess, and all silos together move what the others lack:
 *   concurrent rebalancers do not overshoot.
 * - Each move goes to an under-loaded silo that hosts the type, drawn with a probability
 *   proportional to what it lacks (so that several overloaded silos do not all fill the same
 *   one first). Reports are seconds old: what it sent a silo since that silo's last report
 *   counts as held there.
 * - It moves the cheapest first, by `cost` (default: idle activations before busy ones; then
 *   a KiB of state weighs as much as one passivation sweep of idleness: a busy activation's
 *   callers wait for its move, a cold one's callers are few, and a large state takes longer
 *   to write or hand over). The state's size is its `ActorState` records' encoded size at
 *   their last read or write (`stateBytes`); a type's own migration participants are not
 *   known before they run (after its last turn), so a custom `cost` may weigh them
 *   (`handsState` says which types hand state over). Only the first 256 (or 32 per move of
 *   the batch) active activations found are ranked, so a round costs the same with a
 *   million activations.
 * - `pause` stops it (moves and evictions) from the next batch on, `resume` starts it again;
 *   `status` says where it stands. Every round that moved something logs one line (how
 *   many, from where, to which silos, and the excess and mean that made it move); the
 *   metrics `quark_rebalancer_migrations_total{outcome}`, `quark_rebalancer_skew`,
 *   `quark_rebalancer_paused` and `quark_rebalancer_evictions_total` follow it.
 *
 * **Eviction** (`evict: { below, for }`): a silo whose own health score (from its own load
 * report, see `Load`) stays under `below` for `for` drains itself (`Cluster.drain`), with a
 * warning: its activations move to the others and no call fails; it is not killed (its
 * process decides what to do once `Cluster.drained` completes, e.g. exit and be restarted
 * by its supervisor). One silo at a time: it does not evict itself while another member
 * says it is draining, nor when fewer than two silos would be left; and of the silos whose
 * reported score is under `below`, only the one with the lowest (then the first by id) goes
 * (the others wait for it, up to another `for`: it may run no eviction).
 * Two silos that saw different views could still both go; the next round of every other
 * silo then sees two draining and none follows.
 *
 * **Numbers.** At the default 10 moves a second, a silo that joins a cluster of n silos
 * holding N directory-placed activations in all reaches its share (N / (n + 1)) in about
 * N / (10 n (n + 1)) ... N / (10 (n + 1)) seconds, depending on how many silos hold an
 * excess. Each move costs one deactivation and activation, two round trips and one
 * directory write (see `Migrator`); its callers see latency, not errors.
 *
 * **Rejected.** A central coordinator that plans every move: it needs an election, and each
 * silo already has what it needs to move its own excess. Moving to the target in one go:
 * thousands of simultaneous moves would stall the directory and the target's activations.
 * Rebalancing hashed addresses: their owner is the ring's, and the ring is already
 * balanced to about 5 % (see `HashRing`). Killing an unhealthy silo: its activations would
 * wait for failure detection (seconds) and lose their in-memory state; a drain hands them
 * over.
 *
 * @since 0.2.0
 */
import { Clock, Context, Deferred, Duration, Effect, Exit, Layer, Option, Random, Stream } from "effect"
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import { Silo } from "../Actor/Silo.ts"
import * as Catalog from "../Telemetry/MetricCatalog.ts"
import * as ProcessMetrics from "../Telemetry/internal/ProcessMetrics.ts"
import { Cluster } from "./Cluster.ts"
import * as Eviction from "./internal/Eviction.ts"
import { cheapest, migratable } from "./internal/MoveCandidates.ts"
import * as Load from "./Load.ts"
import { Membership } from "./Membership.ts"
import { Migrator } from "./Migrator.ts"
import { hostedTypes } from "./Placement.ts"

// ---------------------------------------------------------------------------------------
// API
// ---------------------------------------------------------------------------------------

/**
 * An activation the rebalancer could move, as a `cost` function sees it.
 *
 * @since 0.2.0
 */
export interface Candidate {
  readonly address: ActorAddress
  /** A turn runs or messages wait: its callers would wait for the move. */
  readonly busy: boolean
  /**
   * Passivation sweeps that found it idle since its last turn (−1: it had a turn since the
   * last sweep): the higher, the longer it has been idle.
   */
  readonly idleSweeps: number
  /** Its activation registered migration participants: its in-memory state goes with it. */
  readonly handsState: boolean
  /**
   * The bytes of state a move would carry or make its next activation read: its `ActorState`
   * records' encoded size at their last read or write; `undefined` when it has none.
   */
  readonly stateBytes: number | undefined
}

/**
 * Eviction: a silo whose health score stays under `below` for `for` drains itself.
 *
 * @since 0.2.0
 */
export interface EvictOptions {
  /** The score (in [0, 1], see `Load`) under which a silo is unhealthy. */
  readonly below: number
  /** How long it must stay under it before it drains. */
  readonly for: Duration.Input
}

/**
 * Options of {@link layer}; every field has a documented default.
 *
 * @since 0.2.0
 */
export interface RebalancerOptions {
  /** How often a silo compares its share with the others'. Default 10 seconds (and one second after a silo joins). */
  readonly interval?: Duration.Input | undefined
  /** How far over the mean, as a share of it, a silo must be before it starts moving (after a join: one activation over). Default 0.2. */
  readonly threshold?: number | undefined
  /** The most activations one silo moves in a second. Default 10. */
  readonly maxPerSecond?: number | undefined
  /** The health score, for eviction. Default `Load.defaultScore`. */
  readonly score?: Load.Score | undefined
  /** What moving an activation costs: the cheapest move first; `Infinity` never moves it. Default {@link defaultCost}. */
  readonly cost?: ((candidate: Candidate) => number) | undefined
  /** Drain this silo when its health stays bad (see the module doc). Default: never. */
  readonly evict?: EvictOptions | undefined
  /** Start paused (`resume` starts it). Default false. */
  readonly paused?: boolean | undefined
}

/**
 * Where a silo's rebalancer stands.
 *
 * @since 0.2.0
 */
export interface RebalancerStatus {
  readonly paused: boolean
  /** Moving activations toward the target share (from when its excess passed the threshold, confirmed by fresh reports, until it is within one activation of it). */
  readonly rebalancing: boolean
  /** This silo's migratable activations at the last round. */
  readonly activations: number
  /** The mean of the comparable silos' migratable activations (the target share); `undefined` with nobody to compare with. */
  readonly mean: number | undefined
  /** `(activations − mean) / mean` at the last round; 0 when unknown. */
  readonly skew: number
  /** Activations moved away from this silo so far. */
  readonly moved: number
  /** Moves that failed so far. */
  readonly failed: number
  /** This silo's health score at the last round (1 before its first report). */
  readonly score: number
  /** Since when (the `Clock`'s milliseconds) its score has been under `evict.below`, if it is. */
  readonly unhealthySince: number | undefined
  /** It drained itself (eviction). */
  readonly evicted: boolean
}

/**
 * @since 0.2.0
 */
export interface RebalancerShape {
  /** Stops moving (and evicting) from the next batch on; a batch under way finishes. */
  readonly pause: Effect.Effect<void>
  /** Starts again. */
  readonly resume: Effect.Effect<void>
  readonly status: Effect.Effect<RebalancerStatus>
}

/**
 * A silo's rebalancer (provided by {@link layer}).
 *
 * @since 0.2.0
 */
export class Rebalancer extends Context.Service<Rebalancer, RebalancerShape>()("quark/Rebalancer") {}

/**
 * The default cost: idle before busy; then each KiB of state (`stateBytes`) costs as much as
 * one passivation sweep of idleness saves (`idleSweeps`), so a small, idle activation goes
 * first and a large one only if it has been idle much longer (ties: table order, the oldest
 * first).
 *
 * @since 0.2.0
 */
export const defaultCost = (candidate: Candidate): number =>
  (candidate.busy ? 1_000_000_000 : 0) + (candidate.stateBytes ?? 0) / 1024 - candidate.idleSweeps

// ---------------------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------------------

const movedCell = ProcessMetrics.counter(Catalog.rebalancerMigrationsTotal, { outcome: "moved" })
const failedCell = ProcessMetrics.counter(Catalog.rebalancerMigrationsTotal, { outcome: "failed" })
const evictionsCell = ProcessMetrics.counter(Catalog.rebalancerEvictionsTotal)
/** The open rebalancers of this process; the gauges read the newest. */
const open: Array<State> = []
ProcessMetrics.gauge(Catalog.rebalancerSkew, {}, () => open.at(-1)?.skew ?? 0)
ProcessMetrics.gauge(Catalog.rebalancerPaused, {}, () => (open.at(-1)?.paused === true ? 1 : 0))

// ---------------------------------------------------------------------------------------
// The rebalancer
// ---------------------------------------------------------------------------------------

type State = { -readonly [K in keyof RebalancerStatus]: RebalancerStatus[K] }

/** How long after a join the next round runs: the joiner's first report is out by then. */
const joinSettleMillis = 1000

/** Whether a member with this metadata hosts `type`. */
const hosts = (metadata: Readonly<Record<string, string>>, type: string): boolean => {
  const types = hostedTypes(metadata)
  return types === undefined || types.has(type)
}

interface Peer {
  readonly id: string
  readonly metadata: Readonly<Record<string, string>>
  /** Its reported migratable count, plus what this silo sent it since. */
  readonly held: number
  /** The number of its last report. */
  readonly sequence: number | undefined
}

interface Move {
  readonly address: ActorAddress
  readonly to: string
}

interface Settings {
  readonly intervalMillis: number
  readonly threshold: number
  readonly maxPerSecond: number
  readonly score: Load.Score
  readonly cost: (candidate: Candidate) => number
  readonly evict: { readonly below: number; readonly forMillis: number } | undefined
}

const settingsOf = (options: RebalancerOptions): Settings => {
  const intervalMillis = Duration.toMillis(Duration.fromInputUnsafe(options.interval ?? "10 seconds"))
  const threshold = options.threshold ?? 0.2
  const maxPerSecond = options.maxPerSecond ?? 10
  if (!(intervalMillis > 0)) throw new RangeError(`Rebalancer: interval must be positive, got ${String(options.interval)}`)
  if (!(threshold >= 0)) throw new RangeError(`Rebalancer: threshold must be 0 or more, got ${threshold}`)
  if (!Number.isInteger(maxPerSecond) || maxPerSecond < 1) {
    throw new RangeError(`Rebalancer: maxPerSecond must be a positive integer, got ${maxPerSecond}`)
  }
  const evict = options.evict
  if (evict !== undefined && !(evict.below >= 0 && evict.below <= 1)) {
    throw new RangeError(`Rebalancer: evict.below must be in [0, 1], got ${evict.below}`)
  }
  return {
    intervalMillis,
    threshold,
    maxPerSecond,
    score: options.score ?? Load.defaultScore,
    cost: options.cost ?? defaultCost,
    evict: evict === undefined ? undefined : {
      below: evict.below,
      forMillis: Duration.toMillis(Duration.fromInputUnsafe(evict.for))
    }
  }
}

const make = Effect.fnUntraced(function*(options: RebalancerOptions) {
  const settings = yield* Effect.try({ try: () => settingsOf(options), catch: (error) => error }).pipe(Effect.orDie)
  const router = (yield* Silo).router
  const cluster = yield* Cluster
  const migrator = yield* Migrator
  const membership = yield* Effect.serviceOption(Membership)
  const state: State = {
    paused: options.paused === true,
    rebalancing: false,
    activations: 0,
    mean: undefined,
    skew: 0,
    moved: 0,
    failed: 0,
    score: 1,
    unhealthySince: undefined,
    evicted: false
  }
  open.push(state)
  yield* Effect.addFinalizer(() =>
    Effect.sync(() => {
      const at = open.indexOf(state)
      if (at >= 0) open.splice(at, 1)
    })
  )
  /** What this silo sent each silo since that silo's report said `reported`. */
  const sent = new Map<string, { readonly reported: number; count: number }>()
  /** Silos that joined since this silo last compared itself with them: a join starts a rebalancing whatever the threshold. */
  const joined = new Set<string>()
  /** An excess seen, waiting for fresh reports to confirm it: each peer's report number then. */
  let pending: { readonly sequences: ReadonlyMap<string, number | undefined>; readonly afterJoin: boolean } | undefined

  let wake = Deferred.makeUnsafe<void>()
  if (Option.isSome(membership)) {
    const changes = yield* membership.value.subscribe
    yield* Effect.forkScoped(Stream.runForEach(changes, (event) =>
      event._tag === "Joined" ?
        Effect.sync(() => {
          joined.add(event.identity.id)
          Deferred.doneUnsafe(wake, Exit.void)
        }) :
        Effect.void))
  }

  const evictIfUnhealthy = Eviction.make({
    score: settings.score,
    evict: settings.evict,
    state,
    evictions: evictionsCell,
    cluster
  })

  /** One round: `true` when the next should come a second later (a batch was moved, or fresh reports are awaited). */
  const round = Effect.gen(function*() {
    const self = cluster.self?.id
    if (self === undefined || router.draining || router.shuttingDown || state.evicted) return false
    const members = yield* cluster.view
    const now = yield* Clock.currentTimeMillis
    yield* evictIfUnhealthy(members, self, now)
    if (router.draining) return false

    let local = 0
    const types: Array<string> = []
    for (const slot of router.slots.values()) {
      if (!migratable(slot)) continue
      types.push(slot.name)
      local += slot.activations.size
    }
    const peers: Array<Peer> = []
    for (const id of sent.keys()) if (!members.some((member) => member.identity.id === id)) sent.delete(id)
    for (const member of members) {
      const id = member.identity.id
      if (id === self || member.status !== "alive") continue
      const load = Load.fromMetadata(member.metadata)
      if (load.draining || load.migratable === undefined || !types.some((type) => hosts(member.metadata, type))) continue
      const ours = sent.get(id)
      if (ours !== undefined && ours.reported !== load.migratable) sent.delete(id)
      peers.push({ id, metadata: member.metadata, held: load.migratable + (sent.get(id)?.count ?? 0), sequence: load.sequence })
    }
    state.activations = local
    // A joiner counts once it has reported (its first report follows its join within a round trip).
    const afterJoin = peers.some((peer) => joined.has(peer.id))
    for (const id of joined) if (!members.some((member) => member.identity.id === id) || peers.some((peer) => peer.id === id)) joined.delete(id)
    if (peers.length === 0) {
      state.mean = undefined
      state.skew = 0
      state.rebalancing = false
      pending = undefined
      return false
    }
    const mean = (local + peers.reduce((sum, peer) => sum + peer.held, 0)) / (peers.length + 1)
    const excess = local - mean
    state.mean = mean
    state.skew = mean > 0 ? excess / mean : 0
    const wants = excess >= 1 && (afterJoin || pending?.afterJoin === true || local > mean * (1 + settings.threshold))
    if (state.rebalancing) {
      if (excess < 1) state.rebalancing = false
    } else if (!wants) {
      pending = undefined
    } else if (pending === undefined) {
      // The others' reports may predate their latest activations: start only if the excess
      // is still there once each of them has reported again (checked every second).
      pending = { sequences: new Map(peers.map((peer) => [peer.id, peer.sequence])), afterJoin }
      return true
    } else if (peers.every((peer) => peer.sequence === undefined || pending!.sequences.get(peer.id) !== peer.sequence)) {
      pending = undefined
      state.rebalancing = true
    } else {
      return true
    }
    if (!state.rebalancing || state.paused) return false

    const budget = Math.min(settings.maxPerSecond, Math.floor(excess))
    const lacking = new Map<string, number>()
    for (const peer of peers) if (mean - peer.held >= 0.5) lacking.set(peer.id, mean - peer.held)
    const metadataOf = new Map(peers.map((peer) => [peer.id, peer.metadata]))
    const moves: Array<Move> = []
    for (const candidate of cheapest(router, settings, Math.max(256, 32 * budget))) {
      if (moves.length >= budget) break
      const targets = [...lacking].filter(([id, lack]) => lack >= 0.5 && hosts(metadataOf.get(id)!, candidate.address.type))
      if (targets.length === 0) continue
      // Proportional to what each lacks: concurrent rebalancers spread over the targets.
      let pick = (yield* Random.next) * targets.reduce((sum, [, lack]) => sum + lack, 0)
      let to = targets[targets.length - 1]![0]
      for (const [id, lack] of targets) {
        if ((pick -= lack) < 0) {
          to = id
          break
        }
      }
      lacking.set(to, lacking.get(to)! - 1)
      moves.push({ address: candidate.address, to })
    }
    if (moves.length === 0) {
      state.rebalancing = false
      yield* Effect.logDebug("rebalancer: over its share, but no under-loaded silo hosts what it could move").pipe(
        Effect.annotateLogs({ silo: self, activations: local, mean: Math.round(mean * 10) / 10 })
      )
      return false
    }
    const byTarget = new Map<string, Array<ActorAddress>>()
    for (const move of moves) {
      const list = byTarget.get(move.to)
      if (list === undefined) byTarget.set(move.to, [move.address])
      else list.push(move.address)
    }
    const reports = yield* Effect.forEach(
      [...byTarget],
      ([to, addresses]) => Effect.map(migrator.migrateAway(addresses, { to }), (report) => ({ to, report })),
      { concurrency: "unbounded" }
    )
    const movedTo: Array<string> = []
    let moved = 0
    let failed = 0
    for (const { report, to } of reports) {
      moved += report.moved.length
      failed += report.failed.length
      if (report.moved.length > 0) movedTo.push(`${to}: ${report.moved.length}`)
      const peer = peers.find((p) => p.id === to)!
      const reported = Load.fromMetadata(peer.metadata).migratable!
      const entry = sent.get(to)
      if (entry === undefined) sent.set(to, { reported, count: report.moved.length })
      else entry.count += report.moved.length
    }
    state.moved += moved
    state.failed += failed
    movedCell.value += moved
    failedCell.value += failed
    yield* Effect.logInfo(
      `rebalancer: moved ${moved} of ${moves.length} activations from ${self} to ${movedTo.join(", ") || "none"}: ` +
        `it held ${local}, ${Math.round(excess * 10) / 10} over the mean of ${Math.round(mean * 10) / 10} ` +
        `(${Math.round(state.skew * 100)} %)`
    ).pipe(Effect.annotateLogs({ silo: self, moved, failed, activations: local, mean: Math.round(mean * 10) / 10 }))
    return true
  })

  const loop = Effect.gen(function*() {
    while (true) {
      const startedAt = yield* Clock.currentTimeMillis
      const busy = yield* round.pipe(
        Effect.catchCause((cause) => Effect.as(Effect.logWarning("rebalancer: the round failed", cause), false))
      )
      if (state.evicted) return
      if (busy) {
        // The bound: a batch at most every second.
        const now = yield* Clock.currentTimeMillis
        yield* Effect.sleep(Math.max(0, startedAt + 1000 - now))
        continue
      }
      const woken = yield* Effect.raceFirst(
        Effect.as(Effect.sleep(settings.intervalMillis), false),
        Effect.as(Deferred.await(wake), true)
      )
      if (woken) {
        wake = Deferred.makeUnsafe<void>()
        yield* Effect.sleep(joinSettleMillis)
      }
    }
  })
  yield* Effect.forkScoped(loop)

  const setPaused = (paused: boolean) =>
    Effect.suspend(() => {
      if (state.paused === paused) return Effect.void
      state.paused = paused
      return Effect.logInfo(paused ? "rebalancer: paused" : "rebalancer: resumed").pipe(
        Effect.annotateLogs({ silo: cluster.self?.id ?? "none" })
      )
    })
  return Rebalancer.of({
    pause: setPaused(true),
    resume: setPaused(false),
    status: Effect.sync((): RebalancerStatus => ({ ...state }))
  })
})

/**
 * The rebalancer of a cluster silo (see the module doc). Needs the silo's `Silo`, `Cluster`
 * and `Migrator` (provided by `ClusterSilo.layer`); wakes up when a silo joins if the
 * `Membership` is in context too. Dies at once on invalid options.
 *
 * @since 0.2.0
 */
export const layer = (options: RebalancerOptions = {}): Layer.Layer<Rebalancer, never, Silo | Cluster | Migrator> =>
  Layer.effect(Rebalancer, make(options))

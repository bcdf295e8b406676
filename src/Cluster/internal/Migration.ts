/**
 * The moves behind `Migrator` (read its module doc for the rule), and the hand-over of
 * in-memory state on a hashed handoff.
 *
 * The source side (`migrateOut`): the activation is deactivated with a hook (see
 * `Handover.expect`) that, once its finalizers ran, dehydrates it, asks the target to
 * prepare (`MigratePrepare`, carrying the state), moves the directory entry with
 * `Directory.transfer`, tells the target to commit (`MigrateCommit`) and hands the queued
 * calls on. Until the hook ends, the stopped activation stays in its type's table, so every
 * call for it, local or forwarded, queues in its mailbox instead of activating it again.
 *
 * The target side (`prepare`, `commit`): a prepared address gets a placeholder activation
 * (in the table, not yet activated: calls queue there) and keeps the handed state. The
 * commit attaches the state, takes the lease and runs the activation effect; an abort (or
 * a directory that, after `prepareTimeoutMillis` without a commit, does not name this
 * silo) removes the placeholder and routes what queued there to the owner.
 *
 * Hashed addresses: see `Parking`.
 *
 * Numbers: two round trips between the silos and one directory write per move, on top of
 * the deactivation; nothing at all on the turn path, nor for a type without participants
 * besides its deactivation (see `bench/migrate.ts` and docs/cluster.md for the measured
 * figures).
 *
 * @internal
 */
import { Deferred, Effect, Exit, Fiber, Option, Schema } from "effect"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import type { Activation } from "../../Actor/internal/Activation.ts"
import { ActivationState } from "../../Actor/internal/ActivationState.ts"
import * as Handover from "../../Actor/internal/Handover.ts"
import * as Lifecycle from "../../Actor/internal/Lifecycle.ts"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import { TurnKind, TurnState } from "../../Actor/internal/Turn.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import type { ReplyOutcome } from "../../Transport/Envelope.ts"
import {
  type MigrateManyOptions,
  type MigrateOptions,
  MigrationFailed,
  type MigrationFailure,
  type MigrationReport,
  type MigratorShape,
  type Moved,
  NotMigratable,
  type Share
} from "../Migrator.ts"
import { controlType } from "./Control.ts"
import { adoptTag, Parking } from "./Parking.ts"
import type { RemoteRouter } from "./RemoteRouter.ts"

/** What the moves need of their silo. @internal */
export interface MigrationOptions {
  /** The directory lease a moved entry starts with. */
  readonly leaseMillis: number
  /** Bound on one control round trip. */
  readonly requestTimeoutMillis: number
  /** How long a prepared placeholder waits for its commit before asking the directory. */
  readonly prepareTimeoutMillis: number
  /** How long the state of a hashed address that moved is kept for its new owner. */
  readonly handoffMillis: number
}

/** The control requests of a migration (see `Control`). @internal */
export const tags = { prepare: "MigratePrepare", commit: "MigrateCommit" } as const

const PrepareJson = Schema.fromJsonString(
  Schema.Tuple([Schema.String, Schema.String, Schema.String, Schema.NullOr(Schema.Record(Schema.String, Schema.String))])
)
const CommitJson = Schema.fromJsonString(Schema.Tuple([Schema.String, Schema.String, Schema.String, Schema.Boolean]))
const encodePrepare = Schema.encodeSync(PrepareJson)
const decodePrepare = Schema.decodeUnknownExit(PrepareJson)
const encodeCommit = Schema.encodeSync(CommitJson)
const decodeCommit = Schema.decodeUnknownExit(CommitJson)
const encoder = new TextEncoder()
const decoder = new TextDecoder()
const noChain: ReadonlyArray<ActorAddress> = []
const noContext = { correlationId: "", metadata: {} }

/** A control reply: empty when done, else why not. */
const ok: ReplyOutcome = { _tag: "Success", value: new Uint8Array(0) }
const refuse = (reason: string): ReplyOutcome => ({ _tag: "Success", value: encoder.encode(reason) })

const keyOf = (address: ActorAddress): string => `${address.type}/${address.id}`

const failed = (address: ActorAddress, failure: MigrationFailure, reason: string) =>
  new MigrationFailed({ address: { type: address.type, id: address.id }, failure, reason })

/** An address prepared here, waiting for its commit. */
interface Incoming {
  readonly act: Activation
  readonly from: string
  readonly state: Handover.HandedState | undefined
  timer: Fiber.Fiber<void> | undefined
}

/** The default number of activations a bulk move moves at a time. */
const defaultConcurrency = 16

/** A silo's migrations: both sides of every move, and the hand-over of hashed state. @internal */
export class Migrations {
  readonly remote: RemoteRouter
  readonly options: MigrationOptions
  /** Addresses (`Type/id`) being moved away from here. */
  private readonly outgoing = new Set<string>()
  /** Addresses prepared here, waiting for their commit. */
  private readonly incoming = new Map<string, Incoming>()
  /** The parked state of hashed addresses that moved away. */
  readonly parking: Parking

  constructor(remote: RemoteRouter, options: MigrationOptions) {
    this.remote = remote
    this.options = options
    this.parking = new Parking(remote, options.handoffMillis, (silo, tag, payload) => this.ask(silo, tag, payload))
    Handover.setMover(remote.router, (act) => this.parking.park(act))
  }

  get router(): LocalRouter {
    return this.remote.router
  }

  /** The `Migrator` of this silo. */
  get service(): MigratorShape {
    return {
      migrate: (address, options) => this.migrate(address, options),
      migrateType: (type, options) => this.migrateType(type, options),
      migrateShare: (share, options) => this.migrateShare(share, options),
      migrateAway: (addresses, options) => this.migrateMany([...addresses], options)
    }
  }

  // ---------------------------------------------------------------------------
  // The API

  /** Why `slot` cannot be migrated explicitly, if it cannot. */
  private notMigratable(address: ActorAddress, slot: TypeSlot | undefined): NotMigratable | undefined {
    const reason = slot?.registration === undefined || !slot.virtual ?
      "this silo does not host the type" :
      slot.maxWorkers > 1 ?
      "a stateless worker runs on every calling silo; there is nothing to move" :
      slot.placement?.usesDirectory !== true ?
      "its placement is hashed: every silo computes its owner from the ring, so it moves only when the ring changes " +
        "(a silo joins, drains or leaves), and its state is handed over then" :
      undefined
    return reason === undefined ? undefined : new NotMigratable({ address: { type: address.type, id: address.id }, reason })
  }

  migrate(address: ActorAddress, options?: MigrateOptions): Effect.Effect<Moved, MigrationFailed | NotMigratable> {
    return Effect.suspend((): Effect.Effect<Moved, MigrationFailed | NotMigratable> => {
      const slot = this.router.slots.get(address.type)
      const refused = this.notMigratable(address, slot)
      if (refused !== undefined) return Effect.fail(refused)
      return this.migrateOut(slot!, address.id, options?.to)
    })
  }

  private migrateType(type: string, options?: MigrateManyOptions): Effect.Effect<MigrationReport, NotMigratable> {
    return Effect.suspend(() => {
      const slot = this.router.slots.get(type)
      const refused = this.notMigratable({ type, id: "*" }, slot)
      if (refused !== undefined) return Effect.fail(refused)
      return this.migrateMany([...slot!.activations.values()].map((act) => act.address), options)
    })
  }

  private migrateShare(share: Share, options?: MigrateManyOptions): Effect.Effect<MigrationReport> {
    return Effect.suspend(() => {
      const candidates: Array<ActorAddress> = []
      for (const slot of this.router.slots.values()) {
        if (this.notMigratable({ type: slot.name, id: "*" }, slot) !== undefined) continue
        for (const act of slot.activations.values()) if (act.phase === ActivationState.Active) candidates.push(act.address)
      }
      // Oldest first: the table keeps activation order.
      candidates.sort((a, b) => this.ageOf(b) - this.ageOf(a))
      const count = "fraction" in share ?
        Math.ceil(Math.min(1, Math.max(0, share.fraction)) * candidates.length) :
        Math.min(candidates.length, Math.max(0, Math.floor(share.count)))
      return this.migrateMany(candidates.slice(0, count), options)
    })
  }

  /** How long `address`'s activation here has been active (0 when none). */
  private ageOf(address: ActorAddress): number {
    const act = this.router.slots.get(address.type)?.activations.get(address.id)
    return act === undefined ? 0 : -act.createdAt
  }

  private migrateMany(addresses: ReadonlyArray<ActorAddress>, options?: MigrateManyOptions): Effect.Effect<MigrationReport> {
    const concurrency = Math.max(1, Math.floor(options?.concurrency ?? defaultConcurrency))
    return Effect.map(
      Effect.forEach(addresses, (address) => Effect.result(this.migrate(address, options)), { concurrency }),
      (results) => {
        const moved: Array<Moved> = []
        const failed: Array<MigrationFailed | NotMigratable> = []
        for (const result of results) {
          if (result._tag === "Success") moved.push(result.success)
          else failed.push(result.failure)
        }
        return { moved, failed }
      }
    )
  }

  // ---------------------------------------------------------------------------
  // The source side

  /** The silo `slot`/`id` moves to: `to` if it can take it, else the placement's choice without this silo. */
  private targetOf(slot: TypeSlot, id: string, to: string | undefined): string | MigrationFailed {
    const remote = this.remote
    const self = remote.self!
    const address = { type: slot.name, id }
    if (to !== undefined) {
      if (to === self) return failed(address, "NoTarget", "the target is this silo")
      if (!remote.ring.has(to) || !remote.rings.hosts(to, slot.name)) {
        return failed(address, "NoTarget", `${to} is not a member that hosts ${slot.name}`)
      }
      return to
    }
    const others = remote.rings.without(self)
    const chosen = slot.placement!.place(address, remote.viewIn(others, slot.name))
    if (chosen === undefined || chosen === self) return failed(address, "NoTarget", `no other silo hosts ${slot.name}`)
    return chosen
  }

  private migrateOut(slot: TypeSlot, id: string, to: string | undefined): Effect.Effect<Moved, MigrationFailed> {
    return Effect.suspend(() => {
      const remote = this.remote
      const address = { type: slot.name, id }
      const key = keyOf(address)
      const act = slot.activations.get(id)
      if (remote.self === undefined || remote.dead || this.router.shuttingDown) {
        return Effect.fail(failed(address, "NotHosted", "this silo is not serving"))
      }
      if (act === undefined || !remote.leases.has(key)) {
        return Effect.fail(failed(address, "NotHosted", "this silo holds no activation of it"))
      }
      if (this.outgoing.has(key)) return Effect.fail(failed(address, "Busy", "it is already being migrated"))
      if (act.phase === ActivationState.Deactivating || act.phase === ActivationState.Stopped) {
        return Effect.fail(failed(address, "Busy", "it is deactivating"))
      }
      const target = this.targetOf(slot, id, to)
      if (typeof target !== "string") return Effect.fail(target)
      const done = Deferred.makeUnsafe<Moved, MigrationFailed>()
      const startedAt = remote.options.now()
      this.outgoing.add(key)
      let hooked = false
      Handover.expect(act, (stopped) => {
        hooked = true
        this.router.fork(this.handOver(stopped, target, startedAt).pipe(
          Effect.onExit((exit) => {
            this.outgoing.delete(key)
            return Deferred.done(done, exit)
          })
        ))
      })
      // Stopped another way (the silo's shutdown gave up on its finalizers): the hook never ran.
      act.onStopped(() => {
        Handover.forget(act)
        if (hooked) return
        this.outgoing.delete(key)
        Deferred.doneUnsafe(done, Exit.fail(failed(address, "NotHosted", "it stopped before it could move")))
      })
      act.deactivate()
      return Deferred.await(done)
    })
  }

  /**
   * Runs once `act`'s finalizers ran: moves it to `target`, or activates it here again with
   * its state. Finishes `act`'s stop either way.
   */
  private handOver(act: Activation, target: string, startedAt: number): Effect.Effect<Moved, MigrationFailed> {
    const remote = this.remote
    const self = remote.self!
    const address = act.address
    const key = keyOf(address)
    const self_ = this
    return Effect.gen(function*() {
      const state = yield* Handover.dehydrate(act)
      const prepared = yield* self_.ask(target, tags.prepare, encodePrepare([address.type, address.id, self, state ?? null]))
      if (prepared !== undefined) {
        self_.stayHere(act, state)
        return yield* failed(address, "Refused", `${target} did not prepare it: ${prepared}`)
      }
      const moved = yield* self_.transfer(address, self, target)
      if (moved === "ours") {
        yield* self_.commit(target, address, self, false)
        self_.stayHere(act, state)
        return yield* failed(address, "Refused", "the directory could not be written")
      }
      // From here the directory names `target` (or, lease lost, someone else): this silo
      // holds the address no more, and what waited here follows it.
      remote.leases.delete(key)
      if (moved === "moved") remote.locations.set(key, target)
      else remote.locations.delete(key)
      const committed = self_.router.fork(self_.commit(target, address, self, moved === "moved"))
      Lifecycle.finishStop(act)
      yield* Fiber.join(committed)
      if (moved !== "moved") return yield* failed(address, "LeaseLost", "the directory no longer named this silo")
      return { address, from: self, to: target, handedState: state !== undefined, millis: remote.options.now() - startedAt }
    })
  }

  /**
   * Moves the directory entry from `from` to `to`: `moved`, `ours` (still `from`'s: the
   * directory failed), or `lost` (another silo's, or nobody's). A failed write may have
   * happened: the entry is read back to know.
   */
  private transfer(address: ActorAddress, from: string, to: string): Effect.Effect<"moved" | "ours" | "lost"> {
    const directory = this.remote.directory!
    const readBack = directory.lookup(address).pipe(
      Effect.retry({ times: 3 }),
      Effect.map((owner) => owner === to ? "moved" as const : owner === from ? "ours" as const : "lost" as const),
      // Unknown: neither side activates; the next call places the actor by the directory.
      Effect.orElseSucceed(() => "lost" as const)
    )
    return directory.transfer(address, from, to, this.options.leaseMillis).pipe(
      Effect.flatMap((moved) => moved ? Effect.succeed("moved" as const) : readBack),
      Effect.catch(() => readBack)
    )
  }

  /**
   * A move that did not happen: the actor is activated here again, with the state it
   * dehydrated and the calls that waited (unless nothing waited and nothing was handed:
   * then the next call activates it, from its store).
   */
  private stayHere(act: Activation, state: Handover.HandedState | undefined): void {
    const waiting = act.takeQueued().filter((turn) => turn.state === TurnState.Queued && turn.kind !== TurnKind.Tick)
    if ((state === undefined && waiting.length === 0) || this.router.shuttingDown || this.remote.dead) {
      for (const turn of waiting) act.enqueue(turn)
      return Lifecycle.finishStop(act)
    }
    // Replacing it in the table (rather than removing it first) keeps the lease: a removal
    // would let go of the directory entry.
    const next = Lifecycle.create(act.slot, act.id)
    if (state !== undefined) Handover.attach(next, state)
    for (const turn of waiting) {
      turn.activation = next
      next.enqueue(turn)
    }
    act.stopped()
    this.router.activate(next, undefined)
  }

  private commit(target: string, address: ActorAddress, self: string, go: boolean): Effect.Effect<void> {
    return this.ask(target, tags.commit, encodeCommit([address.type, address.id, self, go])).pipe(
      Effect.flatMap((refused) =>
        refused === undefined ? Effect.void : Effect.logWarning(`migration of ${keyOf(address)}: ${target} answered the commit: ${refused}`)
      ),
      Effect.catchCause(() => Effect.void)
    )
  }

  /** Sends a control request to `silo`: `undefined` when done, else why not. */
  private ask(silo: string, tag: string, payload: string): Effect.Effect<string | undefined> {
    return this.remote.peers.get(silo).call(
      { target: { type: controlType, id: silo }, tag, payload, context: noContext, chain: noChain },
      { timeout: this.options.requestTimeoutMillis },
      (outcome) =>
        Effect.succeed(
          outcome._tag === "Success" ?
            (outcome.value.length === 0 ? undefined : decoder.decode(outcome.value)) :
            `it answered ${outcome._tag} (another incarnation, or a silo without live migration)`
        )
    ).pipe(Effect.catch((error) => Effect.succeed(`unreachable: ${error.message}`)))
  }

  // ---------------------------------------------------------------------------
  // The target side

  /** Answers `MigratePrepare` and `MigrateCommit` (see `Control`). */
  handle(tag: string, payload: Uint8Array): Effect.Effect<ReplyOutcome> {
    if (tag === adoptTag) return this.parking.adopt(payload)
    return Effect.sync(() => {
      const text = decoder.decode(payload)
      if (tag === tags.prepare) {
        const exit = decodePrepare(text)
        if (exit._tag === "Failure") return refuse("an unreadable MigratePrepare")
        const [type, id, from, state] = exit.value
        return this.prepare(type, id, from, state ?? undefined)
      }
      const exit = decodeCommit(text)
      if (exit._tag === "Failure") return refuse("an unreadable MigrateCommit")
      const [type, id, from, go] = exit.value
      const entry = this.incoming.get(`${type}/${id}`)
      // Already settled by the directory (see `settle`), or never prepared.
      if (entry === undefined || entry.from !== from) return ok
      entry.timer?.interruptUnsafe()
      if (go) this.activateIncoming(entry)
      else this.abortIncoming(entry)
      return ok
    })
  }

  private prepare(type: string, id: string, from: string, state: Handover.HandedState | undefined): ReplyOutcome {
    const remote = this.remote
    const router = this.router
    if (remote.self === undefined || remote.dead || router.shuttingDown || router.draining) {
      return refuse("it is not taking activations (draining or stopping)")
    }
    const slot = router.slots.get(type)
    if (slot?.registration === undefined || !slot.virtual) return refuse(`it does not host ${type}`)
    if (slot.placement?.usesDirectory !== true || slot.maxWorkers > 1) return refuse(`${type} is not a directory placement here`)
    const key = `${type}/${id}`
    if (slot.activations.has(id) || this.incoming.has(key)) return refuse("it already has an activation of it")
    // A placeholder: in the table, so calls queue; activated only by the commit.
    const act = Lifecycle.create(slot, id)
    const entry: Incoming = { act, from, state, timer: undefined }
    this.incoming.set(key, entry)
    entry.timer = router.forkTimer(Effect.andThen(Effect.sleep(this.options.prepareTimeoutMillis), this.settle(key, entry)))
    return ok
  }

  /** No commit came: the directory says whether the move happened. */
  private settle(key: string, entry: Incoming): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.incoming.get(key) !== entry) return Effect.void
      return this.remote.directory!.lookup(entry.act.address).pipe(
        Effect.retry({ times: 3 }),
        Effect.map(Option.some),
        Effect.orElseSucceed(() => Option.none<string | undefined>()),
        Effect.flatMap((owner) =>
          Effect.sync(() => {
            if (this.incoming.get(key) !== entry) return
            if (Option.isSome(owner) && owner.value === this.remote.self) this.activateIncoming(entry)
            else this.abortIncoming(entry)
          })
        )
      )
    })
  }

  private activateIncoming(entry: Incoming): void {
    const act = entry.act
    const key = keyOf(act.address)
    this.incoming.delete(key)
    this.remote.leases.set(key, { slot: act.slot, id: act.id })
    if (entry.state !== undefined) Handover.attach(act, entry.state)
    this.router.activate(act, undefined)
  }

  private abortIncoming(entry: Incoming): void {
    const act = entry.act
    this.incoming.delete(keyOf(act.address))
    Lifecycle.remove(act)
    const waiting = act.takeQueued().filter((turn) => turn.state === TurnState.Queued && turn.kind !== TurnKind.Tick)
    if (waiting.length > 0) Lifecycle.redirect(act, waiting)
    act.stopped()
  }

  // ---------------------------------------------------------------------------
  // Hashed addresses (see `Parking`)

  release(address: ActorAddress, release: Effect.Effect<void>): Effect.Effect<Uint8Array | undefined> {
    return this.parking.release(address, release)
  }

  received(slot: TypeSlot, id: string, bytes: Uint8Array): void {
    this.parking.received(slot, id, bytes)
  }

  /** The silo is closing: prepared placeholders are given up (their calls go to the owner). */
  get close(): Effect.Effect<void> {
    return Effect.sync(() => {
      for (const entry of [...this.incoming.values()]) {
        entry.timer?.interruptUnsafe()
        this.abortIncoming(entry)
      }
      this.parking.clear()
    })
  }
}

/**
 * Remote routing: for an address with no activation on this silo, decides where its
 * activation lives and sends the call there (`Outbound`), encoding the payload once.
 *
 * - Consistent hashing (the default) and other deterministic placements: every silo
 *   computes the owner alike from its ring, so there is nothing to look up.
 * - Directory placements (`random`, `preferLocal`): the caller asks its location cache,
 *   then the directory; with no live entry it places the actor itself and sends the call to
 *   the chosen silo, which claims the address in the directory before activating it. Of
 *   concurrent claims one wins; the others forward to the winner.
 * - Stateless workers run on the calling silo.
 *
 * A silo that receives a call for an address another silo owns (its caller's view was
 * older or newer than its own) forwards it once, bytes untouched; a forwarded call that
 * still finds no owner fails with `ActorUnavailable`, which is safe to retry.
 *
 * Silos may host different actor types (see `TypeRings`): every placement chooses among the
 * silos that host the address's type. A hashed address is owned by the ring of its type's
 * hosts (built once per membership change, so the owner lookup stays one cached map read);
 * directory placements also prefer the hosts that run the caller's application version. A
 * call for a type that no live member hosts fails at once with `NoHostForType`.
 *
 * When the ring changes, activations of hashed addresses this silo no longer owns are
 * deactivated (hooks run, state is written); messages that reach them meanwhile follow the
 * address to its new owner; the new owner activates a moved address only once the previous
 * owner has released it (see `Handoff`).
 *
 * @internal
 */
import { Effect, type Fiber } from "effect"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import { ActorUnavailable, NoHostForType, type SendError } from "../../Actor/ActorError.ts"
import type { Activation } from "../../Actor/internal/Activation.ts"
import type { CallOptions } from "../../Actor/CallOptions.ts"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import type { RemoteRouting } from "../../Actor/internal/RemoteRouting.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import type { MessageEntry } from "../../Actor/internal/HostedType.ts"
import type { DirectoryShape } from "../Directory.ts"
import { Handoff, type HandoffOptions } from "./Handoff.ts"
import type { HashRing } from "../HashRing.ts"
import * as Outbound from "./Outbound.ts"
import type { Peers } from "./Peers.ts"
import type { Placement, PlacementView } from "../Placement.ts"
import type { TypeRings } from "./TypeRings.ts"
import { LoadTable } from "./LoadReport.ts"

/** @internal */
export interface RemoteRouterOptions extends HandoffOptions {
  /** How long a directory entry lives without renewal. */
  readonly leaseMillis: number
  /** The source of randomness for placements. */
  readonly random: () => number
  /**
   * How long a silo that was forwarded a call for an address its view gives to another silo
   * waits for its ring to change before deciding again (see `Drain`). Default 0: no wait.
   */
  readonly settleMillis?: number | undefined
}

const unavailable = (slot: TypeSlot, id: string, reason: string) =>
  new ActorUnavailable({ address: { type: slot.name, id }, reason })

/** The most locations (directory entries, ring owners) remembered; past it a cache starts over. */
const maxLocations = 100_000

/** @internal */
export class RemoteRouter implements RemoteRouting {
  readonly router: LocalRouter
  readonly peers: Peers
  readonly directory: DirectoryShape | undefined
  readonly options: RemoteRouterOptions
  /** The ring of every member (`rings.all`). */
  ring: HashRing
  /** The rings per actor type: each holds the members that host the type. */
  rings: TypeRings
  /** The placement view of each type, built on first use after each ring change. */
  private readonly views = new Map<string, PlacementView>()
  /** This silo's id; `undefined` for a client, which hosts nothing. */
  self: string | undefined = undefined
  /** Declared dead: serves nothing more. */
  dead = false
  /** Where directory-placed addresses were last found (`Type/id` → silo id). */
  readonly locations = new Map<string, string>()
  /** The ring's owners of hashed addresses, per type, for the current ring. */
  private readonly owners = new Map<TypeSlot, Map<string, string>>()
  private ownersCached = 0
  /** Directory-placed addresses this silo holds a lease on (`Type/id` → slot and id). */
  readonly leases = new Map<string, { readonly slot: TypeSlot; readonly id: string }>()
  readonly handoff: Handoff
  /** Waiting for the next ring change (see `nextRing`). */
  private ringWaiters: Array<() => void> = []
  /** The load each member last reported, refreshed with the membership; placements read it (`PlacementView.loadOf`). */
  readonly loads = new LoadTable()

  /** `rings`: the first (empty) rings, which say the hasher and the caller's version (see `TypeRings`). */
  constructor(router: LocalRouter, peers: Peers, directory: DirectoryShape | undefined, rings: TypeRings, options: RemoteRouterOptions) {
    this.router = router
    this.peers = peers
    this.directory = directory
    this.ring = rings.all
    this.rings = rings
    this.options = options
    this.handoff = new Handoff(options, peers, (id) => this.ring.has(id))
  }

  /** What a placement sees for `type`: the ring of the silos that host it. */
  viewOf(type: string): PlacementView {
    const self = this.self ?? ""
    let view = this.views.get(type)
    if (view === undefined || view.self !== self) {
      view = this.viewIn(this.rings, type)
      this.views.set(type, view)
    }
    return view
  }

  /** The placement view of `type` under `rings` (the current ones, or replaced ones during a handoff). */
  viewIn(rings: TypeRings, type: string): PlacementView {
    return {
      self: this.self ?? "",
      ring: rings.ringOf(type),
      preferred: rings.preferredOf(type),
      random: this.options.random,
      loadOf: this.loads.get
    }
  }

  /**
   * Why there is no silo to send a call to: no silo at all (retry once one is up), or none
   * of the live ones hosts the type.
   */
  noOwner(slot: TypeSlot, id: string): ActorUnavailable | NoHostForType {
    return this.ring.members.length === 0 ?
      unavailable(slot, id, "no silo is alive") :
      new NoHostForType({ address: { type: slot.name, id } })
  }

  // ---------------------------------------------------------------------------
  // Placement

  /** The owner of a non-directory placement as this silo's view says. */
  ownerOf(slot: TypeSlot, id: string): string | undefined {
    const placement = slot.placement
    if (placement !== undefined) return placement.place({ type: slot.name, id }, this.viewOf(slot.name))
    // Hashing costs more than a lookup, and an address is called again and again.
    let owners = this.owners.get(slot)
    if (owners === undefined) this.owners.set(slot, owners = new Map())
    let owner = owners.get(id)
    if (owner === undefined) {
      owner = this.rings.ringOf(slot.name).owner(`${slot.name}/${id}`)
      if (owner === undefined) return undefined
      if (++this.ownersCached > maxLocations) this.forgetOwners()
      owners.set(id, owner)
    }
    return owner
  }

  private forgetOwners(): void {
    this.owners.clear()
    this.ownersCached = 0
  }

  /** Where a directory-placed address lives, or where it should go if it lives nowhere. */
  locate(slot: TypeSlot, placement: Placement, id: string): Effect.Effect<string | undefined, ActorUnavailable> {
    const key = `${slot.name}/${id}`
    const cached = this.locations.get(key)
    if (cached !== undefined && this.ring.has(cached)) return Effect.succeed(cached)
    const directory = this.directory
    if (directory === undefined) {
      // A client without a directory sends to the placement's choice, which claims or forwards.
      return this.self === undefined ?
        Effect.succeed(placement.place({ type: slot.name, id }, this.viewOf(slot.name))) :
        Effect.fail(noDirectory(slot, id, placement))
    }
    return directory.lookup({ type: slot.name, id }).pipe(
      Effect.mapError((error) => unavailable(slot, id, error.message)),
      Effect.map((owner) => {
        if (owner !== undefined && this.ring.has(owner)) {
          this.remember(key, owner)
          return owner
        }
        return placement.place({ type: slot.name, id }, this.viewOf(slot.name))
      })
    )
  }

  /** Claims a directory-placed address for this silo: answers this silo's id, or the silo that holds it. */
  claim(slot: TypeSlot, id: string): Effect.Effect<string, ActorUnavailable> {
    const self = this.self!
    const key = `${slot.name}/${id}`
    if (this.leases.has(key)) return Effect.succeed(self)
    if (this.router.draining) return Effect.fail(unavailable(slot, id, draining))
    const directory = this.directory
    if (directory === undefined) return Effect.fail(noDirectory(slot, id, slot.placement!))
    return directory.register({ type: slot.name, id }, self, this.options.leaseMillis).pipe(
      Effect.mapError((error) => unavailable(slot, id, error.message)),
      Effect.map((result) => {
        if (result._tag === "Registered") {
          this.leases.set(key, { slot, id })
          return self
        }
        this.remember(key, result.owner)
        return result.owner
      })
    )
  }

  private remember(key: string, owner: string): void {
    if (this.locations.size >= maxLocations) this.locations.clear()
    this.locations.set(key, owner)
  }

  /**
   * The silo that should serve a call that arrived here: this one, or another to forward
   * to. A string when known at once, else an effect (a directory claim).
   */
  resolveInbound(slot: TypeSlot, id: string): string | Effect.Effect<string, ActorUnavailable> {
    const self = this.self!
    if (slot.activations.has(id) || slot.maxWorkers > 1) return self
    const placement = slot.placement
    if (placement?.usesDirectory === true) {
      // A draining silo takes no new activation: the address goes where the others would place it.
      return this.router.draining ?
        Effect.flatMap(this.locate(slot, placement, id), (owner) => {
          if (owner !== undefined && owner !== self) return Effect.succeed(owner)
          const elsewhere = placement.place({ type: slot.name, id }, this.viewIn(this.rings.without(self), slot.name))
          return elsewhere === undefined ? Effect.fail(unavailable(slot, id, draining)) : Effect.succeed(elsewhere)
        }) :
        this.claim(slot, id)
    }
    return this.ownerOf(slot, id) ?? self
  }

  // ---------------------------------------------------------------------------
  // RemoteRouting

  ask(
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown,
    options: CallOptions | undefined
  ): Effect.Effect<any, any> | undefined {
    if (this.dead) return Effect.fail(unavailable(slot, id, "this silo was declared dead"))
    const placement = slot.placement
    if (placement?.usesDirectory !== true) {
      const owner = this.ownerOf(slot, id)
      if (owner === undefined) return Effect.fail(this.noOwner(slot, id))
      if (owner !== this.self) return Outbound.send(this.peers, fiber, owner, slot, id, info, payload, options)
      if (this.isReleased(slot, id)) {
        const to = this.handoff.releasedTo(slot, id)
        return to === undefined ?
          Effect.fail(unavailable(slot, id, moving)) :
          Outbound.send(this.peers, fiber, to, slot, id, info, payload, options)
      }
      // After the wait the ring may have moved the address on (a silo joined meanwhile):
      // decide again, or this silo would activate what another one owns.
      const handoff = this.handoffBefore(slot, id)
      return handoff === undefined ? undefined : Effect.andThen(
        handoff,
        Effect.withFiber((fiber) =>
          this.ownsHere(slot, id) ?
            this.router.askLocal(slot, id, info, payload, options) :
            this.ask(fiber, slot, id, info, payload, options) ?? this.router.askLocal(slot, id, info, payload, options)
        )
      )
    }
    return Effect.flatMap(this.locateOrClaim(slot, placement, id), (owner) =>
      owner === undefined ?
        Effect.fail(this.noOwner(slot, id)) :
        owner === this.self ?
        this.router.askLocal(slot, id, info, payload, options) :
        Outbound.send(this.peers, fiber, owner, slot, id, info, payload, options))
  }

  tell(
    fiber: Fiber.Fiber<unknown, unknown>,
    slot: TypeSlot,
    id: string,
    info: MessageEntry,
    payload: unknown
  ): Effect.Effect<void, SendError> | undefined {
    if (this.dead) return Effect.fail(unavailable(slot, id, "this silo was declared dead"))
    const placement = slot.placement
    if (placement?.usesDirectory !== true) {
      const owner = this.ownerOf(slot, id)
      if (owner === undefined) return Effect.fail(this.noOwner(slot, id))
      if (owner !== this.self) return Outbound.sendOneWay(this.peers, fiber, owner, slot, id, info, payload)
      if (this.isReleased(slot, id)) {
        const to = this.handoff.releasedTo(slot, id)
        return to === undefined ?
          Effect.fail(unavailable(slot, id, moving)) :
          Outbound.sendOneWay(this.peers, fiber, to, slot, id, info, payload)
      }
      const handoff = this.handoffBefore(slot, id)
      return handoff === undefined ? undefined : Effect.andThen(
        handoff,
        Effect.withFiber((fiber) =>
          this.ownsHere(slot, id) ?
            this.router.tellLocal(slot, id, info, payload) :
            this.tell(fiber, slot, id, info, payload) ?? this.router.tellLocal(slot, id, info, payload)
        )
      )
    }
    return Effect.flatMap(this.locateOrClaim(slot, placement, id), (owner) =>
      owner === undefined ?
        Effect.fail(this.noOwner(slot, id)) :
        owner === this.self ?
        this.router.tellLocal(slot, id, info, payload) :
        Outbound.sendOneWay(this.peers, fiber, owner, slot, id, info, payload))
  }

  private locateOrClaim(slot: TypeSlot, placement: Placement, id: string): Effect.Effect<string | undefined, ActorUnavailable> {
    return Effect.flatMap(this.locate(slot, placement, id), (owner) =>
      owner !== undefined && owner === this.self ? this.claim(slot, id) : Effect.succeed(owner))
  }

  ownsHere(slot: TypeSlot, id: string): boolean {
    if (this.self === undefined || this.dead) return false
    if (!slot.virtual || slot.maxWorkers > 1) return true
    if (slot.placement?.usesDirectory === true) return this.leases.has(`${slot.name}/${id}`)
    return this.ownerOf(slot, id) === this.self && !this.isReleased(slot, id)
  }

  /** Whether this silo released the address to a newer owner (see `Handoff`). */
  isReleased(slot: TypeSlot, id: string): boolean {
    return this.handoff.isReleased(slot, id)
  }

  /** Before activating a hashed address here: what to wait for first (see `Handoff.before`). */
  handoffBefore(slot: TypeSlot, id: string): Effect.Effect<void, ActorUnavailable> | undefined {
    if (slot.activations.has(id) || !slot.virtual || slot.maxWorkers > 1 || slot.placement?.usesDirectory === true) return undefined
    // Directory placements: their claim decides (an inbound call for one that this silo just
    // claimed gets here; asking a "previous owner" that a random placement names would
    // release, and deactivate, an activation that is the directory's). Any other placement is
    // deterministic, so the previous owner is what it answered on the previous ring: named
    // or custom, it must wait for that owner's release like the default does.
    const placement = slot.placement
    if (placement === undefined) return this.handoff.before(slot, id, this.self)
    const address = { type: slot.name, id }
    return this.handoff.before(slot, id, this.self, (rings) => placement.place(address, this.viewIn(rings, slot.name)))
  }

  /**
   * A newer owner asks this silo to give `address` up: no new turns for it here until the
   * ring changes, and the answer once its activation (if any) has stopped.
   */
  release(address: ActorAddress, to: string | undefined): Effect.Effect<void> {
    return Effect.suspend(() => {
      const slot = this.router.slots.get(address.type)
      if (slot === undefined || !slot.virtual) return Effect.void
      if (this.self !== undefined && this.ownerOf(slot, address.id) === this.self) this.handoff.markReleased(slot, address.id, to)
      const act = slot.activations.get(address.id)
      if (act === undefined) return Effect.void
      act.deactivate()
      return Effect.callback<void>((resume) => act.onStopped(() => resume(Effect.void)))
    })
  }

  /** A silo was declared dead: nothing to release from it. */
  markDead(id: string): void {
    this.handoff.markDead(id)
  }

  removed(act: Activation): void {
    const slot = act.slot
    if (slot.placement?.usesDirectory !== true || act.key !== act.id) return
    const key = `${slot.name}/${act.id}`
    // Later, because a deactivation hands its queue to a new activation right after removal.
    this.router.fork(Effect.suspend(() => {
      if (slot.activations.has(act.id) || !this.leases.delete(key)) return Effect.void
      return this.directory!.unregister({ type: slot.name, id: act.id }, this.self!).pipe(Effect.ignore)
    }))
  }

  // ---------------------------------------------------------------------------
  // Ring changes and leases

  /** Installs a ring of these members, keeping what the current view says they host. */
  setRing(ring: HashRing): void {
    this.setRings(this.rings.matching(ring))
  }

  /** Installs new rings and deactivates the hashed activations this silo no longer owns. */
  setRings(rings: TypeRings): void {
    const ring = rings.all
    // The first ring of an incarnation (a silo's first, or its first after it joined again as
    // a new generation) replaces the same ring without it: what it takes over was owned by
    // others. Its old view is no guide: its former incarnation is dead, and what that one
    // owned was taken over by others meanwhile, which must release it first.
    const self = this.self
    const previous = self !== undefined && !this.ring.has(self) ? rings.without(self) : this.rings
    this.ring = ring
    this.rings = rings
    this.views.clear()
    this.forgetOwners()
    if (this.ringWaiters.length > 0) {
      const waiters = this.ringWaiters
      this.ringWaiters = []
      for (const wake of waiters) wake()
    }
    if (this.self !== undefined) this.handoff.ringReplaced(previous)
    for (const [key, owner] of this.locations) if (!ring.has(owner)) this.locations.delete(key)
    if (this.self === undefined) return
    for (const slot of this.router.slots.values()) {
      if (!slot.virtual || slot.maxWorkers > 1 || slot.placement?.usesDirectory === true) continue
      for (const act of slot.activations.values()) {
        if (this.ownerOf(slot, act.id) !== this.self) act.deactivate()
      }
    }
  }

  /** Completes at the next ring change, or after `millis`, whichever comes first. */
  nextRing(millis: number): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      const wake = () => resume(Effect.void)
      this.ringWaiters.push(wake)
      return Effect.sync(() => {
        const i = this.ringWaiters.indexOf(wake)
        if (i >= 0) this.ringWaiters.splice(i, 1)
      })
    }).pipe(Effect.timeoutOrElse({ duration: millis, orElse: () => Effect.void }))
  }

  /**
   * Renews every lease this silo holds; an activation whose lease is lost (renewal refused,
   * or not confirmed within the lease) is deactivated.
   */
  renewLeases(lastConfirmed: number, now: number): Effect.Effect<number> {
    const directory = this.directory
    if (directory === undefined || this.self === undefined) return Effect.succeed(now)
    const self = this.self
    return Effect.forEach([...this.leases], ([key, { id, slot }]) =>
      directory.renew({ type: slot.name, id }, self, this.options.leaseMillis).pipe(
        Effect.map((renewed) => {
          if (!renewed) this.loseLease(key, slot, id)
          return true
        }),
        Effect.catch(() => Effect.succeed(false))
      ), { concurrency: 16 }).pipe(
        Effect.map((results) => {
          if (results.every((ok) => ok)) return now
          // Unconfirmed past the lease: another silo may hold the address now.
          if (now - lastConfirmed >= this.options.leaseMillis) {
            for (const [key, { id, slot }] of [...this.leases]) this.loseLease(key, slot, id)
          }
          return lastConfirmed
        })
      )
  }

  private loseLease(key: string, slot: TypeSlot, id: string): void {
    this.leases.delete(key)
    slot.activations.get(id)?.deactivate()
  }
}

/** Why a draining silo refuses to place an address on itself: it did not run. */
const draining = "this silo is draining: it takes no new activation; retry"

/** Why a call for an address this silo released (or is releasing) fails: it did not run. @internal */
export const moving = "its ownership is moving between silos; retry"

const noDirectory = (slot: TypeSlot, id: string, placement: Placement) =>
  unavailable(slot, id, `placement "${placement.name}" needs a Directory layer, and none was provided`)

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
 * When the ring changes, activations of hashed addresses this silo no longer owns are
 * deactivated (hooks run, state is written); messages that reach them meanwhile follow the
 * address to its new owner; the new owner activates a moved address only once the previous
 * owner has released it (see `Handoff`).
 *
 * @internal
 */
import { Effect, type Fiber } from "effect"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import { ActorUnavailable, type SendError } from "../../Actor/ActorError.ts"
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

/** @internal */
export interface RemoteRouterOptions extends HandoffOptions {
  /** How long a directory entry lives without renewal. */
  readonly leaseMillis: number
  /** The source of randomness for placements. */
  readonly random: () => number
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
  ring: HashRing
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

  constructor(router: LocalRouter, peers: Peers, directory: DirectoryShape | undefined, ring: HashRing, options: RemoteRouterOptions) {
    this.router = router
    this.peers = peers
    this.directory = directory
    this.ring = ring
    this.options = options
    this.handoff = new Handoff(options, peers)
  }

  get view(): PlacementView {
    return { self: this.self ?? "", ring: this.ring, random: this.options.random }
  }

  // ---------------------------------------------------------------------------
  // Placement

  /** The owner of a non-directory placement as this silo's view says. */
  ownerOf(slot: TypeSlot, id: string): string | undefined {
    const placement = slot.placement
    if (placement !== undefined) return placement.place({ type: slot.name, id }, this.view)
    // Hashing costs more than a lookup, and an address is called again and again.
    let owners = this.owners.get(slot)
    if (owners === undefined) this.owners.set(slot, owners = new Map())
    let owner = owners.get(id)
    if (owner === undefined) {
      owner = this.ring.owner(`${slot.name}/${id}`)
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
        Effect.succeed(placement.place({ type: slot.name, id }, this.view)) :
        Effect.fail(noDirectory(slot, id, placement))
    }
    return directory.lookup({ type: slot.name, id }).pipe(
      Effect.mapError((error) => unavailable(slot, id, error.message)),
      Effect.map((owner) => {
        if (owner !== undefined && this.ring.has(owner)) {
          this.remember(key, owner)
          return owner
        }
        return placement.place({ type: slot.name, id }, this.view)
      })
    )
  }

  /** Claims a directory-placed address for this silo: answers this silo's id, or the silo that holds it. */
  claim(slot: TypeSlot, id: string): Effect.Effect<string, ActorUnavailable> {
    const self = this.self!
    const key = `${slot.name}/${id}`
    if (this.leases.has(key)) return Effect.succeed(self)
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
    if (placement?.usesDirectory === true) return this.claim(slot, id)
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
      if (owner === undefined || owner !== this.self) return Outbound.send(this.peers, fiber, owner, slot, id, info, payload, options)
      if (this.isReleased(slot, id)) return Effect.fail(unavailable(slot, id, moving))
      const handoff = this.handoffBefore(slot, id)
      return handoff === undefined ? undefined : Effect.andThen(handoff, Effect.suspend(() => this.router.askLocal(slot, id, info, payload, options)))
    }
    return Effect.flatMap(this.locateOrClaim(slot, placement, id), (owner) =>
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
      if (owner === undefined || owner !== this.self) return Outbound.sendOneWay(this.peers, fiber, owner, slot, id, info, payload)
      if (this.isReleased(slot, id)) return Effect.fail(unavailable(slot, id, moving))
      const handoff = this.handoffBefore(slot, id)
      return handoff === undefined ? undefined : Effect.andThen(handoff, Effect.suspend(() => this.router.tellLocal(slot, id, info, payload)))
    }
    return Effect.flatMap(this.locateOrClaim(slot, placement, id), (owner) =>
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
    if (slot.activations.has(id) || !slot.virtual || slot.maxWorkers > 1) return undefined
    // Directory placements never get here (their claim decides). Any other placement is
    // deterministic, so the previous owner is what it answered on the previous ring: named
    // or custom, it must wait for that owner's release like the default does.
    const placement = slot.placement
    if (placement === undefined) return this.handoff.before(slot, id, this.self)
    const address = { type: slot.name, id }
    const view = this.view
    return this.handoff.before(slot, id, this.self, (ring) => placement.place(address, { ...view, ring }))
  }

  /**
   * A newer owner asks this silo to give `address` up: no new turns for it here until the
   * ring changes, and the answer once its activation (if any) has stopped.
   */
  release(address: ActorAddress): Effect.Effect<void> {
    return Effect.suspend(() => {
      const slot = this.router.slots.get(address.type)
      if (slot === undefined || !slot.virtual) return Effect.void
      if (this.self !== undefined && this.ownerOf(slot, address.id) === this.self) this.handoff.markReleased(slot, address.id)
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

  /** Installs a new ring and deactivates the hashed activations this silo no longer owns. */
  setRing(ring: HashRing): void {
    // A silo's first ring replaces the same ring without it: what it takes over was owned by others.
    const previous = this.ring.members.length === 0 && this.self !== undefined ? ring.remove(this.self) : this.ring
    this.ring = ring
    this.forgetOwners()
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

/** Why a call for an address this silo released (or is releasing) fails: it did not run. @internal */
export const moving = "its ownership is moving between silos; retry"

const noDirectory = (slot: TypeSlot, id: string, placement: Placement) =>
  unavailable(slot, id, `placement "${placement.name}" needs a Directory layer, and none was provided`)

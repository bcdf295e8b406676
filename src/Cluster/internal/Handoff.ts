/**
 * The handoff of addresses between silos when the ring changes while both are alive (a
 * join, a graceful leave): the new owner activates an address only after the previous owner
 * has released it, so no address is hosted by two silos at once, not even for the
 * milliseconds a deactivation takes.
 *
 * For `handoffMillis` after each ring change, the replaced rings are kept (one per actor
 * type: a type's ring holds only the silos that host it, see `TypeRings`). Before a silo
 * activates a hashed address, it looks up the address's owner under each kept type ring; every
 * such owner that is another silo and not declared dead is asked to `Release` it (see
 * `Control`), concurrently, and the activation waits for all of them. A silo that refuses
 * connections is gone, and so holds nothing. Concurrent first calls share one release.
 *
 * On the other side, a silo asked to release an address that its own (older) ring still
 * gives it marks it released: it sends the calls for it on to the silo that asked (whose
 * ring already gives it the address), or refuses them (`ActorUnavailable`, not run) until
 * its ring changes.
 *
 * Numbers: nothing at all outside the window; inside it, one round trip on the first call
 * of each address that moved, plus the previous owner's deactivation of it.
 *
 * Rejected: registering every activation in the directory (as Orleans does) costs a
 * registry round trip on every activation, always; waiting a fixed time before activating
 * moved addresses is either too long or, under a slow deactivation, not long enough.
 *
 * @internal
 */
import { Deferred, Effect } from "effect"
import type { ActorUnavailable } from "../../Actor/ActorError.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import * as Control from "./Control.ts"
import type { Peers } from "./Peers.ts"
import type { TypeRings } from "./TypeRings.ts"

/** @internal */
export interface HandoffOptions {
  /** How long after a ring change a new owner asks the previous one to release an address first. */
  readonly handoffMillis: number
  /** Bound on one release (the previous owner's deactivation of the address). */
  readonly releaseTimeoutMillis: number
  /** Monotonic milliseconds (the silo's Clock). */
  readonly now: () => number
}

/** @internal */
export class Handoff {
  readonly options: HandoffOptions
  readonly peers: Peers
  /** Rings replaced less than `handoffMillis` ago, oldest first, with when each stops counting. */
  private rings: Array<{ readonly ring: TypeRings; readonly until: number }> = []
  /** Silos declared dead (this one's former incarnations too), with when: nothing to release from them. */
  readonly deadSilos = new Map<string, number>()
  /**
   * Addresses (`Type/id`) this silo released although its ring still gives them to it, until
   * the ring changes, with the silo they were released to (when it said).
   */
  private readonly released = new Map<string, string | undefined>()
  /** Releases in progress, so that concurrent first calls ask once. */
  private readonly releasing = new Map<string, Deferred.Deferred<void, ActorUnavailable>>()

  /** Told of the state a previous owner handed over with its release (see `Migration.received`). */
  received: ((slot: TypeSlot, id: string, state: Uint8Array) => void) | undefined = undefined

  /** Whether a silo is a member of this silo's current ring (a member that refuses connections is not gone). */
  readonly isMember: (id: string) => boolean

  constructor(options: HandoffOptions, peers: Peers, isMember: (id: string) => boolean) {
    this.options = options
    this.peers = peers
    this.isMember = isMember
  }

  /** The ring changed from `previous`: keep it for the window; forget what was released. */
  ringReplaced(previous: TypeRings): void {
    this.released.clear()
    if (previous.all.members.length === 0) return
    const now = this.options.now()
    this.rings = this.rings.filter(({ until }) => until > now)
    this.rings.push({ ring: previous, until: now + this.options.handoffMillis })
  }

  /** Whether this silo released the address to a newer owner. */
  isReleased(slot: TypeSlot, id: string): boolean {
    return this.released.size !== 0 && this.released.has(`${slot.name}/${id}`)
  }

  /** The silo this one released the address to, if it said. */
  releasedTo(slot: TypeSlot, id: string): string | undefined {
    return this.released.get(`${slot.name}/${id}`)
  }

  markReleased(slot: TypeSlot, id: string, to: string | undefined): void {
    this.released.set(`${slot.name}/${id}`, to)
  }

  /** A silo was declared dead: nothing to release from it. */
  markDead(id: string): void {
    const now = this.options.now()
    this.deadSilos.set(id, now)
    for (const [silo, at] of this.deadSilos) if (at < now - this.options.handoffMillis) this.deadSilos.delete(silo)
  }

  /**
   * Before `self` activates hashed address `slot`/`id`: the release of it by the silos that
   * owned it under a recently replaced ring, or `undefined` when there is nothing to wait for
   * (the usual case, checked without allocating).
   */
  before(
    slot: TypeSlot,
    id: string,
    self: string | undefined,
    ownerIn: (rings: TypeRings) => string | undefined = (rings) => rings.ringOf(slot.name).owner(`${slot.name}/${id}`)
  ): Effect.Effect<void, ActorUnavailable> | undefined {
    if (this.rings.length === 0) return undefined
    const now = this.options.now()
    if (this.rings[this.rings.length - 1]!.until <= now) {
      this.rings = []
      return undefined
    }
    const key = `${slot.name}/${id}`
    let owners: Array<string> | undefined
    for (const { ring, until } of this.rings) {
      if (until <= now) continue
      const previous = ownerIn(ring)
      if (previous === undefined || previous === self || this.deadSilos.has(previous)) continue
      if (owners === undefined) owners = [previous]
      else if (!owners.includes(previous)) owners.push(previous)
    }
    if (owners === undefined) return undefined
    const from = owners
    const address = { type: slot.name, id }
    return Effect.suspend(() => {
      const pending = this.releasing.get(key)
      if (pending !== undefined) return Deferred.await(pending)
      const done = Deferred.makeUnsafe<void, ActorUnavailable>()
      this.releasing.set(key, done)
      return Effect.forEach(
        from,
        (silo) => Control.askRelease(this.peers.get(silo), silo, address, this.options.releaseTimeoutMillis, self, !this.isMember(silo), this.received === undefined ? undefined : (state) => this.received!(slot, id, state)),
        { concurrency: "unbounded", discard: true }
      ).pipe(
        Effect.onExit((exit) => {
          this.releasing.delete(key)
          return Deferred.done(done, exit)
        })
      )
    })
  }
}

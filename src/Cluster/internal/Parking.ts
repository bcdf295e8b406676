/**
 * The hand-over of in-memory state on a hashed handoff (see `Handoff` and
 * `Actor/Migration`): an activation with participants that stops because its address
 * moved to another silo is dehydrated and its state parked here for `handoffMillis`; the
 * new owner's `Release` gets it in the reply, and the new owner activates the address with
 * it before the calls that waited for the release go on.
 *
 * A silo that drains parks the state of every hashed address it held, and must not exit
 * while some of it waits for a `Release` that only the next call of each address would
 * send (an idle address may get none for hours). So it pushes: it tells each address's new
 * owner to adopt it (`MigrateAdopt`), and the new owner sends its `Release` at once (the
 * usual handoff, which also waits for any other previous owner) and activates the address
 * with the state. A refused or failed adoption is logged; the state is lost then, as it
 * would be without participants (finalizers write what must survive).
 *
 * @internal
 */
import { Deferred, Effect, Exit, Schema } from "effect"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import type { Activation } from "../../Actor/internal/Activation.ts"
import * as Handover from "../../Actor/internal/Handover.ts"
import * as Lifecycle from "../../Actor/internal/Lifecycle.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import type { ReplyOutcome } from "../../Transport/Envelope.ts"
import type { RemoteRouter } from "./RemoteRouter.ts"

/** The control request that asks a new owner to fetch a parked address now. @internal */
export const adoptTag = "MigrateAdopt"

const AdoptJson = Schema.fromJsonString(Schema.Tuple([Schema.String, Schema.String]))
const encodeAdopt = Schema.encodeSync(AdoptJson)
const decodeAdopt = Schema.decodeUnknownExit(AdoptJson)
const decoder = new TextDecoder()
const encoder = new TextEncoder()
const ok: ReplyOutcome = { _tag: "Success", value: new Uint8Array(0) }
const refuse = (reason: string): ReplyOutcome => ({ _tag: "Success", value: encoder.encode(reason) })

const keyOf = (address: ActorAddress): string => `${address.type}/${address.id}`

/** A silo's parked hashed state. @internal */
export class Parking {
  readonly remote: RemoteRouter
  readonly handoffMillis: number
  /** Sends a control request to a silo: `undefined` when done, else why not. */
  private readonly ask: (silo: string, tag: string, payload: string) => Effect.Effect<string | undefined>
  /** The state of hashed addresses that moved away, until their new owner asks or it expires. */
  private readonly parked = new Map<string, { readonly state: Handover.HandedState; readonly until: number }>()
  /**
   * Hashed activations being dehydrated for their new owner: out of the table already, not
   * parked yet. A `Release` that comes meanwhile waits for the state instead of missing it.
   */
  private readonly parking = new Map<string, Deferred.Deferred<void>>()

  constructor(
    remote: RemoteRouter,
    handoffMillis: number,
    ask: (silo: string, tag: string, payload: string) => Effect.Effect<string | undefined>
  ) {
    this.remote = remote
    this.handoffMillis = handoffMillis
    this.ask = ask
  }

  /**
   * The mover (see `Handover.movedAway`): a hashed activation with participants that stops
   * because its address belongs to another silo now keeps its state here for the new owner.
   */
  park(act: Activation): boolean {
    const slot = act.slot
    const remote = this.remote
    if (!slot.virtual || slot.maxWorkers > 1 || slot.placement?.usesDirectory === true) return false
    if (remote.self === undefined || remote.dead || remote.ownsHere(slot, act.id)) return false
    const key = keyOf(act.address)
    const done = Deferred.makeUnsafe<void>()
    this.parking.set(key, done)
    remote.router.fork(Effect.flatMap(Handover.dehydrate(act), (state) =>
      Effect.sync(() => {
        if (state !== undefined) {
          const now = remote.options.now()
          for (const [parked, { until }] of this.parked) if (until <= now) this.parked.delete(parked)
          this.parked.set(key, { state, until: now + this.handoffMillis })
        }
        if (this.parking.get(key) === done) this.parking.delete(key)
        Deferred.doneUnsafe(done, Exit.void)
        Lifecycle.finishStop(act)
      })))
    return true
  }

  /**
   * Answers a `Release`: releases the address as `release` does, then hands over the state
   * its activation left, if any.
   */
  release(address: ActorAddress, release: Effect.Effect<void>): Effect.Effect<Uint8Array | undefined> {
    const key = keyOf(address)
    return Effect.andThen(
      release,
      Effect.suspend(() => {
        const parking = this.parking.get(key)
        return parking === undefined ? Effect.void : Deferred.await(parking)
      })
    ).pipe(Effect.andThen(
      Effect.sync(() => {
        const parked = this.parked.get(key)
        if (parked === undefined) return undefined
        this.parked.delete(key)
        return parked.until > this.remote.options.now() ? Handover.encode(parked.state) : undefined
      })
    ))
  }

  /**
   * The previous owner of hashed `slot`/`id` handed its state over with its release: the
   * address is activated here with it, before the calls waiting for the release go on.
   */
  received(slot: TypeSlot, id: string, bytes: Uint8Array): void {
    const state = Handover.decode(bytes)
    if (state === undefined || slot.activations.has(id) || this.remote.router.shuttingDown) return
    const act = Lifecycle.create(slot, id)
    Handover.attach(act, state)
    this.remote.router.activate(act, undefined)
  }

  /**
   * Pushes every parked state to its new owner (a drain, see the module doc); completes
   * once each new owner has fetched it or refused.
   */
  get pushAll(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const remote = this.remote
      const keys = [...this.parked.keys(), ...this.parking.keys()]
      return Effect.forEach(keys, (key) => {
        const slash = key.indexOf("/")
        const slot = remote.router.slots.get(key.slice(0, slash))
        const id = key.slice(slash + 1)
        const owner = slot === undefined ? undefined : remote.ownerOf(slot, id)
        if (owner === undefined || owner === remote.self) return Effect.void
        return Effect.flatMap(this.ask(owner, adoptTag, encodeAdopt([slot!.name, id])), (refused) =>
          refused === undefined ?
            Effect.void :
            Effect.logWarning(`handing ${key} over: ${owner} did not adopt it (${refused}); its in-memory state is lost`))
      }, { concurrency: 16, discard: true })
    })
  }

  /** Answers `MigrateAdopt`: this silo owns the address now and fetches it from its previous owners at once. */
  adopt(payload: Uint8Array): Effect.Effect<ReplyOutcome> {
    return Effect.suspend(() => {
      const exit = decodeAdopt(decoder.decode(payload))
      if (exit._tag === "Failure") return Effect.succeed(refuse("an unreadable MigrateAdopt"))
      const [type, id] = exit.value
      const remote = this.remote
      const slot = remote.router.slots.get(type)
      if (slot?.registration === undefined || !slot.virtual) return Effect.succeed(refuse(`it does not host ${type}`))
      if (remote.router.draining || remote.router.shuttingDown || remote.ownerOf(slot, id) !== remote.self) {
        return Effect.succeed(refuse("it does not own the address (draining, stopping, or another view)"))
      }
      // The usual handoff: the `Release` it sends brings the state, and `received` activates with it.
      const handoff = remote.handoffBefore(slot, id)
      return handoff === undefined ?
        Effect.succeed(ok) :
        Effect.match(handoff, { onFailure: (error) => refuse(error.message), onSuccess: () => ok })
    })
  }

  /** The silo is closing: what is parked is dropped. */
  clear(): void {
    this.parked.clear()
  }
}

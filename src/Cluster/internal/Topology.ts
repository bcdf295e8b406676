/**
 * Keeps a silo's (or client's) routing in step with the membership: on every change the
 * ring is rebuilt from the members (alive and suspected: a suspected silo keeps its actors
 * until it is declared dead), connections to dead silos are closed (to silos that left, once
 * their last calls are answered), and a dead silo's
 * directory entries are removed so its actors can be placed again at once.
 *
 * @internal
 */
import { Duration, Effect, Option, Schedule, Stream } from "effect"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import type { ClusterShape } from "../Cluster.ts"
import type { DirectoryShape } from "../Directory.ts"
import * as HashRing from "../HashRing.ts"
import type { MembershipShape, SiloDeclaredDead } from "../Membership.ts"
import type { RemoteRouter } from "./RemoteRouter.ts"
import type { SiloIdentity } from "../SiloIdentity.ts"

/** Subscribes, installs the current ring, and follows changes for the life of the scope. @internal */
export const follow = Effect.fnUntraced(function*(
  membership: MembershipShape,
  remote: RemoteRouter,
  hasher: HashRing.Hasher,
  directory: DirectoryShape | undefined
) {
  const changes = yield* membership.subscribe
  const apply = refresh(membership, remote, hasher)
  yield* apply
  yield* Effect.forkScoped(
    Stream.runForEach(changes, (event) => {
      if (event._tag !== "Dead") return apply
      remote.markDead(event.identity.id)
      return directory !== undefined && remote.self !== undefined ?
        Effect.andThen(apply, Effect.ignore(directory.removeSilo(event.identity.id))) :
        apply
    })
  )
  // Connections to silos that left are closed once their last calls are answered.
  yield* Effect.forkScoped(Effect.schedule(remote.peers.sweep, Schedule.spaced(Duration.seconds(1))))
  return apply
})

/** Rebuilds the ring from the members when they changed. @internal */
export const refresh = (membership: MembershipShape, remote: RemoteRouter, hasher: HashRing.Hasher): Effect.Effect<void> =>
  Effect.flatMap(membership.members, (members) => {
    const ids = members.map((member) => member.identity.id)
    const current = remote.ring.members
    if (ids.length === current.length && ids.every((id) => remote.ring.has(id))) return Effect.void
    remote.setRing(HashRing.makeWith(hasher, ids.map((id) => ({ id }))))
    return remote.peers.retain(new Set(ids), new Set(remote.handoff.deadSilos.keys()))
  })

/** The `Cluster` view of a silo (`self`) or a client over its remote router. @internal */
export const view = (
  remote: RemoteRouter,
  membership: MembershipShape,
  self: () => SiloIdentity | undefined,
  declaredDead: Effect.Effect<SiloDeclaredDead>
): ClusterShape => ({
  get self() {
    return self()
  },
  members: Effect.sync(() => remote.ring.members.map((member) => member.id)),
  view: membership.members,
  ownerOf: (address) => ownerOf(remote, address),
  declaredDead
})

/** `Cluster.ownerOf` over a remote router. */
const ownerOf = (remote: RemoteRouter, address: ActorAddress): Effect.Effect<string | undefined> =>
  Effect.suspend(() => {
    const slot = remote.router.slot(address.type)
    const placement = slot.placement
    if (slot.activations.has(address.id) || slot.maxWorkers > 1) return Effect.succeed(remote.self)
    if (placement?.usesDirectory !== true) return Effect.succeed(remote.ownerOf(slot, address.id))
    return Effect.map(Effect.option(remote.locate(slot, placement, address.id)), Option.getOrUndefined)
  })

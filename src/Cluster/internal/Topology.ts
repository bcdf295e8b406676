/**
 * Keeps a silo's (or client's) routing in step with the membership: on every change the
 * rings are rebuilt from the members (alive and suspected: a suspected silo keeps its actors
 * until it is declared dead) and the actor types each announces (one ring per set of hosts,
 * see `TypeRings`), connections to dead silos are closed (to silos that left, once
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
import * as TypeRings from "./TypeRings.ts"
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

/**
 * Rebuilds the rings from the members when they changed: their ids, or what they host (see
 * `TypeRings`). @internal
 */
export const refresh = (membership: MembershipShape, remote: RemoteRouter, hasher: HashRing.Hasher): Effect.Effect<void> =>
  Effect.flatMap(membership.members, (members) => {
    // A draining silo left: its own view may still list it until the leave is read back.
    const listed = members.filter((member) => !remote.router.draining || member.identity.id !== remote.self)
    const ringMembers = listed.map((member) => ({ id: member.identity.id, metadata: member.metadata }))
    // Before the rings' check: a load report changes the loads, never the rings.
    remote.loads.update(listed)
    if (TypeRings.signatureOf(ringMembers) === remote.rings.signature) return Effect.void
    const rings = TypeRings.TypeRings.make(hasher, ringMembers, { previous: remote.rings })
    remote.setRings(rings)
    const retained = remote.peers.retain(new Set(ringMembers.map((member) => member.id)), new Set(remote.handoff.deadSilos.keys()))
    if (rings.malformed.length === 0) return retained
    return Effect.andThen(
      Effect.logWarning(`membership: unreadable ${TypeRings.metadataKeys.types} metadata; taking these silos to host every type`).pipe(
        Effect.annotateLogs({ silos: rings.malformed.join(",") })
      ),
      retained
    )
  })

/** The `Cluster` view of a silo (`self`) or a client over its remote router. @internal */
export const view = (
  remote: RemoteRouter,
  membership: MembershipShape,
  self: () => SiloIdentity | undefined,
  declaredDead: Effect.Effect<SiloDeclaredDead>,
  drain: { readonly drain: Effect.Effect<void>; readonly drained: Effect.Effect<void> }
): ClusterShape => ({
  get self() {
    return self()
  },
  members: Effect.sync(() => remote.ring.members.map((member) => member.id)),
  view: membership.members,
  ownerOf: (address) => ownerOf(remote, address),
  declaredDead,
  drain: drain.drain,
  drained: drain.drained
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

/**
 * What a cluster silo announces about itself in its membership metadata: its application
 * version and the actor types it hosts (see `TypeRings` for the keys and how they route).
 *
 * A silo's implementations register after its `ClusterSilo` layer is built, hence after it
 * joined: it joins announcing the types registered so far (none on a first start: until it
 * says otherwise it is sent no call for any of them, rather than calls it cannot serve yet),
 * and each registration then republishes the list (`Registration.updateMetadata`) and waits
 * for it, so the silo's layer is built only once its types are published. A silo that joins
 * again (declared dead, then back) announces them all in its join.
 *
 * @internal
 */
import { Effect, Schedule, Semaphore } from "effect"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import { MembershipError, type Metadata } from "../Membership.ts"
import type { MetadataPublisher } from "./MetadataPublisher.ts"
import { encodeTypes, metadataKeys, reservedPrefix } from "./TypeRings.ts"

/** A silo's (or client's) application version when its configuration names none. @internal */
export const defaultVersion = "0"

/**
 * User metadata may not use the `quark.` prefix: a label that silently lost to Quark's own
 * (or overrode it, and so misrouted calls) would be worse than a failed start.
 *
 * @internal
 */
export const checkMetadata = (metadata: Metadata | undefined): Effect.Effect<void, MembershipError> => {
  const reserved = Object.keys(metadata ?? {}).filter((key) => key.startsWith(reservedPrefix))
  return reserved.length === 0 ? Effect.void : Effect.fail(
    new MembershipError({
      operation: "configure",
      reason: `metadata keys starting with "${reservedPrefix}" are reserved for Quark: ${reserved.join(", ")}`
    })
  )
}

/** The types registered in `router`, as `quark.types` says them. @internal */
export const hostedTypes = (router: LocalRouter): string => {
  const types: Array<readonly [string, number]> = []
  for (const slot of router.slots.values()) {
    const registration = slot.registration
    if (registration !== undefined && slot.virtual) types.push([slot.name, registration.version ?? 1])
  }
  return encodeTypes(types)
}

/** The metadata a silo joins with: the user's labels, its version, and the types registered now. @internal */
export const joinMetadata = (user: Metadata | undefined, version: string, router: LocalRouter): Metadata => ({
  ...user,
  [metadataKeys.version]: version,
  [metadataKeys.types]: hostedTypes(router)
})

/** What the announcer needs of its silo. @internal */
export interface AnnouncerHost {
  readonly router: LocalRouter
  /** The silo's one writer of its membership metadata (see `MetadataPublisher`). */
  readonly publisher: MetadataPublisher
  /** Rebuilds this silo's own rings from the membership (the other views follow the announcement). */
  readonly refresh: Effect.Effect<void>
}

/**
 * What a registration runs: publishes the types registered so far if the membership does
 * not show them yet. One at a time, so that concurrent registrations (a `Layer.mergeAll` of
 * implementations) coalesce into few updates. A registry that does not answer is retried
 * until it does or this incarnation ends (its next join announces everything).
 *
 * @internal
 */
export const announcer = (host: AnnouncerHost): () => Effect.Effect<void> => {
  const lock = Semaphore.makeUnsafe(1)
  const announce = Effect.gen(function*() {
    // Merged by the publisher into what else the silo published (its status, its load);
    // false when unchanged or not joined (the next join announces every type).
    if (!(yield* host.publisher.set({ [metadataKeys.types]: hostedTypes(host.router) }))) return
    yield* host.refresh
  })
  const announced = lock.withPermits(1)(announce).pipe(
    Effect.retry({
      while: (error) => error._tag === "MembershipError",
      schedule: Schedule.min([Schedule.exponential("100 millis"), Schedule.spaced("2 seconds")])
    }),
    Effect.catch((error) =>
      Effect.logWarning("could not announce the actor types this silo hosts; it announces them when it joins again", error)
    )
  )
  return () => announced
}

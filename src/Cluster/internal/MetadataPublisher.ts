/**
 * The one writer of a silo's membership metadata. `Registration.updateMetadata` replaces
 * the whole record, and several parts of a silo write keys of it: the hosting code
 * (`quark.types`, see `Hosting`), the drain (`quark.status=draining`), the load reports
 * (`quark.load.*`). Two of them doing read-modify-write against the membership view would
 * lose each other's keys (each reads the record before the other's write lands), so they
 * all go through this: each `set` merges its patch into the record this writer keeps and
 * publishes the result, one write at a time (a semaphore), in the order they were asked.
 *
 * The record outlives an incarnation: a silo declared dead joins again with a new
 * generation and the metadata of its join (its labels, version and types); `attach` then
 * adds back what was set since (its status, its last load report) and publishes that,
 * rather than leave the new incarnation without them until the next report.
 *
 * A write that fails leaves the merged record here: the next `set` publishes it all (a
 * retried patch is not needed for keys set by others). A patch that changes nothing
 * publishes nothing.
 *
 * Rejected: a compare-and-set on the registry record (a version per metadata write): every
 * writer would need a retry loop, and the writers are all in this process anyway; a queue
 * that coalesces patches: the semaphore already orders them, and writes are seconds apart.
 *
 * @internal
 */
import { Effect, Semaphore } from "effect"
import type { Metadata, MembershipError, NotAMember, Registration } from "../Membership.ts"

/** Keys to set (a string) or remove (`undefined`). @internal */
export type MetadataPatch = Readonly<Record<string, string | undefined>>

const sameRecord = (a: Metadata, b: Metadata): boolean => {
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  for (const key of keys) if (!Object.hasOwn(b, key) || a[key] !== b[key]) return false
  return true
}

const applyPatch = (record: Metadata, patch: MetadataPatch): Metadata => {
  const next: Record<string, string> = { ...record }
  for (const key of Object.keys(patch)) {
    const value = patch[key]
    if (value === undefined) delete next[key]
    else next[key] = value
  }
  return next
}

/** @internal */
export class MetadataPublisher {
  private readonly lock = Semaphore.makeUnsafe(1)
  private registration: Registration | undefined = undefined
  /** The record as this silo wants it published. */
  private record: Metadata = {}
  /** The record the current registration holds, as far as this writer knows. */
  private published: Metadata = {}

  /** The record as this silo wants it published (what was published, plus what failed to be). */
  get current(): Metadata {
    return this.record
  }

  /**
   * A new incarnation joined with `joined`: the record becomes `joined` plus the keys set
   * before that `joined` does not name, and is published if that adds anything. A failed
   * publication is logged; the next `set` tries again.
   */
  attach(registration: Registration, joined: Metadata): Effect.Effect<void> {
    return this.lock.withPermits(1)(Effect.suspend(() => {
      this.registration = registration
      this.record = { ...this.record, ...joined }
      this.published = joined
      return this.publish(registration)
    })).pipe(
      Effect.asVoid,
      Effect.catch((error) => Effect.logWarning("could not publish this silo's metadata after joining again", error))
    )
  }

  /**
   * Merges `patch` into the record and publishes it: `true` once published, `false` when it
   * changed nothing or this silo is not joined (the record keeps it for the next join).
   */
  set(patch: MetadataPatch): Effect.Effect<boolean, MembershipError | NotAMember> {
    return this.lock.withPermits(1)(Effect.suspend(() => {
      this.record = applyPatch(this.record, patch)
      const registration = this.registration
      return registration === undefined ? Effect.succeed(false) : this.publish(registration)
    }))
  }

  private publish(registration: Registration): Effect.Effect<boolean, MembershipError | NotAMember> {
    const record = this.record
    if (sameRecord(record, this.published)) return Effect.succeed(false)
    return Effect.as(
      Effect.tap(registration.updateMetadata(record), () => Effect.sync(() => {
        if (this.registration === registration) this.published = record
      })),
      true
    )
  }
}

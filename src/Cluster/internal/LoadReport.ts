/**
 * A silo's load reports (see `Load` for what they say and why), and every view's table of
 * the loads its members reported.
 *
 * Reporting: once at start (the activation counts, known at once: a silo that just joined
 * says it is empty without waiting an interval), then every interval, through the silo's
 * one metadata writer (`MetadataPublisher`). The counts are read from the router's type
 * tables (one `Map.size` per type), so nothing is counted on the turn path. A report that
 * fails (the registry is unreachable) is logged at debug level and the next one carries the
 * figures: a missed report only makes the figures one interval older.
 *
 * The table (`LoadTable`) is refreshed with the rings on every membership change (see
 * `Topology.refresh`), before the rings' own check, so a report, which never changes the
 * rings, still reaches the table; a member whose metadata object did not change is not
 * read again.
 *
 * @internal
 */
import { Duration, Effect, type Scope } from "effect"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import * as Load from "../Load.ts"
import type { Member } from "../Membership.ts"
import type { MetadataPublisher } from "./MetadataPublisher.ts"

/** The default interval between two reports. @internal */
export const defaultInterval: Duration.Input = "5 seconds"

/**
 * The interval in milliseconds; 0 when reports are off (`0` or `"off"`). Fails on an input
 * that is not a duration.
 *
 * @internal
 */
export const intervalMillis = (input: Duration.Input | "off" | undefined): number => {
  if (input === "off") return 0
  const millis = Duration.toMillis(Duration.fromInputUnsafe(input ?? defaultInterval))
  if (!(millis >= 0)) throw new RangeError(`loadReportInterval must be a duration of 0 or more, got ${String(input)}`)
  return millis
}

/** Activations on `router`, and of those the directory-placed ones (what migration can move). @internal */
export const countActivations = (router: LocalRouter): { readonly activations: number; readonly migratable: number } => {
  let activations = 0
  let migratable = 0
  for (const slot of router.slots.values()) {
    const n = slot.activations.size
    activations += n
    if (slot.virtual && slot.maxWorkers <= 1 && slot.placement?.usesDirectory === true) migratable += n
  }
  return { activations, migratable }
}

/** What the reports need of their silo. @internal */
export interface ReporterHost {
  readonly router: LocalRouter
  readonly publisher: MetadataPublisher
  readonly source: Load.LoadSource
  readonly intervalMillis: number
}

/** Reports this silo's load now and every interval, for the life of the scope. @internal */
export const run = (host: ReporterHost): Effect.Effect<never, never, Scope.Scope> =>
  Effect.gen(function*() {
    const sample = yield* host.source.start
    let sequence = 0
    const report = Effect.gen(function*() {
      // A draining silo left, or is leaving: nothing to say to the others.
      if (host.router.draining || host.router.shuttingDown) return
      const figures = yield* sample
      sequence++
      yield* host.publisher.set(Load.toMetadata({ ...figures, ...countActivations(host.router), sequence }))
    }).pipe(Effect.catch((error) => Effect.logDebug("load report not published; the next one carries it", error)))
    while (true) {
      yield* report
      yield* Effect.sleep(host.intervalMillis)
    }
  })

/**
 * The loads the members of a view last reported, by silo id; refreshed with the view.
 *
 * @internal
 */
export class LoadTable {
  private readonly entries = new Map<string, { readonly metadata: Readonly<Record<string, string>>; readonly load: Load.Load }>()

  /** The load `id` last reported; `undefined` for a silo not in the view. */
  readonly get = (id: string): Load.Load | undefined => this.entries.get(id)?.load

  /** Reads the members' reports (only of members whose metadata changed). */
  update(members: ReadonlyArray<Member>): void {
    const seen = new Set<string>()
    for (const member of members) {
      const id = member.identity.id
      seen.add(id)
      const entry = this.entries.get(id)
      if (entry?.metadata === member.metadata) continue
      this.entries.set(id, { metadata: member.metadata, load: Load.fromMetadata(member.metadata) })
    }
    if (seen.size === this.entries.size) return
    for (const id of this.entries.keys()) if (!seen.has(id)) this.entries.delete(id)
  }
}

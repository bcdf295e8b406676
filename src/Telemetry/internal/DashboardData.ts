/**
 * The dashboard's data, apart from its server: how a silo gone from the membership view is
 * remembered and told dead from left, load figures, dead letters and activations as rows.
 *
 * **Dead or left.** The membership forgets a member that leaves or dies; the dashboard keeps
 * it listed for 10 minutes (at most 64 of them, the oldest gone first out). Its verdict
 * comes from its last sighting: a member declared dead missed heartbeats for
 * `deadAfter − suspectAfter` (1.5 s by default) as `suspected` first, so one last seen
 * suspected is `dead`; one that heartbeated to the end (last seen `alive`) `left` (or was
 * replaced by a newer generation at its address). The view is looked at every 200 ms, well
 * within that window, so the suspicion is seen.
 *
 * @internal
 */
import type { Metric } from "effect"
import type { Activation } from "../../Actor/internal/Activation.ts"
export { findActivation } from "../../Actor/internal/FindActivation.ts"
import * as Load from "../../Cluster/Load.ts"
import type { Member } from "../../Cluster/Membership.ts"
import type { DeadLetterInfo } from "../../Reminders/Reminders.ts"
import type * as Api from "./DashboardSchemas.ts"

const goneMillis = 10 * 60_000
const maxGone = 64

interface Sighting {
  readonly host: string
  readonly port: number
  readonly generation: number
  status: "alive" | "suspected"
  draining: boolean
  gone: number | undefined
  verdict: "dead" | "left"
}

/** The members seen, and when and how the ones no longer in the view went. */
export class Sightings {
  readonly #seen = new Map<string, Sighting>()

  observe(now: number, view: ReadonlyArray<Member>): void {
    const present = new Set<string>()
    for (const member of view) {
      const { generation, host, id, port } = member.identity
      present.add(id)
      const draining = Load.fromMetadata(member.metadata).draining
      this.#seen.set(id, { host, port, generation, status: member.status, draining, gone: undefined, verdict: "dead" })
    }
    const gone: Array<[string, number]> = []
    for (const [id, sighting] of this.#seen) {
      if (present.has(id)) continue
      if (sighting.gone === undefined) {
        sighting.gone = now
        sighting.verdict = sighting.status === "suspected" ? "dead" : "left"
      }
      if (now - sighting.gone > goneMillis) this.#seen.delete(id)
      else gone.push([id, sighting.gone])
    }
    gone.sort((a, b) => a[1] - b[1])
    for (const [id] of gone.slice(0, Math.max(0, gone.length - maxGone))) this.#seen.delete(id)
  }

  gone(): Array<Api.SiloRow> {
    const rows: Array<Api.SiloRow> = []
    for (const [id, sighting] of this.#seen) {
      if (sighting.gone === undefined) continue
      rows.push({
        id,
        host: sighting.host,
        port: sighting.port,
        generation: sighting.generation,
        status: sighting.verdict,
        self: false,
        draining: sighting.draining,
        share: 0,
        goneAtMillis: sighting.gone
      })
    }
    return rows
  }
}

/** A load report's figures, the unknown ones left out. */
export const figures = (load: Load.Load) => ({
  ...(load.activations === undefined ? {} : { activations: load.activations }),
  ...(load.cpu === undefined ? {} : { cpu: load.cpu }),
  ...(load.eventLoopDelayMillis === undefined ? {} : { lagMillis: load.eventLoopDelayMillis }),
  ...(load.memoryBytes === undefined ? {} : { memoryBytes: load.memoryBytes }),
  ...(load.memoryLimitBytes === undefined ? {} : { memoryLimitBytes: load.memoryLimitBytes }),
  ...(load.heap === undefined ? {} : { heap: load.heap })
})

export const letterRow = (letter: DeadLetterInfo): Api.DeadLetterRow => ({
  id: letter.id,
  kind: letter.kind,
  at: letter.at,
  address: { type: letter.address.type, id: letter.address.id },
  message: letter.message,
  ...(letter.reminder === undefined ? {} : { reminder: letter.reminder }),
  ...(letter.due === undefined ? {} : { due: letter.due }),
  attempts: letter.attempts,
  error: letter.error
})

/** An activation and its children, depth first; `sinceStart` is now on the router's clock. */
export const walk = (act: Activation, depth: number, sinceStart: number, rows: Array<Api.ActivationRow>): void => {
  const state = act.stateName
  rows.push({
    address: act.address,
    state,
    mailboxDepth: act.mailboxDepth,
    runningTurns: act.running,
    ageMillis: state === "activating" ? 0 : Math.max(0, sinceStart - act.createdAt),
    depth,
    timers: [...(act.timers?.keys() ?? [])]
  })
  // Bounded: a page lists a tree, not a million children.
  if (rows.length > 500) return
  for (const child of act.extras?.children ?? []) walk(child, depth + 1, sinceStart, rows)
}

export const describe = (error: unknown): string => {
  if (typeof error === "string") return error
  const message = (error as { readonly message?: unknown } | undefined)?.message
  const tag = (error as { readonly _tag?: unknown } | undefined)?._tag
  if (typeof message === "string" && message !== "") return typeof tag === "string" ? `${tag}: ${message}` : message
  return typeof tag === "string" ? tag : String(error)
}

/** A state summary (`ActorContext.describe`) as JSON text; one that JSON cannot carry, as `String` gives it. */
export const summaryText = (summary: unknown): string | undefined => {
  if (summary === undefined) return undefined
  try {
    return JSON.stringify(summary, (_, value) => (typeof value === "bigint" ? value.toString() : value), 2) ?? String(summary)
  } catch {
    return String(summary)
  }
}

/** A type's turn durations: the catalog histogram's cumulative bucket counts, summed over its messages. */
export interface Durations {
  /** Upper bounds, in seconds. */
  readonly bounds: ReadonlyArray<number>
  readonly counts: Array<number>
  count: number
}

/**
 * The turn durations by type from the metric snapshots (`quark_turn_duration_seconds`, by
 * type and message; a silo's own series only, when several share the process).
 */
export const turnDurations = (snapshots: Iterable<Metric.Metric.Snapshot>, silo: string | undefined): Map<string, Durations> => {
  const byType = new Map<string, Durations>()
  for (const snapshot of snapshots) {
    if (snapshot.id !== "quark_turn_duration_seconds" || snapshot.type !== "Histogram") continue
    const attributes = snapshot.attributes ?? {}
    if (silo !== undefined && attributes.silo !== undefined && attributes.silo !== silo) continue
    const state = snapshot.state as Metric.HistogramState
    const type = attributes.type ?? ""
    let durations = byType.get(type)
    if (durations === undefined) {
      durations = { bounds: state.buckets.map(([bound]) => bound), counts: state.buckets.map(() => 0), count: 0 }
      byType.set(type, durations)
    }
    // Every series of the catalog has the same bounds (`MetricCatalog.durationBoundsMillis`).
    for (let i = 0; i < state.buckets.length && i < durations.counts.length; i++) durations.counts[i]! += state.buckets[i]![1]
    durations.count += state.count
  }
  return byType
}

/**
 * The `q` quantile in milliseconds of the turns between two readings: the upper bound of the
 * bucket it falls in (an estimate from above, as Prometheus's `histogram_quantile` is from
 * within), the last bound for turns beyond it; `undefined` with no turn in between.
 */
export const quantileMillis = (now: Durations, before: Durations | undefined, q: number): number | undefined => {
  const total = now.count - (before?.count ?? 0)
  if (total <= 0) return undefined
  const rank = Math.max(1, Math.ceil(q * total))
  for (let i = 0; i < now.counts.length; i++) {
    if (now.counts[i]! - (before?.counts[i] ?? 0) >= rank) return now.bounds[i]! * 1000
  }
  return (now.bounds[now.bounds.length - 1] ?? 0) * 1000
}

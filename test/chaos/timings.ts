/**
 * The membership timings of a chaos run, shared by the harness and the silo processes.
 * `short` is the multi-process test's (`test/cluster/process/Account.ts`): dead 1.2 s after
 * the last heartbeat. `default` is the production defaults (`Membership.defaultTimings`).
 * Neither sets `outageGrace`, so a registry outage gets the library's default grace.
 */
import { Duration } from "effect"
import { Membership } from "../../src/Cluster/index.ts"

export type TimingsName = "short" | "default"

export const shortTimings = {
  heartbeatInterval: "200 millis",
  suspectAfter: "600 millis",
  deadAfter: "1200 millis",
  refreshInterval: "200 millis"
} as const

export const timingsOf = (name: TimingsName) => name === "short" ? shortTimings : {}

/** The same timings in milliseconds, for the harness's bounds. */
export const timingMillisOf = (name: TimingsName) =>
  name === "short" ?
    { heartbeat: 200, suspect: 600, dead: 1200, refresh: 200 } :
    {
      heartbeat: Duration.toMillis(Membership.defaultTimings.heartbeatInterval),
      suspect: Duration.toMillis(Membership.defaultTimings.suspectAfter),
      dead: Duration.toMillis(Membership.defaultTimings.deadAfter),
      refresh: Duration.toMillis(Membership.defaultTimings.refreshInterval)
    }

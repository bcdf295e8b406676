/**
 * Keeps a fixed set of system actors (reminder buckets, stream partition agents) activated:
 * `touchAll` sends each a message, and the ring takes it to the actor's owner. In a
 * cluster it touches them all as soon as this silo's view of the members changes, so a dead
 * silo's actors start on their new owners when the death is declared, not up to an
 * interval later; the interval is the backstop (an activation that failed).
 *
 * @internal
 */
import { Clock, Duration, Effect, Schedule } from "effect"
import { Cluster } from "../Cluster.ts"

/** How often the keeper reads this silo's view of the members (a local read). */
const membershipPollInterval = Duration.millis(100)

export const keepActive = (touchAll: Effect.Effect<void>, interval: Duration.Duration): Effect.Effect<void> =>
  Effect.gen(function*() {
    const cluster = yield* Effect.serviceOption(Cluster)
    if (cluster._tag === "None") return yield* Effect.repeat(touchAll, Schedule.spaced(interval))
    const intervalMillis = Duration.toMillis(interval)
    let members = ""
    let touchedAt = Number.NEGATIVE_INFINITY
    const watch = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const current = (yield* cluster.value.members).join(" ")
      if (current === members && now - touchedAt < intervalMillis) return
      members = current
      touchedAt = now
      yield* touchAll
    })
    return yield* Effect.repeat(watch, Schedule.spaced(membershipPollInterval))
  }) as Effect.Effect<void>

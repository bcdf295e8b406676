/**
 * Cleaning up what test runs leave in Redis. A multi-process test writes under a key prefix
 * of its own per run, `<run prefix><run id>` (`newRunId`: its start time in base 36, then a
 * random part); it deletes its keys when it ends (`deleteKeys`) and, when it starts, the
 * keys of older runs killed before their cleanup (`deleteAbandonedRuns`; both: `cleanupRun`),
 * since state records and registries have no expiry. The connection is the test's own
 * (`rawRedis` of `test/persistence/services.ts`).
 */
import { Effect, type Scope } from "effect"
import type { Redis } from "ioredis"

/** A run's id: `<start time, base 36>-<random>`, which `deleteAbandonedRuns` reads back. */
export const newRunId = (): string => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

/** Deletes the keys matching `pattern` (a SCAN `MATCH`) that `doomed` picks. */
export const deleteMatching = async (redis: Redis, pattern: string, doomed: (key: string) => boolean = () => true): Promise<void> => {
  let cursor = "0"
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", pattern, "COUNT", 1000)
    cursor = next
    const picked = keys.filter(doomed)
    if (picked.length > 0) await redis.del(...picked)
  } while (cursor !== "0")
}

/** {@link deleteMatching} as an effect. */
export const deleteKeys = (redis: Redis, pattern: string, doomed?: (key: string) => boolean): Effect.Effect<void> =>
  Effect.promise(() => deleteMatching(redis, pattern, doomed))

/**
 * Deletes the keys of the runs under `runPrefix` that started over `olderThanMillis` ago
 * (default ten minutes): younger runs may still be running.
 */
export const deleteAbandonedRuns = (redis: Redis, runPrefix: string, olderThanMillis = 10 * 60_000): Effect.Effect<void> =>
  deleteKeys(redis, `${runPrefix}*`, (key) => {
    const started = parseInt(key.slice(runPrefix.length).split("-")[0]!, 36)
    return Number.isFinite(started) && Date.now() - started > olderThanMillis
  })

/**
 * A run's cleanup: the abandoned runs under `runPrefix` now, this run's keys
 * (`<keyPrefix>:*`) when the scope closes.
 */
export const cleanupRun = (redis: Redis, runPrefix: string, keyPrefix: string): Effect.Effect<void, never, Scope.Scope> =>
  Effect.andThen(deleteAbandonedRuns(redis, runPrefix), Effect.addFinalizer(() => deleteKeys(redis, `${keyPrefix}:*`)))

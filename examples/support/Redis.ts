/**
 * What the examples that need Redis share: the server's address (QUARK_REDIS_URL), a
 * connection that fails with a reason instead of retrying, the cleanup of a run's keys, and
 * the message printed when there is no Redis.
 */
import { Console, Effect, Schema } from "effect"
import { Redis } from "ioredis"

export const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"

export class RedisUnreachable extends Schema.TaggedError<RedisUnreachable>()("RedisUnreachable", { reason: Schema.String }) {}

export const reasonOf = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/** A connection for the life of the scope; `RedisUnreachable` if the server does not answer. */
export const connect = (url: string = redisUrl) =>
  Effect.acquireRelease(
    Effect.tryPromise({
      try: async () => {
        const redis = new Redis(url, { lazyConnect: true, connectTimeout: 2_000, maxRetriesPerRequest: 0, retryStrategy: () => null })
        let lastError: unknown = undefined
        redis.on("error", (error) => void (lastError = error))
        // connect() only rejects with "Connection is closed"; the reason is the last "error" event.
        await redis.connect().catch((cause) => Promise.reject(lastError ?? cause))
        return redis
      },
      catch: (cause) => new RedisUnreachable({ reason: reasonOf(cause) })
    }),
    (redis) => Effect.promise(() => redis.quit().then(() => undefined, () => redis.disconnect()))
  )

/** Deletes every key matching one of `patterns`; how many. */
export const deleteKeys = (redis: Redis, patterns: ReadonlyArray<string>) =>
  Effect.promise(async () => {
    let deleted = 0
    for (const match of patterns) {
      let cursor = "0"
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", match, "COUNT", 1_000)
        cursor = next
        if (keys.length > 0) deleted += await redis.del(...keys)
      } while (cursor !== "0")
    }
    return deleted
  })

/** Says there is no Redis at `url` and how to get one, and makes the process exit with 1. */
export const explainUnreachable = (url: string, reason: string) =>
  Effect.andThen(
    Console.error(
      `Cannot reach Redis at ${url} (${reason}).\n` +
        "Start one, e.g. `redis-server --daemonize yes` or `docker run -d -p 6379:6379 redis`,\n" +
        "or point QUARK_REDIS_URL at one."
    ),
    Effect.sync(() => void (process.exitCode = 1))
  )

import { Effect } from "effect"
import { Redis } from "ioredis"

/**
 * The real services the provider tests use. They read QUARK_REDIS_URL and QUARK_PG_URL
 * (defaults: the local servers). A test that cannot reach its server fails, naming the
 * server and how to start it; it never skips.
 */
export const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
export const pgUrl = process.env.QUARK_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"

export const unreachable = (what: string, url: string, cause: unknown): Error =>
  new Error(
    `${what} at ${url} is unreachable (${String(cause)}). Start it (see .ci/run) or point ` +
      `${what === "Redis" ? "QUARK_REDIS_URL" : "QUARK_PG_URL"} at one.`
  )

/**
 * A raw ioredis client for the life of the scope, to look at (or tamper with) what a
 * provider really wrote; an unreachable server fails the test.
 */
export const rawRedis = Effect.acquireRelease(
  Effect.tryPromise({
    try: async () => {
      const redis = new Redis(redisUrl, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
      redis.on("error", () => {})
      await redis.connect()
      return redis
    },
    catch: (cause) => unreachable("Redis", redisUrl, cause)
  }),
  (redis) => Effect.promise(() => redis.quit())
)

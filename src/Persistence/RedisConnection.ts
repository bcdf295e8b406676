/**
 * Opening an ioredis connection the way every Quark component wants it: auto-pipelined,
 * failing at once if the first connection attempt fails (instead of retrying forever
 * while callers hang), reconnecting with a capped backoff after that, and closed with the
 * scope.
 *
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import { Redis, type RedisOptions } from "ioredis"

/**
 * @since 0.1.0
 */
export interface ConnectOptions {
  /** Lua scripts to register (sent once per connection, then by `EVALSHA`). */
  readonly scripts?: RedisOptions["scripts"]
  readonly connectionName?: string
  /** Reconnect backoff after the first ready: `min(attempt × stepMillis, capMillis)`. */
  readonly retry: { readonly stepMillis: number; readonly capMillis: number }
}

/**
 * The message of what a rejected ioredis promise threw.
 *
 * @since 0.1.0
 */
export const reasonOf = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/**
 * Opens a connection to `url`; a failure to connect becomes `onFailure(reason)`.
 *
 * @since 0.1.0
 */
export const connect = <Client extends Redis, E>(
  url: string,
  options: ConnectOptions,
  onFailure: (reason: string) => E
): Effect.Effect<Client, E, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.callback<Client, E>((resume) => {
      const fail = (cause: unknown) => resume(Effect.fail(onFailure(reasonOf(cause))))
      let ready = false
      let lastError: unknown = "connection closed"
      let redis: Client
      try {
        redis = new Redis(url, {
          ...(options.scripts === undefined ? {} : { scripts: options.scripts }),
          ...(options.connectionName === undefined ? {} : { connectionName: options.connectionName }),
          enableAutoPipelining: true,
          lazyConnect: false,
          connectTimeout: 5_000,
          // A lost connection fails its pending commands after 2 reconnect attempts
          // (outcome unknown) rather than holding them indefinitely.
          maxRetriesPerRequest: 2,
          // Before the first ready: give up (the open fails). After: reconnect with backoff.
          retryStrategy: (times) => (ready ? Math.min(times * options.retry.stepMillis, options.retry.capMillis) : null)
        }) as Client
      } catch (cause) {
        return fail(cause)
      }
      // Errors reach callers through their commands; the listener keeps ioredis from logging them.
      redis.on("error", (error) => {
        lastError = error
      })
      const onEnd = () => fail(lastError)
      redis.once("end", onEnd)
      redis.once("ready", () => {
        ready = true
        redis.removeListener("end", onEnd)
        resume(Effect.succeed(redis))
      })
      return Effect.sync(() => redis.disconnect())
    }),
    (redis) => Effect.promise(() => redis.quit().then(() => undefined, () => redis.disconnect()))
  )

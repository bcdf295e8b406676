/**
 * Opening an ioredis connection the way every Quark component wants it: auto-pipelined,
 * failing at once if the first connection attempt fails (instead of retrying forever
 * while callers hang), reconnecting with a capped backoff after that, and closed with the
 * scope. Where it goes and how it authenticates are `RedisSettings` (a URL string is one);
 * a failure to connect says what failed and never holds a secret of the settings.
 *
 * @since 0.1.0
 */
import { Effect, Redacted, type Scope } from "effect"
import { Redis, type RedisOptions } from "ioredis"
import { connectFailure, tlsOptions, tlsSecrets, urlSecrets } from "./internal/Tls.ts"
import type * as RedisSettings from "./RedisSettings.ts"

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

interface Resolved {
  readonly url: string | undefined
  /** The settings' own fields: ioredis lets its first argument win over the URL's parts. */
  readonly explicit: RedisOptions
  readonly secrets: ReadonlyArray<string>
}

const resolve = (input: RedisSettings.Input | undefined): Effect.Effect<Resolved, string> =>
  Effect.gen(function*() {
    const settings: RedisSettings.Settings = typeof input === "string" ? { url: input } : input ?? {}
    const url = settings.url !== undefined
      ? (typeof settings.url === "string" ? settings.url : Redacted.value(settings.url))
      : settings.host === undefined
      ? process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
      : undefined
    const password = settings.password === undefined ? undefined : Redacted.value(settings.password)
    const tlsSettings = typeof settings.tls === "object" ? settings.tls : undefined
    const tls = settings.tls === undefined ? undefined : settings.tls === false ? false : {
      ...(tlsSettings === undefined ? {} : yield* tlsOptions(tlsSettings)),
      ...(tlsSettings?.rejectUnauthorized === undefined ? {} : { rejectUnauthorized: tlsSettings.rejectUnauthorized })
    }
    const explicit: RedisOptions = {
      ...(settings.host === undefined ? {} : { host: settings.host }),
      ...(settings.port === undefined ? {} : { port: settings.port }),
      ...(settings.username === undefined ? {} : { username: settings.username }),
      ...(password === undefined ? {} : { password }),
      ...(settings.db === undefined ? {} : { db: settings.db }),
      ...(tls === undefined ? {} : { tls: tls as RedisOptions["tls"] })
    }
    const secrets = [
      ...(password === undefined ? [] : [password]),
      ...(url === undefined ? [] : urlSecrets(url)),
      ...tlsSecrets(tlsSettings)
    ]
    return { url, explicit, secrets }
  })

// ioredis merges its constructor's arguments, the first winning (its types list fewer forms).
const RedisOf = Redis as unknown as new(explicit: RedisOptions, url: string | undefined, defaults: RedisOptions) => Redis

/**
 * Opens a connection as `settings` say (a URL, or `RedisSettings`; by default
 * `QUARK_REDIS_URL`, else the local server); a failure to connect becomes
 * `onFailure(reason)`, the reason saying what failed without any secret.
 *
 * @since 0.1.0
 */
export const connect = <Client extends Redis, E>(
  settings: RedisSettings.Input | undefined,
  options: ConnectOptions,
  onFailure: (reason: string) => E
): Effect.Effect<Client, E, Scope.Scope> =>
  Effect.flatMap(Effect.mapError(resolve(settings), onFailure), (resolved) =>
    Effect.acquireRelease(
      open<Client, E>(resolved, options, onFailure),
      (redis) => Effect.promise(() => redis.quit().then(() => undefined, () => redis.disconnect()))
    ))

const open = <Client extends Redis, E>(
  { explicit, secrets, url }: Resolved,
  options: ConnectOptions,
  onFailure: (reason: string) => E
) =>
  Effect.callback<Client, E>((resume) => {
    const fail = (cause: unknown) => resume(Effect.fail(onFailure(connectFailure(cause, secrets))))
    let ready = false
    let lastError: unknown = "connection closed"
    let redis: Client
    try {
      // The settings' fields win over the URL's parts, which win over these defaults.
      redis = new RedisOf(explicit, url, {
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
  })

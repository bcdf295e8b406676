/**
 * Where a Redis connection goes and how it authenticates: the one shape every Redis layer
 * takes as its `connection` option (`RedisStore`, `RedisReminderStore`,
 * `RedisStreamProvider`, `RedisMembership`, `RedisDirectory`), beside the `url` string they
 * always took.
 *
 * **Rules.**
 * - A URL (`redis://…`, or `rediss://…` for TLS) gives the defaults; each field set here
 *   wins over the URL's part (`host`, `port`, `username`, `password`, `db`; `tls` over
 *   `rediss`). With neither a URL nor a `host`: `QUARK_REDIS_URL`, else
 *   `redis://127.0.0.1:6379`. The option `url` of a layer is the URL when `connection` has
 *   none.
 * - `password` (and a TLS `key` given as text) is an effect `Redacted`: it shows as
 *   `<redacted>` wherever the settings are logged, is unwrapped only to open the socket,
 *   and is hidden in `/quark/config` (see `Diagnostics.redact`).
 * - `tls: true` or an object turns TLS on; the server's certificate is verified against
 *   `ca` (else Node's list) and the host name unless `rejectUnauthorized: false`. Files are
 *   read when the layer is built.
 * - A connection that fails while the layer is built fails it with the layer's typed error
 *   (operation `"connect"`), whose reason says what failed (`"authentication failed: …"`,
 *   `"TLS failed (<code>): …"`, or the network's error) and never holds the password, the
 *   key, or a URL's credentials.
 *
 * @since 0.2.0
 */
import type { Redacted } from "effect"
import type { TlsMaterial } from "./internal/Tls.ts"

/**
 * TLS to Redis: the CA to trust, a client certificate for mutual TLS, the expected name.
 *
 * @since 0.2.0
 */
export interface Tls extends TlsMaterial {
  /** Whether an unverified server certificate fails the connection. Default `true`; `false` only for tests. */
  readonly rejectUnauthorized?: boolean | undefined
}

/**
 * The settings of a Redis connection (see the module doc for how they combine).
 *
 * @since 0.2.0
 */
export interface Settings {
  /** `redis://[user[:password]@]host[:port][/db]`, or `rediss://…` for TLS; a `Redacted` one when it holds a password. */
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  /** The ACL user (Redis 6+); without it, `AUTH <password>` authenticates as `default`. */
  readonly username?: string | undefined
  readonly password?: Redacted.Redacted<string> | undefined
  /** `true`: TLS verified against Node's CAs; an object: with this material. */
  readonly tls?: boolean | Tls | undefined
  /** The database number. Default 0 (or the URL's path). */
  readonly db?: number | undefined
}

/**
 * What a Redis layer's `connection` option takes: settings, or a URL.
 *
 * @since 0.2.0
 */
export type Input = string | Settings

/**
 * The settings of a layer given its `url` and `connection` options: `connection`, with
 * `url` as its URL when it has none.
 *
 * @since 0.2.0
 */
export const fromOptions = (url: string | undefined, connection: Input | undefined): Input | undefined =>
  connection === undefined ? url : typeof connection === "string" ? connection : { ...connection, url: connection.url ?? url }

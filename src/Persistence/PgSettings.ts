/**
 * Where a PostgreSQL pool connects and how it authenticates: the one shape `PgStore` and
 * `PgReminderStore` take as their `connection` option, beside the `url` string they always
 * took.
 *
 * **Rules.**
 * - A URL (`postgres://user:password@host:port/database?sslmode=…`) gives the defaults;
 *   each field set here wins over the URL's part. With neither a URL nor a `host`:
 *   `QUARK_PG_URL`, else `postgres://postgres@127.0.0.1:5432/test`. The option `url` of a
 *   store is the URL when `connection` has none.
 * - `password` (and a TLS `key` given as text) is an effect `Redacted`: it shows as
 *   `<redacted>` wherever the settings are logged, is unwrapped only to authenticate, and is
 *   hidden in `/quark/config` (see `Diagnostics.redact`).
 * - `ssl.mode`: `"require"` encrypts without checking the server's certificate (libpq's
 *   `require`: it stops eavesdroppers, not an impostor); `"verify-ca"` also checks it is
 *   signed by `ca` (else Node's list); `"verify-full"` also checks it names the host (or
 *   `servername`). `ssl: false` never uses TLS; without `ssl`, the URL's `sslmode` holds.
 *   Files are read when the layer is built.
 * - A failure to connect fails the store's build with a `StoreError` (operation
 *   `"connect"`) whose reason says what failed (`"authentication failed: …"`, `"TLS
 *   failed (<code>): …"`, or the network's error) and never holds the password, the key, or
 *   a URL's credentials.
 *
 * @since 0.2.0
 */
import type { Redacted } from "effect"
import type { TlsMaterial } from "./internal/Tls.ts"

/**
 * TLS to PostgreSQL (see the module doc for the modes).
 *
 * @since 0.2.0
 */
export interface Ssl extends TlsMaterial {
  readonly mode: "require" | "verify-ca" | "verify-full"
}

/**
 * The settings of a PostgreSQL connection (see the module doc for how they combine).
 *
 * @since 0.2.0
 */
export interface Settings {
  /** `postgres://[user[:password]@]host[:port]/database[?sslmode=…]`; a `Redacted` one when it holds a password. */
  readonly url?: string | Redacted.Redacted<string> | undefined
  readonly host?: string | undefined
  readonly port?: number | undefined
  readonly database?: string | undefined
  readonly user?: string | undefined
  readonly password?: Redacted.Redacted<string> | undefined
  readonly ssl?: Ssl | false | undefined
}

/**
 * What a PostgreSQL store's `connection` option takes: settings, or a URL.
 *
 * @since 0.2.0
 */
export type Input = string | Settings

/**
 * The settings of a store given its `url` and `connection` options: `connection`, with
 * `url` as its URL when it has none.
 *
 * @since 0.2.0
 */
export const fromOptions = (url: string | undefined, connection: Input | undefined): Input | undefined =>
  connection === undefined ? url : typeof connection === "string" ? connection : { ...connection, url: connection.url ?? url }

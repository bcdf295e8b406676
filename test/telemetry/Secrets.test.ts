/**
 * Secrets stay out of `/quark/config` and out of the logs of a failed connection.
 *
 * - A configuration holding one of each kind of secret (a Redis URL with a password, a
 *   `rediss://` URL, a `Redacted` password in `RedisSettings`, a TLS private key in PEM, under
 *   `key` and under a name that says nothing, a PostgreSQL URL with a password, a
 *   `clusterSecret` field) is served by `/quark/config` and passed to `Diagnostics.redact`:
 *   neither holds any secret's text, and what is not secret (hosts, the CA certificate)
 *   stays.
 * - Connections that fail (a wrong password against a redis-server of the test's own
 *   started with `--requirepass`, given as a `Redacted` and in a URL; a host that refuses,
 *   for Redis, `rediss://` and PostgreSQL URLs with passwords) are logged the way a program
 *   logs a failed start (the cause, the settings with their `Redacted` secrets), through the logfmt and JSON loggers and a
 *   capturing one: no line holds a secret.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Layer, Logger, Metric, Redacted } from "effect"
import { RedisMembership } from "../../src/Cluster/redis.ts"
import { connectFailure } from "../../src/Persistence/internal/Tls.ts"
import { PgReminderStore, PgStore } from "../../src/Persistence/pg.ts"
import { RedisReminderStore, type RedisSettings, RedisStore, RedisStreamProvider } from "../../src/Persistence/redis.ts"
import { Silo, Telemetry } from "../../src/index.ts"
import { Diagnostics, Endpoints } from "../../src/Telemetry/node.ts"
import { type Captured, capturingLogs } from "../support/capturedLogs.ts"
import { authority } from "../support/certificates.ts"
import { freePort } from "../support/processes.ts"
import { startRedis } from "../support/secureServers.ts"
import { counterLayer } from "../fixtures/Counter.ts"

const ca = authority("quark-secrets-ca")
const client = ca.issue("client.quark.test")
/** A line of the private key's body: no output may hold it. */
const keyBody = client.key.split("\n").find((line) => line.length > 40 && !line.startsWith("-----"))!

const secrets = {
  redisUrl: "redisUrlPw-1a2b3c",
  rediss: "redissPw-4d5e6f",
  redacted: "redactedPw-7a8b9c",
  pgUrl: "pgUrlPw-0d1e2f",
  cluster: "clusterSecret-3a4b5c"
}

const config = {
  redis: { url: `redis://app:${secrets.redisUrl}@cache.internal:6379/0` },
  streams: { url: `rediss://:${secrets.rediss}@cache.internal:6380` },
  membership: {
    connection: {
      host: "registry.internal",
      username: "quark",
      password: Redacted.make(secrets.redacted),
      tls: { ca: ca.cert, cert: client.cert, key: client.key }
    } satisfies RedisSettings.Settings
  },
  // A key under a name that does not say so.
  material: [client.key],
  postgres: { url: `postgres://quark:${secrets.pgUrl}@db.internal:5432/quark?sslmode=verify-full` },
  cluster: { clusterSecret: secrets.cluster, name: "prod" }
}

const assertClean = (what: string, text: string) => {
  for (const [name, secret] of Object.entries(secrets)) assert.notInclude(text, secret, `${what} holds the ${name} secret`)
  assert.notInclude(text, keyBody, `${what} holds the private key`)
}

describe("secrets", () => {
  it.live("/quark/config and Diagnostics.redact hide every kind of secret and keep the rest", () =>
    Effect.gen(function*() {
      const { url } = yield* Endpoints.Endpoints
      const raw = yield* Effect.promise(() => fetch(url + "/quark/config").then((response) => response.text()))
      assertClean("/quark/config", raw)
      const redacted = JSON.stringify(Diagnostics.redact(config))
      assertClean("redact", redacted)
      const body = JSON.parse(raw).config
      assert.deepStrictEqual(body, JSON.parse(redacted))
      assert.strictEqual(body.redis.url, "redis://app:[redacted]@cache.internal:6379/0")
      assert.strictEqual(body.streams.url, "rediss://:[redacted]@cache.internal:6380")
      assert.strictEqual(body.membership.connection.password, "[redacted]")
      assert.strictEqual(body.membership.connection.tls.key, "[redacted]")
      assert.strictEqual(body.membership.connection.tls.ca, ca.cert)
      assert.strictEqual(body.membership.connection.host, "registry.internal")
      assert.match(body.material[0], /^-----BEGIN PRIVATE KEY-----\[redacted\]-----END PRIVATE KEY-----/)
      assert.strictEqual(body.postgres.url, "postgres://quark:[redacted]@db.internal:5432/quark?sslmode=verify-full")
      assert.deepStrictEqual(body.cluster, { clusterSecret: "[redacted]", name: "prod" })
      // A key in bytes (read from a file), and a PEM cut off before its END line.
      assert.strictEqual((Diagnostics.redact({ tls: { pem: Buffer.from(client.key) } }) as any).tls.pem, `[${client.key.length} bytes]`)
      assert.strictEqual(Diagnostics.redact(`x ${client.key.slice(0, 80)}`), "x -----BEGIN PRIVATE KEY-----[redacted]-----END PRIVATE KEY-----")
    }).pipe(Effect.provide(
      Endpoints.layer({ config }).pipe(
        Layer.provideMerge(Silo.layerTest(counterLayer())),
        Layer.provideMerge(Telemetry.layer()),
        Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
      )
    )))

  it.live("the logs of connections failing on a wrong password or a wrong host hold no secret", () =>
    Effect.gen(function*() {
      const password = "the-Right-pa55word"
      const port = yield* startRedis({ requirepass: password })
      const closed = yield* freePort()
      const lines: Array<string> = []
      const captured: Array<Captured> = []
      const loggers = Logger.layer([
        Logger.map(Logger.formatLogFmt, (line) => void lines.push(line)),
        Logger.map(Logger.formatJson, (line) => void lines.push(line))
      ], { mergeWithExisting: true })
      const wrong = Redacted.make(secrets.redacted)
      const attempts: ReadonlyArray<readonly [string, Effect.Effect<unknown, { readonly reason: string }, any>]> = [
        ["redis wrong Redacted password", RedisStore.make("s", { connection: { host: "127.0.0.1", port, password: wrong } })],
        ["redis wrong URL password", RedisReminderStore.make("s", { url: `redis://:${secrets.redisUrl}@127.0.0.1:${port}` })],
        ["redis wrong host", RedisMembership.make({ url: `redis://app:${secrets.redisUrl}@127.0.0.1:${closed}` })],
        ["rediss wrong host", RedisStreamProvider.make({ connection: { url: `rediss://:${secrets.rediss}@127.0.0.1:${closed}`, tls: { key: client.key, cert: client.cert } } })],
        ["pg wrong host", PgStore.make("s", { url: `postgres://quark:${secrets.pgUrl}@127.0.0.1:${closed}/quark` })],
        ["pg wrong host, Redacted", PgReminderStore.make("s", { connection: { host: "127.0.0.1", port: closed, user: "q", password: wrong, ssl: { mode: "require", key: Redacted.make(client.key) } } })]
      ]
      for (const [what, attempt] of attempts) {
        const error = yield* Effect.flip(Effect.scoped(attempt)).pipe(
          Effect.tapCause((cause) => Effect.logError(`${what}: start failed`, cause)),
          Effect.tap((error) => Effect.logError(`${what}: start failed`, error, Cause.fail(error))),
          // Settings logged as a program would: their secrets are `Redacted`.
          Effect.annotateLogs({ connection: { url: Redacted.make(`redis://:${secrets.redisUrl}@x`), password: wrong } }),
          Effect.provide(loggers),
          capturingLogs(captured)
        )
        assert.isNotEmpty(error.reason, what)
        assertClean(what, `${error.reason} ${String(error)} ${JSON.stringify(error)}`)
      }
      assert.isAtLeast(lines.length, attempts.length * 2)
      for (const line of lines) assertClean("a log line", line)
      for (const entry of captured) assertClean("a captured log", `${entry.message} ${JSON.stringify(entry.annotations)}`)
      // A driver message that quotes a secret (none of the above does) has it replaced.
      assert.strictEqual(
        connectFailure(new Error(`bad URL redis://u:${secrets.redisUrl}@h, password ${secrets.redacted}`), [secrets.redacted]),
        "bad URL redis://u:[redacted]@h, password [redacted]"
      )
      assert.strictEqual(
        connectFailure(Object.assign(new Error("self-signed certificate"), { code: "SELF_SIGNED_CERT_IN_CHAIN" }), []),
        "TLS failed (SELF_SIGNED_CERT_IN_CHAIN): self-signed certificate"
      )
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

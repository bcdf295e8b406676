/**
 * The PostgreSQL stores on a locked-down server: a `postgres` of the test's own (started
 * once for the file) with `ssl=on`, whose `pg_hba.conf` admits password (SCRAM) logins over
 * TLS only (`hostssl`) and rejects plain TCP (`hostnossl … reject`). `PgStore` and
 * `PgReminderStore` connect with `PgSettings` (password as a `Redacted`, `verify-full`
 * against the test CA, `verify-ca`, `require`) and do a real write and read. Without TLS,
 * with a wrong password, a CA that did not sign the server's certificate, or a name the
 * certificate does not hold, the build fails with a `StoreError` (operation `"connect"`)
 * saying what failed and never holding the password.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import { PgReminderStore, PgSettings, PgStore } from "../../src/Persistence/pg.ts"
import type { StoreError } from "../../src/Persistence/PersistenceError.ts"
import { authority } from "../support/certificates.ts"
import { startPostgres } from "../support/secureServers.ts"

const ca = authority("quark-pg-tls-ca")
const stranger = authority("quark-pg-stranger-ca")
const password = "pg-Pa55word-xyzzy"

const reasonOf = <A, R>(effect: Effect.Effect<A, StoreError, R>) =>
  Effect.map(Effect.exit(Effect.scoped(effect)), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "the connection succeeded")
    const failure = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    assert.isDefined(failure, `not a typed failure: ${String(Exit.isFailure(exit) ? exit.cause : "")}`)
    const error = (failure as { readonly error: StoreError }).error
    assert.strictEqual(error.operation, "connect")
    assert.notInclude(error.reason, password)
    assert.notInclude(String(error), password)
    return error.reason
  })

describe("PostgreSQL with TLS", () => {
  it.live("PgStore and PgReminderStore connect over verified TLS and work; plain, wrong password and untrusted fail typed", () =>
    Effect.gen(function*() {
      const server = yield* startPostgres({ server: ca.issue("pg.quark.test"), caFile: ca.certFile }, password)
      const settings = (overrides: Partial<PgSettings.Settings> = {}): PgSettings.Settings => ({
        host: "127.0.0.1",
        port: server.port,
        database: server.database,
        user: server.user,
        password: Redacted.make(password),
        ssl: { mode: "verify-full", ca: ca.cert },
        ...overrides
      })

      // PgStore: verify-full (the certificate holds IP 127.0.0.1).
      const store = yield* PgStore.make("pg-tls", { tablePrefix: "tls_", connection: settings() })
      const key = { type: "Tls", id: "a", record: "r" }
      assert.strictEqual(yield* store.state.write(key, `{"n":1}`, 0), 1)
      assert.deepStrictEqual(yield* store.state.read(key), { data: `{"n":1}`, version: 1 })

      // PgReminderStore: the URL holds user and password; verify-ca from a file ignores the name.
      const reminders = yield* PgReminderStore.make("pg-tls", {
        url: `postgres://${server.user}:${password}@127.0.0.1:${server.port}/${server.database}`,
        connection: { ssl: { mode: "verify-ca", caFile: ca.certFile, servername: "not-its-name.test" } }
      })
      const reminder = { key: { type: "Tls", id: "a", name: "tick" }, bucket: 0, nextDue: 1_000, data: "{}" }
      assert.strictEqual(yield* reminders.put(reminder, 0), 1)
      assert.strictEqual((yield* reminders.get(reminder.key))?.version, 1)

      // `require` encrypts without verifying: even a stranger's CA does not matter.
      const encrypted = yield* PgStore.make("pg-tls", { tablePrefix: "tls_", connection: settings({ ssl: { mode: "require" } }) })
      assert.deepStrictEqual(yield* encrypted.state.read(key), { data: `{"n":1}`, version: 1 })

      // Without TLS the server admits nobody (`hostnossl … reject`).
      assert.match(yield* reasonOf(PgStore.make("pg-tls", { connection: settings({ ssl: false }) })), /authentication failed: pg_hba.conf rejects connection .*no encryption/)
      // A wrong password.
      assert.match(
        yield* reasonOf(PgStore.make("pg-tls", { connection: settings({ password: Redacted.make("wrong-one") }) })),
        /authentication failed: password authentication failed for user "quark"/
      )
      // A wrong password in a URL: not in the reason either.
      const inUrl = "Wr0ng-in-url-secret"
      const urlReason = yield* reasonOf(PgReminderStore.make("pg-tls", {
        url: `postgres://${server.user}:${inUrl}@127.0.0.1:${server.port}/${server.database}?sslmode=require`,
        connection: { ssl: { mode: "require" } }
      }))
      assert.match(urlReason, /authentication failed/)
      assert.notInclude(urlReason, inUrl)
      // A CA that did not sign the server's certificate.
      assert.match(
        yield* reasonOf(PgStore.make("pg-tls", { connection: settings({ ssl: { mode: "verify-full", ca: stranger.cert } }) })),
        /TLS failed \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/
      )
      // verify-full checks the name.
      assert.match(
        yield* reasonOf(PgReminderStore.make("pg-tls", { connection: settings({ ssl: { mode: "verify-full", ca: ca.cert, servername: "elsewhere.test" } }) })),
        /TLS failed \(ERR_TLS_CERT_ALTNAME_INVALID\)/
      )
    }).pipe(Effect.scoped), { timeout: 60_000 })
})

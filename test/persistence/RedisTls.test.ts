/**
 * Every Redis layer on a locked-down server: a redis-server of the test's own that speaks
 * TLS only (`--port 0 --tls-port`, certificates from a throw-away CA), requires a password
 * (`--requirepass`) and has an ACL user. `RedisStore`, `RedisReminderStore`,
 * `RedisStreamProvider`, `RedisMembership` and `RedisDirectory` each connect with
 * `RedisSettings` (ACL user or default user, password as a `Redacted`, the CA as text or a
 * file, a client certificate) and do one real operation. A wrong password, a CA that did not
 * sign the server's certificate and a server name the certificate does not hold each fail
 * the build with the layer's typed error (operation `"connect"`), saying what failed and
 * never holding the password.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Redacted } from "effect"
import { DirectoryError } from "../../src/Cluster/Directory.ts"
import { MembershipError } from "../../src/Cluster/Membership.ts"
import { RedisDirectory, RedisMembership } from "../../src/Cluster/redis.ts"
import * as SiloIdentity from "../../src/Cluster/SiloIdentity.ts"
import { StoreError } from "../../src/Persistence/PersistenceError.ts"
import { RedisReminderStore, RedisSettings, RedisStore, RedisStreamProvider } from "../../src/Persistence/redis.ts"
import { StreamProviderError } from "../../src/Streams/StreamProvider.ts"
import { authority } from "../support/certificates.ts"
import { startRedis } from "../support/secureServers.ts"

const ca = authority("quark-redis-tls-ca")
const server = ca.issue("redis.quark.test")
const client = ca.issue("client.quark.test")
const stranger = authority("quark-redis-stranger-ca")

const password = "r3d1s-Def4ult-pa55"
const aclPassword = "acl-Us3r-s3cret-77"

const prefix = `quark-tls-${Date.now().toString(36)}`

/** Settings of the ACL user, over TLS verified against the test CA. */
const settings = (port: number, overrides: Partial<RedisSettings.Settings> = {}): RedisSettings.Settings => ({
  host: "127.0.0.1",
  port,
  username: "quark",
  password: Redacted.make(aclPassword),
  tls: { ca: ca.cert },
  ...overrides
})

/** The failure of `effect` (which must fail), as its tag, operation and reason. */
const failureOf = <A, E extends { readonly _tag: string; readonly operation: string; readonly reason: string }, R>(
  effect: Effect.Effect<A, E, R>
) =>
  Effect.map(Effect.exit(Effect.scoped(effect)), (exit) => {
    assert.isTrue(Exit.isFailure(exit), "the connection succeeded")
    const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
    assert.isDefined(error, `not a typed failure: ${String(Exit.isFailure(exit) ? exit.cause : "")}`)
    const { _tag, operation, reason } = (error as { readonly error: E }).error
    assert.notInclude(reason, password)
    assert.notInclude(reason, aclPassword)
    return { _tag, operation, reason }
  })

describe("Redis with AUTH and TLS", () => {
  it.live("every Redis layer connects with AUTH + TLS and works; bad credentials and certificates fail typed", () =>
    Effect.gen(function*() {
      const port = yield* startRedis({
        requirepass: password,
        users: [["quark", "on", `>${aclPassword}`, "~*", "&*", "+@all"]],
        tls: { server, caFile: ca.certFile }
      })

      // RedisStore: the ACL user, a client certificate (the server accepts one), the CA as a file.
      const store = yield* RedisStore.make("tls", {
        keyPrefix: prefix,
        connection: settings(port, {
          tls: { caFile: ca.certFile, certFile: client.certFile, key: Redacted.make(client.key), servername: "redis.quark.test" }
        })
      })
      const key = { type: "Tls", id: "a", record: "r" }
      assert.strictEqual(yield* store.state.write(key, `{"n":1}`, 0), 1)
      assert.deepStrictEqual(yield* store.state.read(key), { data: `{"n":1}`, version: 1 })
      yield* store.state.clear(key, 1)

      // RedisReminderStore: the default user by the password of a rediss:// URL (TLS from the scheme).
      const reminders = yield* RedisReminderStore.make("tls", {
        keyPrefix: prefix,
        url: `rediss://:${password}@127.0.0.1:${port}`,
        connection: { tls: { ca: ca.cert } }
      })
      const reminder = { key: { type: "Tls", id: "a", name: "tick" }, bucket: 0, nextDue: 1_000, data: "{}" }
      assert.strictEqual(yield* reminders.put(reminder, 0), 1)
      assert.strictEqual((yield* reminders.get(reminder.key))?.version, 1)
      yield* reminders.remove(reminder.key, 1)

      // RedisStreamProvider: a Redacted URL holding the ACL user's password.
      const provider = yield* RedisStreamProvider.make({
        keyPrefix: `${prefix}:streams`,
        partitions: 1,
        connection: { url: Redacted.make(`rediss://quark:${aclPassword}@127.0.0.1:${port}`), tls: { ca: ca.cert } }
      })
      const [token] = yield* provider.append(0, [{ namespace: "n", key: "k", payload: { x: 1 } }])
      assert.strictEqual(yield* provider.lastToken(0), token)

      // RedisMembership, as docs/security.md configures it: the user in a rediss:// URL, the
      // password beside it. A join runs over two connections (command and subscriber).
      const membership = yield* RedisMembership.make({
        keyPrefix: prefix,
        cluster: "tls",
        connection: { url: `rediss://quark@127.0.0.1:${port}`, password: Redacted.make(aclPassword), tls: { caFile: ca.certFile } }
      })
      const self = yield* SiloIdentity.generate("127.0.0.1", 7001)
      yield* membership.join(self)
      assert.include((yield* membership.members).map((m) => m.identity.id), self.id)

      // RedisDirectory.
      const directory = yield* RedisDirectory.make({ keyPrefix: prefix, cluster: "tls", connection: settings(port) })
      const address = { type: "Tls", id: "a" }
      assert.strictEqual((yield* directory.register(address, self.id, 10_000))._tag, "Registered")
      assert.strictEqual(yield* directory.lookup(address), self.id)

      // A wrong password: an authentication failure, for the ACL user and the default one.
      const wrong = yield* failureOf(RedisStore.make("tls", { connection: settings(port, { password: Redacted.make("nope-wrong") }) }))
      assert.deepInclude(wrong, { _tag: "StoreError", operation: "connect" })
      assert.match(wrong.reason, /^authentication failed: WRONGPASS/)
      const noUser = yield* failureOf(RedisDirectory.make({ connection: settings(port, { username: undefined, password: Redacted.make("nope") }) }))
      assert.deepInclude(noUser, { _tag: "DirectoryError", operation: "connect" })
      assert.match(noUser.reason, /^authentication failed/)
      // No password at all: the server says authentication is required.
      const none = yield* failureOf(RedisMembership.make({ connection: settings(port, { username: undefined, password: undefined }) }))
      assert.deepInclude(none, { _tag: "MembershipError", operation: "connect" })
      assert.match(none.reason, /^authentication failed: NOAUTH/)

      // A CA that did not sign the server's certificate: TLS fails, before any password is sent.
      const untrusted = yield* failureOf(RedisReminderStore.make("tls", { connection: settings(port, { tls: { ca: stranger.cert } }) }))
      assert.deepInclude(untrusted, { _tag: "StoreError", operation: "connect" })
      assert.match(untrusted.reason, /^TLS failed \((SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)\)/)
      // Node's own CAs do not know the test CA either.
      const defaults = yield* failureOf(RedisStreamProvider.make({ connection: settings(port, { tls: true }) }))
      assert.deepInclude(defaults, { _tag: "StreamProviderError", operation: "connect" })
      assert.match(defaults.reason, /^TLS failed/)
      // The certificate does not hold the name asked for.
      const otherName = yield* failureOf(RedisStore.make("tls", { connection: settings(port, { tls: { ca: ca.cert, servername: "elsewhere.test" } }) }))
      assert.match(otherName.reason, /^TLS failed \(ERR_TLS_CERT_ALTNAME_INVALID\)/)
      // A TLS file that cannot be read fails the build, naming the file.
      const missing = yield* failureOf(RedisStore.make("tls", { connection: settings(port, { tls: { caFile: "/nonexistent/ca.pem" } }) }))
      assert.strictEqual(missing.reason, "cannot read tls.caFile /nonexistent/ca.pem: ENOENT")
    }).pipe(Effect.scoped), { timeout: 30_000 })
})

// The typed errors the failures above are (imported so a rename breaks this file).
void [DirectoryError, MembershipError, StoreError, StreamProviderError]

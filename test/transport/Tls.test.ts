/**
 * TLS and mutual TLS on the transport, certificate reload, and TLS through a cluster:
 * the non-loopback warning, `requireTls`, and two silos and a client over mutual TLS with
 * a cluster secret. Certificates come from `test/support/certificates.ts` (openssl).
 */
import { assert, describe, it } from "@effect/vitest"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Exit, Layer, Schedule } from "effect"
import { ActorUnavailable } from "../../src/Actor/ActorError.ts"
import * as ClusterSilo from "../../src/Cluster/ClusterSilo.ts"
import * as MemoryMembership from "../../src/Cluster/MemoryMembership.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import type { RequestEnvelope } from "../../src/Transport/Envelope.ts"
import type { PeerInfo } from "../../src/Transport/PeerInfo.ts"
import * as Server from "../../src/Transport/Server.ts"
import * as Tls from "../../src/Transport/Tls.ts"
import { authority } from "../support/certificates.ts"
import { type Captured, capturingLogs } from "../support/capturedLogs.ts"
import { bounded, doubler, request, success } from "../support/doubler.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"

const host = "127.0.0.1"
const ca = authority("quark-tls-test-ca")
const otherCa = authority("quark-tls-other-ca")
const siloCert = ca.issue("silo-a")
const clientCert = ca.issue("client-1")

const tlsServer = (tls: Tls.TlsConfig | Tls.Credentials) =>
  Effect.gen(function*() {
    const seen: Array<PeerInfo> = []
    const server = yield* Server.make({
      port: 0,
      tls,
      handle: (req: RequestEnvelope, peer: PeerInfo) => Effect.andThen(Effect.sync(() => seen.push(peer)), doubler(req))
    })
    return { server, seen }
  })

const once = Schedule.spaced("1 hour")

describe("TLS", () => {
  it.live("a round trip over TLS: the client verifies the server against the CA; no client certificate asked", () =>
    Effect.gen(function*() {
      const { seen, server } = yield* tlsServer({ cert: siloCert.cert, key: siloCert.key })
      const connection = yield* Connection.make({ host, port: server.port, tls: { ca: ca.cert } })
      assert.strictEqual(success(yield* bounded(connection.call(request(21)))), 42)
      assert.strictEqual(seen[0]!.role, "client")
      assert.isUndefined(seen[0]!.certificate)
      // A client that trusts another CA refuses this server; a plain-TCP client gets nowhere.
      const distrustful = yield* Connection.make({ host, port: server.port, tls: { ca: otherCa.cert }, reconnect: once })
      assert.instanceOf(yield* bounded(Effect.flip(distrustful.call(request(1)))), ActorUnavailable)
      const plain = yield* Connection.make({ host, port: server.port, reconnect: once, connectTimeout: "300 millis" })
      assert.instanceOf(yield* bounded(Effect.flip(plain.call(request(1)))), ActorUnavailable)
      assert.strictEqual(seen.length, 1)
    }).pipe(Effect.scoped))

  it.live("mutual TLS: a client certificate of the CA is served and seen by the handler; none, or another CA's, is refused", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const { seen, server } = yield* tlsServer({ certFile: siloCert.certFile, keyFile: siloCert.keyFile, caFile: ca.certFile })
      const good = yield* Connection.make({
        host,
        port: server.port,
        tls: { ca: ca.cert, certFile: clientCert.certFile, keyFile: clientCert.keyFile }
      })
      assert.strictEqual(success(yield* bounded(good.call(request(2)))), 4)
      const certificate = seen[0]!.certificate!
      assert.strictEqual(certificate.commonName, "client-1")
      assert.include(certificate.subjectAltName, "DNS:client-1")
      assert.match(certificate.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
      const anonymous = yield* Connection.make({ host, port: server.port, tls: { ca: ca.cert }, reconnect: once })
      const refused = yield* bounded(Effect.flip(anonymous.call(request(1))))
      assert.instanceOf(refused, ActorUnavailable)
      const stranger = otherCa.issue("stranger")
      const foreign = yield* Connection.make({
        host,
        port: server.port,
        tls: { ca: ca.cert, cert: stranger.cert, key: stranger.key },
        reconnect: once
      })
      assert.instanceOf(yield* bounded(Effect.flip(foreign.call(request(1)))), ActorUnavailable)
      assert.strictEqual(seen.length, 1, "nothing from the refused peers reached the handler")
      assert.isAtLeast(logs.filter((log) => log.message === "transport: TLS handshake failed").length, 1)
    }).pipe(Effect.scoped, capturingLogs(logs))
  })

  it.live("reload: replaced files serve new connections with the new certificate; open ones keep working; a bad file keeps the old", () =>
    Effect.gen(function*() {
      const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-reload-"))
      const certFile = Path.join(dir, "silo.crt")
      const keyFile = Path.join(dir, "silo.key")
      Fs.copyFileSync(siloCert.certFile, certFile)
      Fs.copyFileSync(siloCert.keyFile, keyFile)
      const credentials = yield* Tls.make({ certFile, keyFile })
      const { server } = yield* tlsServer(credentials)
      // Which certificate each client saw (its check of the server's identity records it).
      const dial = (seen: Array<string>) =>
        Connection.make({
          host,
          port: server.port,
          tls: {
            ca: ca.cert,
            checkServerIdentity: (_host, cert) => {
              seen.push(String(cert.subject.CN))
              return undefined
            }
          }
        })
      const before: Array<string> = []
      const first = yield* dial(before)
      assert.strictEqual(success(yield* bounded(first.call(request(1)))), 2)
      assert.deepStrictEqual(before, ["silo-a"])
      const renewed = ca.issue("silo-a-renewed")
      Fs.copyFileSync(renewed.certFile, certFile)
      Fs.copyFileSync(renewed.keyFile, keyFile)
      yield* credentials.reload
      assert.strictEqual(credentials.loads, 2)
      const after: Array<string> = []
      const second = yield* dial(after)
      assert.strictEqual(success(yield* bounded(second.call(request(2)))), 4)
      assert.deepStrictEqual(after, ["silo-a-renewed"])
      assert.strictEqual(success(yield* bounded(first.call(request(3)))), 6, "the open connection goes on")
      assert.deepStrictEqual(before, ["silo-a"], "and was not renegotiated")
      // A broken key: the reload fails typed, the last good material stays.
      Fs.writeFileSync(keyFile, "not a key")
      const failed = yield* Effect.flip(credentials.reload)
      assert.instanceOf(failed, Tls.TlsError)
      assert.notInclude(failed.reason, "not a key")
      const third: Array<string> = []
      const connection = yield* dial(third)
      assert.strictEqual(success(yield* bounded(connection.call(request(4)))), 8)
      assert.deepStrictEqual(third, ["silo-a-renewed"])
    }).pipe(Effect.scoped))
})

describe("TLS in a cluster", () => {
  const mutual = (name: string): Tls.TlsConfig => {
    const leaf = ca.issue(name)
    return { certFile: leaf.certFile, keyFile: leaf.keyFile, caFile: ca.certFile }
  }

  it.live("two silos and a client over mutual TLS with a cluster secret: calls cross silos; a client of another cluster is refused", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({
        silos: 2,
        implementations: counterLayer(),
        config: { tls: mutual("silo"), clusterSecret: "s3cret", clusterId: "tls-test" }
      })
      const [a, b] = cluster.silos
      // Counters spread over both silos: some are called across, silo to silo.
      for (let i = 0; i < 8; i++) {
        assert.strictEqual(yield* a!.run(Effect.flatMap(Counter.ref(`c-${i}`), (ref) => ref.Increment({ by: 2 }))), 2)
        assert.strictEqual(yield* b!.run(Effect.flatMap(Counter.ref(`c-${i}`), (ref) => ref.Get())), 2)
      }
      const client = yield* cluster.addClientWith({ clusterId: "tls-test", tls: mutual("client") })
      assert.strictEqual(yield* client.run(Effect.flatMap(Counter.ref("c-0"), (ref) => ref.Increment({ by: 1 }))), 3)
      // Without TLS, the right cluster id gets nowhere either (each side waits for the other
      // to speak first: the call times out, or fails once the connect timeout ends the attempt).
      const plain = yield* cluster.addClientWith({ clusterId: "tls-test", requestTimeout: "1 second" })
      const unreached = yield* bounded(plain.run(Effect.flip(Effect.flatMap(Counter.ref("c-1"), (ref) => ref.Get()))))
      assert.oneOf(unreached._tag, ["ActorUnavailable", "CallTimeout"])
      const lost = yield* cluster.addClientWith({ clusterId: "other", tls: mutual("client-2") })
      const error = yield* bounded(lost.run(Effect.flip(Effect.flatMap(Counter.ref("c-1"), (ref) => ref.Get()))))
      assert.strictEqual(error._tag, "ActorUnavailable")
      assert.include((error as ActorUnavailable).reason, "configuration mismatch")
    }).pipe(Effect.scoped), 30_000)

  it.live("silos given loaded credentials (Tls.make, for reloading them yourself) serve over mutual TLS", () =>
    Effect.gen(function*() {
      const credentials = yield* Tls.make(mutual("silo-credentials"))
      const cluster = yield* TestCluster.make({ silos: 2, implementations: counterLayer(), config: { tls: credentials } })
      const [a, b] = cluster.silos
      for (let i = 0; i < 6; i++) {
        assert.strictEqual(yield* a!.run(Effect.flatMap(Counter.ref(`k-${i}`), (ref) => ref.Increment({ by: 1 }))), 1)
        assert.strictEqual(yield* b!.run(Effect.flatMap(Counter.ref(`k-${i}`), (ref) => ref.Get())), 1)
      }
      yield* credentials.reload
      const client = yield* cluster.addClientWith({ tls: yield* Tls.make(mutual("client-credentials")) })
      assert.strictEqual(yield* client.run(Effect.flatMap(Counter.ref("k-0"), (ref) => ref.Get())), 1)
    }).pipe(Effect.scoped), 30_000)

  it.live("a silo on a non-loopback host without TLS warns, and without clusterSecret; with requireTls it refuses to start", () => {
    const logs: Array<Captured> = []
    return Effect.gen(function*() {
      const registry = MemoryMembership.makeRegistry()
      const silo = (config: ClusterSilo.ClusterSiloConfig) =>
        Layer.build(ClusterSilo.layer({ loadReportInterval: "off", ...config }).pipe(Layer.provide(MemoryMembership.layer(registry))))
      const refused = yield* Effect.exit(Effect.scoped(silo({ host: "0.0.0.0", requireTls: true })))
      assert.isTrue(Exit.isFailure(refused))
      const error = Exit.isFailure(refused) ? JSON.stringify(refused.cause) : ""
      assert.include(error, "TlsError")
      assert.include(error, "requireTls")
      assert.notInclude(logs.map((log) => log.message).join("\n"), "without TLS (set tls")
      yield* Effect.scoped(silo({ host: "0.0.0.0" }))
      const warning = logs.find((log) => log.level === "Warn" && log.message.includes("listens on 0.0.0.0 without TLS"))
      assert.isDefined(warning)
      // Loopback, or TLS: no warning.
      const before = logs.length
      yield* Effect.scoped(silo({}))
      yield* Effect.scoped(silo({ host: "0.0.0.0", tls: mutual("silo-open"), requireTls: true }))
      assert.isFalse(logs.slice(before).some((log) => log.message.includes("without TLS")))
      // Off loopback without a cluster secret, any peer may claim to be a silo: said too.
      const unproven = (from: number) =>
        logs.slice(from).some((log) => log.level === "Warn" && log.message.includes("without clusterSecret"))
      assert.isTrue(unproven(before))
      const withSecret = logs.length
      yield* Effect.scoped(silo({ host: "0.0.0.0", tls: mutual("silo-open"), clusterSecret: "s3cret" }))
      assert.isFalse(unproven(withSecret))
    }).pipe(Effect.scoped, capturingLogs(logs))
  })
})

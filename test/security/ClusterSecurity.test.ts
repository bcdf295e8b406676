/**
 * Security across silos, on the in-process TestCluster: a token is authenticated on the
 * silo that serves the call, the principal flows on through nested calls between silos, a
 * denial crosses the wire as `Unauthorized`; and the receiving side of a client connection
 * (`Inbound.handler` with a client peer): a claimed principal is replaced, credentials are
 * required when configured, control requests are refused.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer } from "effect"
import type { MessageEntry } from "../../src/Actor/internal/HostedType.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import { controlType, type ControlHost } from "../../src/Cluster/internal/Control.ts"
import { handler } from "../../src/Cluster/internal/Inbound.ts"
import { codecOf, decodeFailure } from "../../src/Cluster/internal/MessageCodec.ts"
import type { RemoteRouter } from "../../src/Cluster/internal/RemoteRouter.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import { type Audit, Principal, Silo, Unauthenticated, Unauthorized } from "../../src/index.ts"
import type { ReplyOutcome, RequestEnvelope } from "../../src/Transport/Envelope.ts"
import type { PeerInfo } from "../../src/Transport/PeerInfo.ts"
import { authentication, keptAudit, security, Vault, VaultLog, vaultLayer, vaultRules } from "./fixtures.ts"

/** An id of `Vault` that `owner` hosts, as `from` sees the ring. */
const idOwnedBy = (from: TestCluster.TestMember, owner: TestCluster.TestMember, prefix: string) =>
  from.run(Effect.gen(function*() {
    const cluster = yield* Cluster
    for (let i = 0; i < 1_000; i++) {
      if ((yield* cluster.ownerOf({ type: "Vault", id: `${prefix}-${i}` })) === owner.id) return `${prefix}-${i}`
    }
    return yield* Effect.die(new Error(`no ${prefix} id on ${owner.id}`))
  }))

describe("Security across silos", () => {
  it.effect("a token is authenticated where the call is served; its principal reaches the handler and nested calls on other silos; a denial crosses the wire", () => {
    const log = new VaultLog()
    const records: Array<Audit.AuditRecord> = []
    return Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations: vaultLayer(log) })
      const [a, b] = cluster.silos as [TestCluster.TestMember, TestCluster.TestMember]
      const onB = yield* idOwnedBy(a, b, "b")
      const onA = yield* idOwnedBy(a, a, "a")
      const asAlice = Principal.withToken("alice-token")
      const alice = { id: "alice", kind: "token", roles: ["reader"] }
      assert.deepStrictEqual(yield* a.run(asAlice(Effect.flatMap(Vault.ref(onB), (v) => v.Whoami()))), alice)
      // Vault on A asks Vault on B on behalf of alice: B sees alice.
      assert.deepStrictEqual(yield* a.run(asAlice(Effect.flatMap(Vault.ref(onA), (v) => v.Relay({ to: onB })))), alice)
      // Decided and recorded on B, where the turn runs: the call from A's Relay was admitted as alice there.
      assert.isTrue(records.some((r) => r.address.id === onB && r.tag === "Whoami" && r.principal.id === "alice"))

      const denied = yield* idOwnedBy(a, b, "denied")
      const error = yield* a.run(Effect.flip(asAlice(Effect.flatMap(Vault.ref(denied), (v) => v.Write({ secret: "s" })))))
      assert.instanceOf(error, Unauthorized)
      assert.deepStrictEqual([(error as Unauthorized).principal, (error as Unauthorized).tag], ["alice", "Write"])
      assert.strictEqual(log.activationsOf(denied), 0)
    }).pipe(Effect.scoped, Effect.provide(security(records)))
  })
})

describe("Security from a client", () => {
  it.effect("a client's token is authenticated at the first silo; a principal it claims is discarded; a denial reaches it typed", () => {
    const log = new VaultLog()
    return Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations: vaultLayer(log) })
      const client = yield* cluster.addClient
      const whoami = (id: string) => Effect.flatMap(Vault.ref(id), (v) => v.Whoami())
      const bob = { id: "bob", kind: "token", roles: ["reader", "writer"] }
      for (const id of ["c-1", "c-2", "c-3"]) assert.deepStrictEqual(yield* client.run(Principal.withToken("bob-token")(whoami(id))), bob)
      const claimed = Principal.runAs({ id: "root", kind: "silo", roles: ["writer"] })
      assert.deepStrictEqual(yield* client.run(claimed(whoami("c-1"))), { id: "anonymous", kind: "anonymous", roles: [] })
      const error = yield* client.run(Effect.flip(claimed(Effect.flatMap(Vault.ref("c-4"), (v) => v.Write({ secret: "s" })))))
      assert.instanceOf(error, Unauthorized)
      assert.strictEqual((error as Unauthorized).principal, "anonymous")
      assert.strictEqual(log.activationsOf("c-4"), 0)
    }).pipe(Effect.scoped, Effect.provide(Layer.merge(authentication(), vaultRules)))
  })
})

const noControl = (remote: RemoteRouter): ControlHost => ({
  self: () => remote.self,
  address: "127.0.0.1:0",
  reachesRegistry: () => true,
  release: () => Effect.void
})

const envelope = (
  target: { readonly type: string; readonly id: string },
  tag: string,
  metadata: Record<string, string>,
  payload: Uint8Array = new Uint8Array(0)
): RequestEnvelope => ({
  requestId: 1,
  target,
  tag,
  payload,
  context: { correlationId: "c-1", metadata },
  chain: [],
  timeoutMillis: 5_000
})

const replyOf = (tag: string, outcome: ReplyOutcome): unknown => {
  const entry = Object.hasOwn(Vault.messages, tag) ? Vault.messages[tag]! : undefined
  if (outcome._tag === "Success" && entry !== undefined) return codecOf(entry).success.decode(outcome.value)
  if (outcome._tag === "Failure") return decodeFailure({} as MessageEntry, outcome.error)
  return outcome
}

const client: PeerInfo = { address: "10.1.2.3:40000", role: "client" }
const forged = { [Principal.metadataKey]: Principal.encode({ id: "root", kind: "silo", roles: ["writer"] }) }

/** A one-silo cluster with `services`, and its inbound handler. */
const inbound = <ROut, E>(log: VaultLog, services: Layer.Layer<ROut, E>) =>
  Effect.gen(function*() {
    const cluster = yield* TestCluster.make({ silos: 1, implementations: vaultLayer(log) })
    const remote = Context.get(cluster.silos[0]!.context, Silo.Silo).router.remote as RemoteRouter
    const handle = handler(remote, noControl(remote))
    return { remote, handle: (request: RequestEnvelope, peer?: PeerInfo) => Effect.map(handle(request, peer), (outcome) => replyOf(request.tag, outcome)) }
  }).pipe(Effect.provide(services))

describe("Inbound: who a client is", () => {
  it.effect("a principal a client claims is replaced at the first silo; a silo's is trusted", () =>
    Effect.gen(function*() {
      const log = new VaultLog()
      const { handle } = yield* inbound(log, Layer.merge(authentication(), vaultRules))
      const target = { type: "Vault", id: "v-1" }
      const anonymous = { id: "anonymous", kind: "anonymous", roles: [] }
      assert.deepStrictEqual(yield* handle(envelope(target, "Whoami", forged), client), anonymous)
      // With a token, the token decides (and the claim is gone all the same).
      assert.deepStrictEqual(
        yield* handle(envelope(target, "Whoami", { ...forged, [Principal.tokenKey]: "bob-token" }), client),
        { id: "bob", kind: "token", roles: ["reader", "writer"] }
      )
      // A verified client certificate, without a token: its common name.
      const certificate = { commonName: "gateway-1", subjectAltName: "", fingerprint256: "AA:BB" }
      assert.deepStrictEqual(yield* handle(envelope(target, "Whoami", forged), { ...client, certificate }), {
        id: "gateway-1",
        kind: "certificate",
        roles: []
      })
      const write = codecOf(Vault.messages["Write"]!).payload.encode({ secret: "s" })
      // The claimed writer role is gone with the claim: Write is denied, and nothing activated for it.
      assert.instanceOf(yield* handle(envelope({ type: "Vault", id: "v-w" }, "Write", forged, write), client), Unauthorized)
      assert.strictEqual(log.activationsOf("v-w"), 0)
      // From a silo (or a server that does not say), the principal is trusted as it is.
      assert.isUndefined(yield* handle(envelope({ type: "Vault", id: "v-w" }, "Write", forged, write), { address: "10.0.0.2:7000", role: "silo" }))
      const root = { id: "root", kind: "silo", roles: ["writer"] }
      assert.deepStrictEqual(yield* handle(envelope(target, "Whoami", forged), { address: "10.0.0.2:7000", role: "silo", siloId: "x" }), root)
      assert.deepStrictEqual(yield* handle(envelope(target, "Whoami", forged)), root)
    }).pipe(Effect.scoped))

  it.effect("without an Authentication service a client is anonymous; its token establishes nothing", () =>
    Effect.gen(function*() {
      const { handle } = yield* inbound(new VaultLog(), keptAudit([]))
      assert.deepStrictEqual(
        yield* handle(envelope({ type: "Vault", id: "v-2" }, "Whoami", { ...forged, [Principal.tokenKey]: "bob-token" }), client),
        { id: "anonymous", kind: "anonymous", roles: [] }
      )
    }).pipe(Effect.scoped))

  it.effect("when credentials are required, a client without any is Unauthenticated and nothing activates", () =>
    Effect.gen(function*() {
      const log = new VaultLog()
      const records: Array<Audit.AuditRecord> = []
      const { handle } = yield* inbound(log, Layer.merge(authentication({ required: true }), keptAudit(records)))
      const error = yield* handle(envelope({ type: "Vault", id: "v-3" }, "Read", forged), client)
      assert.instanceOf(error, Unauthenticated)
      assert.strictEqual(log.activationsOf("v-3"), 0)
      assert.deepStrictEqual(records.map((r) => [r.outcome, r.correlationId]), [["unauthenticated", "c-1"]])
      const bad = yield* handle(envelope({ type: "Vault", id: "v-3" }, "Read", { [Principal.tokenKey]: "mallory" }), client)
      assert.strictEqual((bad as Unauthenticated).reason, "unknown token")
      assert.strictEqual(yield* handle(envelope({ type: "Vault", id: "v-3" }, "Read", { [Principal.tokenKey]: "alice-token" }), client), "contents")
    }).pipe(Effect.scoped))

  it.effect("a control request from a client is refused with Unauthorized; from a silo it is answered", () =>
    Effect.gen(function*() {
      const { handle, remote } = yield* inbound(new VaultLog(), Layer.empty)
      const request = envelope({ type: controlType, id: remote.self! }, "RegistryStatus", {})
      const refused = yield* handle(request, client)
      assert.instanceOf(refused, Unauthorized)
      assert.include((refused as Unauthorized).reason, "silos only")
      const answered = yield* handle(request, { address: "10.0.0.2:7000", role: "silo" })
      assert.deepStrictEqual(answered, { _tag: "Success", value: Uint8Array.of(1) }) // "reachable"
    }).pipe(Effect.scoped))
})

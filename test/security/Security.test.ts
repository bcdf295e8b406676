/**
 * Authentication, authorization and audit on one silo: the principal a handler sees, the
 * rules that run before the turn (nothing activates for a denied call), denied one-way
 * messages, system types, and what the audit records.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer } from "effect"
import {
  Audit,
  Authentication,
  Authorization,
  Principal,
  RequestContext,
  Silo,
  Unauthenticated,
  Unauthorized
} from "../../src/index.ts"
import { capturingLogs, type Captured } from "../support/capturedLogs.ts"
import {
  authentication,
  keptAudit,
  security,
  SystemProbe,
  systemProbeLayer,
  Vault,
  VaultLog,
  vaultLayer,
  vaultRules
} from "./fixtures.ts"

const siloWith = <E, R>(log: VaultLog, services: Layer.Layer<any, E, R>) =>
  Effect.provide(Silo.layerTest(vaultLayer(log), systemProbeLayer).pipe(Layer.provide(services)))

const vault = (id: string) => Vault.refOrDie(id)

describe("Security", () => {
  it.effect("a silo given no security service has no gate", () =>
    Effect.gen(function*() {
      const silo = yield* Silo.Silo
      assert.isUndefined(silo.router.gate)
      // And calls carry no principal: the silo's own.
      assert.deepStrictEqual(yield* (yield* vault("v")).Whoami(), { id: "silo", kind: "silo", roles: [] })
    }).pipe(Effect.provide(Silo.layerTest(vaultLayer(new VaultLog())))))

  it.effect("a handler sees the principal its caller's token establishes; the token itself is consumed; nested calls carry the principal", () => {
    const log = new VaultLog()
    const records: Array<Audit.AuditRecord> = []
    return Effect.gen(function*() {
      const a = yield* vault("a")
      const asAlice = Principal.withToken("alice-token")
      assert.deepStrictEqual(yield* asAlice(a.Whoami()), { id: "alice", kind: "token", roles: ["reader"] })
      // The handler's metadata holds the principal, not the token.
      assert.deepStrictEqual(yield* asAlice(a.Keys()), [Principal.metadataKey])
      // Vault/a acts on behalf of alice when it calls Vault/b.
      assert.deepStrictEqual(yield* asAlice(a.Relay({ to: "b" })), { id: "alice", kind: "token", roles: ["reader"] })
      // Without a token: the silo's own code.
      assert.deepStrictEqual(yield* a.Whoami(), { id: "silo", kind: "silo", roles: [] })
      // The nested call was admitted (and audited) as alice.
      const nested = records.filter((r) => r.address.id === "b")
      assert.deepStrictEqual(nested.map((r) => [r.principal.id, r.tag, r.outcome]), [["alice", "Whoami", "allowed"]])
    }).pipe(siloWith(log, security(records)))
  })

  it.effect("trusted code may run as a principal it established itself", () =>
    Effect.gen(function*() {
      const a = yield* vault("a")
      const carol: Principal.Principal = { id: "carol", kind: "asserted", roles: ["auditor"] }
      assert.deepStrictEqual(yield* Principal.runAs(carol)(a.Whoami()), { id: "carol", kind: "asserted", roles: ["auditor"] })
      // Outside any call, `current` reads the frame too.
      assert.deepStrictEqual(yield* Principal.runAs(carol)(Principal.current), carol)
      assert.deepStrictEqual(yield* Principal.current, Principal.silo)
    }).pipe(siloWith(new VaultLog(), security([]))))

  it.effect("an unknown token is Unauthenticated before the turn: nothing activates", () => {
    const log = new VaultLog()
    const records: Array<Audit.AuditRecord> = []
    return Effect.gen(function*() {
      const a = yield* vault("a")
      const error = yield* Effect.flip(Principal.withToken("mallory-token")(a.Read()))
      assert.instanceOf(error, Unauthenticated)
      assert.strictEqual((error as Unauthenticated).reason, "unknown token")
      assert.include(error.message, "not retried")
      assert.strictEqual(log.activationsOf("a"), 0)
      assert.deepStrictEqual(records.map((r) => [r.principal.id, r.outcome, r.reason]), [["anonymous", "unauthenticated", "unknown token"]])
    }).pipe(siloWith(log, security(records)))
  })

  it.effect("rules per type and per message: a denial is Unauthorized, the handler never runs, the actor never activates", () => {
    const log = new VaultLog()
    return Effect.gen(function*() {
      const v = yield* vault("v")
      const asAlice = Principal.withToken("alice-token")
      const asBob = Principal.withToken("bob-token")
      // Write needs the writer role: alice is a reader only.
      const denied = yield* Effect.flip(asAlice(v.Write({ secret: "s" })))
      assert.instanceOf(denied, Unauthorized)
      assert.deepStrictEqual(
        { address: (denied as Unauthorized).address, tag: (denied as Unauthorized).tag, principal: (denied as Unauthorized).principal },
        { address: { type: "Vault", id: "v" }, tag: "Write", principal: "alice" }
      )
      assert.include(denied.message, "not retried")
      assert.strictEqual(log.activationsOf("v"), 0)
      assert.strictEqual(log.turnsOf("v"), 0)
      // The same message for bob, a writer; Read for alice, a reader.
      yield* asBob(v.Write({ secret: "s" }))
      assert.strictEqual(yield* asAlice(v.Read()), "contents")
      assert.strictEqual(log.activationsOf("v"), 1)
      assert.strictEqual(log.turnsOf("v"), 2)
      // Read without a reader role: the silo's own code has none.
      assert.instanceOf(yield* Effect.flip(v.Read()), Unauthorized)
      // Whoami falls to the type's `otherwise` (allow), even for the anonymous.
      assert.strictEqual((yield* Principal.runAs(Principal.anonymous)(v.Whoami())).id, "anonymous")
      assert.strictEqual(log.turnsOf("v"), 3)
    }).pipe(siloWith(log, Layer.merge(authentication(), vaultRules)))
  })

  it.effect("a rule that is an effect decides; one that dies denies", () =>
    Effect.gen(function*() {
      const v = yield* vault("v")
      assert.strictEqual(yield* Principal.runAs({ id: "ok", kind: "asserted" })(v.Read()), "contents")
      assert.instanceOf(yield* Effect.flip(Principal.runAs({ id: "no", kind: "asserted" })(v.Read())), Unauthorized)
      assert.instanceOf(yield* Effect.flip(Principal.runAs({ id: "boom", kind: "asserted" })(v.Read())), Unauthorized)
    }).pipe(
      siloWith(
        new VaultLog(),
        Authorization.layer({
          default: (request) =>
            request.principal.id === "boom" ?
              Effect.die(new Error("rule bug")) :
              Effect.succeed(request.principal.id === "ok" ? "allow" : "deny")
        })
      ),
      capturingLogs([])
    ))

  it.effect("a denied one-way message is dropped, logged and audited; an allowed one runs", () => {
    const log = new VaultLog()
    const records: Array<Audit.AuditRecord> = []
    const lines: Array<Captured> = []
    return Effect.gen(function*() {
      const v = yield* vault("v")
      yield* Principal.runAs(Principal.anonymous)(v.tell.Note({ text: "from nobody" }))
      assert.strictEqual(log.activationsOf("v"), 0)
      const dropped = lines.find((line) => line.message.includes("one-way Note to Vault/v dropped"))
      assert.isDefined(dropped)
      assert.strictEqual(dropped!.level, "Warn")
      assert.deepStrictEqual(records.map((r) => [r.principal.id, r.tag, r.oneWay, r.outcome]), [["anonymous", "Note", true, "denied"]])
      // An allowed one: the Note runs (one-way turns run on their own fiber).
      yield* Principal.withToken("alice-token")(v.tell.Note({ text: "from alice" }))
      yield* v.Whoami() // queued behind the Note: once it answers, the Note has run
      assert.deepStrictEqual(log.notes, ["from alice"])
    }).pipe(
      siloWith(
        log,
        Layer.mergeAll(
          authentication(),
          keptAudit(records),
          Authorization.layer({ default: (request) => request.principal.kind !== "anonymous" })
        )
      ),
      capturingLogs(lines)
    )
  })

  it.effect("system types ($...) are not subject to the default rule, only to a rule that names them", () =>
    Effect.gen(function*() {
      const denyAll = Authorization.layer({ default: Authorization.deny })
      const probe = (layer: Layer.Layer<Authorization.Authorization>) =>
        Effect.flatMap(SystemProbe.refOrDie("0"), (p) => p.Read()).pipe(Effect.exit, siloWith(new VaultLog(), layer))
      assert.deepStrictEqual(yield* probe(denyAll), Exit.succeed("system"))
      const named = Authorization.layer({ default: Authorization.deny, rules: [Authorization.forType("$probe", { otherwise: Authorization.deny })] })
      const exit = yield* probe(named)
      assert.isTrue(Exit.isFailure(exit) && Exit.findErrorOption(exit).pipe((e) => e._tag === "Some" && e.value instanceof Unauthorized))
    }))

  it.effect("the audit records who called what, never the payload unless asked; system types only if asked", () =>
    Effect.gen(function*() {
      const records: Array<Audit.AuditRecord> = []
      yield* Effect.gen(function*() {
        yield* RequestContext.withRequestContext({ correlationId: "corr-7" })(
          Principal.withToken("bob-token")((yield* vault("v")).Write({ secret: "hunter2" }))
        )
        yield* Effect.flatMap(SystemProbe.refOrDie("0"), (p) => p.Read())
      }).pipe(siloWith(new VaultLog(), Layer.merge(authentication(), keptAudit(records))))
      assert.strictEqual(records.length, 1)
      const [record] = records
      assert.deepStrictEqual(
        { principal: record!.principal.id, address: record!.address, tag: record!.tag, outcome: record!.outcome, correlationId: record!.correlationId },
        { principal: "bob", address: { type: "Vault", id: "v" }, tag: "Write", outcome: "allowed", correlationId: "corr-7" }
      )
      assert.isFalse("payload" in record!)
      assert.notInclude(JSON.stringify(record), "hunter2")

      const withPayloads: Array<Audit.AuditRecord> = []
      yield* Effect.gen(function*() {
        yield* (yield* vault("v")).Write({ secret: "hunter2" })
        yield* Effect.flatMap(SystemProbe.refOrDie("0"), (p) => p.Read())
      }).pipe(siloWith(new VaultLog(), keptAudit(withPayloads, { includePayloads: true, includeSystemTypes: true })))
      assert.deepStrictEqual(withPayloads.map((r) => [r.address.type, r.payload]), [["Vault", { secret: "hunter2" }], ["$probe", undefined]])
      // A call that starts a chain gets a correlation id of its own.
      assert.notStrictEqual(withPayloads[0]!.correlationId, "")
    }))

  it.effect("the default sink writes one log line per record, without the payload", () => {
    const lines: Array<Captured> = []
    return Effect.gen(function*() {
      yield* Principal.withToken("alice-token")((yield* vault("v")).Write({ secret: "hunter2" }))
      const audit = lines.filter((line) => line.message === "quark.audit")
      assert.strictEqual(audit.length, 1)
      const annotations = audit[0]!.annotations
      assert.strictEqual(annotations["quark.audit.principal"], "alice")
      assert.strictEqual(annotations["quark.audit.address"], "Vault/v")
      assert.strictEqual(annotations["quark.audit.tag"], "Write")
      assert.strictEqual(annotations["quark.audit.outcome"], "allowed")
      assert.notInclude(JSON.stringify(lines), "hunter2")
    }).pipe(siloWith(new VaultLog(), Layer.merge(authentication(), Audit.layer())), capturingLogs(lines))
  })

  it.effect("Authentication: a certificate is its common name by default; a token without a verifier establishes nothing", () =>
    Effect.gen(function*() {
      const service = yield* Authentication.Authentication
      const certificate = { commonName: "billing-gw", subjectAltName: "", fingerprint256: "AA:BB" }
      assert.deepStrictEqual(yield* service.authenticate({ certificate }), {
        id: "billing-gw",
        kind: "certificate",
        attributes: { fingerprint256: "AA:BB" }
      })
      const error = yield* Effect.flip(service.authenticate({ token: "t" }))
      assert.strictEqual(error.reason, "this silo has no way to verify a token")
    }).pipe(Effect.provide(Authentication.layer({}))))
})

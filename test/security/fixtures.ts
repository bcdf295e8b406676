/**
 * Actors and services for the security tests: a `Vault` that reports who called it and
 * counts its activations and turns, credentials that tests recognise, and an audit sink
 * that keeps its records.
 */
import { Effect, Layer, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Audit, Authentication, Authorization, Principal, RequestContext } from "../../src/index.ts"
import { systemContract } from "../../src/Actor/internal/SystemContract.ts"

const Caller = Schema.Struct({ id: Schema.String, kind: Schema.String, roles: Schema.Array(Schema.String) })

export const Whoami = Rpc.make("Whoami", { success: Caller })
/** The metadata keys the handler's request context holds. */
export const Keys = Rpc.make("Keys", { success: Schema.Array(Schema.String) })
export const Read = Rpc.make("Read", { success: Schema.String })
export const Write = Rpc.make("Write", { payload: { secret: Schema.String }, success: Schema.Void })
/** Asks `Vault(to).Whoami` from within the turn. */
export const Relay = Rpc.make("Relay", { payload: { to: Schema.String }, success: Caller })
export const Note = Rpc.make("Note", { payload: { text: Schema.String } })

export const Vault = Actor.make("Vault", [Whoami, Keys, Read, Write, Relay, Note])

/** What the vaults did: activations and turns per id, notes received. */
export class VaultLog {
  readonly activations = new Map<string, number>()
  readonly turns = new Map<string, number>()
  readonly notes: Array<string> = []
  bump(map: Map<string, number>, id: string) {
    map.set(id, (map.get(id) ?? 0) + 1)
  }
  activationsOf(id: string): number {
    return this.activations.get(id) ?? 0
  }
  turnsOf(id: string): number {
    return this.turns.get(id) ?? 0
  }
}

const callerOf = (principal: Principal.Principal) => ({ id: principal.id, kind: principal.kind, roles: [...(principal.roles ?? [])] })

export const vaultLayer = (log: VaultLog) =>
  Vault.toLayer(Effect.gen(function*() {
    const self = yield* ActorContext
    const id = self.address.id
    log.bump(log.activations, id)
    const turn = <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.andThen(Effect.sync(() => log.bump(log.turns, id)), effect)
    return Vault.of({
      Whoami: () => turn(Effect.map(Principal.current, callerOf)),
      Keys: () => turn(Effect.map(RequestContext.current, (context) => Object.keys(context.metadata).sort())),
      Read: () => turn(Effect.succeed("contents")),
      Write: () => turn(Effect.void),
      Relay: ({ to }) => turn(Effect.flatMap(Vault.refOrDie(to), (vault) => Actor.orDieOnCallError(vault.Whoami()))),
      Note: ({ text }) => turn(Effect.sync(() => void log.notes.push(text)))
    })
  }))

/** A system type (its name starts with `$`), as Quark's own reminder buckets and stream agents are. */
export const SystemProbe = Actor.make("$probe", [Read], { [systemContract]: true } as Actor.ContractOptions)

export const systemProbeLayer = SystemProbe.toLayer(Effect.succeed(SystemProbe.of({ Read: () => Effect.succeed("system") })))

/** Tokens the tests' `Authentication` knows. */
export const tokens: Readonly<Record<string, Principal.Principal>> = {
  "alice-token": { id: "alice", kind: "token", roles: ["reader"] },
  "bob-token": { id: "bob", kind: "token", roles: ["reader", "writer"] }
}

export const authentication = (options: { readonly required?: boolean } = {}) =>
  Authentication.layer({
    token: (token) =>
      Object.hasOwn(tokens, token) ?
        Effect.succeed(tokens[token]!) :
        Effect.fail(new Authentication.AuthenticationFailed({ reason: "unknown token" })),
    required: options.required
  })

/** Vault: `Write` needs the writer role, `Read` the reader role, the rest is allowed; other types: anyone but anonymous. */
export const vaultRules = Authorization.layer({
  rules: [
    Authorization.forType(Vault, {
      messages: { Write: Authorization.requireRole("writer"), Read: Authorization.requireRole("reader") },
      otherwise: Authorization.allow
    })
  ],
  default: (request) => request.principal.kind !== "anonymous"
})

/** An audit sink that keeps its records in `into`. */
export const keptAudit = (into: Array<Audit.AuditRecord>, options: Omit<Audit.AuditOptions<never>, "sink"> = {}) =>
  Audit.layer({ ...options, sink: (record) => Effect.sync(() => void into.push(record)) })

/** Every security service the tests use, records kept in `into`. */
export const security = (into: Array<Audit.AuditRecord>) =>
  Layer.mergeAll(authentication(), vaultRules, keptAudit(into))

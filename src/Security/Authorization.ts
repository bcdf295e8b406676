/**
 * Who may call what: a rule per actor type and message, run before the turn. Optional:
 * provide `Authorization.layer(...)` to the silo's layer (beside `Silo.layer`,
 * `ClusterSilo.layer`); a silo without it checks nothing and pays nothing for it.
 *
 * The rules:
 * - **Where it runs.** On the silo that runs the turn, once per call, where the call is
 *   admitted to the actor: before the actor is activated and before the message is queued.
 *   A denied call activates nothing and queues nothing. A call forwarded between silos is
 *   decided by the one that serves it, never on the way.
 * - **Which rule.** The rule of the message, else the type's `otherwise`, else the layer's
 *   `default` (default: allow). A rule returns `"allow"`/`"deny"` (or `true`/`false`), plain
 *   or as an effect; one that dies denies, and the defect is logged.
 * - **Denial.** An ask fails with `Unauthorized` (typed, it crosses the wire like every call
 *   error); Quark never retries it. A denied one-way message is dropped, logged at warning
 *   level and audited (`Audit`): it has nobody to fail.
 * - **The principal** is the caller's (see `Principal`): an actor calling on behalf of its
 *   caller is checked as that caller.
 * - **System types** (names starting with `$`: reminder buckets, stream partition agents)
 *   are Quark's own machinery, called on behalf of any caller: the `default` rule never
 *   applies to them, only a rule that names one ({@link forType}`("$reminders", ...)`, to
 *   restrict who may register reminders, say).
 *
 * ```ts
 * Authorization.layer({
 *   rules: [Authorization.forType(Account, { messages: { Withdraw: Authorization.requireRole("teller") } })],
 *   default: (request) => request.principal.kind === "anonymous" ? "deny" : "allow"
 * })
 * ```
 *
 * @since 0.2.0
 */
import { Cause, Context, Effect, Layer } from "effect"
import type { Rpc } from "effect/rpc"
import type { Actor } from "../Actor/Actor.ts"
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import type { Principal } from "./Principal.ts"

/**
 * A rule's answer.
 *
 * @since 0.2.0
 */
export type Decision = "allow" | "deny" | boolean

/**
 * What a rule decides about: who calls, which actor, which message.
 *
 * @since 0.2.0
 */
export interface AccessRequest {
  readonly principal: Principal
  readonly address: ActorAddress
  readonly tag: string
  /** A one-way message (a tell). */
  readonly oneWay: boolean
}

/**
 * A rule: plain or effectful. Its services are captured when the layer is built.
 *
 * @since 0.2.0
 */
export type Rule<R = never> = (request: AccessRequest) => Decision | Effect.Effect<Decision, never, R>

/**
 * The rules of one actor type, from {@link forType}.
 *
 * @since 0.2.0
 */
export interface TypeRules<R = never> {
  readonly type: string
  readonly messages: Readonly<Record<string, Rule<R>>>
  readonly otherwise: Rule<R> | undefined
}

/**
 * @since 0.2.0
 */
export interface AuthorizationShape {
  /** Whether calls to `type` are decided here: false for a system type no rule names. */
  readonly governs: (type: string) => boolean
  /** Whether the call may go ahead: at once when the rule answered plainly, else as an effect. */
  readonly decide: (request: AccessRequest) => boolean | Effect.Effect<boolean>
}

/**
 * @since 0.2.0
 */
export class Authorization extends Context.Service<Authorization, AuthorizationShape>()("quark/Security/Authorization") {}

/** What {@link forType} needs of a contract. */
type Contract = Pick<Actor<string, Rpc.Any>, "type" | "rpcs">

type TagsOf<A> = A extends { readonly rpcs: ReadonlyArray<infer R extends Rpc.Any> } ? R["_tag"] : string

/**
 * The rules of one actor type: a rule per message, and one for its other messages. The
 * type is a contract, or a name (a system type's: `"$reminders"`, `"$streams"`).
 *
 * @since 0.2.0
 */
export const forType = <A extends Contract | string, R = never>(
  actor: A,
  rules: {
    readonly messages?: { readonly [Tag in TagsOf<A>]?: Rule<R> } | undefined
    readonly otherwise?: Rule<R> | undefined
  }
): TypeRules<R> => ({
  type: typeof actor === "string" ? actor : actor.type,
  messages: (rules.messages ?? {}) as Record<string, Rule<R>>,
  otherwise: rules.otherwise
})

/**
 * Allows every call.
 *
 * @since 0.2.0
 */
export const allow: Rule = () => "allow"

/**
 * Denies every call.
 *
 * @since 0.2.0
 */
export const deny: Rule = () => "deny"

/**
 * Allows callers with `role` (see `Principal.roles`).
 *
 * @since 0.2.0
 */
export const requireRole = (role: string): Rule => (request) => request.principal.roles?.includes(role) === true

/**
 * @since 0.2.0
 */
export interface AuthorizationConfig<R> {
  readonly rules?: ReadonlyArray<TypeRules<R>> | undefined
  /** The rule of every non-system type no rule names, and of their messages no rule names. Default: {@link allow}. */
  readonly default?: Rule<R> | undefined
}

const isSystemType = (type: string): boolean => type.charCodeAt(0) === 36 // "$"

/**
 * The authorization service from rules per type and message and a default rule.
 *
 * @since 0.2.0
 */
export const layer = <R = never>(config: AuthorizationConfig<R>): Layer.Layer<Authorization, never, R> =>
  Layer.effect(
    Authorization,
    Effect.map(Effect.context<R>(), (context) => {
      const byType = new Map<string, TypeRules<R>>()
      for (const rules of config.rules ?? []) {
        if (byType.has(rules.type)) throw new Error(`Authorization: the rules of "${rules.type}" are given twice`)
        byType.set(rules.type, rules)
      }
      const fallback = config.default ?? allow
      const ruleOf = (type: string, tag: string): Rule<R> => {
        const rules = byType.get(type)
        if (rules !== undefined) {
          const rule = Object.hasOwn(rules.messages, tag) ? rules.messages[tag] : undefined
          return rule ?? rules.otherwise ?? (isSystemType(type) ? allow : fallback)
        }
        return fallback
      }
      const decide = (request: AccessRequest): boolean | Effect.Effect<boolean> => {
        let decision: Decision | Effect.Effect<Decision, never, R>
        try {
          decision = ruleOf(request.address.type, request.tag)(request)
        } catch (defect) {
          return deniedByDefect(request, defect)
        }
        if (!Effect.isEffect(decision)) return decision === true || decision === "allow"
        return Effect.provideContext(decision, context).pipe(
          Effect.map((decision) => decision === true || decision === "allow"),
          Effect.catchDefect((defect) => deniedByDefect(request, defect))
        )
      }
      return Authorization.of({ governs: (type) => !isSystemType(type) || byType.has(type), decide })
    })
  )

const deniedByDefect = (request: AccessRequest, defect: unknown): Effect.Effect<boolean> =>
  Effect.as(
    Effect.logError(`the authorization rule of ${request.address.type}.${request.tag} died; the call is denied`, Cause.die(defect)),
    false
  )

/**
 * Who a call is made on behalf of, and how the silo knows it.
 *
 * The rules:
 * - **It travels in the request context.** A principal is the metadata entry
 *   {@link metadataKey} (`quark.principal`, compact JSON), so it flows with the call to
 *   nested calls and across silos as the rest of the request context does.
 * - **A handler's calls carry its caller's principal.** An actor acts on behalf of whoever
 *   called it: the asks and tells its handler makes, on this silo or another, are checked
 *   against that principal, not against the actor (an actor has no identity of its own to
 *   escalate to). One-way messages carry it as asks do. The activation effect runs under the
 *   request context of the call that activated the actor, so with its principal. Work with
 *   no caller (code outside any call, timer ticks, reminder ticks, stream deliveries) carries
 *   none: it is {@link silo}.
 * - **Where it is established.** A client's call is authenticated at the first silo it
 *   reaches, from its certificate or its token (`Authentication`), and whatever principal
 *   its metadata claimed is discarded; silos trust the principal another silo of the cluster
 *   sends. In a silo's own process, trusted code may {@link runAs} any principal, or call
 *   {@link withToken} to have the token authenticated where the call is admitted.
 * - **Tokens are consumed.** The token ({@link tokenKey}, `authorization`) is taken out of
 *   the metadata once it has established a principal: a handler, a log line or another silo
 *   never sees it. Without an `Authentication` service a token establishes nothing: the caller
 *   is {@link anonymous}.
 * - **Reminder ticks and stream deliveries** therefore run as {@link silo}, not as whoever
 *   registered them: restrict who may register with a rule on the system types `$reminders`
 *   and `$streams` (see `Authorization`).
 *
 * @since 0.2.0
 */
import { Effect, Option, Schema } from "effect"
import { CurrentTurn, emptyMetadata, Turn } from "../Actor/internal/Turn.ts"

/**
 * How a principal was established: a verified client `"certificate"`, a `"token"`, the
 * `"silo"`'s own code (no caller of its own), `"anonymous"` (a client without credentials,
 * or with a token nobody could verify), or `"asserted"` by trusted code with {@link runAs}.
 *
 * @since 0.2.0
 */
export const Kind = Schema.Literals(["certificate", "token", "silo", "anonymous", "asserted"])

/**
 * @since 0.2.0
 */
export type Kind = typeof Kind.Type

/**
 * The schema of a principal: an id, how it was established, roles, and string attributes.
 *
 * @since 0.2.0
 */
export const Principal = Schema.Struct({
  id: Schema.String,
  kind: Kind,
  roles: Schema.optional(Schema.Array(Schema.String)),
  attributes: Schema.optional(Schema.Record(Schema.String, Schema.String))
})

/**
 * @since 0.2.0
 */
export interface Principal {
  readonly id: string
  readonly kind: Kind
  readonly roles?: ReadonlyArray<string> | undefined
  readonly attributes?: Readonly<Record<string, string>> | undefined
}

/**
 * The request-context metadata key a principal travels under. Reserved: from a client it is
 * replaced at the first silo.
 *
 * @since 0.2.0
 */
export const metadataKey = "quark.principal"

/**
 * The request-context metadata key a token travels under until a silo authenticates it.
 *
 * @since 0.2.0
 */
export const tokenKey = "authorization"

/**
 * The principal of a silo's own code: calls made outside any call (a program, a reminder
 * tick, a stream delivery) carry no principal and are this one.
 *
 * @since 0.2.0
 */
export const silo: Principal = Object.freeze({ id: "silo", kind: "silo" })

/**
 * The principal of a caller without credentials.
 *
 * @since 0.2.0
 */
export const anonymous: Principal = Object.freeze({ id: "anonymous", kind: "anonymous" })

const PrincipalJson = Schema.fromJsonString(Principal)
const decodeJson = Schema.decodeUnknownOption(PrincipalJson)
const encodeJson = Schema.encodeSync(PrincipalJson)

/**
 * A principal as its metadata value (JSON).
 *
 * @since 0.2.0
 */
export const encode = (principal: Principal): string => encodeJson(principal)

/** Decoded principals by metadata value: nested calls share one metadata object, so one decode serves a chain. */
const decoded = new Map<string, Principal | null>()
const maxDecoded = 1_024

/**
 * A metadata value as a principal; `undefined` if it is not one.
 *
 * @since 0.2.0
 */
export const decode = (value: string): Principal | undefined => {
  let principal = decoded.get(value)
  if (principal === undefined) {
    principal = Option.getOrNull(decodeJson(value))
    if (decoded.size >= maxDecoded) decoded.clear()
    decoded.set(value, principal)
  }
  return principal ?? undefined
}

/**
 * The principal a request context's metadata names: its {@link metadataKey} entry (a value
 * that does not decode counts as {@link anonymous}), else {@link anonymous} if it holds only
 * a token nobody authenticated, else {@link silo}.
 *
 * @since 0.2.0
 */
export const fromMetadata = (metadata: Readonly<Record<string, string>>): Principal => {
  const value = metadata[metadataKey]
  if (value !== undefined) return decode(value) ?? anonymous
  return metadata[tokenKey] === undefined ? silo : anonymous
}

/**
 * The principal of the current turn (the caller's, see the module rules); outside any turn,
 * the one set by {@link runAs}, else {@link silo}.
 *
 * @since 0.2.0
 */
export const current: Effect.Effect<Principal> = Effect.map(
  CurrentTurn,
  (turn) => fromMetadata(turn?.metadata ?? emptyMetadata)
)

/** `effect` under a frame whose metadata is the current one changed by `change` (the call chain is kept). */
const withMetadata = (
  change: (metadata: Record<string, string>) => void
) =>
<A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
  Effect.withFiber((fiber) => {
    const outer = fiber.getRef(CurrentTurn)
    const metadata = { ...outer?.metadata }
    change(metadata)
    return Effect.provideService(effect, CurrentTurn, Turn.contextFrame(outer, outer?.correlation, metadata))
  })

/**
 * Runs `effect` so that the calls it makes carry `token`, to be authenticated where they
 * are admitted (by the silo's `Authentication`): from a client, at the first silo. Any
 * principal in force is dropped, so the token decides.
 *
 * @since 0.2.0
 */
export const withToken = (token: string): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> =>
  withMetadata((metadata) => {
    delete metadata[metadataKey]
    metadata[tokenKey] = token
  })

/**
 * Runs `effect` so that the calls it makes are made on behalf of `principal`, trusted as it
 * is. For code in a silo's process (a gateway that authenticated its user itself, say): a
 * client's claim is discarded at the first silo (use {@link withToken} there).
 *
 * @since 0.2.0
 */
export const runAs = (principal: Principal): <A, E, R>(effect: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R> => {
  const value = encode(principal)
  return withMetadata((metadata) => {
    delete metadata[tokenKey]
    metadata[metadataKey] = value
  })
}

/**
 * Whether `principal` has `role`.
 *
 * @since 0.2.0
 */
export const hasRole = (principal: Principal, role: string): boolean => principal.roles?.includes(role) === true

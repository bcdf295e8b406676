/**
 * Where a silo's security services meet its router: every call admitted to an actor on
 * this silo (`LocalRouter.askLocal` / `tellLocal`, local or arrived from another silo)
 * passes the gate first, before anything activates or queues. A silo given none of
 * `Authentication`, `Authorization` and `Audit` has no gate, and each call pays one
 * `undefined` check for it.
 *
 * With a gate, a call to a type that no service covers (a system type, usually) and that
 * carries no token to authenticate goes straight through; otherwise the principal is read
 * from the caller's metadata (a token is authenticated first, and the call then runs under a
 * frame that holds the principal instead of the token), the rule decides, the audit records.
 *
 * @internal
 */
import { Clock, Context, Effect, Option } from "effect"
import { type SendError, Unauthenticated, Unauthorized } from "../../Actor/ActorError.ts"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import { CurrentTurn, emptyMetadata, type MessageInfo, RemoteFrame, Turn } from "../../Actor/internal/Turn.ts"
import type { PeerCertificate } from "../../Transport/PeerInfo.ts"
import { Audit, type AuditShape, type Outcome } from "../Audit.ts"
import { Authentication, AuthenticationFailed, type AuthenticationShape } from "../Authentication.ts"
import { Authorization, type AuthorizationShape } from "../Authorization.ts"
import * as Principal from "../Principal.ts"

/** @internal */
export interface Gate {
  readonly authentication: AuthenticationShape | undefined
  /** Records a call refused before it reached the gate (a client that did not authenticate), if audited. */
  readonly refused: (address: ActorAddress, tag: string, oneWay: boolean, correlationId: string, reason: string) => Effect.Effect<void>
  /** Admits an ask, then runs it with `run` (given the frame to run it from), or fails it. */
  readonly ask: (
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    from: Turn | undefined,
    run: (from: Turn | undefined) => Effect.Effect<any, any>
  ) => Effect.Effect<any, any>
  /** Admits a one-way message, or drops it (logged and audited). */
  readonly tell: (
    slot: TypeSlot,
    id: string,
    info: MessageInfo,
    payload: unknown,
    from: Turn | undefined,
    run: (from: Turn | undefined) => Effect.Effect<void, SendError>
  ) => Effect.Effect<void, SendError>
}

/** The silo's gate, if it was given any security service. @internal */
export const make: Effect.Effect<Gate | undefined> = Effect.gen(function*() {
  const authentication = Option.getOrUndefined(yield* Effect.serviceOption(Authentication))
  const authorization = Option.getOrUndefined(yield* Effect.serviceOption(Authorization))
  const audit = Option.getOrUndefined(yield* Effect.serviceOption(Audit))
  if (authentication === undefined && authorization === undefined && audit === undefined) return undefined
  const admit = admitter(authentication, authorization, audit)
  return {
    authentication,
    refused: (address, tag, oneWay, correlationId, reason) =>
      audit === undefined || !audit.covers(address.type) ?
        Effect.void :
        Effect.flatMap(Clock.currentTimeMillis, (time) =>
          safely(audit.record({ time, principal: Principal.anonymous, address, tag, oneWay, outcome: "unauthenticated", reason, correlationId }))),
    ask: (slot, id, info, payload, from, run) => admit(slot, id, info, payload, from, false, run),
    // Never fails for a refusal: a refused one-way message is dropped (see `refuse`).
    tell: (slot, id, info, payload, from, run) => admit(slot, id, info, payload, from, true, run) as Effect.Effect<void, SendError>
  }
})

/** An audit record's writing: a sink that dies is logged, and the call goes on. */
const safely = (recorded: Effect.Effect<void>): Effect.Effect<void> =>
  Effect.catchDefect(recorded, (defect) => Effect.logError("the audit sink died", defect))

/** `metadata` with `principal` in place of any principal or token it held. */
const withPrincipal = (metadata: Readonly<Record<string, string>>, principal: Principal.Principal): Record<string, string> => {
  const { [Principal.metadataKey]: _claimed, [Principal.tokenKey]: _token, ...rest } = metadata
  return { ...rest, [Principal.metadataKey]: principal === Principal.anonymous ? anonymousValue : Principal.encode(principal) }
}

const anonymousValue = Principal.encode(Principal.anonymous)
/** The metadata of most clients' calls: nothing but the anonymous principal, one shared object. */
const anonymousOnly: Readonly<Record<string, string>> = Object.freeze({ [Principal.metadataKey]: anonymousValue })

/**
 * A client's metadata on a silo without `Authentication`: anonymous, whatever it claimed.
 * Synchronous and, for metadata holding nothing (most calls), allocation-free: this runs
 * for every request a client sends.
 *
 * @internal
 */
export const anonymousClient = (metadata: Readonly<Record<string, string>>): Readonly<Record<string, string>> => {
  for (const _ in metadata) return withPrincipal(metadata, Principal.anonymous)
  return anonymousOnly
}

/**
 * The frame a call runs from once its metadata changed: a remote call's root stays a
 * `RemoteFrame` (its caller's deadline and chain go with it), any other keeps its chain.
 */
const reframe = (outer: Turn | undefined, metadata: Readonly<Record<string, string>>): Turn =>
  outer instanceof RemoteFrame ?
    new RemoteFrame(String(outer.correlation), metadata, outer.chain, outer.waitMillis) :
    Turn.contextFrame(outer, outer?.correlation, metadata)

const authenticate = (
  authentication: AuthenticationShape,
  credentials: { readonly token?: string | undefined; readonly certificate?: PeerCertificate | undefined }
): Effect.Effect<Principal.Principal, AuthenticationFailed> =>
  Effect.catchDefect(authentication.authenticate(credentials), (defect) =>
    Effect.andThen(
      Effect.logError("authentication died; the caller is refused", defect),
      Effect.fail(new AuthenticationFailed({ reason: "authentication failed" }))
    ))

/**
 * The metadata a client's call goes on with: the principal its credentials establish (its
 * token, else its connection's certificate), any principal it claimed and its token gone.
 * Without credentials (or without an `Authentication` to check them) it is anonymous,
 * unless authentication is required.
 *
 * @internal
 */
export const authenticateClient = (
  gate: Gate | undefined,
  metadata: Readonly<Record<string, string>>,
  certificate: PeerCertificate | undefined
): Effect.Effect<Record<string, string>, AuthenticationFailed> => {
  const authentication = gate?.authentication
  const token = metadata[Principal.tokenKey]
  if (authentication === undefined) return Effect.succeed(anonymousClient(metadata))
  if (token === undefined && certificate === undefined) {
    return authentication.required ?
      Effect.fail(new AuthenticationFailed({ reason: "this silo requires credentials (a token or a client certificate)" })) :
      Effect.succeed(anonymousClient(metadata))
  }
  return Effect.map(authenticate(authentication, { token, certificate }), (principal) => withPrincipal(metadata, principal))
}

const admitter = (
  authentication: AuthenticationShape | undefined,
  authorization: AuthorizationShape | undefined,
  audit: AuditShape | undefined
) =>
(
  slot: TypeSlot,
  id: string,
  info: MessageInfo,
  payload: unknown,
  from: Turn | undefined,
  oneWay: boolean,
  run: (from: Turn | undefined) => Effect.Effect<any, any>
): Effect.Effect<any, any> =>
  Effect.withFiber((fiber) => {
    const outer = from ?? fiber.getRef(CurrentTurn)
    const metadata = outer?.metadata ?? emptyMetadata
    const type = slot.name
    const token = metadata[Principal.metadataKey] === undefined ? metadata[Principal.tokenKey] : undefined
    const governed = authorization !== undefined && authorization.governs(type)
    const audited = audit !== undefined && audit.covers(type)
    if (token === undefined && !governed && !audited) return run(from)
    const address = { type, id }
    const tag = info.tag
    // The common case, without a closure: nothing to authenticate or record, a rule that allows at once.
    let known: boolean | Effect.Effect<boolean> | undefined = undefined
    if (token === undefined && !audited) {
      known = authorization!.decide({ principal: Principal.fromMetadata(metadata), address, tag, oneWay })
      if (known === true) return run(from)
    }

    const clock = Context.get(fiber.context, Clock.Clock)
    const record = (frame: Turn | undefined, principal: Principal.Principal, outcome: Outcome, reason?: string) =>
      Effect.suspend(() =>
        safely(
          audit!.record({
            time: clock.currentTimeMillisUnsafe(),
            principal,
            address,
            tag,
            oneWay,
            outcome,
            ...(reason === undefined ? {} : { reason }),
            correlationId: frame === undefined ? "" : String(frame.correlation),
            ...(audit!.includePayloads ? { payload } : {})
          })
        ))

    const refuse = (
      frame: Turn | undefined,
      principal: Principal.Principal,
      outcome: Outcome,
      error: Unauthorized | Unauthenticated
    ): Effect.Effect<void, Unauthorized | Unauthenticated> => {
      const recorded = audited ? record(frame, principal, outcome, error.reason) : Effect.void
      if (!oneWay) return Effect.andThen(recorded, Effect.fail(error))
      // A one-way message has nobody to fail: dropped, and said so.
      return Effect.andThen(
        recorded,
        Effect.logWarning(`one-way ${tag} to ${type}/${id} dropped`).pipe(Effect.annotateLogs({ error: error.message }))
      )
    }

    const check = (frame: Turn | undefined, principal: Principal.Principal) => {
      // `frame` is undefined when the call runs from the fiber's own turn, `outer`.
      const at = frame ?? outer
      const proceed = audited && audit.allowed ? Effect.andThen(record(at, principal, "allowed"), run(frame)) : run(frame)
      if (!governed) return proceed
      const decided = (allowed: boolean) =>
        allowed ? proceed : refuse(
          at,
          principal,
          "denied",
          new Unauthorized({ address, tag, principal: principal.id, reason: `the rule of ${type}.${tag} denied it` })
        )
      const decision = known ?? authorization.decide({ principal, address, tag, oneWay })
      return typeof decision === "boolean" ? decided(decision) : Effect.flatMap(decision, decided)
    }

    if (token === undefined) {
      // A call that starts a chain gets its correlation id here, so that its record has one.
      const frame = audited && outer === undefined ? Turn.contextFrame(undefined, undefined, metadata) : from
      return check(frame, Principal.fromMetadata(metadata))
    }
    if (authentication === undefined) return check(reframe(outer, withPrincipal(metadata, Principal.anonymous)), Principal.anonymous)
    return Effect.matchEffect(authenticate(authentication, { token }), {
      onFailure: (failed) =>
        refuse(outer, Principal.anonymous, "unauthenticated", new Unauthenticated({ address, tag, reason: failed.reason })),
      onSuccess: (principal) => check(reframe(outer, withPrincipal(metadata, principal)), principal)
    })
  })

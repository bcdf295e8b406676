/**
 * Control requests between silos, on the same connections as actor calls. Their target is
 * the reserved type `$quark` with the id of the silo meant to answer, so a request that
 * reaches another incarnation at the same address is told so instead of answered for it.
 *
 * - `RegistryStatus`: "can you reach the membership registry?" A silo whose heartbeats fail
 *   asks every other member; only if all of them cannot either (or are gone) is the registry
 *   down for everyone, and the silo's lease is extended (see `Membership`).
 * - `Release`: "stop hosting this address". The new owner of an address that moved from a
 *   silo still alive (a join or a graceful leave changed the ring) asks the previous owner
 *   before it activates the address; the previous owner deactivates its activation (the
 *   running turn finishes, state is written) and answers once it is gone, so the two never
 *   hold the address at the same time.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import { ActorUnavailable } from "../../Actor/ActorError.ts"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import type { Connection } from "../../Transport/Connection.ts"
import type { ReplyOutcome, RequestEnvelope } from "../../Transport/Envelope.ts"
import { encodeQuarkError } from "./MessageCodec.ts"

/** The reserved actor type of control requests. @internal */
export const controlType = "$quark"

/** What a silo answers to `RegistryStatus`. @internal */
export type RegistryStatus = "reachable" | "unreachable" | "gone"

/** What a silo does for its peers' control requests. @internal */
export interface ControlHost {
  /** This silo's current id (it changes when the silo joins again with a new generation). */
  readonly self: () => string | undefined
  readonly reachesRegistry: () => boolean
  /** Deactivates the activation of `address` here, if any, and serves it no more until the ring changes. */
  readonly release: (address: ActorAddress) => Effect.Effect<void>
}

const statusBytes: Record<RegistryStatus, Uint8Array> = {
  reachable: Uint8Array.of(1),
  unreachable: Uint8Array.of(0),
  gone: Uint8Array.of(2)
}
const empty = new Uint8Array(0)
const noChain: ReadonlyArray<ActorAddress> = []
const noContext = { correlationId: "", metadata: {} }

const AddressJson = Schema.fromJsonString(Schema.Tuple([Schema.String, Schema.String]))
const decodeAddress = Schema.decodeUnknownExit(AddressJson)
const encoder = new TextEncoder()
const decoder = new TextDecoder()

const failure = (target: ActorAddress, reason: string): ReplyOutcome => ({
  _tag: "Failure",
  error: encodeQuarkError(new ActorUnavailable({ address: target, reason }))
})

/** Answers a control request (`request.target.type === controlType`). @internal */
export const handle = (host: ControlHost, request: RequestEnvelope): Effect.Effect<ReplyOutcome> => {
  const mine = request.target.id === host.self()
  switch (request.tag) {
    case "RegistryStatus":
      return Effect.succeed({
        _tag: "Success",
        value: statusBytes[!mine ? "gone" : host.reachesRegistry() ? "reachable" : "unreachable"]
      })
    case "Release": {
      if (!mine) return Effect.succeed(failure(request.target, "not this silo: it was restarted or joined again"))
      const exit = decodeAddress(decoder.decode(request.payload))
      if (exit._tag === "Failure") return Effect.succeed(failure(request.target, "a Release without a readable address"))
      const [type, id] = exit.value
      return Effect.as(host.release({ type, id }), { _tag: "Success", value: empty } as ReplyOutcome)
    }
    default:
      return Effect.succeed(failure(request.target, `unknown control request "${request.tag}"`))
  }
}

/**
 * Asks silo `silo` (over `connection`) whether it reaches the registry. A peer that cannot be
 * reached at all (refused: nothing listens there any more) counts as `gone`; one that does
 * not answer in time gives `undefined`.
 *
 * @internal
 */
export const askRegistryStatus = (
  connection: Connection,
  silo: string,
  timeoutMillis: number
): Effect.Effect<RegistryStatus | undefined> =>
  connection.call(
    { target: { type: controlType, id: silo }, tag: "RegistryStatus", payload: empty, context: noContext, chain: noChain },
    { timeout: timeoutMillis },
    (outcome) => Effect.succeed(statusOf(outcome))
  ).pipe(
    Effect.catch((error) => Effect.map(isGone(connection, error), (gone) => (gone ? "gone" as const : undefined)))
  )

const statusOf = (outcome: ReplyOutcome): RegistryStatus | undefined =>
  outcome._tag !== "Success" ?
    undefined :
    outcome.value[0] === 1 ?
    "reachable" :
    outcome.value[0] === 2 ?
    "gone" :
    "unreachable"

/**
 * Whether a failed call says nothing listens at the peer's address any more: it was not
 * delivered and the connection is down between attempts (connecting failed at once). A
 * paused or cut-off peer gives a timeout instead.
 */
const isGone = (connection: Connection, error: { readonly _tag: string }): Effect.Effect<boolean> =>
  error._tag !== "ActorUnavailable" ?
    Effect.succeed(false) :
    Effect.map(connection.status, (status) => status === "disconnected" || status === "closed")

/**
 * Asks silo `silo` to release `address`; succeeds once it no longer hosts it. `gone` when
 * the silo refuses connections (nothing listens there any more) or answers that it is
 * draining (a stopping silo drains only after all its activations stopped), so nothing
 * hosts the address. A request lost with its connection (the silo exiting as it answered)
 * is asked once more, which then finds out which.
 *
 * @internal
 */
export const askRelease = (
  connection: Connection,
  silo: string,
  address: ActorAddress,
  timeoutMillis: number
): Effect.Effect<"released" | "gone", ActorUnavailable> => {
  const ask = connection.call(
    {
      target: { type: controlType, id: silo },
      tag: "Release",
      payload: encoder.encode(JSON.stringify([address.type, address.id])),
      context: noContext,
      chain: noChain
    },
    { timeout: timeoutMillis },
    (outcome) =>
      Effect.succeed(
        outcome._tag === "Success" ?
          "released" as const :
          outcome._tag === "TransportError" && outcome.error === "Draining" ?
          "gone" as const :
          "refused" as const
      )
  )
  const once = ask.pipe(
    Effect.matchEffect({
      onSuccess: (answer) =>
        answer !== "refused" ?
          Effect.succeed(answer) :
          Effect.fail(new ActorUnavailable({ address, reason: `its previous owner ${silo} did not release it` })),
      onFailure: (error) =>
        Effect.flatMap(isGone(connection, error), (gone) =>
          gone ?
            Effect.succeed("gone" as const) :
            Effect.fail(
              error._tag === "OutcomeUnknown" ?
                error :
                new ActorUnavailable({ address, reason: `its previous owner ${silo} has not released it: ${error.message}` })
            ))
    })
  )
  return once.pipe(
    Effect.catchTag("OutcomeUnknown", (lost) =>
      Effect.andThen(Effect.sleep("20 millis"), once).pipe(
        Effect.catchTag("OutcomeUnknown", () =>
          Effect.fail(new ActorUnavailable({ address, reason: `its previous owner ${silo} has not released it: ${lost.message}` })))
      ))
  )
}

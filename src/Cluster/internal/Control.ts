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
 *   hold the address at the same time. Asked of an older incarnation at this silo's own
 *   `host:port` (a silo restarted in place, asked by a peer whose view still has its
 *   predecessor), it answers at once that nothing is held there: the port is this
 *   process's, so the predecessor's process is gone, or (a silo that joined again in the
 *   same process) deactivated everything before joining.
 *
 * @internal
 */
import { Effect, Schema } from "effect"
import { ActorUnavailable } from "../../Actor/ActorError.ts"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import type { Connection } from "../../Transport/Connection.ts"
import type { ReplyOutcome, RequestEnvelope } from "../../Transport/Envelope.ts"
import { parseId } from "../SiloIdentity.ts"
import { encodeQuarkError } from "./MessageCodec.ts"

/** The reserved actor type of control requests. @internal */
export const controlType = "$quark"

/** What a silo answers to `RegistryStatus`. @internal */
export type RegistryStatus = "reachable" | "unreachable" | "gone"

/** What a silo does for its peers' control requests. @internal */
export interface ControlHost {
  /** This silo's current id (it changes when the silo joins again with a new generation). */
  readonly self: () => string | undefined
  /** The `host:port` this silo listens at: every incarnation that listened there before is gone. */
  readonly address: string
  readonly reachesRegistry: () => boolean
  /**
   * Deactivates the activation of `address` here, if any, and serves it no more until the
   * ring changes: calls for it go to `to`, the silo that asked (when the request says).
   */
  readonly release: (address: ActorAddress, to: string | undefined) => Effect.Effect<Uint8Array | void>
  /** Answers a live migration's `MigratePrepare` / `MigrateCommit`, and a drain's `MigrateAdopt` (see `Migration`, `Parking`). */
  readonly migrate?: ((tag: string, payload: Uint8Array) => Effect.Effect<ReplyOutcome>) | undefined
}

const statusBytes: Record<RegistryStatus, Uint8Array> = {
  reachable: Uint8Array.of(1),
  unreachable: Uint8Array.of(0),
  gone: Uint8Array.of(2)
}
const empty = new Uint8Array(0)
const noChain: ReadonlyArray<ActorAddress> = []
const noContext = { correlationId: "", metadata: {} }

/** `[type, id]`, or `[type, id, the asking silo]`. */
const AddressJson = Schema.fromJsonString(Schema.Array(Schema.String))
const decodeAddress = Schema.decodeUnknownExit(AddressJson)
const encoder = new TextEncoder()
const decoder = new TextDecoder()

const failure = (target: ActorAddress, reason: string): ReplyOutcome => ({
  _tag: "Failure",
  error: encodeQuarkError(new ActorUnavailable({ address: target, reason }))
})

const released: ReplyOutcome = { _tag: "Success", value: empty }

/** Whether `id` is an older incarnation at this silo's `host:port`. */
const isPredecessor = (host: ControlHost, id: string): boolean => {
  const target = parseId(id)
  if (target === undefined || target.address !== host.address) return false
  const self = host.self()
  const current = self === undefined ? undefined : parseId(self)
  return current === undefined || target.generation < current.generation
}

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
      if (!mine) {
        return Effect.succeed(
          isPredecessor(host, request.target.id) ?
            released :
            failure(request.target, "not this silo: it was restarted or joined again")
        )
      }
      const exit = decodeAddress(decoder.decode(request.payload))
      if (exit._tag === "Failure" || exit.value.length < 2) {
        return Effect.succeed(failure(request.target, "a Release without a readable address"))
      }
      const [type, id, to] = exit.value
      // The reply carries the state the released activation handed over, if any (see `Migration`).
      return Effect.map(host.release({ type: type!, id: id! }, to), (state) =>
        state instanceof Uint8Array && state.length > 0 ? { _tag: "Success", value: state } : released)
    }
    case "MigratePrepare":
    case "MigrateCommit":
    case "MigrateAdopt":
      if (!mine || host.migrate === undefined) {
        return Effect.succeed(failure(request.target, "not this silo: it was restarted or joined again"))
      }
      return host.migrate(request.tag, request.payload)
    default:
      return Effect.succeed(failure(request.target, `unknown control request "${request.tag}"`))
  }
}

/**
 * Asks silo `silo` (over `connection`) whether it reaches the registry. `gone` only when
 * another incarnation answers at its address (its process is gone); a peer that cannot be
 * reached at all, or does not answer in time, gives `undefined`: a refused connection may be
 * a partition that rejects packets, behind which the peer still reaches the registry and
 * may declare this silo dead (`test/cluster/SplitBrain.test.ts`).
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
    Effect.catch(() => Effect.succeed(undefined))
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
 * Asks silo `silo` to release `address` to `requester` (where it sends the calls for it it
 * still gets); succeeds once it no longer hosts it. `gone` when it answers that it is
 * draining (a stopping silo drains only after all its activations stopped), or refuses
 * connections while it is no member any more (`refusedMeansGone`: it left or was declared
 * dead), so nothing hosts the address. A member that refuses connections may be behind a
 * partition that rejects packets, still serving: that is a failure (`ActorUnavailable`),
 * not a release. A request lost with its connection (the silo exiting as it answered)
 * is asked once more, which then finds out which.
 *
 * @internal
 */
export const askRelease = (
  connection: Connection,
  silo: string,
  address: ActorAddress,
  timeoutMillis: number,
  requester: string | undefined,
  refusedMeansGone: boolean,
  onState?: ((state: Uint8Array) => void) | undefined
): Effect.Effect<"released" | "gone", ActorUnavailable> => {
  const ask = connection.call(
    {
      target: { type: controlType, id: silo },
      tag: "Release",
      payload: encoder.encode(
        JSON.stringify(requester === undefined ? [address.type, address.id] : [address.type, address.id, requester])
      ),
      context: noContext,
      chain: noChain
    },
    { timeout: timeoutMillis },
    (outcome) =>
      Effect.succeed(
        outcome._tag === "Success" ?
          (outcome.value.length > 0 && onState?.(outcome.value), "released" as const) :
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
          gone && refusedMeansGone ?
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

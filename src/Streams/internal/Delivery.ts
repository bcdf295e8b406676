/**
 * How a partition agent delivers one event to one subscriber: as a turn of the message its
 * subscription names, with the event's request context (`Streams.currentEvent`), through
 * ordinary actor routing, tried again as the agent's rules say (see `PartitionAgent.ts`),
 * and only while the silo holds its lease.
 *
 * @internal
 */
import { type Cause, Effect, Exit, Schema } from "effect"
import { type DispatchError, MessageDecodeError } from "../../Actor/ActorError.ts"
import { describeCause, failureOf } from "../../Actor/internal/DispatchFailure.ts"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import { noLease } from "../../Actor/internal/Refusals.ts"
import { emptyMetadata, Turn } from "../../Actor/internal/Turn.ts"
import { prepare } from "../../Actor/internal/UntypedDispatch.ts"
import * as ProcessMetrics from "../../Telemetry/internal/ProcessMetrics.ts"
import type { StreamProvider } from "../StreamProvider.ts"
import type { DeliveryTarget, Lane, LaneItem } from "./Lane.ts"
import { eventKeys, type StreamsRuntimeShape } from "./StreamsRuntime.ts"

/** Errors after which another attempt cannot help. */
const permanent = new Set(["UnknownActorType", "UnknownMessage", "InvalidActorId", "MessageDecodeError", "PayloadTooLarge", "Unauthorized", "Unauthenticated"])

const unavailableRetryMillis = 250

export interface DeliveryContext {
  readonly router: LocalRouter
  readonly provider: StreamProvider
  readonly runtime: StreamsRuntimeShape
  readonly now: () => number
}

export const makeDelivery = ({ now, provider, router, runtime }: DeliveryContext) => {
  /**
   * Whether this silo may act as the partition's owner: in a cluster, only inside its lease
   * (see `Membership.ts`). A silo that was paused past its lease reads nothing and delivers
   * nothing once it runs again: by then a survivor may have claimed the partition, and what
   * this one took from the group now would be delivered after that survivor's newer events.
   */
  const leaseHeld = (): boolean => {
    const lease = router.lease
    return lease === undefined || lease()
  }

  /**
   * The request context of a lane's deliveries: one frame per lane, provided once per run
   * of its fiber, whose metadata is replaced for each delivery (a turn keeps the reference
   * it was created with, and a lane makes one delivery at a time). Providing a frame per
   * event would copy the fiber's context per event.
   */
  const frameOf = (lane: Lane): Turn => (lane.frame ??= Turn.contextFrame(undefined, undefined, emptyMetadata))

  const sendOnce = (lane: Lane, item: LaneItem, attempt: number): Effect.Effect<unknown, DispatchError> => {
    const { key, message, namespace, subscriber } = lane.identity
    if (lane.refusal !== undefined) return Effect.fail(lane.refusal)
    if (!leaseHeld()) return Effect.fail(noLease(subscriber))
    ;(lane.frame as { metadata: Readonly<Record<string, string>> }).metadata = {
      "quark.stream.namespace": namespace,
      "quark.stream.key": key,
      "quark.stream.token": item.token,
      "quark.stream.attempt": attempt === 1 ? "1" : String(attempt)
    } satisfies Record<typeof eventKeys[keyof typeof eventKeys], string>
    const target = lane.target
    if (target !== undefined) return target.send(subscriber.id, item.value)
    return Effect.flatMap(targetOf(subscriber.type, message), (found) => {
      lane.target = found
      return found.send(subscriber.id, item.value)
    })
  }

  /**
   * How events reach one message of one type, found once per type and message: as they
   * are (memory), or decoded from their JSON form first (a provider that encodes; the same
   * `Schema.toCodecJson` form `Streams.publish` wrote).
   */
  const targets = new Map<string, DeliveryTarget>()
  const targetOf = (type: string, message: string): Effect.Effect<DeliveryTarget, DispatchError> => {
    const cacheKey = `${type}\u0000${message}`
    const cached = targets.get(cacheKey)
    if (cached !== undefined) return Effect.succeed(cached)
    return Effect.map(prepare(router, type, message), (prepared) => {
      let target: DeliveryTarget
      if (!provider.encodes) target = { send: prepared.sendDecoded }
      else {
        // Synchronously, as the transport decodes payloads: no Effect per event for the decode.
        const decode = Schema.decodeUnknownSync(Schema.toCodecJson(prepared.entry.payloadSchema) as unknown as Schema.Codec<unknown, unknown>) as (json: unknown) => unknown
        target = {
          send: (id, json) => {
            let payload: unknown
            try {
              payload = decode(json)
            } catch (error) {
              return Effect.fail(new MessageDecodeError({ address: { type, id }, tag: message, reason: String((error as Error)?.message ?? error) }))
            }
            return prepared.sendDecoded(id, payload)
          }
        }
      }
      targets.set(cacheKey, target)
      return target
    })
  }

  const delivered = Effect.succeed("delivered" as const)

  /** The first attempt without a generator (the common case); retries in `redeliver`. */
  const deliver = (lane: Lane, item: LaneItem): Effect.Effect<"delivered" | "failed"> =>
    Effect.matchCauseEffect(sendOnce(lane, item, 1), {
      onSuccess: () => {
        ProcessMetrics.streamEventsDelivered.value++
        return delivered
      },
      onFailure: (cause) => redeliver(lane, item, cause)
    })

  /** Attempts after a failed first one; the unavailable wait counts from that failure. */
  const redeliver = (lane: Lane, item: LaneItem, firstCause: Cause.Cause<DispatchError>): Effect.Effect<"delivered" | "failed"> =>
    Effect.gen(function*() {
      const startedAt = now()
      let cause = firstCause
      let attempt = 1
      let failedTurns = 0
      while (true) {
        const error = failureOf(cause)
        const unavailable = error !== undefined && (error._tag === "ActorUnavailable" || error._tag === "MailboxFull")
        const fixable = error === undefined || !permanent.has(error._tag)
        if (unavailable && now() - startedAt < runtime.unavailableWaitMillis) {
          yield* Effect.sleep(unavailableRetryMillis)
        } else if (!unavailable && fixable && ++failedTurns < runtime.retryAttempts) {
          yield* Effect.sleep(100 * 2 ** (failedTurns - 1))
        } else {
          ProcessMetrics.streamEventsFailed.value++
          // The first failure of a lane and every 1,000th after: a subscriber that cannot take a
          // stream's events (its type is not hosted here, say) does not flood the log.
          if (lane.failed % 1_000 === 0) {
            const { key, message, namespace, subscriber } = lane.identity
            yield* Effect.logWarning(
              `stream ${namespace}/${key}: event ${item.token} not delivered to ${subscriber.type}/${subscriber.id} (${message}) after ${attempt} attempt(s): ${describeCause(cause)}${lane.failed === 0 ? "" : ` (${lane.failed} failed before on this subscription)`}`
            )
          }
          return "failed"
        }
        attempt++
        const exit = yield* Effect.exit(sendOnce(lane, item, attempt))
        if (Exit.isSuccess(exit)) {
          ProcessMetrics.streamEventsDelivered.value++
          return "delivered"
        }
        cause = exit.cause
      }
    })

  return { deliver, frameOf, leaseHeld }
}

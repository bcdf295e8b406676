/**
 * Failed one-way messages into the dead-letter queue, as kind `"tell"`, when
 * `Reminders.layer` is given `deadLetterTells: true`: a tell whose turn failed (a declared
 * error or a defect), one dropped because its activation failed, and one lost moving to
 * another silo. Nobody waits on a tell, so without this its failure is only logged; with it,
 * an operator can list the message, replay it (`Reminders.replay`, as for a reminder's tick)
 * or discard it.
 *
 * A tell is dead-lettered at its first failure: the sender chose not to wait, so there is
 * nobody to retry for, and retrying a failed turn is the supervisor's business, not the
 * queue's.
 *
 * @internal
 */
import { Clock, Effect, Exit, Schema, type Scope } from "effect"
import type { LocalRouter, LostOneWay } from "../../Actor/internal/LocalRouter.ts"
import type { ReminderStore } from "../ReminderStore.ts"
import { encodeDetails } from "./ReminderRecord.ts"

/** Sends the silo's failed tells to `store`'s dead letters while the scope is open. */
export const deadLetterTells = (store: ReminderStore, router: LocalRouter): Effect.Effect<void, never, Scope.Scope> =>
  Effect.acquireRelease(
    Effect.sync(() => {
      router.lostOneWay = (lost) => record(store, lost)
    }),
    () =>
      Effect.sync(() => {
        router.lostOneWay = undefined
      })
  )

const record = (store: ReminderStore, lost: LostOneWay): Effect.Effect<void> =>
  Effect.gen(function*() {
    const { address, message } = lost
    const schema = (message as { readonly payloadSchema?: Schema.Codec<unknown, unknown> }).payloadSchema
    // As it would go on the wire, so a replay decodes it like any dispatched message.
    const encoded = schema === undefined
      ? Exit.succeed(undefined)
      : yield* Effect.exit(Schema.encodeUnknownEffect(schema)(lost.payload))
    const at = yield* Clock.currentTimeMillis
    yield* store.addDeadLetter({
      id: `tell:${encodeURIComponent(address.type)}/${encodeURIComponent(address.id)}/${message.tag}@${at}:${crypto.randomUUID()}`,
      kind: "tell",
      at,
      data: encodeDetails({
        type: address.type,
        id: address.id,
        message: message.tag,
        payload: Exit.isSuccess(encoded) ? encoded.value : undefined,
        attempts: 1,
        error: Exit.isSuccess(encoded) ? lost.reason : `${lost.reason} (the payload did not encode; not kept)`
      })
    })
  }).pipe(
    Effect.catchCause((cause) => Effect.logWarning(`a failed one-way message to ${lost.address.type}/${lost.address.id} was not dead-lettered`, cause))
  )

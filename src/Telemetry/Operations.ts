/**
 * What a silo's operator endpoints answer (the routes `Endpoints.layer` serves for the
 * `quark` CLI, beside the read-only diagnostics of `Diagnostics`): one Schema per JSON
 * response, so the CLI decodes exactly what the silo encoded.
 *
 * - `GET /quark/actor?address=<type>/<id>`: where an actor lives (`ActorResponse`);
 * - `GET /quark/reminders?type=&id=`: an actor's reminders (`RemindersResponse`);
 * - `GET /quark/dlq?limit=&kind=`: the dead-letter queue, oldest first (`DeadLettersResponse`);
 * - `POST /quark/dlq/replay?id=`, `POST /quark/dlq/discard?id=`: deliver a dead letter again,
 *   or drop it (`DeadLetterActionResponse`; 404 `UnknownDeadLetter`).
 *
 * The reminder store lists by actor only (its keys are per actor), so reminders are asked
 * for one address at a time. Like `Diagnostics`, this module loads only `effect`.
 *
 * @since 0.2.0
 */
import { Schema } from "effect"
import { ActorItem, Address } from "./Diagnostics.ts"

/**
 * One reminder of an actor, as `Reminders.list` gives it; `timing` as stored (JSON).
 *
 * @since 0.2.0
 */
export const ReminderItem = Schema.Struct({
  address: Address,
  name: Schema.String,
  message: Schema.String,
  timing: Schema.Json,
  nextDue: Schema.Number,
  ticks: Schema.Int,
  registeredAt: Schema.Number
})

/** @since 0.2.0 */
export type ReminderItem = typeof ReminderItem.Type

/**
 * `GET /quark/actor?address=<type>/<id>` (the id is everything after the first `/`).
 * `owner`: the silo its activation lives on or would be placed on (`Cluster.ownerOf`; this
 * silo's id on a local silo; absent when no member could take it); `activation`: its
 * activation when it is active on the silo asked; `reminders`: absent when the silo has no
 * `Reminders`.
 *
 * @since 0.2.0
 */
export const ActorResponse = Schema.Struct({
  address: Address,
  silo: Schema.String,
  owner: Schema.optionalKey(Schema.String),
  activeHere: Schema.Boolean,
  activation: Schema.optionalKey(ActorItem),
  /** What the activation shows of its state, as JSON text, if its type opts in (`ActorContext.describe`). */
  summary: Schema.optionalKey(Schema.String),
  reminders: Schema.optionalKey(Schema.Array(ReminderItem))
})

/** @since 0.2.0 */
export type ActorResponse = typeof ActorResponse.Type

/**
 * `GET /quark/reminders?type=T&id=I`.
 *
 * @since 0.2.0
 */
export const RemindersResponse = Schema.Struct({ address: Address, items: Schema.Array(ReminderItem) })

/** @since 0.2.0 */
export type RemindersResponse = typeof RemindersResponse.Type

/**
 * A tick (or a tell, with `deadLetterTells`) given up on after its retries.
 *
 * @since 0.2.0
 */
export const DeadLetterItem = Schema.Struct({
  id: Schema.String,
  kind: Schema.String,
  at: Schema.Number,
  address: Address,
  message: Schema.String,
  reminder: Schema.optionalKey(Schema.String),
  due: Schema.optionalKey(Schema.Number),
  attempts: Schema.Int,
  error: Schema.String
})

/** @since 0.2.0 */
export type DeadLetterItem = typeof DeadLetterItem.Type

/**
 * `GET /quark/dlq?limit=N&kind=K`: at most `limit` (default 100, at most 1,000), oldest first.
 *
 * @since 0.2.0
 */
export const DeadLettersResponse = Schema.Struct({ items: Schema.Array(DeadLetterItem) })

/** @since 0.2.0 */
export type DeadLettersResponse = typeof DeadLettersResponse.Type

/**
 * `POST /quark/dlq/replay?id=` (delivered again, and out of the queue) or
 * `POST /quark/dlq/discard?id=` (out of the queue, not delivered).
 *
 * @since 0.2.0
 */
export const DeadLetterActionResponse = Schema.Struct({
  id: Schema.String,
  status: Schema.Literals(["replayed", "discarded"])
})

/** @since 0.2.0 */
export type DeadLetterActionResponse = typeof DeadLetterActionResponse.Type

/**
 * A reminders endpoint asked of a silo without `Reminders.layer` (404).
 *
 * @since 0.2.0
 */
export class NoReminders extends Schema.TaggedError<NoReminders>()("NoReminders", { reason: Schema.String }) {}

/**
 * No dead letter has that id (404): already replayed, discarded, or never there.
 *
 * @since 0.2.0
 */
export class UnknownDeadLetter extends Schema.TaggedError<UnknownDeadLetter>()("UnknownDeadLetter", { id: Schema.String }) {}

/**
 * The reminder store did not answer, or the replayed message could not be delivered (503).
 *
 * @since 0.2.0
 */
export class OperationFailed extends Schema.TaggedError<OperationFailed>()("OperationFailed", { reason: Schema.String }) {}

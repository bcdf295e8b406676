/**
 * The JSON the dashboard's API answers (`/dashboard/api/*`), one Schema per response, so
 * the page, the tests and any script decode exactly what the server encoded. Loads only
 * `effect`; `Dashboard` re-exports them.
 *
 * @internal
 */
import { Schema } from "effect"
import { DeadLetterItem } from "../Operations.ts"

const Address = Schema.Struct({ type: Schema.String, id: Schema.String })

/**
 * A silo as this process sees it. `status`: `alive` and `suspected` from the membership
 * view; `dead` (gone from the view without saying it was draining) and `left` (gone after
 * it said so) are remembered by the dashboard, not by the membership. The load figures are
 * the silo's last report (its membership metadata); `turnsPerSecond` is known only for the
 * silo of this process.
 */
export const SiloRow = Schema.Struct({
  id: Schema.String,
  host: Schema.String,
  port: Schema.Int,
  generation: Schema.optionalKey(Schema.Int),
  status: Schema.Literals(["alive", "suspected", "dead", "left"]),
  self: Schema.Boolean,
  draining: Schema.Boolean,
  uptimeMillis: Schema.optionalKey(Schema.Number),
  share: Schema.Number,
  activations: Schema.optionalKey(Schema.Number),
  cpu: Schema.optionalKey(Schema.Number),
  lagMillis: Schema.optionalKey(Schema.Number),
  memoryBytes: Schema.optionalKey(Schema.Number),
  memoryLimitBytes: Schema.optionalKey(Schema.Number),
  heap: Schema.optionalKey(Schema.Number),
  turnsPerSecond: Schema.optionalKey(Schema.Number),
  goneAtMillis: Schema.optionalKey(Schema.Number)
})

export type SiloRow = typeof SiloRow.Type

/** One actor type on this process's silo. */
export const TypeRow = Schema.Struct({
  type: Schema.String,
  activations: Schema.Int,
  mailboxDepth: Schema.Int,
  turnsPerSecond: Schema.optionalKey(Schema.Number),
  /** Turn latency between two polls, from the catalog's histogram (with `Telemetry.layer`): a bucket's upper bound. */
  p50Millis: Schema.optionalKey(Schema.Number),
  p99Millis: Schema.optionalKey(Schema.Number)
})

export type TypeRow = typeof TypeRow.Type

/** One (type, message) over the profiler's window (with a `Profiler.layer()` only). */
export const MessageRow = Schema.Struct({
  type: Schema.String,
  message: Schema.String,
  count: Schema.Number,
  failures: Schema.Number,
  turnsPerSecond: Schema.Number,
  p50Millis: Schema.Number,
  p99Millis: Schema.Number
})

/** `GET /dashboard/api/overview`: what the cluster, actors and throughput pages draw. */
export const Overview = Schema.Struct({
  now: Schema.Number,
  silo: Schema.String,
  clustered: Schema.Boolean,
  silos: Schema.Array(SiloRow),
  activations: Schema.Int,
  turnsPerSecond: Schema.optionalKey(Schema.Number),
  types: Schema.Array(TypeRow),
  messages: Schema.Array(MessageRow)
})

export type Overview = typeof Overview.Type

/** An activation on this process's silo, and its children (depth-first, `depth` from 1). */
export const ActivationRow = Schema.Struct({
  address: Address,
  state: Schema.String,
  mailboxDepth: Schema.Int,
  runningTurns: Schema.Int,
  ageMillis: Schema.Number,
  depth: Schema.Int,
  timers: Schema.Array(Schema.String)
})

export type ActivationRow = typeof ActivationRow.Type

export const ReminderRow = Schema.Struct({
  name: Schema.String,
  message: Schema.String,
  nextDue: Schema.Number,
  ticks: Schema.Number
})

/** A dead letter: the operator endpoints' item (`Operations.DeadLetterItem`). */
export const DeadLetterRow = DeadLetterItem

export type DeadLetterRow = typeof DeadLetterRow.Type

/**
 * `GET /dashboard/api/actor?type=&id=`: where the address lives (`owner`: a silo id,
 * `"local"` on a silo outside a cluster, absent when no silo hosts its type); `activation`
 * (with its children) when it is active in this process; its reminders and dead letters
 * when reminders are set up.
 */
export const ActorDetail = Schema.Struct({
  address: Address,
  owner: Schema.optionalKey(Schema.String),
  here: Schema.Boolean,
  activation: Schema.optionalKey(ActivationRow),
  /** What the activation shows of its state, as JSON text, if its type opts in (`ActorContext.describe`). */
  summary: Schema.optionalKey(Schema.String),
  /** The last failures its supervisor decided on (at most 10, newest last), while it is active here. */
  failures: Schema.Array(Schema.Struct({ at: Schema.Number, failure: Schema.String, decision: Schema.String })),
  children: Schema.Array(ActivationRow),
  reminders: Schema.optionalKey(Schema.Array(ReminderRow)),
  deadLetters: Schema.optionalKey(Schema.Array(DeadLetterRow))
})

export type ActorDetail = typeof ActorDetail.Type

/** `GET /dashboard/api/dead-letters`: the queue, oldest first, at most 500. */
export const DeadLetters = Schema.Struct({ available: Schema.Boolean, letters: Schema.Array(DeadLetterRow) })

export type DeadLetters = typeof DeadLetters.Type

/** `POST /dashboard/api/dead-letters/replay?id=` and `/discard?id=`. */
export const ActionResult = Schema.Struct({ id: Schema.String, done: Schema.Boolean, error: Schema.optionalKey(Schema.String) })

export type ActionResult = typeof ActionResult.Type

/** A refused request (401, 403, 400, 404). */
export const Refusal = Schema.Struct({ error: Schema.String })

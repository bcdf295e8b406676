/**
 * The contract of the reminders example's actor, shared by the silos (`silo.ts`, which
 * implement it) and the client (`../reminders.ts`, which registers the reminders and reads
 * the statements).
 *
 * A subscription is renewed by a reminder: each tick delivers `Renew`, which charges the
 * plan's price and saves the statement in Redis before it replies.
 */
import { Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorSchema, StateConflict, StoreError } from "quark"

/** What is stored per subscription (a state record in Redis). */
export const Statement = Schema.Struct({
  /** Renewals charged: one per due time, however often a tick is delivered. */
  renewals: Schema.Number,
  chargedCents: Schema.Number,
  /** The due time of the last renewal charged (epoch ms); 0 before the first. */
  lastDue: Schema.Number
})
export type Statement = typeof Statement.Type

export const Renew = Rpc.make("Renew", {
  payload: { cents: Schema.Number },
  error: Schema.Union([StateConflict, StoreError])
})
export const GetStatement = Rpc.make("GetStatement", { success: Statement }).annotate(ActorSchema.ReadOnly, true)

export const Subscription = Actor.make("Subscription", [Renew, GetStatement])

/**
 * The key prefix of one run's Redis keys, the subscriptions' state and the reminders both
 * (so the run can delete them all).
 */
export const storePrefix = (cluster: string): string => `quark:${cluster}`

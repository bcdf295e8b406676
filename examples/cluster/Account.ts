/**
 * The contract of the cluster example's actor, shared by the silos (`silo.ts`, which
 * implements it) and the client (`../cluster.ts`, which only calls it).
 *
 * An account keeps its balance in Redis; `WhereAmI` answers the id of the silo that served
 * the call, so the client can see where each activation lives.
 */
import { Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorSchema, StateConflict, StoreError } from "quark"

export const Deposit = Rpc.make("Deposit", {
  payload: { amount: Schema.Number },
  success: Schema.Number,
  error: Schema.Union([StateConflict, StoreError])
})
export const Balance = Rpc.make("Balance", { success: Schema.Number }).annotate(ActorSchema.ReadOnly, true)
export const WhereAmI = Rpc.make("WhereAmI", { success: Schema.String }).annotate(ActorSchema.ReadOnly, true)

export const Account = Actor.make("Account", [Deposit, Balance, WhereAmI])

/** The key prefix of the accounts' state records in one run's cluster (so the run can delete them). */
export const storePrefix = (cluster: string): string => `quark:${cluster}`

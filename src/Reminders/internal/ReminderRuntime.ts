/**
 * What the reminder buckets of one silo share: the store, the retry schedule, the history
 * size, and how a tick's request context is written and read.
 *
 * @internal
 */
import { Context, Effect, type Schedule } from "effect"
import type { DispatchError } from "../../Actor/ActorError.ts"
import type { StoreError } from "../../Persistence/PersistenceError.ts"
import type { DueTimer } from "./DueTimer.ts"
import { formatReminderKey } from "./ReminderRecord.ts"
import type { ReminderKey, ReminderStore } from "../ReminderStore.ts"

export interface ReminderRuntimeShape {
  readonly store: ReminderStore
  readonly bucketCount: number
  readonly historySize: number
  readonly retry: Schedule.Schedule<unknown, DispatchError>
  /** How long after a failed store write the tick is tried again. */
  readonly storeRetryMillis: number
  /** The silo's one timer for every bucket's reminders. */
  readonly timer: DueTimer
  /** The buckets active on this silo, each by how it stops: all are stopped before the store closes. */
  readonly buckets: Set<Effect.Effect<void>>
  /** How long a stopping bucket waits for the ticks in flight to end and be recorded. */
  readonly drainMillis: number
}

export class ReminderRuntime extends Context.Service<ReminderRuntime, ReminderRuntimeShape>()("quark/Reminders/Runtime") {}

/** The request-context keys of a tick. */
export const tickKeys = {
  name: "quark.reminder",
  due: "quark.reminder.due",
  attempt: "quark.reminder.attempt"
} as const

export const tickMetadata = (name: string, due: number, attempt: number): Readonly<Record<string, string>> => ({
  [tickKeys.name]: name,
  [tickKeys.due]: String(due),
  [tickKeys.attempt]: String(attempt)
})

export const logUndecodable = (key: ReminderKey, cause: unknown): Effect.Effect<void> =>
  Effect.logError(`reminder ${formatReminderKey(key)} does not decode; left in the store as it is`, cause)

export const logStoreFailure = (key: ReminderKey, error: StoreError): Effect.Effect<void> =>
  Effect.logWarning(`reminder ${formatReminderKey(key)}: the store failed (${error.message}); the tick will be tried again`)

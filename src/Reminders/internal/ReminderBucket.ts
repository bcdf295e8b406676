/**
 * A reminder bucket: a system actor (`$reminders/<bucket>`) that owns one partition of the
 * reminders, keeps them in memory ordered by fire time, and fires each tick by delivering
 * its declared message to its actor as an ordinary call.
 *
 * Why an actor: the cluster already guarantees one activation per address under its lease
 * (`Membership.ts`), hands an address over when the ring changes, and re-activates it on
 * the next owner when a silo dies. A bucket inherits all of it: exactly one silo fires a
 * bucket's reminders at a time, and when that silo dies the bucket's next activation loads
 * them from the store and goes on. Nothing here polls: one fiber sleeps until the earliest
 * fire time (on the Effect `Clock`), and a registration that comes earlier wakes it.
 *
 * Each tick is delivered first and recorded after (a compare-and-set of the reminder's next
 * due time). So a tick whose owner dies between the two fires again on the next owner: at
 * least once. Two silos never fire one bucket at once, because only its one activation
 * does; the compare-and-set makes a stale write (from an activation that was closed
 * mid-tick) fail instead of overwriting a newer registration.
 *
 * @internal
 */
import { Clock, Deferred, Duration, Effect, Exit, FiberSet, Schedule, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import * as Actor from "../../Actor/Actor.ts"
import { ActorContext } from "../../Actor/ActorContext.ts"
import { Cluster } from "../../Cluster/Cluster.ts"
import type { DispatchError } from "../../Actor/ActorError.ts"
import { systemContract } from "../../Actor/internal/SystemContract.ts"
import { CurrentTurn } from "../../Actor/internal/Turn.ts"
import * as RequestContext from "../../Actor/RequestContext.ts"
import { Silo } from "../../Actor/Silo.ts"
import { StateConflict, StoreError } from "../../Persistence/PersistenceError.ts"
import type { ReminderKey, ReminderStore, StoredReminder } from "../ReminderStore.ts"
import { DueHeap } from "./DueHeap.ts"
import { dueNow, jitterOffset } from "./DueTimes.ts"
import {
  decodeRecord,
  encodeDetails,
  encodeOutcome,
  encodeRecord,
  formatReminderKey,
  type ReminderRecord,
  type TickOutcome
} from "./ReminderRecord.ts"
import { logStoreFailure, logUndecodable, ReminderRuntime, tickMetadata } from "./ReminderRuntime.ts"

/** The type name of the bucket actors; ids are bucket numbers. */
export const bucketType = "$reminders"

const KeyFields = { type: Schema.String, id: Schema.String, name: Schema.String }

/** Stores a reminder (created or replaced) and schedules it. */
export const Put = Rpc.make("Put", {
  payload: { ...KeyFields, data: Schema.String, nextDue: Schema.Number },
  error: StoreError
})
/** Removes a reminder; `false` if there was none. */
export const Cancel = Rpc.make("Cancel", { payload: KeyFields, success: Schema.Boolean, error: StoreError })
/** Activates the bucket (the keeper sends it to every bucket, and the ring takes it to the owner). */
export const Touch = Rpc.make("Touch")

export const Bucket = Actor.make(bucketType, [Put, Cancel, Touch], { [systemContract]: true } as Actor.ContractOptions)

interface Entry {
  readonly key: ReminderKey
  readonly keyText: string
  record: ReminderRecord
  version: number
  nextDue: number
  /** Bumped on every change: a heap entry or a tick of an older generation is stale. */
  generation: number
  firing: boolean
  /** Came due while firing (replaced meanwhile, say): scheduled again once the firing ends. */
  rearm: boolean
}

/** Errors after which another attempt cannot help: the tick goes to the dead letters at once. */
const permanent = new Set(["UnknownActorType", "UnknownMessage", "InvalidActorId", "MessageDecodeError", "PayloadTooLarge"])

const isUnavailable = (error: DispatchError): boolean => error._tag === "ActorUnavailable" || error._tag === "MailboxFull"

/**
 * How long an unavailable actor is waited for before the tick counts as failed: longer than
 * failure detection (3.5 s with the default timings) and than a registry outage's grace.
 */
const unavailableRetry: Schedule.Schedule<unknown, DispatchError> = Schedule.spaced("250 millis").pipe(
  Schedule.upTo({ duration: "30 seconds" })
)

const describe = (error: DispatchError): string => {
  if (error._tag === "DeclaredError") {
    const declared = error.error as { readonly _tag?: unknown }
    return `declared error ${typeof declared?._tag === "string" ? declared._tag : JSON.stringify(declared)}`
  }
  return `${error._tag}: ${error.message}`
}

export const BucketLive = Bucket.toLayer(Effect.gen(function*() {
  const runtime = yield* ReminderRuntime
  const store: ReminderStore = runtime.store
  const silo = yield* Silo
  const ctx = yield* ActorContext
  const scope = yield* Scope.Scope
  const bucket = Number(ctx.address.id)
  yield* ctx.keepAlive(true)

  const entries = new Map<string, Entry>()
  const heap = new DueHeap()
  let wake = Deferred.makeUnsafe<void>()
  const firing = yield* FiberSet.make<void, never>()

  const fireAt = (entry: Entry): number =>
    entry.nextDue + jitterOffset(entry.keyText, entry.nextDue, entry.record.timing.jitterMillis)

  /** (Re)schedules an entry; wakes the firing loop when it is now the earliest. */
  const schedule = (entry: Entry) => {
    entry.generation++
    const at = fireAt(entry)
    const top = heap.peek()
    heap.push({ at, key: entry.keyText, generation: entry.generation })
    if (top === undefined || at < top.at) Deferred.doneUnsafe(wake, Exit.void)
  }

  const adopt = (stored: StoredReminder): Effect.Effect<Entry | undefined> => {
    let record: ReminderRecord
    try {
      record = decodeRecord(stored.data)
    } catch (cause) {
      // Left in the store as it is, for an operator: the next activation tries again.
      return Effect.as(logUndecodable(stored.key, cause), undefined)
    }
    const keyText = formatReminderKey(stored.key)
    const entry: Entry = entries.get(keyText) ?? {
      key: stored.key,
      keyText,
      record,
      version: stored.version,
      nextDue: stored.nextDue,
      generation: 0,
      firing: false,
      rearm: false
    }
    entry.record = record
    entry.version = stored.version
    entry.nextDue = stored.nextDue
    entries.set(keyText, entry)
    schedule(entry)
    return Effect.succeed(entry)
  }

  /** Re-reads a reminder after a write lost its compare-and-set. */
  const reload = (key: ReminderKey) =>
    Effect.flatMap(store.get(key), (stored) => {
      if (stored !== undefined) return adopt(stored)
      const keyText = formatReminderKey(key)
      const gone = entries.get(keyText)
      if (gone !== undefined) gone.generation++
      entries.delete(keyText)
      return Effect.void
    })

  for (const stored of yield* store.due(bucket, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)) yield* adopt(stored)

  // --- Firing --------------------------------------------------------------------------

  /** Delivers one tick, retrying with the runtime's schedule; its outcome for the history. */
  const deliver = (entry: Entry, record: ReminderRecord, due: number) =>
    Effect.gen(function*() {
      let attempts = 0
      const once = Effect.suspend(() =>
        silo.dispatch({ type: entry.key.type, id: entry.key.id, tag: record.message, payload: record.payload }).pipe(
          RequestContext.withRequestContext({ metadata: tickMetadata(entry.key.name, due, attempts) }),
          // A tick starts a call chain of its own: it is nobody's nested call.
          Effect.provideService(CurrentTurn, undefined)
        )
      )
      // The actor being unavailable (its silo died and the cluster has not moved it yet; it
      // is being handed over) says nothing about the tick: it did not run. That is waited
      // out within the attempt, and only a turn that ran and failed counts as one.
      const attempt: Effect.Effect<unknown, DispatchError> = Effect.suspend(() => {
        attempts++
        return Effect.retry(once, { schedule: unavailableRetry, while: isUnavailable })
      })
      const exit = yield* Effect.exit(Effect.retry(attempt, {
        schedule: runtime.retry,
        while: (error: DispatchError) => !permanent.has(error._tag)
      }))
      const firedAt = yield* Clock.currentTimeMillis
      if (Exit.isSuccess(exit)) return { due, firedAt, outcome: "delivered", attempts } satisfies TickOutcome
      const error = Exit.isFailure(exit) && exit.cause.reasons.length > 0 ? describeCause(exit.cause) : "interrupted"
      yield* store.addDeadLetter({
        id: `reminder:${entry.keyText}@${due}`,
        kind: "reminder",
        at: firedAt,
        data: encodeDetails({
          type: entry.key.type,
          id: entry.key.id,
          message: record.message,
          payload: record.payload,
          reminder: entry.key.name,
          due,
          attempts,
          error
        })
      })
      return { due, firedAt, outcome: "dead-lettered", attempts, error } satisfies TickOutcome
    })

  const describeCause = (cause: Exit.Failure<unknown, DispatchError>["cause"]): string => {
    for (const reason of cause.reasons) {
      if (reason._tag === "Fail") return describe(reason.error)
      if (reason._tag === "Die") return `defect: ${String(reason.defect)}`
    }
    return "interrupted"
  }

  /** Fires what is due of `entry` at `now`, then records it (compare-and-set). */
  const fire = (entry: Entry, now: number) =>
    Effect.gen(function*() {
      const generation = entry.generation
      const record = entry.record
      const version = entry.version
      const { fire: dues, next } = dueNow(record.timing, entry.nextDue, now, record.ticks)
      const outcomes: Array<TickOutcome> = []
      for (const due of dues) outcomes.push(yield* deliver(entry, record, due))
      for (const outcome of outcomes) {
        yield* store.appendHistory(entry.key, encodeOutcome(outcome), runtime.historySize)
      }
      if (entry.generation !== generation) return // replaced or cancelled meanwhile: that write stands
      const ticks = record.ticks + dues.length
      // A lost compare-and-set means a newer write (a registration, a cancel) stands: adopt it.
      const lost = (failure: StateConflict | StoreError) =>
        failure instanceof StateConflict ? Effect.asVoid(reload(entry.key)) : Effect.fail(failure)
      if (next === undefined) {
        const removed = yield* Effect.result(store.remove(entry.key, version))
        if (removed._tag === "Failure") return yield* lost(removed.failure)
        entries.delete(entry.keyText)
        entry.generation++
        return
      }
      const written = yield* Effect.result(
        store.put({ key: entry.key, bucket, nextDue: next, data: encodeRecord({ ...record, ticks }) }, version)
      )
      if (written._tag === "Failure") return yield* lost(written.failure)
      entry.record = { ...record, ticks }
      entry.version = written.success
      entry.nextDue = next
      // Before it is scheduled: a next tick already due is fired at once, not skipped as busy.
      entry.firing = false
      schedule(entry)
    }).pipe(
      Effect.catch((error) =>
        // The store failed: try the tick again shortly (delivery is at least once).
        Effect.andThen(logStoreFailure(entry.key, error), Effect.sync(() => {
          entry.firing = false
          entry.generation++
          const retryAt = now + runtime.storeRetryMillis
          heap.push({ at: retryAt, key: entry.keyText, generation: entry.generation })
        }))
      ),
      Effect.ensuring(Effect.sync(() => {
        entry.firing = false
        if (entry.rearm && entries.get(entry.keyText) === entry) {
          entry.rearm = false
          schedule(entry)
        }
      }))
    )

  const loop = Effect.gen(function*() {
    for (;;) {
      const now = yield* Clock.currentTimeMillis
      for (let top = heap.peek(); top !== undefined && top.at <= now; top = heap.peek()) {
        heap.pop()
        const entry = entries.get(top.key)
        if (entry === undefined || entry.generation !== top.generation) continue
        if (entry.firing) {
          entry.rearm = true
          continue
        }
        entry.firing = true
        yield* FiberSet.run(firing, fire(entry, now))
      }
      const signal = wake
      const next = heap.peek()
      if (next === undefined) yield* Deferred.await(signal)
      else yield* Effect.raceFirst(Effect.sleep(Duration.millis(next.at - now)), Deferred.await(signal))
      if (signal === wake && Deferred.isDoneUnsafe(signal)) wake = Deferred.makeUnsafe<void>()
    }
  })
  yield* Effect.forkIn(loop, scope)

  // --- Messages ------------------------------------------------------------------------

  const put = (key: ReminderKey, data: string, nextDue: number): Effect.Effect<void, StoreError> =>
    Effect.gen(function*() {
      const keyText = formatReminderKey(key)
      for (;;) {
        const expected = entries.get(keyText)?.version ?? 0
        const written = yield* Effect.result(store.put({ key, bucket, nextDue, data }, expected))
        if (written._tag === "Success") {
          yield* adopt({ key, bucket, nextDue, data, version: written.success })
          return
        }
        if (!(written.failure instanceof StateConflict)) return yield* Effect.fail(written.failure)
        yield* reload(key) // someone wrote since: replace what is there now
      }
    })

  const cancel = (key: ReminderKey): Effect.Effect<boolean, StoreError> =>
    Effect.gen(function*() {
      const keyText = formatReminderKey(key)
      for (;;) {
        const entry = entries.get(keyText)
        if (entry === undefined) {
          const stored = yield* store.get(key)
          if (stored === undefined) return false
          yield* adopt(stored)
          continue
        }
        const removed = yield* Effect.result(store.remove(key, entry.version))
        if (removed._tag === "Success") {
          entries.delete(keyText)
          entry.generation++
          return true
        }
        if (!(removed.failure instanceof StateConflict)) return yield* Effect.fail(removed.failure)
        yield* reload(key)
      }
    })

  return Bucket.of({
    Put: ({ data, id, name, nextDue, type }) => put({ type, id, name }, data, nextDue),
    Cancel: ({ id, name, type }) => cancel({ type, id, name }),
    Touch: () => Effect.void
  })
}), { idleTimeout: "never", whenFull: "suspend" })

/**
 * Keeps every bucket activated: the ring takes each `Touch` to the bucket's owner. In a
 * cluster it also touches them all as soon as this silo's view of the members changes, so a
 * dead silo's buckets start on their new owners when the death is declared, not up to an
 * interval later; the interval is the backstop (a bucket whose activation failed).
 */
export const keepBuckets = (bucketCount: number, interval: Duration.Duration) =>
  Effect.gen(function*() {
    const refs = yield* Effect.forEach(Array.from({ length: bucketCount }, (_, i) => String(i)), Bucket.refOrDie)
    const touchAll = Effect.forEach(refs, (ref) => Effect.ignore(ref.Touch()), { concurrency: 16, discard: true })
    const cluster = yield* Effect.serviceOption(Cluster)
    if (cluster._tag === "None") return yield* Effect.repeat(touchAll, Schedule.spaced(interval))
    const intervalMillis = Duration.toMillis(interval)
    let members = ""
    let touchedAt = Number.NEGATIVE_INFINITY
    const watch = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const current = (yield* cluster.value.members).join(" ")
      if (current === members && now - touchedAt < intervalMillis) return
      members = current
      touchedAt = now
      yield* touchAll
    })
    return yield* Effect.repeat(watch, Schedule.spaced(membershipPollInterval))
  })

/** How often the keeper reads this silo's view of the members (a local read). */
const membershipPollInterval = Duration.millis(100)

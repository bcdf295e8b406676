/**
 * A reminder bucket: a system actor (`$reminders/<bucket>`) that owns one partition of the
 * reminders, keeps them in memory, schedules them on the silo's timer (`DueTimer.ts`), and
 * fires each tick by delivering its declared message to its actor as an ordinary call.
 *
 * Why an actor: the cluster already guarantees one activation per address under its lease
 * (`Membership.ts`), hands an address over when the ring changes, and re-activates it on
 * the next owner when a silo dies. A bucket inherits all of it: exactly one silo fires a
 * bucket's reminders at a time, and when that silo dies the bucket's next activation loads
 * them from the store and goes on. Nothing here polls: the timer's fiber sleeps until the
 * earliest fire time (on the Effect `Clock`), and a registration that comes earlier wakes it.
 * A bucket that stops lets its ticks in flight end and be recorded first (see `stop`).
 *
 * Each tick is delivered first and recorded after (a compare-and-set of the reminder's next
 * due time). So a tick whose owner dies between the two fires again on the next owner: at
 * least once. Two silos never fire one bucket at once, because only its one activation
 * does; the compare-and-set makes a stale write (from an activation that was closed
 * mid-tick) fail instead of overwriting a newer registration.
 *
 * Metrics (process-wide, see `MetricCatalog`): `quark_reminder_tick_lag_seconds` from a
 * tick's due time to its first attempt (jitter and catch-up included: a tick fired late is
 * late); `quark_reminder_ticks_total` by outcome: `ok` per tick delivered, `retry` per
 * further attempt of a tick (waiting out an unavailable actor too), `dead_letter` per
 * tick given up on and stored as a dead letter.
 *
 * @internal
 */
import { type Cause, Clock, Deferred, Duration, Effect, Exit, FiberSet, Pull, Schedule, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import * as Actor from "../../Actor/Actor.ts"
import { ActorContext } from "../../Actor/ActorContext.ts"
import { keepActive } from "../../Cluster/internal/KeepActive.ts"
import type { DispatchError } from "../../Actor/ActorError.ts"
import { describeCause, failureOf } from "../../Actor/internal/DispatchFailure.ts"
import { systemContract } from "../../Actor/internal/SystemContract.ts"
import { CurrentTurn, Turn } from "../../Actor/internal/Turn.ts"
import { type PreparedMessage, prepare } from "../../Actor/internal/UntypedDispatch.ts"
import { Silo } from "../../Actor/Silo.ts"
import * as Attributes from "../../Telemetry/Attributes.ts"
import { StateConflict, StoreError } from "../../Persistence/PersistenceError.ts"
import * as ProcessMetrics from "../../Telemetry/internal/ProcessMetrics.ts"
import type { ReminderKey, ReminderStore, StoredReminder } from "../ReminderStore.ts"
import type { TickStarter, TimedEntry } from "./DueTimer.ts"
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

interface Entry extends TimedEntry {
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
const permanent = new Set(["UnknownActorType", "UnknownMessage", "InvalidActorId", "MessageDecodeError", "PayloadTooLarge", "Unauthorized", "Unauthenticated"])

const isUnavailable = (error: DispatchError): boolean => error._tag === "ActorUnavailable" || error._tag === "MailboxFull"

/**
 * How long an unavailable actor is waited for before the tick counts as failed: longer than
 * failure detection (3.5 s with the default timings) and than a registry outage's grace.
 */
const unavailableWaitMillis = 30_000
const unavailableRetryMillis = 250

export const BucketLive = Bucket.toLayer(Effect.gen(function*() {
  const runtime = yield* ReminderRuntime
  const store: ReminderStore = runtime.store
  const timer = runtime.timer
  const silo = yield* Silo
  const clock = yield* Clock.Clock
  const ctx = yield* ActorContext
  const scope = yield* Scope.Scope
  const bucket = Number(ctx.address.id)
  yield* ctx.keepAlive(true)

  const entries = new Map<string, Entry>()
  const firing = yield* FiberSet.make<void, never>()
  const runFire = yield* FiberSet.runtime(firing)<never>()
  /** Set when the bucket stops: no tick starts, and retries stop waiting. */
  let closing = false
  const closed = Deferred.makeUnsafe<void>()

  const owner: TickStarter = {
    start: (timed, generation, now) => {
      const entry = timed as Entry
      if (closing || entry.generation !== generation) return false
      if (entry.firing) {
        entry.rearm = true
        return false
      }
      entry.firing = true
      runFire(fire(entry, now))
      return true
    }
  }

  /** (Re)schedules an entry on the silo's timer. */
  const schedule = (entry: Entry) => {
    entry.generation++
    timer.schedule(entry, entry.nextDue + jitterOffset(entry.keyText, entry.nextDue, entry.record.timing.jitterMillis))
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
      owner,
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

  // --- Firing --------------------------------------------------------------------------

  /** The messages ticks send, looked up once per type and message. */
  const prepared = new Map<string, PreparedMessage>()

  /**
   * One attempt at a tick: its message, as an ordinary call, with the tick's request context.
   * A tick starts a call chain of its own (it is nobody's nested call): its frame has no outer.
   */
  const dispatchTick = (entry: Entry, record: ReminderRecord, due: number, attempt: number) => {
    const cacheKey = `${entry.key.type}\u0000${record.message}`
    const ready = prepared.get(cacheKey)
    const send = ready !== undefined
      ? ready.send(entry.key.id, record.payload)
      : Effect.flatMap(prepare(silo.router, entry.key.type, record.message), (message) => {
        prepared.set(cacheKey, message)
        return message.send(entry.key.id, record.payload)
      })
    const framed = Effect.provideService(
      send,
      CurrentTurn,
      Turn.contextFrame(undefined, undefined, tickMetadata(entry.key.name, due, attempt))
    )
    // A tick starts a trace of its own; the turn it causes is its child.
    const trace = silo.router.observer?.traceRoot
    return trace === undefined ? framed : trace(`quark.reminder.tick ${entry.key.type}`, {
      [Attributes.actorType]: entry.key.type,
      [Attributes.actorId]: entry.key.id,
      [Attributes.message]: record.message,
      [Attributes.reminder]: entry.key.name,
      [Attributes.reminderAttempt]: attempt
    }, framed)
  }

  /** Sleeps; `false` (at once) if the bucket stops meanwhile. */
  const sleepUnlessClosing = (millis: number): Effect.Effect<boolean> =>
    closing ? Effect.succeed(false) : Effect.raceFirst(
      Effect.as(Effect.sleep(Duration.millis(millis)), true),
      Effect.as(Deferred.await(closed), false)
    )

  const delivered = (due: number, attempts: number) =>
    Effect.map(Clock.currentTimeMillis, (firedAt): TickOutcome => {
      ProcessMetrics.reminderTicksOk.value++
      return { due, firedAt, outcome: "delivered", attempts }
    })

  /**
   * Delivers one tick: its outcome for the history, or `undefined` if the bucket stopped
   * before it was delivered (the next owner fires it). The first attempt is the fast path;
   * `release` frees the tick's slot on the timer as soon as that attempt ends.
   */
  const deliver = (entry: Entry, record: ReminderRecord, due: number, release: () => void) =>
    Effect.flatMap(
      Effect.exit(Effect.andThen(
        Effect.sync(() => ProcessMetrics.reminderTickLag.observe(clock.currentTimeMillisUnsafe() - due)),
        dispatchTick(entry, record, due, 1)
      )),
      (exit) => {
        release()
        return Exit.isSuccess(exit) ? delivered(due, 1) : retryTick(entry, record, due, exit.cause)
      }
    )

  /**
   * After a failed attempt: an unavailable actor (its silo died and the cluster has not moved
   * it yet; it is being handed over) says nothing about the tick, which did not run, so that
   * is waited out within the attempt (every 250 ms, up to 30 s). Only a turn that ran and
   * failed counts as an attempt, retried on the runtime's schedule. Errors a retry cannot
   * fix, a defect, or the schedule giving up send the tick to the dead letters.
   */
  const retryTick = (entry: Entry, record: ReminderRecord, due: number, first: Cause.Cause<DispatchError>) =>
    Effect.gen(function*() {
      const step = yield* Schedule.toStep(runtime.retry)
      let cause = first
      let attempts = 1
      let unavailableSince: number | undefined
      for (;;) {
        const error = failureOf(cause)
        if (error === undefined || permanent.has(error._tag)) break
        const now = yield* Clock.currentTimeMillis
        let delay: number | undefined
        if (isUnavailable(error)) {
          unavailableSince ??= now
          if (now - unavailableSince < unavailableWaitMillis) delay = unavailableRetryMillis
        }
        if (delay === undefined) {
          unavailableSince = undefined
          delay = yield* Pull.catchDone(
            Effect.map(step(now, error), ([, wait]) => Duration.toMillis(wait)),
            () => Effect.succeed(undefined)
          )
          if (delay === undefined) break
          attempts++
        }
        if (!(yield* sleepUnlessClosing(delay))) return undefined
        ProcessMetrics.reminderTicksRetry.value++
        const exit = yield* Effect.exit(dispatchTick(entry, record, due, attempts))
        if (Exit.isSuccess(exit)) return yield* delivered(due, attempts)
        cause = exit.cause
      }
      const firedAt = yield* Clock.currentTimeMillis
      const error = describeCause(cause)
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
      ProcessMetrics.reminderTicksDeadLetter.value++
      return { due, firedAt, outcome: "dead-lettered", attempts, error } satisfies TickOutcome
    })

  /**
   * Fires what is due of `entry` at `now`, recording each tick after it is delivered (a
   * compare-and-set of the next due time), so a bucket that stops between two ticks of a
   * catch-up leaves only the undelivered ones to the next owner.
   */
  const fire = (entry: Entry, now: number): Effect.Effect<void> => {
    let released = false
    const release = () => {
      if (released) return
      released = true
      timer.release()
    }
    const generation = entry.generation
    const record = entry.record
    const { fire: dues, next } = dueNow(record.timing, entry.nextDue, now, record.ticks)
    return Effect.gen(function*() {
      if (dues.length === 0) {
        release()
        // Nothing to fire (it ended, say): record that, unless nothing changed.
        if (next !== entry.nextDue && !(yield* advance(entry, record, next, record.ticks, undefined))) return
      }
      for (let i = 0; i < dues.length; i++) {
        const outcome = yield* deliver(entry, record, dues[i]!, release)
        if (outcome === undefined) return // the bucket stopped: the next owner fires it
        if (entry.generation !== generation) return // replaced or cancelled meanwhile: that write stands
        const nextDue = i + 1 < dues.length ? dues[i + 1] : next
        if (!(yield* advance(entry, record, nextDue, record.ticks + i + 1, outcome))) return
      }
      // Before it is scheduled: a next tick already due is fired at once, not skipped as busy.
      entry.firing = false
      schedule(entry)
    }).pipe(
      Effect.catch((error) =>
        // The store failed: try the tick again shortly (delivery is at least once).
        Effect.andThen(logStoreFailure(entry.key, error), Effect.sync(() => {
          entry.firing = false
          entry.generation++
          timer.schedule(entry, now + runtime.storeRetryMillis)
        }))
      ),
      Effect.onExit(() =>
        Effect.sync(() => {
          release()
          entry.firing = false
          if (entry.rearm && entries.get(entry.keyText) === entry) {
            entry.rearm = false
            schedule(entry)
          }
        })
      )
    )
  }

  /**
   * Records that `ticks` have fired and the next is due at `nextDue` (none: the reminder is
   * done and removed), with the outcome of the tick just delivered in its history. `false` if
   * the record lost its compare-and-set (a newer write stands, and is adopted) or is done.
   */
  const advance = (
    entry: Entry,
    record: ReminderRecord,
    nextDue: number | undefined,
    ticks: number,
    outcome: TickOutcome | undefined
  ): Effect.Effect<boolean, StoreError> =>
    Effect.gen(function*() {
      const lost = (failure: StateConflict | StoreError) =>
        failure instanceof StateConflict ? Effect.as(reload(entry.key), false) : Effect.fail(failure)
      if (nextDue === undefined) {
        // Its history goes with it: nothing to append.
        const removed = yield* Effect.result(store.remove(entry.key, entry.version))
        if (removed._tag === "Failure") return yield* lost(removed.failure)
        entries.delete(entry.keyText)
        entry.generation++
        return false
      }
      const updated: ReminderRecord = ticks === record.ticks ? record : { ...record, ticks }
      const history = outcome === undefined ? undefined : { entry: encodeOutcome(outcome), keep: runtime.historySize }
      const written = yield* Effect.result(
        store.put({ key: entry.key, bucket, nextDue, data: encodeRecord(updated) }, entry.version, history)
      )
      if (written._tag === "Failure") return yield* lost(written.failure)
      entry.record = updated
      entry.version = written.success
      entry.nextDue = nextDue
      return true
    })

  // --- Stopping ------------------------------------------------------------------------

  /**
   * Stops firing: no tick starts, retries stop waiting, and the ticks in flight get up to
   * `drainMillis` to end and be recorded, so a hand-over neither cuts a turn short nor
   * leaves a delivered tick to be fired again by the next owner. Runs before the fibers are
   * interrupted (the finalizer is added after the fiber set's), and again harmlessly when
   * the layer stopped the bucket first.
   */
  const stop: Effect.Effect<void> = Effect.suspend(() => {
    runtime.buckets.delete(stop)
    if (closing) return Effect.void
    closing = true
    Deferred.doneUnsafe(closed, Exit.void)
    timer.forget(owner)
    return FiberSet.awaitEmpty(firing).pipe(
      Effect.timeoutOrElse({
        duration: Duration.millis(runtime.drainMillis),
        orElse: () =>
          Effect.logWarning(
            `reminder bucket ${bucket}: ticks still in flight after ${runtime.drainMillis} ms; ` +
              "stopping them (the next owner fires them again)"
          )
      })
    )
  })
  runtime.buckets.add(stop)
  yield* Scope.addFinalizer(scope, stop)

  // Last: the timer may start a tick as soon as one is scheduled.
  for (const stored of yield* store.due(bucket, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)) yield* adopt(stored)

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

/** Keeps every bucket activated on its owner (see `KeepActive.ts`). */
export const keepBuckets = (bucketCount: number, interval: Duration.Duration) =>
  Effect.gen(function*() {
    const refs = yield* Effect.forEach(Array.from({ length: bucketCount }, (_, i) => String(i)), Bucket.refOrDie)
    return yield* keepActive(Effect.forEach(refs, (ref) => Effect.ignore(ref.Touch()), { concurrency: 16, discard: true }), interval)
  })

/**
 * The one timer of a silo's reminder buckets: every bucket's reminders, by fire time, in one
 * heap, and one fiber that sleeps (on the Effect `Clock`) until the earliest and starts
 * whatever is due.
 *
 * **Why one per silo, not one per bucket.** A timer wake costs a sleep and a race with the
 * "something earlier was scheduled" signal, about 15 µs. Per bucket, 64 buckets firing
 * 10,000 ticks a second woke about 10,000 times a second; one timer for the silo wakes at
 * most once per millisecond of due times (the clock's resolution), starting all that is
 * due at each wake.
 *
 * **Bounded bursts.** Starting a tick forks its delivery. A burst (every silo was down for an
 * hour; a bucket moved here with 100,000 reminders due) would fork them all at once and
 * keep the event loop busy for seconds, long enough to miss heartbeats. So at most
 * `maxInFlight` ticks are between their start and the end of their first attempt (a retry
 * waiting out its backoff does not count: it must not hold up healthy actors' ticks), and
 * the timer yields to the event loop after every `batch` starts.
 *
 * @internal
 */
import { Clock, Deferred, Duration, Effect, Exit } from "effect"
import { DueHeap } from "./DueHeap.ts"

/** What the timer holds: bumped `generation` means an entry's scheduled times are stale. */
export interface TimedEntry {
  readonly generation: number
  readonly owner: TickStarter
}

/** The bucket that owns an entry: starts its tick, or says why not. */
export interface TickStarter {
  /**
   * Starts the entry's tick (it calls `release` once its first attempt has ended) and
   * returns `true`; or returns `false` without starting anything (stale, already firing,
   * its bucket closing).
   */
  readonly start: (entry: TimedEntry, generation: number, now: number) => boolean
}

interface Scheduled {
  readonly at: number
  readonly generation: number
  readonly entry: TimedEntry
}

export class DueTimer {
  private readonly heap = new DueHeap<Scheduled>()
  private inFlight = 0
  private wake = Deferred.makeUnsafe<void>()
  /** What the loop sleeps until: a schedule earlier than this wakes it. */
  private sleepsUntil = Number.POSITIVE_INFINITY
  private waitsForSlot = false
  private readonly forgotten = new Set<TickStarter>()

  readonly maxInFlight: number
  readonly batch: number

  constructor(maxInFlight: number, batch: number) {
    this.maxInFlight = maxInFlight
    this.batch = batch
  }

  /** The entry's tick at `at` (epoch milliseconds), for its current generation. */
  schedule(entry: TimedEntry, at: number): void {
    this.heap.push({ at, generation: entry.generation, entry })
    if (at < this.sleepsUntil) Deferred.doneUnsafe(this.wake, Exit.void)
  }

  /**
   * Drops every entry of `owner` (a bucket that stopped), so a bucket that moved away holds
   * no memory here until its reminders' due times. Done by the timer's fiber at its next
   * wake, once for all the buckets that stopped meanwhile (a heap rebuild, O(n log n)).
   */
  forget(owner: TickStarter): void {
    this.forgotten.add(owner)
    Deferred.doneUnsafe(this.wake, Exit.void)
  }

  /** A started tick's first attempt ended. */
  release(): void {
    this.inFlight--
    if (this.waitsForSlot) Deferred.doneUnsafe(this.wake, Exit.void)
  }

  /** The timer's fiber: runs until interrupted. */
  readonly run: Effect.Effect<never> = Effect.suspend(() => {
    const heap = this.heap
    const self = this
    return Effect.gen(function*() {
      for (;;) {
        const signal = self.wake
        // Awake: whatever is scheduled now is seen by the scan below.
        self.sleepsUntil = Number.NEGATIVE_INFINITY
        if (self.forgotten.size > 0) {
          const forgotten = self.forgotten
          heap.retain((scheduled) => !forgotten.has(scheduled.entry.owner))
          forgotten.clear()
        }
        const now = yield* Clock.currentTimeMillis
        let started = 0
        while (self.inFlight < self.maxInFlight && started < self.batch) {
          const top = heap.peek()
          if (top === undefined || top.at > now) break
          heap.pop()
          if (top.entry.generation !== top.generation) continue
          let startedOne: boolean
          try {
            startedOne = top.entry.owner.start(top.entry, top.generation, now)
          } catch (defect) {
            // A bug in one bucket must not stop every reminder on the silo.
            yield* Effect.logError("reminder timer: starting a tick threw", defect)
            continue
          }
          if (startedOne) {
            self.inFlight++
            started++
          }
        }
        if (started === self.batch) {
          // Let what was started (and everything else on this silo) run before starting more.
          yield* Effect.yieldNow
          continue
        }
        if (self.inFlight >= self.maxInFlight) {
          self.waitsForSlot = true
          yield* Deferred.await(signal)
          self.waitsForSlot = false
        } else {
          const next = heap.peek()
          self.sleepsUntil = next?.at ?? Number.POSITIVE_INFINITY
          if (next === undefined) yield* Deferred.await(signal)
          else yield* Effect.raceFirst(Effect.sleep(Duration.millis(next.at - now)), Deferred.await(signal))
        }
        if (Deferred.isDoneUnsafe(signal)) self.wake = Deferred.makeUnsafe<void>()
      }
    })
  })
}

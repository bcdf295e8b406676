/**
 * When a reminder is due: pure, synchronous functions of a `TimingOptions` and epoch
 * milliseconds. No clock, fibers or storage; the reminder service calls them.
 *
 * Due times of a reminder form a strictly increasing sequence `d0, d1, …`:
 * - `At`: one due time, `at` (fired at once when registered after it).
 * - `Every`: `startAt + i × period`. `startAt` may be in the past: the first fire then
 *   finds ticks already missed, and the missed-tick policy applies.
 * - `Cron`: `d0` is the first match strictly after registration, `d(i+1) = Cron.next(di)`.
 *   Effect's `Cron` decides daylight saving: in a spring-forward gap the first matching wall
 *   time fires once, shifted by the gap (02:30 → 03:30 in Europe/Berlin on 2026-03-29) and
 *   later matches inside the gap do not (`* 2 * * *` fires at 03:00 only, not 03:01…03:59);
 *   a wall time repeated by a fall-back fires once, at its first occurrence (the default
 *   `onDstOverlap: "earlier"`). So no tick fires twice and none goes back in time.
 * - `endAt` cuts the sequence (no due time after it); `maxTicks` cuts what fires.
 *
 * Firing. When the reminder fires at `now` for its stored due time `scheduled`, let
 * `D = d(j) … d(j+k-1)` be the `k ≥ 1` due times from `scheduled` up to `now` (and up to
 * `endAt`). The last one, `D[k-1]`, is the current tick: late maybe, but not missed. The
 * ones before it are missed (a later due time has passed too). Every policy fires the last
 * `n` of `D`, oldest first, with `n` = min(k, 1, 2 or `max`):
 * - `Skip`: n = 1, the current tick only. 10 min down with a 1 min period: fires the latest
 *   tick due; the 9 before it are dropped. The current tick is not dropped, so an owner a
 *   few milliseconds late (k = 1) still fires, and a one-shot always fires.
 * - `FireOnce` (the default): n = 2, one catch-up tick carrying the due time of the latest
 *   missed tick, then the current tick. Same outage: fires the ticks due 1 min ago and now.
 *   The handler learns that something was missed without a burst; with k = 1 it is just
 *   the current tick.
 * - `FireEach(max)`: n = `max`, the most recent ones (the older ones are the least useful
 *   and the cost of a burst is bounded). 10 min down, 100 ms period, `max` 3: fires the
 *   ticks due 200 ms, 100 ms and 0 ms before the last due time (6,001 were due).
 * Whatever fires, the next due time is `nextDue(D[k-1])`: after `now`, so one fire leaves
 * no backlog behind (no second burst at the next wake-up). With `maxTicks`, at most
 * `maxTicks − ticksFired` of them fire (again the most recent: the count is spent on the
 * freshest ticks), and nothing is due once the count is reached.
 *
 * Work is bounded by `n`, not `k`: `Every` is arithmetic; `Cron` steps forward `n` times,
 * then jumps back from `now` with `Cron.prev` to the n-th match and steps forward again with
 * `Cron.next`, so the due times fired are those `Cron.next` produces one by one, and the
 * last one's next is after `now`.
 *
 * Jitter is deterministic in (reminder, due time): a silo that re-fires a tick after its
 * owner died waits the same extra time.
 *
 * @since 0.1.0
 */
import { Cron, Result, Schema } from "effect"
import { minimumPeriodMillis, type TimingOptions } from "../ReminderTiming.ts"

/**
 * Timing options that cannot be scheduled; `reason` says which field and why.
 *
 * @since 0.1.0
 */
export class InvalidReminderTiming extends Schema.TaggedError<InvalidReminderTiming>()("InvalidReminderTiming", {
  reason: Schema.String
}) {
  override get message(): string {
    return `invalid reminder timing: ${this.reason}`
  }
}

// Parsing is cached: a cron reminder parses its expression at every tick otherwise.
const cronCache = new Map<string, Result.Result<Cron.Cron, Cron.CronParseError>>()

const parseCron = (expression: string, timeZone: string): Result.Result<Cron.Cron, Cron.CronParseError> => {
  const key = `${timeZone}\u0000${expression}`
  let parsed = cronCache.get(key)
  if (parsed === undefined) {
    if (cronCache.size >= 1024) cronCache.clear()
    parsed = Cron.parse(expression, timeZone)
    cronCache.set(key, parsed)
  }
  return parsed
}

const cronOf = (options: TimingOptions): Cron.Cron | undefined => {
  const timing = options.timing
  return timing._tag === "Cron" ? Result.getOrThrow(parseCron(timing.expression, timing.timeZone)) : undefined
}

// `Cron.next` and `Cron.prev` throw when no match is found (`0 0 30 2 *`): no more due times.
const step = (cron: Cron.Cron, from: number, direction: "next" | "prev"): number | undefined => {
  try {
    return (direction === "next" ? Cron.next(cron, from) : Cron.prev(cron, from)).getTime()
  } catch {
    return undefined
  }
}

const notFinite = (value: number | undefined): boolean => value !== undefined && !Number.isFinite(value)
const notCount = (value: number | undefined): boolean =>
  value !== undefined && (!Number.isInteger(value) || value < 1)

/**
 * Why the options cannot be scheduled, or `undefined` when they can.
 *
 * @since 0.1.0
 */
export const validate = (options: TimingOptions): InvalidReminderTiming | undefined => {
  const fail = (reason: string) => new InvalidReminderTiming({ reason })
  const timing = options.timing
  switch (timing._tag) {
    case "At":
      if (notFinite(timing.at)) return fail(`at must be a finite time, got ${timing.at}`)
      break
    case "Every":
      if (!Number.isFinite(timing.periodMillis) || timing.periodMillis < minimumPeriodMillis) {
        return fail(`period must be at least ${minimumPeriodMillis} ms, got ${timing.periodMillis}`)
      }
      if (notFinite(timing.startAt)) return fail(`startAt must be a finite time, got ${timing.startAt}`)
      break
    case "Cron": {
      const parsed = parseCron(timing.expression, timing.timeZone)
      if (Result.isFailure(parsed)) {
        return fail(`cron "${timing.expression}" in "${timing.timeZone}": ${parsed.failure.message}`)
      }
      if (step(parsed.success, 0, "next") === undefined) {
        return fail(`cron "${timing.expression}" in "${timing.timeZone}" never matches`)
      }
    }
  }
  if (options.missed._tag === "FireEach" && notCount(options.missed.max)) {
    return fail(`FireEach max must be an integer ≥ 1, got ${options.missed.max}`)
  }
  if (!Number.isFinite(options.jitterMillis) || options.jitterMillis < 0) {
    return fail(`jitter must be a finite number of ms ≥ 0, got ${options.jitterMillis}`)
  }
  if (notFinite(options.endAt)) return fail(`endAt must be a finite time, got ${options.endAt}`)
  if (notCount(options.maxTicks)) return fail(`maxTicks must be an integer ≥ 1, got ${options.maxTicks}`)
  return undefined
}

const beforeEnd = (options: TimingOptions, due: number | undefined): number | undefined =>
  due !== undefined && (options.endAt === undefined || due <= options.endAt) ? due : undefined

/**
 * The first due time of a reminder registered at `now` (options already validated), or
 * `undefined` when there is none (after `endAt`).
 *
 * @since 0.1.0
 */
export const firstDue = (options: TimingOptions, now: number): number | undefined => {
  if (options.maxTicks !== undefined && options.maxTicks < 1) return undefined
  const timing = options.timing
  switch (timing._tag) {
    case "At":
      return beforeEnd(options, timing.at)
    case "Every":
      return beforeEnd(options, timing.startAt)
    case "Cron":
      return beforeEnd(options, step(cronOf(options)!, now, "next"))
  }
}

/**
 * The due time following `due`, or `undefined` when there is none (a one-shot, or after
 * `endAt`). Does not count ticks: {@link dueNow} applies `maxTicks`.
 *
 * @since 0.1.0
 */
export const nextDue = (options: TimingOptions, due: number): number | undefined => {
  const timing = options.timing
  switch (timing._tag) {
    case "At":
      return undefined
    case "Every":
      return beforeEnd(options, due + timing.periodMillis)
    case "Cron":
      return beforeEnd(options, step(cronOf(options)!, due, "next"))
  }
}

/**
 * What to fire now, oldest first, and the due time to store next (`undefined`: the reminder
 * has ended).
 *
 * @since 0.1.0
 */
export interface Due {
  readonly fire: ReadonlyArray<number>
  readonly next: number | undefined
}

// The last `n` (at most) due times from `scheduled` up to `horizon` (`scheduled` is not after
// it), and the due time after them (after the horizon; Cron.next is too slow to call twice).
const lastDues = (
  options: TimingOptions,
  scheduled: number,
  horizon: number,
  n: number
): [dues: Array<number>, after: number | undefined] => {
  const timing = options.timing
  if (timing._tag === "At") return [[scheduled], undefined]
  if (timing._tag === "Every") {
    const k = Math.floor((horizon - scheduled) / timing.periodMillis) + 1
    const first = k - Math.min(k, n)
    const dues: Array<number> = []
    for (let i = first; i < k; i++) dues.push(scheduled + i * timing.periodMillis)
    return [dues, dues[dues.length - 1]! + timing.periodMillis]
  }
  const cron = cronOf(options)!
  let dues = [scheduled]
  let from = scheduled
  for (let i = 0; i < n; i++) {
    const due = step(cron, from, "next")
    if (due === undefined || due > horizon) return [dues, due]
    dues.push(due)
    from = due
  }
  // Past n + 1 due times, jump: walk back from the horizon with `Cron.prev` to the n-th match
  // that `Cron.next` also produces, and step forward from there. (Near a DST gap prev returns
  // shifted wall times that next skips from where we are, as 03:46…03:59 for `* 2 * * *` when
  // 02:45 jumps to 03:45 in Pacific/Chatham; starting next on one could change the sequence.)
  for (let back: number | undefined = Math.floor(horizon) + 1, found = 0; found < n;) {
    back = step(cron, back, "prev")
    if (back === undefined || back <= from) break
    if (step(cron, back - 1, "next") === back && ++found === n) {
      dues = []
      from = back - 1
    }
  }
  for (;;) {
    const due = step(cron, from, "next")
    if (due === undefined || due > horizon) return [dues.slice(-n), due]
    dues.push(due)
    from = due
  }
}

/**
 * The reminder fires at `now` for its stored due time `scheduled`, `ticksFired` ticks having
 * fired before: which due times fire, oldest first, and the next due time. See the module
 * comment for the rules. Called early (`now < scheduled`), nothing fires.
 *
 * @since 0.1.0
 */
export const dueNow = (options: TimingOptions, scheduled: number, now: number, ticksFired: number): Due => {
  const left = options.maxTicks === undefined ? Infinity : options.maxTicks - ticksFired
  if (left < 1 || beforeEnd(options, scheduled) === undefined) return { fire: [], next: undefined }
  if (now < scheduled) return { fire: [], next: scheduled }
  const missed = options.missed
  const policy = missed._tag === "Skip" ? 1 : missed._tag === "FireOnce" ? 2 : missed.max
  const horizon = options.endAt === undefined ? now : Math.min(now, options.endAt)
  const [fire, after] = lastDues(options, scheduled, horizon, Math.min(policy, left))
  return { fire, next: fire.length >= left ? undefined : beforeEnd(options, after) }
}

/**
 * The extra delay of the tick of `key` due at `due`: an integer in [0, jitterMillis),
 * the same on every silo. FNV-1a over `${key}@${due}`, mixed by murmur3's finalizer so
 * that consecutive due times spread evenly.
 *
 * @since 0.1.0
 */
export const jitterOffset = (key: string, due: number, jitterMillis: number): number => {
  if (!(jitterMillis > 0) || !Number.isFinite(jitterMillis)) return 0
  const input = `${key}@${due}`
  let h = 0x811c9dc5
  for (let i = 0; i < input.length; i++) {
    h = Math.imul(h ^ input.charCodeAt(i), 0x01000193)
  }
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  h = (h ^ (h >>> 16)) >>> 0
  return Math.min(Math.floor((h / 4294967296) * jitterMillis), Math.ceil(jitterMillis) - 1)
}

/**
 * The pure due-time logic of reminders (src/Reminders/internal/DueTimes.ts): each kind, cron
 * across daylight-saving changes (what effect's `Cron` does, and that we follow it), each
 * missed-tick policy with one, two and many due times passed, `maxTicks` and `endAt`,
 * validation, and fast-check properties (fixed seed, so a run is reproducible).
 */
import { assert, describe, it } from "@effect/vitest"
import { Cron } from "effect"
import * as fc from "fast-check"
import {
  dueNow,
  firstDue,
  InvalidReminderTiming,
  jitterOffset,
  nextDue,
  validate
} from "../../src/Reminders/internal/DueTimes.ts"
import type { MissedTicks, Timing, TimingOptions } from "../../src/Reminders/ReminderTiming.ts"

const at = (at: number): Timing => ({ _tag: "At", at })
const every = (periodMillis: number, startAt: number): Timing => ({ _tag: "Every", periodMillis, startAt })
const cron = (expression: string, timeZone: string): Timing => ({ _tag: "Cron", expression, timeZone })
const Skip: MissedTicks = { _tag: "Skip" }
const FireOnce: MissedTicks = { _tag: "FireOnce" }
const FireEach = (max: number): MissedTicks => ({ _tag: "FireEach", max })

const opts = (timing: Timing, extra: Partial<TimingOptions> = {}): TimingOptions => ({
  timing,
  missed: FireOnce,
  jitterMillis: 0,
  ...extra
})

const t = (iso: string): number => Date.parse(iso)
const iso = (ms: number): string => new Date(ms).toISOString()
const local = (ms: number, timeZone: string): string => new Date(ms).toLocaleString("sv-SE", { timeZone })

/** `count` due times of a cron reminder registered at `from`, by firstDue then nextDue. */
const cronDues = (options: TimingOptions, from: number, count: number): Array<number> => {
  const dues: Array<number> = []
  let due = firstDue(options, from)
  while (due !== undefined && dues.length < count) {
    dues.push(due)
    due = nextDue(options, due)
  }
  return dues
}

const params = { seed: 20_260_329, numRuns: 300 }

describe("validate", () => {
  it("accepts each kind", () => {
    assert.isUndefined(validate(opts(at(0))))
    assert.isUndefined(validate(opts(every(10, -5), { missed: FireEach(1), jitterMillis: 0.5, maxTicks: 1 })))
    assert.isUndefined(validate(opts(cron("*/5 * * * * *", "Europe/Berlin"), { endAt: 0, missed: Skip })))
    assert.isUndefined(validate(opts(cron("0 9 * * mon-fri", "UTC"))))
  })

  const rejects = (name: string, options: TimingOptions, reason: RegExp) =>
    it(`rejects ${name}`, () => {
      const error = validate(options)
      assert.instanceOf(error, InvalidReminderTiming)
      assert.strictEqual(error!._tag, "InvalidReminderTiming")
      assert.match(error!.reason, reason)
    })
  rejects("a period under the floor", opts(every(9, 0)), /period must be at least 10 ms, got 9/)
  rejects("a NaN period", opts(every(NaN, 0)), /period/)
  rejects("an infinite period", opts(every(Infinity, 0)), /period/)
  rejects("a NaN startAt", opts(every(1000, NaN)), /startAt/)
  rejects("an infinite at", opts(at(Infinity)), /at must be a finite time/)
  rejects("a cron with 4 fields", opts(cron("* * * *", "UTC")), /Invalid number of segments/)
  rejects("a cron with minute 61", opts(cron("61 * * * *", "UTC")), /Expected a value between 0 and 59/)
  rejects("an unknown time zone", opts(cron("* * * * *", "Mars/Olympus_Mons")), /Invalid time zone/)
  rejects("a cron that never matches", opts(cron("0 0 30 2 *", "UTC")), /never matches/)
  rejects("a negative jitter", opts(at(0), { jitterMillis: -1 }), /jitter/)
  rejects("a NaN jitter", opts(at(0), { jitterMillis: NaN }), /jitter/)
  rejects("an infinite jitter", opts(at(0), { jitterMillis: Infinity }), /jitter/)
  rejects("maxTicks 0", opts(at(0), { maxTicks: 0 }), /maxTicks/)
  rejects("a fractional maxTicks", opts(at(0), { maxTicks: 1.5 }), /maxTicks/)
  rejects("a NaN maxTicks", opts(at(0), { maxTicks: NaN }), /maxTicks/)
  rejects("FireEach max 0", opts(at(0), { missed: FireEach(0) }), /FireEach max/)
  rejects("a fractional FireEach max", opts(at(0), { missed: FireEach(2.5) }), /FireEach max/)
  rejects("a NaN endAt", opts(at(0), { endAt: NaN }), /endAt/)
})

describe("At", () => {
  it("is due at `at`, even in the past, once", () => {
    assert.strictEqual(firstDue(opts(at(5_000)), 1_000), 5_000)
    assert.strictEqual(firstDue(opts(at(5_000)), 9_000), 5_000)
    assert.isUndefined(nextDue(opts(at(5_000)), 5_000))
    assert.deepStrictEqual(dueNow(opts(at(5_000)), 5_000, 9_000, 0), { fire: [5_000], next: undefined })
  })

  it("ends at endAt", () => {
    assert.isUndefined(firstDue(opts(at(5_000), { endAt: 4_999 }), 0))
    assert.strictEqual(firstDue(opts(at(5_000), { endAt: 5_000 }), 0), 5_000)
    assert.deepStrictEqual(dueNow(opts(at(5_000), { endAt: 4_999 }), 5_000, 9_000, 0), { fire: [], next: undefined })
  })
})

describe("Every", () => {
  it("starts at startAt, even in the past, then adds the period", () => {
    const o = opts(every(1_000, 10_000))
    assert.strictEqual(firstDue(o, 0), 10_000)
    assert.strictEqual(firstDue(o, 99_999), 10_000)
    assert.strictEqual(nextDue(o, 10_000), 11_000)
    // Registered 89.5 s after startAt: one catch-up tick and the current one, then on the grid.
    assert.deepStrictEqual(dueNow(o, 10_000, 99_500, 0), { fire: [98_000, 99_000], next: 100_000 })
  })

  it("ends at endAt (inclusive) in every function", () => {
    const o = opts(every(1_000, 10_000), { endAt: 12_000, missed: FireEach(10) })
    assert.isUndefined(firstDue(opts(every(1_000, 10_000), { endAt: 9_999 }), 0))
    assert.strictEqual(nextDue(o, 11_000), 12_000)
    assert.isUndefined(nextDue(o, 12_000))
    assert.deepStrictEqual(dueNow(o, 10_000, 11_500, 0), { fire: [10_000, 11_000], next: 12_000 })
    assert.deepStrictEqual(dueNow(o, 10_000, 50_000, 0), { fire: [10_000, 11_000, 12_000], next: undefined })
    assert.deepStrictEqual(dueNow({ ...o, missed: Skip }, 10_000, 50_000, 0), { fire: [12_000], next: undefined })
    assert.deepStrictEqual(dueNow(o, 13_000, 50_000, 0), { fire: [], next: undefined })
  })

  it("fires nothing when called before the due time", () => {
    assert.deepStrictEqual(dueNow(opts(every(1_000, 10_000)), 10_000, 9_000, 0), { fire: [], next: 10_000 })
  })
})

describe("missed ticks", () => {
  const o = (missed: MissedTicks) => opts(every(1_000, 0), { missed })
  const policies = { Skip, FireOnce, FireEach3: FireEach(3) }

  it("k = 1: the tick fires (late, not missed) under every policy", () => {
    for (const missed of Object.values(policies)) {
      assert.deepStrictEqual(dueNow(o(missed), 0, 999, 0), { fire: [0], next: 1_000 })
      assert.deepStrictEqual(dueNow(o(missed), 0, 0, 0), { fire: [0], next: 1_000 })
    }
  })

  it("k = 2: Skip fires the current tick, FireOnce and FireEach both", () => {
    assert.deepStrictEqual(dueNow(o(Skip), 0, 1_500, 0), { fire: [1_000], next: 2_000 })
    assert.deepStrictEqual(dueNow(o(FireOnce), 0, 1_500, 0), { fire: [0, 1_000], next: 2_000 })
    assert.deepStrictEqual(dueNow(o(FireEach(3)), 0, 1_500, 0), { fire: [0, 1_000], next: 2_000 })
    assert.deepStrictEqual(dueNow(o(FireEach(1)), 0, 1_500, 0), { fire: [1_000], next: 2_000 })
  })

  it("many: 10 minutes down with a 100 ms period", () => {
    const start = t("2026-05-01T12:00:00Z")
    const now = start + 600_050 // 6,001 due times passed, the last one 50 ms ago
    const e = (missed: MissedTicks) => opts(every(100, start), { missed })
    const next = start + 600_100
    assert.deepStrictEqual(dueNow(e(Skip), start, now, 0), { fire: [start + 600_000], next })
    assert.deepStrictEqual(dueNow(e(FireOnce), start, now, 0), { fire: [start + 599_900, start + 600_000], next })
    assert.deepStrictEqual(dueNow(e(FireEach(3)), start, now, 0), {
      fire: [start + 599_800, start + 599_900, start + 600_000],
      next
    })
    assert.deepStrictEqual(dueNow(e(FireEach(10_000)), start, now, 0).fire.length, 6_001)
  })

  it("maxTicks keeps the most recent ticks and ends the reminder", () => {
    const m = (missed: MissedTicks) => opts(every(1_000, 0), { missed, maxTicks: 5 })
    assert.deepStrictEqual(dueNow(m(FireEach(10)), 0, 60_000, 3), { fire: [59_000, 60_000], next: undefined })
    assert.deepStrictEqual(dueNow(m(FireOnce), 0, 60_000, 4), { fire: [60_000], next: undefined })
    assert.deepStrictEqual(dueNow(m(FireOnce), 0, 60_000, 3), { fire: [59_000, 60_000], next: undefined })
    assert.deepStrictEqual(dueNow(m(FireOnce), 0, 60_000, 2), { fire: [59_000, 60_000], next: 61_000 })
    assert.deepStrictEqual(dueNow(m(Skip), 4_000, 4_000, 4), { fire: [4_000], next: undefined })
    assert.deepStrictEqual(dueNow(m(Skip), 3_000, 3_000, 3), { fire: [3_000], next: 4_000 })
    assert.deepStrictEqual(dueNow(m(Skip), 5_000, 5_000, 5), { fire: [], next: undefined })
    assert.isUndefined(firstDue({ ...m(Skip), maxTicks: 0 }, 0))
  })
})

describe("Cron", () => {
  it("is due at the first match strictly after registration, then each next match", () => {
    const o = opts(cron("0 * * * *", "UTC"))
    assert.strictEqual(firstDue(o, t("2026-01-01T10:00:00Z")), t("2026-01-01T11:00:00Z"))
    assert.strictEqual(firstDue(o, t("2026-01-01T09:59:59.999Z")), t("2026-01-01T10:00:00Z"))
    assert.strictEqual(nextDue(o, t("2026-01-01T10:00:00Z")), t("2026-01-01T11:00:00Z"))
    assert.deepStrictEqual(
      dueNow(o, t("2026-01-01T10:00:00Z"), t("2026-01-01T13:30:00Z"), 0),
      { fire: [t("2026-01-01T12:00:00Z"), t("2026-01-01T13:00:00Z")], next: t("2026-01-01T14:00:00Z") }
    )
  })

  it("ends at endAt in every function", () => {
    const o = opts(cron("0 * * * *", "UTC"), { endAt: t("2026-01-01T12:00:00Z"), missed: FireEach(10) })
    assert.isUndefined(firstDue(o, t("2026-01-01T12:00:00Z")))
    assert.strictEqual(nextDue(o, t("2026-01-01T11:00:00Z")), t("2026-01-01T12:00:00Z"))
    assert.isUndefined(nextDue(o, t("2026-01-01T12:00:00Z")))
    assert.deepStrictEqual(
      dueNow(o, t("2026-01-01T11:00:00Z"), t("2026-01-02T00:00:00Z"), 0),
      { fire: [t("2026-01-01T11:00:00Z"), t("2026-01-01T12:00:00Z")], next: undefined }
    )
  })

  it("Europe/Berlin spring forward (2026-03-29 02:00 → 03:00): 02:30 daily fires once, at 03:30", () => {
    const o = opts(cron("30 2 * * *", "Europe/Berlin"))
    const dues = cronDues(o, t("2026-03-27T00:00:00Z"), 4)
    // What effect's Cron does: the skipped 02:30 is shifted by the gap, to 03:30 CEST.
    assert.deepStrictEqual(dues.map(iso), [
      "2026-03-27T01:30:00.000Z",
      "2026-03-28T01:30:00.000Z",
      "2026-03-29T01:30:00.000Z",
      "2026-03-30T00:30:00.000Z"
    ])
    assert.deepStrictEqual(dues.map((d) => local(d, "Europe/Berlin")), [
      "2026-03-27 02:30:00",
      "2026-03-28 02:30:00",
      "2026-03-29 03:30:00",
      "2026-03-30 02:30:00"
    ])
    const c = Cron.parseUnsafe("30 2 * * *", "Europe/Berlin")
    for (const d of dues.slice(0, -1)) assert.strictEqual(nextDue(o, d), Cron.next(c, d).getTime())
  })

  it("Europe/Berlin spring forward: hourly skips the missing hour without a duplicate", () => {
    const dues = cronDues(opts(cron("0 * * * *", "Europe/Berlin")), t("2026-03-28T23:30:00Z"), 4)
    assert.deepStrictEqual(dues.map((d) => local(d, "Europe/Berlin")), [
      "2026-03-29 01:00:00",
      "2026-03-29 03:00:00",
      "2026-03-29 04:00:00",
      "2026-03-29 05:00:00"
    ])
    for (let i = 1; i < dues.length; i++) assert.strictEqual(dues[i]! - dues[i - 1]!, 3_600_000)
    // Every minute of the missing hour: only its first minute fires, shifted to 03:00.
    const minutes = cronDues(opts(cron("* 2 * * *", "Europe/Berlin")), t("2026-03-28T23:30:00Z"), 2)
    assert.deepStrictEqual(
      minutes.map((d) => local(d, "Europe/Berlin")),
      ["2026-03-29 03:00:00", "2026-03-30 02:00:00"]
    )
  })

  it("Europe/Berlin fall back (2026-10-25 03:00 → 02:00): hourly fires the repeated hour once, never backwards", () => {
    const o = opts(cron("0 * * * *", "Europe/Berlin"))
    const dues = cronDues(o, t("2026-10-24T22:30:00Z"), 5)
    // What effect's Cron does (onDstOverlap "earlier"): 02:00 CEST fires, 02:00 CET does not.
    assert.deepStrictEqual(dues.map(iso), [
      "2026-10-24T23:00:00.000Z",
      "2026-10-25T00:00:00.000Z",
      "2026-10-25T02:00:00.000Z",
      "2026-10-25T03:00:00.000Z",
      "2026-10-25T04:00:00.000Z"
    ])
    for (let i = 1; i < dues.length; i++) assert.isAbove(dues[i]!, dues[i - 1]!)
    assert.strictEqual(new Set(dues.map((d) => local(d, "Europe/Berlin"))).size, dues.length)
    // A reminder registered inside the repeated hour does not go back to its first occurrence.
    assert.strictEqual(firstDue(o, t("2026-10-25T01:10:00Z")), t("2026-10-25T02:00:00Z"))
    const daily = cronDues(opts(cron("30 2 * * *", "Europe/Berlin")), t("2026-10-24T12:00:00Z"), 2)
    assert.deepStrictEqual(daily.map(iso), ["2026-10-25T00:30:00.000Z", "2026-10-26T01:30:00.000Z"])
    // Fired late across the change: same due times as stepping one by one.
    assert.deepStrictEqual(
      dueNow({ ...o, missed: FireEach(100) }, dues[0]!, t("2026-10-25T04:30:00Z"), 0),
      { fire: dues, next: t("2026-10-25T05:00:00Z") }
    )
  })

  it("America/New_York spring forward (2026-03-08): 09:00 daily stays 09:00 local", () => {
    const dues = cronDues(opts(cron("0 9 * * *", "America/New_York")), t("2026-03-03T00:00:00Z"), 10)
    for (const d of dues) assert.match(local(d, "America/New_York"), / 09:00:00$/)
    assert.deepStrictEqual(dues.map((d) => new Date(d).getUTCHours()), [14, 14, 14, 14, 14, 13, 13, 13, 13, 13])
  })

  it("Pacific/Chatham spring forward (2026-09-27 02:45 → 03:45): `* 2 * * *` as Cron.next has it", () => {
    const zone = "Pacific/Chatham"
    const o = opts(cron("* 2 * * *", zone), { missed: FireEach(3) })
    const c = Cron.parseUnsafe("* 2 * * *", zone)
    // What effect's Cron does: next goes 02:44 → 03:45 (the first skipped minute, shifted by
    // the gap) → the next day; prev from 04:00 returns 03:59 (shifted too), which next skips.
    const dues = cronDues(o, t("2026-09-26T13:57:30Z"), 4)
    assert.deepStrictEqual(dues.map((d) => local(d, zone)), [
      "2026-09-27 02:43:00",
      "2026-09-27 02:44:00",
      "2026-09-27 03:45:00",
      "2026-09-28 02:00:00"
    ])
    assert.strictEqual(local(Cron.prev(c, t("2026-09-26T14:15:00Z")).getTime(), zone), "2026-09-27 03:59:00")
    // Fired hours later, the last three due times are those next produced, and next is after now.
    assert.deepStrictEqual(
      dueNow(o, t("2026-09-26T13:15:00Z"), t("2026-09-26T17:21:02Z"), 0),
      { fire: [t("2026-09-26T13:58:00Z"), t("2026-09-26T13:59:00Z"), t("2026-09-26T14:00:00Z")], next: dues[3] }
    )
  })

  it("policies on a cron, and bounded work over a long outage", () => {
    const s = t("2026-01-01T00:00:00Z")
    const o = (missed: MissedTicks) => opts(cron("* * * * * *", "UTC"), { missed })
    const now = s + 10 * 86_400_000 + 500 // 864,001 due times passed
    assert.deepStrictEqual(dueNow(o(Skip), s, now, 0), { fire: [now - 500], next: now + 500 })
    assert.deepStrictEqual(dueNow(o(FireOnce), s, now, 0), { fire: [now - 1_500, now - 500], next: now + 500 })
    assert.deepStrictEqual(dueNow(o(FireEach(3)), s, now, 0), {
      fire: [now - 2_500, now - 1_500, now - 500],
      next: now + 500
    })
    assert.deepStrictEqual(dueNow(o(FireEach(3)), s, s + 1_000, 0), { fire: [s, s + 1_000], next: s + 2_000 })
  })
})

// Reference for cron: every due time, one by one.
const naive = (options: TimingOptions, scheduled: number, now: number, ticksFired: number) => {
  const all: Array<number> = []
  for (let d: number | undefined = scheduled; d !== undefined && d <= now; d = nextDue(options, d)) all.push(d)
  const n = options.missed._tag === "Skip" ? 1 : options.missed._tag === "FireOnce" ? 2 : options.missed.max
  const left = (options.maxTicks ?? Infinity) - ticksFired
  const fire = all.slice(-Math.min(n, left))
  const next = fire.length >= left ? undefined : nextDue(options, all[all.length - 1]!)
  return { fire, next }
}

const missedArb = fc.oneof(fc.constant(Skip), fc.constant(FireOnce), fc.integer({ min: 1, max: 20 }).map(FireEach))

describe("properties", () => {
  it("Every: fire strictly increasing, on the grid, ≤ now; now < next ≤ now + period", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 10, max: 100_000 }),
        fc.integer({ min: -1e12, max: 1e12 }),
        fc.integer({ min: 0, max: 1e9 }),
        missedArb,
        (period, startAt, elapsed, missed) => {
          const o = opts(every(period, startAt), { missed })
          const now = startAt + elapsed
          const { fire, next } = dueNow(o, startAt, now, 0)
          assert.isAbove(fire.length, 0)
          for (let i = 0; i < fire.length; i++) {
            assert.isAtMost(fire[i]!, now)
            assert.strictEqual((fire[i]! - startAt) % period, 0)
            if (i > 0) assert.isAbove(fire[i]!, fire[i - 1]!)
          }
          assert.isDefined(next)
          assert.isAbove(next!, now)
          assert.isAtMost(next! - now, period)
          assert.strictEqual(next, fire[fire.length - 1]! + period)
        }
      ),
      params
    )
  })

  it("Cron: the bounded computation equals stepping one by one, across DST changes", () => {
    // The 2026 offset changes of zones with whole-hour, half-hour and 45-minute shifts.
    const changes: Array<[string, string]> = [
      ["Europe/Berlin", "2026-03-29T01:00:00Z"],
      ["Europe/Berlin", "2026-10-25T01:00:00Z"],
      ["America/New_York", "2026-03-08T07:00:00Z"],
      ["America/New_York", "2026-11-01T06:00:00Z"],
      ["Australia/Lord_Howe", "2026-04-04T15:00:00Z"],
      ["Australia/Lord_Howe", "2026-10-03T15:30:00Z"],
      ["Pacific/Chatham", "2026-04-04T14:00:00Z"],
      ["Pacific/Chatham", "2026-09-26T14:00:00Z"],
      ["America/Santiago", "2026-04-05T03:00:00Z"],
      ["America/Santiago", "2026-09-06T04:00:00Z"],
      ["UTC", "2026-03-29T01:00:00Z"]
    ]
    const expressions = [
      "*/15 * * * *",
      "0 * * * *",
      "30 2 * * *",
      "* 2 * * *",
      "0,30 0-3 * * *",
      "30 */5 * * * *",
      "0 9 * * mon-fri",
      "0 0 * * *"
    ]
    fc.assert(
      fc.property(
        fc.constantFrom(...changes),
        fc.constantFrom(...expressions),
        fc.integer({ min: -6 * 3_600_000, max: 6 * 3_600_000 }),
        fc.integer({ min: 0, max: 8 * 3_600_000 }),
        missedArb,
        fc.option(fc.integer({ min: 1, max: 30 }), { nil: undefined }),
        fc.option(fc.integer({ min: 0, max: 12 * 3_600_000 }), { nil: undefined }),
        ([zone, change], expression, offset, elapsed, missed, maxTicks, endAfter) => {
          const registered = t(change) + offset
          const base = opts(cron(expression, zone), { missed, maxTicks })
          const scheduled = firstDue(base, registered)!
          const o = endAfter === undefined ? base : { ...base, endAt: scheduled + endAfter }
          const now = scheduled + elapsed
          const ticksFired = maxTicks === undefined ? 0 : Math.floor(maxTicks / 2)
          const due = dueNow(o, scheduled, now, ticksFired)
          assert.deepStrictEqual(due, naive(o, scheduled, now, ticksFired))
          for (let i = 0; i < due.fire.length; i++) {
            assert.isAtMost(due.fire[i]!, now)
            if (i > 0) assert.isAbove(due.fire[i]!, due.fire[i - 1]!)
          }
          if (due.next !== undefined) assert.isAbove(due.next, now)
        }
      ),
      { ...params, numRuns: 1500 }
    )
  })
})

describe("jitterOffset", () => {
  it("is 0 without jitter", () => {
    assert.strictEqual(jitterOffset("Counter/1#tick", 1_000, 0), 0)
  })

  it("is an integer in [0, jitter), deterministic in (key, due)", () => {
    fc.assert(
      fc.property(
        fc.string(),
        fc.integer({ min: 0, max: 2e12 }),
        fc.double({ min: 0.01, max: 1e7, noNaN: true }),
        (key, due, j) => {
          const offset = jitterOffset(key, due, j)
          assert.isTrue(Number.isInteger(offset))
          assert.isAtLeast(offset, 0)
          assert.isBelow(offset, j)
          assert.strictEqual(jitterOffset(key, due, j), offset)
        }
      ),
      params
    )
  })

  it("spreads consecutive due times evenly", () => {
    const buckets = new Array(10).fill(0)
    const start = t("2026-06-01T00:00:00Z")
    for (let i = 0; i < 10_000; i++) {
      buckets[Math.floor(jitterOffset("Invoice/42#renew", start + i * 100, 1_000) / 100)]++
    }
    for (const b of buckets) assert.approximately(b, 1_000, 150)
    const keys = new Set(Array.from({ length: 100 }, (_, i) => jitterOffset(`Invoice/${i}#renew`, start, 1_000_000)))
    assert.isAbove(keys.size, 95)
  })
})

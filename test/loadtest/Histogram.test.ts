/**
 * The load tester's histogram (`bench/loadtest/Histogram.ts`) against the exact answer: for
 * any values and any percentile, the reported percentile is within the stated relative
 * error of the exact nearest-rank percentile of the sorted values; count, min and max are
 * exact; merging histograms is recording both sets of values into one.
 */
import { assert, describe, it } from "@effect/vitest"
import * as fc from "fast-check"
import { Histogram } from "../../bench/loadtest/Histogram.ts"

/** The exact nearest-rank percentile, computed independently of the histogram. */
const exactPercentile = (sorted: ReadonlyArray<number>, p: number): number => {
  const rank = Math.max(1, Math.ceil((p / 100) * sorted.length))
  return sorted[Math.min(sorted.length, rank) - 1]!
}

const histogramOf = (values: ReadonlyArray<number>): Histogram => {
  const h = new Histogram()
  for (const v of values) h.record(v)
  return h
}

/** Latency-like values over every magnitude: exact range, microseconds to hours in ns, and up to 2^53. */
const value = fc.oneof(
  fc.integer({ min: 0, max: 300 }),
  fc.integer({ min: 0, max: 100_000 }),
  fc.integer({ min: 1_000, max: 10_000_000_000 }),
  fc.maxSafeNat()
)
const values = fc.array(value, { minLength: 1, maxLength: 2_000 })
const percent = fc.oneof(
  fc.constantFrom(0, 1, 50, 90, 95, 99, 99.9, 99.99, 100),
  fc.double({ min: 0, max: 100, noNaN: true })
)

const withinError = (reported: number, exact: number): boolean =>
  Math.abs(reported - exact) <= exact * Histogram.relativeError

describe("Histogram", () => {
  it("states a relative error of at most 1% (two significant digits)", () => {
    assert.isAtMost(Histogram.relativeError, 0.01)
    assert.isAbove(Histogram.relativeError, 0)
  })

  it("percentiles are within the relative error of the exact nearest-rank percentile", () => {
    fc.assert(
      fc.property(values, fc.array(percent, { minLength: 1, maxLength: 10 }), (xs, ps) => {
        const h = histogramOf(xs)
        const sorted = xs.toSorted((a, b) => a - b)
        for (const p of ps) {
          const reported = h.percentile(p)
          const exact = exactPercentile(sorted, p)
          if (!withinError(reported, exact)) {
            throw new Error(`p${p}: reported ${reported}, exact ${exact} (n = ${xs.length})`)
          }
        }
      }),
      { numRuns: 300 }
    )
  })

  it("count, min and max are exact, the mean exact up to rounding, percentiles ordered", () => {
    fc.assert(
      fc.property(values, (xs) => {
        const h = histogramOf(xs)
        const sorted = xs.toSorted((a, b) => a - b)
        assert.strictEqual(h.count, xs.length)
        assert.strictEqual(h.min, sorted[0])
        assert.strictEqual(h.max, sorted[sorted.length - 1])
        assert.strictEqual(h.percentile(0), h.min)
        assert.strictEqual(h.percentile(100), h.max)
        const mean = xs.reduce((a, b) => a + b, 0) / xs.length
        assert.approximately(h.mean, mean, Math.max(1e-9, mean * 1e-12))
        const ps = [0, 50, 90, 95, 99, 99.9, 100].map((p) => h.percentile(p))
        for (let i = 1; i < ps.length; i++) assert.isAtMost(ps[i - 1]!, ps[i]!, `p-order ${ps.join(" ")}`)
      }),
      { numRuns: 200 }
    )
  })

  it("values below 256 are recorded exactly", () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 1, maxLength: 500 }), percent, (xs, p) => {
        assert.strictEqual(histogramOf(xs).percentile(p), exactPercentile(xs.toSorted((a, b) => a - b), p))
      })
    )
  })

  it("every bucket boundary: values around each power of two up to 2^53 stay within the error", () => {
    // The median of [0, v, 2^53 - 1] is v's bucket estimate itself (not clamped to min or max).
    for (let k = 1; k <= 52; k++) {
      for (const v of [2 ** k - 1, 2 ** k, 2 ** k + 1, 3 * 2 ** (k - 1)]) {
        if (v > Number.MAX_SAFE_INTEGER - 1) continue
        const reported = histogramOf([0, v, Number.MAX_SAFE_INTEGER]).percentile(50)
        assert.isTrue(withinError(reported, v), `2^${k}: v ${v}, reported ${reported}`)
      }
    }
  })

  it("merge is the same as recording both sets of values in one histogram", () => {
    fc.assert(
      fc.property(values, fc.array(value, { maxLength: 500 }), (xs, ys) => {
        const merged = histogramOf(xs)
        merged.merge(histogramOf(ys))
        const direct = histogramOf([...xs, ...ys])
        assert.strictEqual(merged.count, direct.count)
        assert.strictEqual(merged.min, direct.min)
        assert.strictEqual(merged.max, direct.max)
        assert.approximately(merged.mean, direct.mean, Math.max(1e-9, direct.mean * 1e-12))
        for (const p of [0, 10, 50, 90, 99, 99.9, 100]) assert.strictEqual(merged.percentile(p), direct.percentile(p))
      }),
      { numRuns: 100 }
    )
  })

  it("an empty histogram answers 0; a negative, NaN or infinite value is refused", () => {
    const h = new Histogram()
    assert.deepStrictEqual([h.count, h.min, h.max, h.mean, h.percentile(99)], [0, 0, 0, 0, 0])
    for (const bad of [-1, Number.NaN, Infinity]) assert.throws(() => h.record(bad), RangeError)
    assert.throws(() => h.percentile(101), RangeError)
    assert.strictEqual(h.count, 0)
  })
})

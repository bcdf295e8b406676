/**
 * The dashboard's per-type latency: quantiles of the turns between two readings of the
 * catalog's cumulative duration histogram, as the upper bound of the bucket they fall in.
 */
import { assert, describe, it } from "@effect/vitest"
import { type Durations, quantileMillis } from "../../src/Telemetry/internal/DashboardData.ts"

const reading = (counts: Array<number>, count: number): Durations => ({ bounds: [0.001, 0.01, 0.1], counts, count })

describe("dashboard latency", () => {
  it("quantiles of the turns between two readings, as bucket upper bounds", () => {
    const before = reading([10, 10, 10], 10) // ten fast turns, long ago
    // Since then: 50 under 1 ms, 45 more under 10 ms, 4 under 100 ms, 1 beyond every bound.
    const now = reading([60, 105, 109], 110)
    assert.strictEqual(quantileMillis(now, before, 0.5), 1)
    assert.strictEqual(quantileMillis(now, before, 0.9), 10)
    assert.strictEqual(quantileMillis(now, before, 0.99), 100)
    // The slowest turn is beyond the last bound: said as that bound.
    assert.strictEqual(quantileMillis(now, before, 1), 100)
    // Without an earlier reading, everything counts.
    assert.strictEqual(quantileMillis(now, undefined, 0.5), 1)
    // No turn in between: no figure.
    assert.isUndefined(quantileMillis(before, before, 0.5))
  })
})

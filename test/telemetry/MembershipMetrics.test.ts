/**
 * Membership metrics on an in-process TestCluster (in-memory registry, TestClock):
 * `quark_cluster_silos{status}` follows the membership view, read at scrape time, and
 * `quark_cluster_failovers_total` counts a crashed silo once when it is declared dead (not
 * once per silo of the process, not for a silo that leaves). With several silos in one
 * process the metrics follow the newest open view.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { TestClock } from "effect/testing"
import { Telemetry } from "../../src/index.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import * as ProcessMetrics from "../../src/Telemetry/internal/ProcessMetrics.ts"
import { counterLayer, Lifecycle } from "../fixtures/Counter.ts"
import { series } from "./support.ts"

/** Scrapes as an exporter would: a registry of its own with Telemetry's metrics in it. */
const scrape = PrometheusMetrics.format().pipe(
  Effect.provide(Telemetry.layer({ logs: false }).pipe(Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))))
)


const silos = Effect.map(scrape, (text) => ({
  alive: series(text, "quark_cluster_silos", { status: "alive" }),
  suspected: series(text, "quark_cluster_silos", { status: "suspected" }),
  failovers: series(text, "quark_cluster_failovers_total")
}))

/** Lets TestClock time pass 100 ms at a time until `condition` holds; dies past `maxMillis`. */
const waitFor = (what: string, maxMillis: number, condition: Effect.Effect<boolean>) =>
  Effect.gen(function*() {
    for (let waited = 0; !(yield* condition); waited += 100) {
      if (waited > maxMillis) return yield* Effect.die(new Error(`${what}: not within ${maxMillis} ms`))
      yield* TestClock.adjust(100)
      for (let i = 0; i < 20; i++) yield* Effect.yieldNow
    }
  })

describe("membership metrics", () => {
  it.effect("silos by status and one failover for a crashed silo; a leave is no failover", () =>
    Effect.gen(function*() {
      const failoversBefore = ProcessMetrics.failovers.value
      const cluster = yield* TestCluster.make({ silos: 3, implementations: counterLayer(new Lifecycle()) })
      const [first, , third] = cluster.silos
      assert.deepStrictEqual(yield* silos, { alive: 3, suspected: 0, failovers: failoversBefore })

      // A crash: suspected first (default timings: 1.5 s without a heartbeat), then dead (3 s).
      yield* first!.crash
      yield* waitFor("suspected", 3_000, Effect.map(silos, (s) => s.suspected === 1))
      assert.deepStrictEqual(yield* silos, { alive: 2, suspected: 1, failovers: failoversBefore })
      yield* waitFor("declared dead", 3_000, Effect.map(silos, (s) => s.suspected === 0))
      assert.deepStrictEqual(yield* silos, { alive: 2, suspected: 0, failovers: failoversBefore + 1 })
      // Every view saw the death, but it is counted once; nothing more follows.
      yield* TestClock.adjust(10_000)
      assert.deepStrictEqual(yield* silos, { alive: 2, suspected: 0, failovers: failoversBefore + 1 })

      // The newest view closes (a graceful stop): the metrics follow the one before it, and
      // the silo that left is gone from that view without a failover.
      yield* third!.stop
      yield* waitFor("the leave seen", 1_000, Effect.map(silos, (s) => s.alive === 1))
      assert.deepStrictEqual(yield* silos, { alive: 1, suspected: 0, failovers: failoversBefore + 1 })
    }).pipe(Effect.scoped))
})

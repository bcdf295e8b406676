/**
 * Reminder metrics on one silo, on the TestClock: `quark_reminder_ticks_total{outcome}`
 * counts delivered ticks, further attempts and dead-lettered ticks exactly, and
 * `quark_reminder_tick_lag_seconds` observes each tick's lag from its due time (0 on time,
 * the whole delay for a tick due in the past); the export carries them.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Effect, Layer, Metric, Schema } from "effect"
import { PrometheusMetrics } from "effect/observability"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { Actor, Silo, Telemetry } from "../../src/index.ts"
import * as MemoryReminderStore from "../../src/Reminders/MemoryReminderStore.ts"
import * as Reminders from "../../src/Reminders/Reminders.ts"
import * as ProcessMetrics from "../../src/Telemetry/internal/ProcessMetrics.ts"
import { series, recordingTracer } from "./support.ts"

class Refused extends Schema.TaggedError<Refused>()("Refused", {}) {}

const Ping = Rpc.make("Ping")
const Flaky = Rpc.make("Flaky", { error: Refused })
const Target = Actor.make("MeteredTarget", [Ping, Flaky])

const probe = { pings: 0, flakyCalls: 0, failuresLeft: 0 }

const TargetLive = Target.toLayer(Effect.succeed(Target.of({
  Ping: () => Effect.sync(() => void probe.pings++),
  Flaky: () =>
    Effect.suspend(() => {
      probe.flakyCalls++
      return probe.failuresLeft-- > 0 ? Effect.fail(new Refused()) : Effect.void
    })
})))

const silo = Reminders.layer({ store: MemoryReminderStore.make("metered") }).pipe(
  Layer.provideMerge(Silo.layerTest(TargetLive)),
  Layer.provideMerge(Telemetry.layer({ logs: false })),
  Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
)

/** Lets the reminder fibers run without moving the clock. */
const settle = Effect.gen(function*() {
  for (let i = 0; i < 50; i++) yield* Effect.yieldNow
})

const advance = (millis: number, step = 100) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(`${Math.min(step, millis - t)} millis`)
      yield* settle
    }
  })

const counts = () => ({
  ok: ProcessMetrics.reminderTicksOk.value,
  retry: ProcessMetrics.reminderTicksRetry.value,
  deadLetter: ProcessMetrics.reminderTicksDeadLetter.value,
  lagCount: ProcessMetrics.reminderTickLag.count,
  lagSumMillis: ProcessMetrics.reminderTickLag.sum
})

const since = (before: ReturnType<typeof counts>) => {
  const now = counts()
  return {
    ok: now.ok - before.ok,
    retry: now.retry - before.retry,
    deadLetter: now.deadLetter - before.deadLetter,
    lagCount: now.lagCount - before.lagCount,
    lagSumMillis: now.lagSumMillis - before.lagSumMillis
  }
}


describe("reminder metrics", () => {
  it.effect("ticks by outcome and their lag, exactly; exported", () =>
    Effect.gen(function*() {
      yield* settle
      // On time: three ticks of a periodic reminder, each fired at its due time (lag 0).
      let before = counts()
      yield* Reminders.register(Target, "p", "beat", { message: "Ping", every: "1 second" })
      yield* advance(3_500)
      assert.strictEqual(probe.pings, 3)
      assert.deepStrictEqual(since(before), { ok: 3, retry: 0, deadLetter: 0, lagCount: 3, lagSumMillis: 0 })
      yield* Reminders.cancel({ type: Target.type, id: "p" }, "beat")

      // Late: a one-shot due 6 s ago fires at once, 6 s late.
      before = counts()
      const now = yield* Clock.currentTimeMillis
      yield* Reminders.register(Target, "late", "once", { message: "Ping", at: now - 6_000 })
      yield* advance(100)
      assert.strictEqual(probe.pings, 4)
      assert.deepStrictEqual(since(before), { ok: 1, retry: 0, deadLetter: 0, lagCount: 1, lagSumMillis: 6_000 })

      // Retried: two failed attempts, then delivered; the lag is counted once per tick.
      before = counts()
      probe.failuresLeft = 2
      yield* Reminders.register(Target, "f", "flaky", { message: "Flaky", every: "10 seconds" })
      yield* advance(11_000)
      assert.strictEqual(probe.flakyCalls, 3)
      assert.deepStrictEqual(since(before), { ok: 1, retry: 2, deadLetter: 0, lagCount: 1, lagSumMillis: 0 })

      // Given up: five attempts (the default schedule), then a dead letter.
      before = counts()
      probe.failuresLeft = 100
      yield* advance(11_000)
      assert.strictEqual(probe.flakyCalls, 3 + 5)
      assert.strictEqual((yield* Reminders.deadLetters()).length, 1)
      assert.deepStrictEqual(since(before), { ok: 0, retry: 4, deadLetter: 1, lagCount: 1, lagSumMillis: 0 })

      const text = yield* PrometheusMetrics.format()
      assert.strictEqual(series(text, "quark_reminder_ticks_total", { outcome: "ok" }), ProcessMetrics.reminderTicksOk.value)
      assert.strictEqual(series(text, "quark_reminder_ticks_total", { outcome: "retry" }), ProcessMetrics.reminderTicksRetry.value)
      assert.strictEqual(series(text, "quark_reminder_ticks_total", { outcome: "dead_letter" }), 1)
      assert.strictEqual(series(text, "quark_reminder_tick_lag_seconds_count"), ProcessMetrics.reminderTickLag.count)
      assert.strictEqual(series(text, "quark_reminder_tick_lag_seconds_sum"), 6)
      // The store's operations are timed too (memory): one put per registration at least.
      assert.isAtLeast(series(text, "quark_store_operation_duration_seconds_count", { store: "memory", operation: "reminder.put" })!, 3)
    }).pipe(Effect.provide(silo)))
})

describe("reminder tick spans", () => {
  const { spans, layer: recording } = recordingTracer()
  const traced = Reminders.layer({ store: MemoryReminderStore.make("traced") }).pipe(
    Layer.provideMerge(Silo.layerTest(TargetLive)),
    Layer.provideMerge(Telemetry.layer({ metrics: false, logs: false, tracing: { sampleRatio: 1 } })),
    Layer.provideMerge(recording)
  )

  it.effect("a tick is a root span, and the turn it delivers is its child", () =>
    Effect.gen(function*() {
      yield* settle
      yield* Reminders.register(Target, "t", "beat", { message: "Ping", every: "1 second" })
      yield* advance(1_500)
      const tick = spans.find((span) => span.name === `quark.reminder.tick ${Target.type}`)
      assert.isDefined(tick)
      assert.strictEqual(tick!.parent._tag, "None")
      assert.strictEqual(tick!.attributes.get("quark.reminder"), "beat")
      assert.strictEqual(tick!.attributes.get("quark.actor.id"), "t")
      assert.strictEqual(tick!.attributes.get("quark.reminder.attempt"), 1)
      const turn = spans.find((span) => span.name === `${Target.type}/Ping`)
      assert.isDefined(turn)
      assert.strictEqual(turn!.parent._tag === "Some" ? turn!.parent.value.spanId : undefined, tick!.spanId)
      yield* Reminders.cancel({ type: Target.type, id: "t" }, "beat")
    }).pipe(Effect.provide(traced)))
})

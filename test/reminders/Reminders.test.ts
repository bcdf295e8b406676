/**
 * Reminders on one silo, on the TestClock: each kind fires when due and activates its
 * actor, a tick is a turn that knows it is one, missed ticks follow their policy across a
 * silo restart, failing ticks are retried and then dead-lettered (and can be replayed),
 * cancel and re-register during a running tick, many reminders per actor.
 */
import { assert, describe, it } from "@effect/vitest"
import { Clock, Deferred, Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { Actor, ActorContext, Silo } from "../../src/index.ts"
import * as MemoryReminderStore from "../../src/Reminders/MemoryReminderStore.ts"
import type { ReminderStore } from "../../src/Reminders/ReminderStore.ts"
import { bucketType } from "../../src/Reminders/internal/ReminderBucket.ts"
import { bucketOf } from "../../src/Reminders/internal/ReminderRecord.ts"
import * as Reminders from "../../src/Reminders/Reminders.ts"

class Refused extends Schema.TaggedError<Refused>()("Refused", {}) {}

const Ping = Rpc.make("Ping", { payload: { label: Schema.String } })
const Flaky = Rpc.make("Flaky", { error: Refused })
const Slow = Rpc.make("Slow")
const Target = Actor.make("Target", [Ping, Flaky, Slow])
/** An actor whose activation always fails: what is sent to it is dropped. */
const Broken = Actor.make("Broken", [Ping])
const BrokenLive = Broken.toLayer(Effect.die(new Error("no database")))

interface Delivery {
  readonly id: string
  readonly label: string
  readonly at: number
  readonly tick: Reminders.TickContext | undefined
}

/** What the targets saw, shared by the test and the implementation. */
const makeProbe = () => ({
  deliveries: [] as Array<Delivery>,
  activations: 0,
  failuresLeft: 0,
  flakyCalls: 0,
  slowEntered: Deferred.makeUnsafe<void>(),
  slowGate: Deferred.makeUnsafe<void>(),
  slowStarted: 0,
  slowCompleted: 0
})
type Probe = ReturnType<typeof makeProbe>

const targetLayer = (probe: Probe) =>
  Target.toLayer(Effect.gen(function*() {
    probe.activations++
    const { id } = (yield* ActorContext).address
    return Target.of({
      Ping: ({ label }) =>
        Effect.gen(function*() {
          const tick = yield* Reminders.currentTick
          probe.deliveries.push({ id, label, at: yield* Clock.currentTimeMillis, tick })
        }),
      Flaky: () =>
        Effect.suspend(() => {
          probe.flakyCalls++
          return probe.failuresLeft-- > 0 ? Effect.fail(new Refused()) : Effect.void
        }),
      Slow: () =>
        Effect.suspend(() => {
          probe.slowStarted++
          return Effect.andThen(Deferred.succeed(probe.slowEntered, undefined), Deferred.await(probe.slowGate))
        }).pipe(Effect.andThen(Effect.sync(() => probe.slowCompleted++)))
    })
  }), { idleTimeout: "10 seconds" })

const siloWith = (probe: Probe, store: ReminderStore, config?: Omit<Reminders.RemindersConfig, "store">) =>
  Reminders.layer({ ...config, store }).pipe(Layer.provideMerge(Silo.layerTest(targetLayer(probe))))

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

const labels = (probe: Probe) => probe.deliveries.map((d) => d.label)

describe("reminders on one silo", () => {
  it.effect("a periodic reminder fires every period, as a turn that knows its tick", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      yield* settle
      const info = yield* Reminders.register(Target, "t-1", "beat", { message: "Ping", payload: { label: "beat" }, every: "1 second" })
      assert.strictEqual(info.nextDue, 1_000)
      yield* advance(3_500)
      assert.deepStrictEqual(labels(probe), ["beat", "beat", "beat"])
      assert.deepStrictEqual(probe.deliveries.map((d) => d.at), [1_000, 2_000, 3_000])
      assert.deepStrictEqual(probe.deliveries[1]!.tick, { reminder: "beat", due: 2_000, attempt: 1 })
      const [listed] = yield* Reminders.list({ type: "Target", id: "t-1" })
      assert.strictEqual(listed!.ticks, 3)
      assert.strictEqual(listed!.nextDue, 4_000)
      const history = yield* Reminders.history({ type: "Target", id: "t-1" }, "beat")
      assert.deepStrictEqual(history.map((h) => [h.due, h.outcome]), [[3_000, "delivered"], [2_000, "delivered"], [1_000, "delivered"]])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("a one-shot fires once, activating its actor, and is gone", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      yield* Reminders.register(Target, "t-2", "once", { message: "Ping", payload: { label: "once" }, after: "5 seconds" })
      assert.strictEqual(probe.activations, 0, "registering does not activate the actor")
      yield* advance(4_900)
      assert.deepStrictEqual(labels(probe), [])
      yield* advance(200)
      assert.deepStrictEqual(labels(probe), ["once"])
      assert.strictEqual(probe.activations, 1)
      yield* advance(10_000)
      assert.deepStrictEqual(labels(probe), ["once"])
      assert.deepStrictEqual(yield* Reminders.list({ type: "Target", id: "t-2" }), [])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("a passivated actor is activated again by its next tick", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      yield* Reminders.register(Target, "t-3", "slow", { message: "Ping", payload: { label: "p" }, every: "1 minute" })
      yield* advance(60_000, 1_000)
      yield* advance(60_000, 1_000) // idleTimeout is 10 s: passivated between the ticks
      assert.deepStrictEqual(labels(probe), ["p", "p"])
      assert.strictEqual(probe.activations, 2)
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("a cron reminder fires at each match in its time zone", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      yield* Reminders.register(Target, "t-4", "hourly", {
        message: "Ping",
        payload: { label: "h" },
        cron: "30 * * * *",
        timeZone: "Asia/Kolkata" // UTC+5:30: local :30 is UTC :00
      })
      yield* advance(3 * 3_600_000, 60_000)
      assert.deepStrictEqual(probe.deliveries.map((d) => d.at), [3_600_000, 7_200_000, 10_800_000])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("bad registrations are refused before anything is stored", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      const refused = (timing: Reminders.TimingInput) =>
        Effect.flip(Reminders.register(Target, "t-5", "bad", { message: "Ping", payload: { label: "x" }, ...timing }))
      const bad: ReadonlyArray<Reminders.TimingInput> = [
        {}, // no timing
        { every: "1 second", cron: "* * * * *" }, // two
        { every: "1 millis" }, // below the floor
        { cron: "not a cron" },
        { cron: "* * * * *", timeZone: "Mars/Olympus" },
        { every: "1 second", endAt: 0 }, // ends before its first tick
        { after: "1 second", timeZone: "UTC" } // a time zone without a cron
      ]
      for (const timing of bad) {
        const error = yield* refused(timing)
        assert.strictEqual(error._tag, "InvalidReminder", JSON.stringify(timing))
      }
      const badId = yield* Effect.flip(Reminders.register(Target, "", "x", { message: "Ping", payload: { label: "x" }, every: "1 second" }))
      assert.strictEqual(badId._tag, "InvalidActorId")
      assert.deepStrictEqual(yield* Reminders.list({ type: "Target", id: "t-5" }), [])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("a failing tick is retried, then dead-lettered; the reminder goes on; a replay delivers it", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      probe.failuresLeft = 2
      yield* Reminders.register(Target, "t-6", "flaky", { message: "Flaky", every: "10 seconds" })
      yield* advance(11_000)
      assert.strictEqual(probe.flakyCalls, 3, "two failures, then success on the third attempt")
      assert.deepStrictEqual(yield* Reminders.deadLetters(), [])

      probe.failuresLeft = 100
      yield* advance(11_000) // the tick due at 20 s, then retries 100, 200, 400 and 800 ms apart
      assert.strictEqual(probe.flakyCalls, 3 + 5, "five attempts in all")
      const [letter] = yield* Reminders.deadLetters()
      assert.strictEqual(letter!.reminder, "flaky")
      assert.strictEqual(letter!.due, 20_000)
      assert.strictEqual(letter!.attempts, 5)
      assert.include(letter!.error, "Refused")
      const history = yield* Reminders.history({ type: "Target", id: "t-6" }, "flaky")
      assert.deepStrictEqual(history.map((h) => h.outcome), ["dead-lettered", "delivered"])

      probe.failuresLeft = 0
      assert.isTrue(yield* Reminders.replay(letter!.id))
      assert.deepStrictEqual(yield* Reminders.deadLetters(), [])
      const calls = probe.flakyCalls
      yield* advance(10_000)
      assert.strictEqual(probe.flakyCalls, calls + 1, "the reminder went on with its next tick")
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("cancel during a running tick: the tick completes, nothing fires after", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      yield* Reminders.register(Target, "t-7", "slow", { message: "Slow", every: "1 second" })
      yield* advance(1_000)
      yield* Deferred.await(probe.slowEntered)
      assert.isTrue(yield* Reminders.cancel({ type: "Target", id: "t-7" }, "slow"))
      yield* Deferred.succeed(probe.slowGate, undefined)
      probe.slowEntered = Deferred.makeUnsafe<void>()
      yield* advance(5_000)
      assert.isFalse(yield* Deferred.isDone(probe.slowEntered), "no tick after the cancel")
      assert.deepStrictEqual(yield* Reminders.list({ type: "Target", id: "t-7" }), [])
      assert.isFalse(yield* Reminders.cancel({ type: "Target", id: "t-7" }, "slow"))
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("with deadLetterTells, a failed tell is dead-lettered and can be replayed", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      const flaky = yield* Target.ref("t-30")
      probe.failuresLeft = 1
      yield* flaky.tell.Flaky()
      const ping = yield* Target.ref("t-31")
      yield* ping.tell.Ping({ label: "fine" })
      yield* settle
      const letters = yield* Reminders.deadLetters({ kind: "tell" })
      assert.strictEqual(letters.length, 1, "only the failed tell")
      const [letter] = letters
      assert.deepStrictEqual(letter!.address, { type: "Target", id: "t-30" })
      assert.strictEqual(letter!.message, "Flaky")
      assert.strictEqual(letter!.attempts, 1)
      assert.strictEqual(letter!.error, "Refused")
      assert.isUndefined(letter!.reminder)
      assert.isTrue(yield* Reminders.replay(letter!.id))
      assert.strictEqual(probe.flakyCalls, 2)
      assert.deepStrictEqual(yield* Reminders.deadLetters(), [])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"), { deadLetterTells: true })))
  })

  it.effect("with deadLetterTells, a tell dropped because its activation failed is dead-lettered with its payload", () => {
    const probe = makeProbe()
    const store = MemoryReminderStore.make("r")
    return Effect.gen(function*() {
      yield* (yield* Broken.ref("b-1")).tell.Ping({ label: "lost" })
      yield* settle
      const [letter, ...rest] = yield* Reminders.deadLetters({ kind: "tell" })
      assert.strictEqual(rest.length, 0)
      assert.deepStrictEqual(letter!.address, { type: "Broken", id: "b-1" })
      assert.strictEqual(letter!.message, "Ping")
      assert.match(letter!.error, /^dropped: /)
      const [stored] = yield* store.deadLetters({ limit: 10 })
      assert.deepStrictEqual(JSON.parse(stored!.data).payload, { label: "lost" })
      // Replayed, it meets the same failed activation: it stays in the queue.
      const replayed = yield* Effect.flip(Reminders.replay(letter!.id))
      assert.strictEqual(replayed._tag, "ActivationFailed")
      assert.strictEqual((yield* Reminders.deadLetters()).length, 1)
    }).pipe(Effect.provide(
      Reminders.layer({ store, deadLetterTells: true }).pipe(
        Layer.provideMerge(Silo.layerTest(Layer.merge(targetLayer(probe), BrokenLive)))
      )
    ))
  })

  it.effect("without deadLetterTells, a failed tell is not dead-lettered", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      probe.failuresLeft = 1
      yield* (yield* Target.ref("t-32")).tell.Flaky()
      yield* settle
      assert.strictEqual(probe.flakyCalls, 1)
      assert.deepStrictEqual(yield* Reminders.deadLetters(), [])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("a bucket that stops while a tick runs lets the turn finish and records it: its next activation does not fire it again", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      const silo = yield* Silo.Silo
      yield* Reminders.register(Target, "t-20", "slow", { message: "Slow", every: "10 seconds", startAt: 1_000 })
      yield* advance(1_000)
      yield* Deferred.await(probe.slowEntered)
      // As a hand-over does: the bucket is deactivated while its tick's turn is running.
      const bucket = { type: bucketType, id: String(bucketOf({ type: "Target", id: "t-20", name: "slow" }, 64)) }
      const stopping = yield* Effect.forkChild(silo.deactivate(bucket))
      yield* settle
      assert.isUndefined(stopping.pollUnsafe(), "the bucket waits for the tick in flight")
      yield* Deferred.succeed(probe.slowGate, undefined)
      assert.isTrue(yield* Fiber.join(stopping))
      assert.strictEqual(probe.slowCompleted, 1, "the turn was not cut short")
      // The keeper activates the bucket again (within its 1 s interval); the tick due at
      // 1 s was recorded, so the next one is at 11 s.
      yield* advance(9_900)
      assert.strictEqual(probe.slowStarted, 1)
      yield* advance(200)
      assert.strictEqual(probe.slowStarted, 2)
      const history = yield* Reminders.history({ type: "Target", id: "t-20" }, "slow")
      assert.deepStrictEqual(history.map((h) => h.due), [11_000, 1_000])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("at most maxTicksInFlight ticks run their first attempt at once; the rest wait their turn", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      for (const id of ["f-1", "f-2", "f-3", "f-4", "f-5"]) {
        yield* Reminders.register(Target, id, "slow", { message: "Slow", at: 1_000 })
      }
      yield* advance(1_000)
      yield* advance(1_000)
      assert.strictEqual(probe.slowStarted, 2)
      yield* Deferred.succeed(probe.slowGate, undefined)
      yield* settle
      assert.strictEqual(probe.slowStarted, 5)
      assert.strictEqual(probe.slowCompleted, 5)
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"), { maxTicksInFlight: 2 })))
  })

  it.effect("re-registering a running reminder replaces it: the new timing stands", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      yield* Reminders.register(Target, "t-8", "r", { message: "Ping", payload: { label: "old" }, every: "1 second" })
      yield* advance(2_000)
      yield* Reminders.register(Target, "t-8", "r", { message: "Ping", payload: { label: "new" }, every: "5 seconds" })
      yield* advance(10_000)
      assert.deepStrictEqual(labels(probe), ["old", "old", "new", "new"])
      assert.deepStrictEqual(probe.deliveries.slice(2).map((d) => d.at), [7_000, 12_000])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("a registration that falls due while the reminder's tick is running fires right after it", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      yield* Reminders.register(Target, "t-10", "r", { message: "Slow", every: "1 second" })
      yield* advance(1_000)
      yield* Deferred.await(probe.slowEntered)
      // Due at once, while the slow tick of the same reminder is still running.
      yield* Reminders.register(Target, "t-10", "r", { message: "Ping", payload: { label: "now" }, after: "0 millis" })
      yield* settle
      assert.deepStrictEqual(labels(probe), [], "not beside the running tick")
      yield* Deferred.succeed(probe.slowGate, undefined)
      yield* advance(100)
      assert.deepStrictEqual(labels(probe), ["now"])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })

  it.effect("many reminders on one actor each fire", () => {
    const probe = makeProbe()
    return Effect.gen(function*() {
      for (let i = 0; i < 200; i++) {
        yield* Reminders.register(Target, "t-9", `r-${i}`, { message: "Ping", payload: { label: `r-${i}` }, at: 1_000 + (i % 10) * 100 })
      }
      assert.strictEqual((yield* Reminders.list({ type: "Target", id: "t-9" })).length, 200)
      yield* advance(3_000)
      assert.strictEqual(probe.deliveries.length, 200)
      assert.strictEqual(new Set(labels(probe)).size, 200)
      assert.deepStrictEqual(yield* Reminders.list({ type: "Target", id: "t-9" }), [])
    }).pipe(Effect.provide(siloWith(probe, MemoryReminderStore.make("r"))))
  })
})

describe("reminders of the current actor", () => {
  const Start = Rpc.make("Start")
  const Renew = Rpc.make("Renew")
  const Count = Rpc.make("Count", { success: Schema.Int })
  const Renewer = Actor.make("Renewer", [Start, Renew, Count])
  // Registers its own reminder from a handler, and cancels it from inside its third tick.
  const RenewerLive = Renewer.toLayer(Effect.gen(function*() {
    const { address } = yield* ActorContext
    let renewals = 0
    return Renewer.of({
      Start: () => Effect.asVoid(Effect.orDie(Reminders.register(Renewer, address.id, "renew", { message: "Renew", every: "1 second" }))),
      Renew: () =>
        Effect.gen(function*() {
          renewals++
          if (renewals === 3) yield* Effect.orDie(Reminders.cancel(address, "renew"))
        }),
      Count: () => Effect.succeed(renewals)
    })
  }), { idleTimeout: "never" })
  // Registers a reminder from its activation effect.
  const Booted = Actor.make("Booted", [Renew, Count])
  const BootedLive = Booted.toLayer(Effect.gen(function*() {
    const { address } = yield* ActorContext
    yield* Effect.orDie(Reminders.register(Booted, address.id, "boot", { message: "Renew", after: "2 seconds" }))
    let ticks = 0
    return Booted.of({ Renew: () => Effect.sync(() => void ticks++), Count: () => Effect.succeed(ticks) })
  }), { idleTimeout: "never" })

  it.effect("a handler registers its own reminder and a tick cancels it; an activation effect registers one", () =>
    Effect.gen(function*() {
      const renewer = yield* Renewer.ref("me")
      yield* renewer.Start()
      const booted = yield* Booted.ref("b")
      assert.strictEqual(yield* booted.Count(), 0)
      yield* advance(6_000)
      assert.strictEqual(yield* renewer.Count(), 3, "three ticks, the third cancelled the reminder")
      assert.deepStrictEqual(yield* Reminders.list({ type: "Renewer", id: "me" }), [])
      assert.strictEqual(yield* booted.Count(), 1)
    }).pipe(Effect.provide(
      Reminders.layer({ store: MemoryReminderStore.make("r") }).pipe(Layer.provideMerge(Silo.layerTest(RenewerLive, BootedLive)))
    )))
})

describe("missed ticks across a restart of the only silo", () => {
  const downFor = (missed: Reminders.TimingInput["missed"]) =>
    Effect.gen(function*() {
      const store = MemoryReminderStore.make("r")
      const probe = makeProbe()
      const first = yield* Scope.make()
      const context = yield* Layer.buildWithScope(siloWith(probe, store), first)
      yield* Reminders.register(Target, "m-1", "m", { message: "Ping", payload: { label: "m" }, every: "1 second", missed }).pipe(
        Effect.provide(context)
      )
      yield* advance(1_500)
      yield* Scope.close(first, Exit.void)
      const firedBefore = probe.deliveries.length
      yield* TestClock.adjust("10 seconds") // down from 1.5 s to 11.5 s: ticks 2..11 s are due
      const second = yield* Scope.make()
      yield* Layer.buildWithScope(siloWith(probe, store), second)
      yield* settle
      yield* advance(100)
      const caughtUp = probe.deliveries.slice(firedBefore).map((d) => d.tick!.due)
      yield* Scope.close(second, Exit.void)
      return { firedBefore, caughtUp }
    })

  it.effect("skip: only the latest due tick fires", () =>
    Effect.gen(function*() {
      const { caughtUp, firedBefore } = yield* downFor("skip")
      assert.strictEqual(firedBefore, 1)
      assert.deepStrictEqual(caughtUp, [11_000])
    }))

  it.effect("once (the default): one catch-up tick, then the latest", () =>
    Effect.gen(function*() {
      const { caughtUp } = yield* downFor(undefined)
      assert.deepStrictEqual(caughtUp, [10_000, 11_000])
    }))

  it.effect("each: the latest n", () =>
    Effect.gen(function*() {
      const { caughtUp } = yield* downFor({ each: 3 })
      assert.deepStrictEqual(caughtUp, [9_000, 10_000, 11_000])
    }))
})

/**
 * A property of supervision: whatever happens to a parent and its children (asks, crashes,
 * fatal errors, stops, spawns, deactivations of the parent) under whatever strategy, no
 * mailbox is left wedged and no child outlives its parent.
 *
 * Each run gets a fresh silo and a fresh TestClock. Every operation is driven to its end,
 * advancing the clock a second at a time (so backoff delays pass) up to a bound; a call
 * still waiting after that is reported as wedged.
 */
import { describe, it } from "@effect/vitest"
import { Cause, Effect, Exit, Fiber, Logger, Schedule } from "effect"
import { TestClock } from "effect/testing"
import * as fc from "fast-check"
import { Silo, Supervisor } from "../src/index.ts"
import { Boss, Control } from "./fixtures/SupervisionFixtures.ts"
import { drive, inClosableSilo, start } from "./fixtures/SupervisionHelpers.ts"

type Op =
  | { readonly op: "ask"; readonly child: number }
  | { readonly op: "crash"; readonly child: number }
  | { readonly op: "fatal"; readonly child: number }
  | { readonly op: "stop"; readonly child: number }
  | { readonly op: "spawn" }
  | { readonly op: "deactivate" }

interface Scenario {
  readonly kind: "one-for-one" | "all-for-one" | "rest-for-one"
  readonly directive: Supervisor.Directive
  readonly maxRestarts: number
  readonly onLimit: "stop" | "escalate"
  readonly root: "resume" | "restart" | "stop"
  readonly ops: ReadonlyArray<Op>
  /** Operations (by index) started without waiting for them: they end (or wedge) in the background. */
  readonly background: ReadonlyArray<boolean>
}

const child = fc.nat({ max: 7 })
const opArb: fc.Arbitrary<Op> = fc.oneof(
  { arbitrary: fc.record({ op: fc.constant("ask" as const), child }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant("crash" as const), child }), weight: 3 },
  { arbitrary: fc.record({ op: fc.constant("fatal" as const), child }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("stop" as const), child }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("spawn" as const) }), weight: 1 },
  { arbitrary: fc.record({ op: fc.constant("deactivate" as const) }), weight: 1 }
)

const scenarioArb: fc.Arbitrary<Scenario> = fc.record({
  kind: fc.constantFrom("one-for-one" as const, "all-for-one" as const, "rest-for-one" as const),
  directive: fc.constantFrom<Supervisor.Directive>("restart", "stop", "resume", "escalate"),
  maxRestarts: fc.integer({ min: 1, max: 3 }),
  onLimit: fc.constantFrom("stop" as const, "escalate" as const),
  root: fc.constantFrom("resume" as const, "restart" as const, "stop" as const),
  ops: fc.array(opArb, { minLength: 1, maxLength: 12 }),
  background: fc.array(fc.constantFrom(false, false, false, true), { maxLength: 12 })
})

const strategies = {
  "one-for-one": Supervisor.oneForOne,
  "all-for-one": Supervisor.allForOne,
  "rest-for-one": Supervisor.restForOne
} as const

const spaced = Schedule.spaced("1 second")

const errorTag = (exit: Exit.Exit<unknown, unknown>): string | undefined => {
  if (Exit.isSuccess(exit)) return undefined
  const fail = exit.cause.reasons.find(Cause.isFailReason)
  if (fail !== undefined) return String((fail.error as { _tag?: unknown })?._tag)
  return `cause: ${Cause.pretty(exit.cause)}`
}

/**
 * What each operation may end in besides success. Calls to the Boss (stop, spawn) fail with
 * ActorStopped when they waited while the root supervisor stopped the Boss.
 */
const allowed: Record<Op["op"], ReadonlyArray<string>> = {
  ask: ["ActorStopped"],
  crash: ["ActorDefect", "ActorStopped"],
  fatal: ["Fatal", "ActorStopped"],
  stop: ["ActorStopped"],
  spawn: ["ActorStopped"],
  deactivate: []
}

/** Runs one scenario; returns what went wrong (nothing, if the property holds). */
const runScenario = (scenario: Scenario): Effect.Effect<Array<string>> => {
  const control = new Control()
  control.defaultChildOptions = { fatal: ["Fatal"] }
  const supervisor = strategies[scenario.kind]({
    decider: () => scenario.directive,
    maxRestarts: scenario.maxRestarts,
    within: "1 minute",
    onLimit: scenario.onLimit,
    backoff: spaced
  })
  const rootSupervisor = scenario.root === "resume" ?
    Supervisor.resume :
    Supervisor.oneForOne({ decider: () => scenario.root, backoff: spaced })
  const problems: Array<string> = []
  const body = Effect.gen(function*() {
    const boss = yield* Boss.ref("boss")
    const silo = yield* Silo.Silo
    const bossAddress = { type: "Boss", id: "boss" }
    let names = 0
    yield* drive(boss.Spawn({ names: ["c0", "c1", "c2"] }))
    names = 3

    const check = (label: string, op: Op, exit: Exit.Exit<unknown, unknown> | undefined) => {
      if (exit === undefined) problems.push(`${label}: wedged`)
      else {
        const tag = errorTag(exit)
        if (tag !== undefined && !allowed[op.op].includes(tag)) problems.push(`${label}: failed with ${tag}`)
      }
    }
    const pending: Array<{ label: string; op: Op; fiber: Fiber.Fiber<unknown, unknown> }> = []
    for (const [i, op] of scenario.ops.entries()) {
      const record = "child" in op ? control.spawns[op.child % control.spawns.length] : undefined
      const call: Effect.Effect<unknown, unknown> = op.op === "ask" ?
        record!.ref.Work({ n: 1 }) :
        op.op === "crash" ?
        record!.ref.Crash({ message: `crash ${i}` }) :
        op.op === "fatal" ?
        record!.ref.Fail() :
        op.op === "stop" ?
        boss.StopChild({ name: record!.name }) :
        op.op === "spawn" ?
        boss.Spawn({ names: [`c${names++}`] }) :
        silo.deactivate(bossAddress)
      const label = `op ${i} ${JSON.stringify(op)}${record === undefined ? "" : ` (${record.name}#${record.serial})`}`
      if (scenario.background[i] === true) {
        pending.push({ label: `${label} (in the background)`, op, fiber: yield* start(call) })
      } else {
        check(label, op, yield* drive(call))
      }
    }
    for (const { fiber, label, op } of pending) check(label, op, yield* drive(Fiber.join(fiber)))

    // No mailbox wedged: one more ask to every child succeeds, or fails with ActorStopped.
    for (const record of control.spawns) {
      const exit = yield* drive(record.ref.Work({ n: 0 }))
      const label = `final ask to ${record.name}#${record.serial}`
      if (exit === undefined) problems.push(`${label}: wedged`)
      else {
        const tag = errorTag(exit)
        if (tag !== undefined && tag !== "ActorStopped") problems.push(`${label}: failed with ${tag}`)
      }
    }
    const bossExit = yield* drive(boss.Count())
    if (bossExit === undefined || Exit.isFailure(bossExit)) {
      problems.push(`final ask to the Boss: ${bossExit === undefined ? "wedged" : errorTag(bossExit)}`)
    }

    // No orphans: once the parent is deactivated, every child it ever spawned has run its
    // finalizer (once per incarnation) and its ref fails with ActorStopped.
    const deactivated = yield* drive(silo.deactivate(bossAddress))
    if (deactivated === undefined) problems.push("deactivating the Boss: wedged")
    for (const record of control.spawns) {
      const label = `${record.name}#${record.serial}`
      if (record.starts !== record.stops) {
        problems.push(`${label}: ${record.starts} incarnation(s) started, ${record.stops} finalized`)
      }
      const exit = yield* drive(record.ref.Work({ n: 0 }))
      const tag = exit === undefined ? "wedged" : Exit.isSuccess(exit) ? "success" : errorTag(exit)
      if (tag !== "ActorStopped") problems.push(`${label}: after the Boss was deactivated, an ask ended in ${tag}`)
    }
  })
  return body.pipe(
    inClosableSilo(control, { supervisor, rootSupervisor }),
    Effect.catchCause((cause) => Effect.sync(() => problems.push(`the run failed: ${Cause.pretty(cause)}`))),
    Effect.as(problems),
    Effect.provide(TestClock.layer()),
    Effect.provide(Logger.layer([]))
  )
}

describe("Supervision property", () => {
  it("no wedged mailbox, no orphaned child, under random operations and strategies", async () => {
    await fc.assert(
      fc.asyncProperty(scenarioArb, async (scenario) => {
        const problems = await Effect.runPromise(runScenario(scenario))
        if (problems.length > 0) throw new Error(problems.join("\n"))
      }),
      { numRuns: Number(process.env.SUPERVISION_PROPERTY_RUNS ?? 100) }
    )
  }, 60_000)
})

/**
 * The reminder lag second by second, for diagnosis (the benchmark, `bench/reminders.ts`,
 * pools whole rounds): one silo with `count` reminders (default 100,000, `perActor` per
 * actor, default 10) at a 10 s period, so 10,000 ticks a second, on the memory store or
 * Redis; after the first due time it prints, each second for 16 s, the lag percentiles (ms)
 * of the ticks of the second before, the event loop's longest delay, the process's CPU, and
 * the V8 heap by space.
 *
 *     node_modules/node/bin/node --expose-gc bench/reminders-trace.ts redis [count] [perActor]
 */
import { Duration, Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import { Rpc } from "effect/rpc"
import { monitorEventLoopDelay } from "node:perf_hooks"
import v8 from "node:v8"
import { Actor, Reminders, Silo } from "../src/index.ts"
import * as RemindersBench from "./reminders.ts"

const Tick = Rpc.make("Tick")
const Target = Actor.make("TraceTarget", [Tick])
const onRedis = process.argv[2] === "redis"
const count = Number(process.argv[3] ?? 100_000)
const perActor = Number(process.argv[4] ?? 10)
const periodMs = 10_000

/** Lags (ms) by the second after the first due time in which the tick arrived. */
const lags: Array<Array<number>> = []
let firstDue = 0
const TargetLive = Target.toLayer(
  Effect.succeed(Target.of({
    Tick: () =>
      Effect.map(Reminders.currentTick, (tick) => {
        if (tick === undefined) return
        const now = Date.now()
        ;(lags[Math.floor((now - firstDue) / 1000)] ??= []).push(now - tick.due)
      })
  })),
  { idleTimeout: "never" }
)

const opened = (onRedis ? RemindersBench.redis : RemindersBench.memory).open("trace")
const scope = Effect.runSync(Scope.make())
const store = await Effect.runPromise(Scope.provide(opened.store, scope))
const runtime = ManagedRuntime.make(
  Reminders.layer({ store }).pipe(
    Layer.provideMerge(TargetLive.pipe(Layer.provideMerge(Silo.layer({ passivationInterval: "1 hour" }))))
  )
)
try {
  await runtime.context()
  // Registration (about 6,000/s on Redis here) must end before the first tick is due.
  firstDue = Date.now() + (onRedis ? 25_000 : 10_000)
  const actors = Math.ceil(count / perActor)
  await runtime.runPromise(Effect.forEach(
    Array.from({ length: count }, (_, i) => i),
    (i) =>
      Reminders.register(Target, `a${i % actors}`, `r${Math.floor(i / actors)}`, {
        message: "Tick",
        every: Duration.millis(periodMs),
        startAt: firstDue + Math.floor((i * periodMs) / count)
      }),
    { concurrency: 64, discard: true }
  ))
  await new Promise((resolve) => setTimeout(resolve, Math.max(0, firstDue - Date.now())))
  const delay = monitorEventLoopDelay({ resolution: 5 })
  delay.enable()
  let cpu = process.cpuUsage()
  for (let second = 0; second < 16; second++) {
    await new Promise((resolve) => setTimeout(resolve, 1000))
    const sorted = (lags[Math.floor((Date.now() - firstDue) / 1000) - 1] ?? []).sort((a, b) => a - b)
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]
    const used = process.cpuUsage(cpu)
    cpu = process.cpuUsage()
    const spaces = v8.getHeapSpaceStatistics()
      .filter((space) => space.space_used_size > 2 ** 20)
      .map((space) => `${space.space_name.replace(/_space$/, "")}=${Math.round(space.space_used_size / 2 ** 20)}MB`)
    console.log(
      `${second}s ticks=${sorted.length} p50=${at(0.5)} p99=${at(0.99)} max=${at(1)} ms; ` +
        `loop delay max=${Math.round(delay.max / 1e6)} ms; cpu=${Math.round((used.user + used.system) / 1000)} ms; ${spaces.join(" ")}`
    )
    delay.reset()
  }
} finally {
  await runtime.dispose()
  await Effect.runPromise(Scope.close(scope, Exit.void))
  await opened.cleanup?.()
}
process.exit(0)

/**
 * Runs one local benchmark on its own, for profiling (not part of `npm run bench`):
 *
 *   node --expose-gc --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile.ts local.tell [ops] [--rounds=5]
 *   node --expose-gc bench/profile.ts local.ask.spread --rounds-profile=/tmp/prof/spread.cpuprofile
 *   node --expose-gc bench/profile.ts heap-snapshot [actors] --dir=/tmp/heap [--tell]   # before/after snapshots
 *   node --expose-gc bench/profile.ts phases [actors] --dir=/tmp/prof/phases     # CPU profile per phase
 *
 * `heap-snapshot` activates `actors` counters (as `local.activate` does) in one silo and
 * writes a heap snapshot before and after (after GC), for bench/heapDiff.ts. `phases`
 * activates `actors` counters (one Increment each) and then closes the silo, with a CPU
 * profile of each phase alone (activate.cpuprofile, passivate.cpuprofile; bench/cpuTop.ts).
 */
import { writeFileSync } from "node:fs"
import { Session } from "node:inspector/promises"
import { writeHeapSnapshot } from "node:v8"
import { Effect, Layer, ManagedRuntime } from "effect"
import { Silo } from "../src/index.ts"
import { runInterleaved, type Variant } from "./Harness.ts"
import { activate, activateMillion, askSequential, askSpread, Counter, CounterLive, tell } from "./local.ts"

const [what = "local.tell", countArg] = process.argv.slice(2).filter((arg) => !arg.startsWith("--"))
const count = countArg === undefined ? undefined : Number(countArg)
const gc = (): void => (globalThis as { gc?: () => void }).gc?.()

const dirArg = process.argv.find((arg) => arg.startsWith("--dir="))?.slice("--dir=".length) ?? "."

if (what === "phases") {
  const actors = count ?? 100_000
  const session = new Session()
  session.connect()
  await session.post("Profiler.enable")
  await session.post("Profiler.setSamplingInterval", { interval: 100 })
  const profiled = async <A>(name: string, run: () => Promise<A>): Promise<A> => {
    gc()
    await session.post("Profiler.start")
    const t0 = performance.now()
    const result = await run()
    const ms = performance.now() - t0
    const { profile } = await session.post("Profiler.stop")
    writeFileSync(`${dirArg}/${name}.cpuprofile`, JSON.stringify(profile))
    console.log(`${name}: ${ms.toFixed(0)} ms`)
    return result
  }
  const config = { passivationInterval: "1 hour", shutdownTimeout: "10 minutes" } as const
  const warm = ManagedRuntime.make(CounterLive.pipe(Layer.provideMerge(Silo.layer(config))))
  await warm.runPromise(Effect.gen(function*() {
    for (let i = 0; i < 20_000; i++) yield* (yield* Counter.ref(`w-${i}`)).Increment({ by: 1 })
  }))
  await warm.dispose()
  const runtime = ManagedRuntime.make(CounterLive.pipe(Layer.provideMerge(Silo.layer(config))))
  await runtime.context()
  await profiled("activate", () =>
    runtime.runPromise(Effect.gen(function*() {
      for (let i = 0; i < actors; i++) yield* (yield* Counter.ref(`a-${i}`)).Increment({ by: 1 })
    })))
  await profiled("passivate", () => runtime.dispose())
  session.disconnect()
} else if (what === "heap-snapshot") {
  const actors = count ?? 100_000
  const dir = dirArg
  const runtime = ManagedRuntime.make(CounterLive.pipe(Layer.provideMerge(Silo.layer())))
  await runtime.context()
  // Warm the path and create every lazily made shared object before the first snapshot.
  await runtime.runPromise(Effect.gen(function*() {
    for (let i = 0; i < 1000; i++) yield* (yield* Counter.ref(`w-${i}`)).Increment({ by: 1 })
  }))
  const ids = Array.from({ length: actors }, (_, i) => `a-${i}`)
  gc()
  const before = writeHeapSnapshot(`${dir}/before.heapsnapshot`)
  // --tell: activate each by one tell instead of an ask (then wait for the drainers to finish).
  const byTell = process.argv.includes("--tell")
  await runtime.runPromise(Effect.forEach(
    ids,
    (id) => Effect.flatMap(Counter.ref(id), (ref) => byTell ? ref.tell.Increment({ by: 1 }) : Effect.asVoid(ref.Increment({ by: 1 }))),
    { discard: true }
  ))
  if (byTell) await new Promise((resolve) => setTimeout(resolve, 500))
  gc()
  const after = writeHeapSnapshot(`${dir}/after.heapsnapshot`)
  console.log(JSON.stringify({ actors, before, after }))
  await runtime.dispose()
} else {
  const made: Record<string, () => Promise<Variant & { dispose?: () => Promise<void> }>> = {
    "local.tell": () => tell(count ?? 2_000_000),
    "local.ask.sequential": () => askSequential(count ?? 1_000_000),
    "local.activate": async () => activate(count ?? 100_000),
    "local.activate.million": async () => activateMillion(count ?? 1_000_000),
    "local.ask.spread": () => askSpread("local.ask.spread", count ?? 1_000_000, 1_000_000),
    "local.ask.spread.100k": () => askSpread("local.ask.spread.100k", 100_000, 1_000_000)
  }
  const make = made[what]
  if (make === undefined) throw new Error(`unknown benchmark ${what}; one of ${Object.keys(made).join(", ")}`)
  const variant = await make()
  try {
    const rounds = Number(process.argv.find((arg) => arg.startsWith("--rounds="))?.slice("--rounds=".length) ?? 5)
    // --rounds-profile=file: a CPU profile of the rounds alone (not the setup, not the dispose).
    const roundsProfile = process.argv.find((arg) => arg.startsWith("--rounds-profile="))?.slice("--rounds-profile=".length)
    const session = roundsProfile === undefined ? undefined : new Session()
    if (session !== undefined) {
      session.connect()
      await session.post("Profiler.enable")
      await session.post("Profiler.start")
    }
    const results = await runInterleaved([variant], { rounds, warmup: 1 })
    if (session !== undefined) {
      const { profile } = await session.post("Profiler.stop")
      writeFileSync(roundsProfile!, JSON.stringify(profile))
      session.disconnect()
    }
    for (const result of results) console.log(JSON.stringify(result))
  } finally {
    await variant.dispose?.()
  }
}

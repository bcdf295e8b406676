/**
 * Benchmarks of the local runtime: ask (sequential, under 100 concurrent callers, and spread
 * over many live activations), tell, and activation rate with memory per idle activation
 * (100,000 per round, and one million at once in a single round, with the time to passivate
 * them all). Each round verifies that every operation completed (the counters must add up),
 * so a lost message fails the run.
 */
import { Effect, Layer, ManagedRuntime, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, Silo } from "../src/index.ts"
import { nowNs, type Variant } from "./Harness.ts"

const Increment = Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
const Get = Rpc.make("Get", { success: Schema.Int })
export const Counter = Actor.make("BenchCounter", [Increment, Get])

export const CounterLive = Counter.toLayer(
  Effect.gen(function*() {
    const count = yield* Ref.make(0)
    return Counter.of({
      Increment: ({ by }) => Ref.updateAndGet(count, (n) => n + by),
      Get: () => Ref.get(count)
    })
  }),
  { mailboxCapacity: 10_000, whenFull: "suspend" }
)

/** An actor whose activations share one handler table and have no state: what remains is Quark's. */
const Bare = Actor.make("BenchBare", [Get])
const bareHandlers = Bare.of({ Get: () => Effect.succeed(0) })
const BareLive = Bare.toLayer(Effect.succeed(bareHandlers))

type Runtime = ManagedRuntime.ManagedRuntime<Silo.Silo, never>

const makeRuntime = async (config?: Silo.SiloConfig, telemetry: Layer.Layer<never> = Layer.empty): Promise<Runtime> => {
  const runtime = ManagedRuntime.make(
    Layer.mergeAll(CounterLive, BareLive).pipe(Layer.provideMerge(Silo.layer(config)), Layer.provide(telemetry))
  )
  await runtime.context()
  return runtime
}

const check = (id: string, got: number, want: number): void => {
  if (got !== want) throw new Error(`${id}: expected ${want}, got ${got}`)
}

/** Latency of every `sampleEvery`-th op: timing each op would add two clock reads to a sub-µs op. */
const sampleEvery = 8

type Disposable = Variant & { readonly dispose: () => Promise<void> }

/** One caller, one actor, ask in a loop. */
export const askSequential = async (
  opsPerRound: number,
  id = "local.ask.sequential",
  telemetry?: Layer.Layer<never>
): Promise<Disposable> => {
  const runtime = await makeRuntime(undefined, telemetry)
  const round = Effect.gen(function*() {
    const counter = yield* Counter.ref("sequential")
    const before = yield* counter.Get()
    const latenciesUs: Array<number> = []
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) {
      if (i % sampleEvery === 0) {
        const s = nowNs()
        yield* counter.Increment({ by: 1 })
        latenciesUs.push((nowNs() - s) / 1000)
      } else {
        yield* counter.Increment({ by: 1 })
      }
    }
    const elapsedNs = nowNs() - t0
    check(id, (yield* counter.Get()) - before, opsPerRound)
    return { ops: opsPerRound, elapsedNs, latenciesUs }
  })
  return { id, round: () => runtime.runPromise(round), dispose: () => runtime.dispose() }
}

/**
 * 100 caller fibers, each asking a random one of 100 actors, so turns contend. Each caller
 * yields after each call, as independent clients interleave: a tight loop of 100 fibers is
 * preempted every 2,048 Effect operations for a whole round of the other 99 (~20 ms here),
 * and that round, not the call, would be the tail being measured.
 */
export const askConcurrent = async (opsPerRound: number): Promise<Disposable> => {
  const id = "local.ask.concurrent"
  const runtime = await makeRuntime()
  const round = concurrentRound(id, opsPerRound)
  return { id, round: () => runtime.runPromise(round), dispose: () => runtime.dispose() }
}

/**
 * One round of `local.ask.concurrent`: 100 callers asking 100 counters at random, checked
 * against the counters' totals. Shared with benchmarks that measure what something else
 * costs that loop (`bench/dashboard.ts`).
 */
export const concurrentRound = (id: string, opsPerRound: number) =>
  Effect.gen(function*() {
    const callers = 100
    const actors = 100
    const refs = yield* Effect.forEach(Array.from({ length: actors }, (_, i) => `concurrent-${i}`), Counter.ref)
    const before = yield* Effect.forEach(refs, (ref) => ref.Get())
    const perCaller = Math.floor(opsPerRound / callers)
    const latenciesUs: Array<number> = []
    const t0 = nowNs()
    yield* Effect.forEach(
      Array.from({ length: callers }),
      () =>
        Effect.gen(function*() {
          for (let i = 0; i < perCaller; i++) {
            const ref = refs[Math.floor(Math.random() * actors)]!
            const s = nowNs()
            yield* ref.Increment({ by: 1 })
            latenciesUs.push((nowNs() - s) / 1000)
            yield* Effect.yieldNow
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    const elapsedNs = nowNs() - t0
    const after = yield* Effect.forEach(refs, (ref) => ref.Get())
    check(id, after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0), perCaller * callers)
    return { ops: perCaller * callers, elapsedNs, latenciesUs }
  })

/** One-way messages into one actor, suspending the sender when the mailbox is full; the round ends when all ran. */
export const tell = async (opsPerRound: number): Promise<Disposable> => {
  const id = "local.tell"
  const runtime = await makeRuntime()
  const round = Effect.gen(function*() {
    const counter = yield* Counter.ref("tell")
    const before = yield* counter.Get()
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) yield* counter.tell.Increment({ by: 1 })
    // An ask queues behind every tell, so its reply means they all ran.
    const after = yield* counter.Get()
    const elapsedNs = nowNs() - t0
    check(id, after - before, opsPerRound)
    return { ops: opsPerRound, elapsedNs }
  })
  return { id, round: () => runtime.runPromise(round), dispose: () => runtime.dispose() }
}

const gc = (): void => (globalThis as { gc?: () => void }).gc?.()

/**
 * Fresh activations per second (one ask each, to a new id, in a fresh silo per round),
 * and the heap growth per idle activation after GC: `bytesPerActor` for the counter (its
 * id, state and handlers included), `quarkBytesPerActor` for stateless activations that
 * share one handler table, with ids allocated beforehand (Quark's own share).
 */
export const activate = (opsPerRound: number): Variant => {
  const id = "local.activate"
  let bytesPerActor = Number.NaN
  let quarkBytesPerActor = Number.NaN
  return {
    id,
    round: async () => {
      const runtime = await makeRuntime()
      try {
        gc()
        const heapBefore = process.memoryUsage().heapUsed
        const t0 = nowNs()
        const activated = await runtime.runPromise(Effect.gen(function*() {
          let replies = 0
          for (let i = 0; i < opsPerRound; i++) {
            const counter = yield* Counter.ref(`a-${i}`)
            replies += yield* counter.Increment({ by: 1 })
          }
          return replies
        }))
        const elapsedNs = nowNs() - t0
        check(id, activated, opsPerRound)
        gc()
        bytesPerActor = Math.round((process.memoryUsage().heapUsed - heapBefore) / opsPerRound)
        const listed = await runtime.runPromise(Effect.flatMap(Silo.Silo, (silo) => silo.activations("BenchCounter")))
        check(id, listed.length, opsPerRound)

        const ids = Array.from({ length: opsPerRound }, (_, i) => `b-${i}`)
        gc()
        const bareBefore = process.memoryUsage().heapUsed
        await runtime.runPromise(Effect.forEach(ids, (bareId) => Effect.flatMap(Bare.ref(bareId), (ref) => ref.Get()), {
          discard: true
        }))
        gc()
        quarkBytesPerActor = Math.round((process.memoryUsage().heapUsed - bareBefore) / opsPerRound)
        return { ops: opsPerRound, elapsedNs }
      } finally {
        await runtime.dispose()
      }
    },
    extra: () => ({ bytesPerActor, quarkBytesPerActor })
  }
}

type CounterRef = Effect.Success<ReturnType<typeof Counter.ref>>

/** mulberry32: a deterministic 32-bit PRNG (a few ns per number), so every run asks the same addresses. */
const prng = (seed: number) => {
  let a = seed >>> 0
  return (): number => {
    a = (a + 0x6d2b79f5) | 0
    let t = Math.imul(a ^ (a >>> 15), 1 | a)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return (t ^ (t >>> 14)) >>> 0
  }
}

/**
 * One caller asking `Increment` of a pseudo-random one of `actors` live activations (all
 * activated, and their refs made, before the first round; untimed). The silo and the refs
 * live across rounds (no idle passivation meanwhile). Every reply is checked against a per-actor count kept here, so a lost,
 * duplicated or misrouted message fails the run. Compare with `local.ask.sequential` (one
 * actor, hot in cache): what is left is the cost of a cold activation and map lookup.
 */
export const askSpread = async (id: string, actors: number, opsPerRound: number): Promise<Disposable> => {
  // No idle passivation during the run (the rounds take longer than the idle timeout): a
  // passivated counter would start again at 0 and fail the check.
  const runtime = await makeRuntime({ passivationInterval: "1 hour" })
  const refs: Array<CounterRef> = new Array(actors)
  const counts = new Uint32Array(actors)
  await runtime.runPromise(Effect.gen(function*() {
    for (let i = 0; i < actors; i++) {
      const ref = yield* Counter.ref(`s-${i}`)
      refs[i] = ref
      check(id, yield* ref.Get(), 0)
    }
  }))
  const next = prng(0x5eed)
  const round = Effect.gen(function*() {
    const latenciesUs: Array<number> = []
    let wrong = 0
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) {
      const k = next() % actors
      const ref = refs[k]!
      let got: number
      if (i % sampleEvery === 0) {
        const s = nowNs()
        got = yield* ref.Increment({ by: 1 })
        latenciesUs.push((nowNs() - s) / 1000)
      } else {
        got = yield* ref.Increment({ by: 1 })
      }
      if (got !== ++counts[k]!) wrong++
    }
    const elapsedNs = nowNs() - t0
    check(id, wrong, 0)
    return { ops: opsPerRound, elapsedNs, latenciesUs }
  })
  const live = await runtime.runPromise(Effect.map(Silo.Silo, (silo) => silo.router.slots.get("BenchCounter")!.activations))
  return {
    id,
    round: () => runtime.runPromise(round),
    extra: () => {
      check(id, live.size, actors) // none was passivated or lost meanwhile
      return { actors, heapUsedMB: heapUsedMB() }
    },
    dispose: () => runtime.dispose()
  }
}

const heapUsedMB = (): number => {
  gc()
  return Math.round(process.memoryUsage().heapUsed / 2 ** 20)
}

/**
 * One million idle activations of the counter in one silo, one `Increment` each (a single
 * round: it takes seconds). Reports the activation rate (`activateMs` for them all), the
 * heap used after GC with all of them live (`heapUsedMB`, the process's whole heap;
 * `heapGrowthMB` and `bytesPerActor` for the activations alone), and `passivateMs`: the time
 * to close the silo, which deactivates every activation, runs its finalizers (closes its
 * scope) and waits until each has stopped and left the silo's table, the same path an idle
 * passivation takes per activation (`Activation.deactivate`). The silo's sweeper never
 * runs meanwhile (its interval is an hour), so no activation is passivated early.
 * `heapAfterPassivateMB` should be back near where it started.
 */
export const activateMillion = (count: number): Variant => {
  const id = "local.activate.million"
  let extra: Record<string, number> = {}
  const activateAll = (runtime: Runtime, prefix: string) =>
    runtime.runPromise(Effect.gen(function*() {
      let replies = 0
      for (let i = 0; i < count; i++) {
        const counter = yield* Counter.ref(`${prefix}${i}`)
        replies += yield* counter.Increment({ by: 1 })
      }
      return replies
    }))
  const config: Silo.SiloConfig = { passivationInterval: "1 hour", shutdownTimeout: "10 minutes" }
  return {
    id,
    rounds: 1,
    warmup: 0,
    round: async () => {
      // The JIT is warmed on a small silo first: one round must not measure compilation.
      const warm = await makeRuntime(config)
      try {
        await warm.runPromise(Effect.gen(function*() {
          for (let i = 0; i < Math.min(20_000, count); i++) yield* (yield* Counter.ref(`w-${i}`)).Increment({ by: 1 })
        }))
      } finally {
        await warm.dispose()
      }
      const heapBefore = heapUsedMB()
      const runtime = await makeRuntime(config)
      const table = await runtime.runPromise(Effect.map(Silo.Silo, (silo) => silo.router.slots.get("BenchCounter")))
      let disposed = false
      try {
        gc()
        const bytesBefore = process.memoryUsage().heapUsed
        const t0 = nowNs()
        const replies = await activateAll(runtime, "m-")
        const elapsedNs = nowNs() - t0
        check(id, replies, count)
        const heapUsedAfter = heapUsedMB()
        const bytesPerActor = Math.round((process.memoryUsage().heapUsed - bytesBefore) / count)
        check(id, table?.activations.size ?? 0, count)
        const t1 = nowNs()
        await runtime.dispose()
        const passivateNs = nowNs() - t1
        disposed = true
        check(id, table?.activations.size ?? -1, 0)
        extra = {
          activations: count,
          activateMs: Math.round(elapsedNs / 1e6),
          passivateMs: Math.round(passivateNs / 1e6),
          passivatedPerSec: Math.round(count / (passivateNs / 1e9)),
          heapUsedMB: heapUsedAfter,
          heapGrowthMB: heapUsedAfter - heapBefore,
          bytesPerActor,
          heapAfterPassivateMB: heapUsedMB()
        }
        return { ops: count, elapsedNs }
      } finally {
        if (!disposed) await runtime.dispose()
      }
    },
    extra: () => extra
  }
}

/**
 * Benchmarks of the local runtime: ask (sequential and under 100 concurrent callers), tell,
 * and activation rate with memory per idle activation. Each round verifies that every
 * operation completed (the counters must add up), so a lost message fails the run.
 */
import { Effect, Layer, ManagedRuntime, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, Silo } from "../src/index.ts"
import { nowNs, type Variant } from "./Harness.ts"

const Increment = Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
const Get = Rpc.make("Get", { success: Schema.Int })
const Counter = Actor.make("BenchCounter", [Increment, Get])

const CounterLive = Counter.toLayer(
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

const makeRuntime = async (): Promise<Runtime> => {
  const runtime = ManagedRuntime.make(Layer.mergeAll(CounterLive, BareLive).pipe(Layer.provideMerge(Silo.layer())))
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
export const askSequential = async (opsPerRound: number): Promise<Disposable> => {
  const id = "local.ask.sequential"
  const runtime = await makeRuntime()
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
  const callers = 100
  const actors = 100
  const runtime = await makeRuntime()
  const round = Effect.gen(function*() {
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
            const ref = refs[Math.floor(Math.random() * actors)]
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
  return { id, round: () => runtime.runPromise(round), dispose: () => runtime.dispose() }
}

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

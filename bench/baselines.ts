/**
 * Reference points for the actor benchmarks: the cost of a plain async call, of
 * a hand-rolled Effect Queue+Deferred "ask", and of an effect/cluster entity
 * call. Each round asks sequentially (one caller, one outstanding request) and
 * verifies every reply arrived, so a silently dropped message fails the bench.
 */
import { Deferred, Effect, Fiber, Layer, ManagedRuntime, Queue, Schema } from "effect"
import {
  Entity,
  MessageStorage,
  RunnerHealth,
  Runners,
  RunnerStorage,
  Sharding,
  ShardingConfig
} from "effect/cluster"
import { Rpc } from "effect/rpc"
import { nowNs, type Variant } from "./Harness.ts"

const checkCount = (id: string, got: number, want: number): void => {
  if (got !== want) throw new Error(`${id}: expected ${want} replies, got ${got}`)
}

/**
 * `await fn()` in a loop, fn being an async counter increment: the floor for
 * any promise-based ask. Note the two hrtime reads per op are a large share of
 * what is measured here.
 */
export const plainCall = (opsPerRound: number): Variant => {
  const id = "baseline.plain-call"
  let counter = 0
  const fn = async (): Promise<number> => ++counter
  return {
    id,
    round: async () => {
      const latenciesUs = new Array<number>(opsPerRound)
      const first = counter
      let replies = 0
      let last = first
      const t0 = nowNs()
      for (let i = 0; i < opsPerRound; i++) {
        const s = nowNs()
        last = await fn()
        latenciesUs[i] = (nowNs() - s) / 1000
        replies++
      }
      const elapsedNs = nowNs() - t0
      checkCount(id, replies, opsPerRound)
      checkCount(id, last - first, opsPerRound)
      return { ops: opsPerRound, elapsedNs, latenciesUs }
    }
  }
}

interface Ask {
  readonly n: number
  readonly deferred: Deferred.Deferred<number>
}

/**
 * The naive Effect "actor": one consumer fiber draining an unbounded Queue of
 * `{ n, deferred }` and answering n+1. The consumer lives across rounds;
 * `dispose` interrupts it.
 */
export const queueAsk = async (
  opsPerRound: number
): Promise<Variant & { readonly dispose: () => Promise<void> }> => {
  const id = "baseline.queue-ask"
  const queue = await Effect.runPromise(Queue.unbounded<Ask>())
  const consumer = Effect.runFork(
    Queue.take(queue).pipe(
      Effect.flatMap(({ deferred, n }) => Deferred.succeed(deferred, n + 1)),
      Effect.forever
    )
  )
  const round = Effect.gen(function*() {
    const latenciesUs = new Array<number>(opsPerRound)
    let replies = 0
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) {
      const s = nowNs()
      const deferred = yield* Deferred.make<number>()
      yield* Queue.offer(queue, { n: i, deferred })
      const reply = yield* Deferred.await(deferred)
      latenciesUs[i] = (nowNs() - s) / 1000
      if (reply === i + 1) replies++
    }
    const elapsedNs = nowNs() - t0
    checkCount(id, replies, opsPerRound)
    return { ops: opsPerRound, elapsedNs, latenciesUs }
  })
  return {
    id,
    round: () => Effect.runPromise(round),
    dispose: () => Effect.runPromise(Fiber.interrupt(consumer))
  }
}

const Increment = Rpc.make("Increment", { success: Schema.Int })
const Counter = Entity.make("Counter", [Increment])

// In-memory counter state per entity instance; replies with the new count.
const CounterLive = Counter.toLayer(
  Effect.sync(() => {
    let count = 0
    return Counter.of({ Increment: () => Effect.sync(() => ++count) })
  })
)

// Same composition as `TestRunner.layer` (in-memory storage, no-op transport,
// always-healthy runner), spelled out so the ShardingConfig can be set here.
const ClusterLive = Sharding.layer.pipe(
  Layer.provideMerge(Runners.layerNoop),
  Layer.provideMerge(MessageStorage.layerMemory),
  Layer.provide([RunnerStorage.layerMemory, RunnerHealth.layerNoop]),
  Layer.provide(
    ShardingConfig.layer({
      // The default. Even for an entity on the local runner, every request and
      // reply is encoded and decoded through the Rpc schemas (as if it crossed
      // the network), so handlers never share mutable objects with callers.
      // This cost is part of what a real cluster call pays, so we keep it.
      simulateRemoteSerialization: true
    })
  )
)

/**
 * An effect/cluster entity ("Counter", `Increment` → Int) hosted in-process,
 * asked sequentially by one caller. The runtime is built once and lives across
 * rounds; `dispose` tears it down.
 */
export const effectClusterAsk = async (
  opsPerRound: number
): Promise<Variant & { readonly dispose: () => Promise<void> }> => {
  const id = "baseline.effect-cluster.ask"
  const runtime = ManagedRuntime.make(CounterLive.pipe(Layer.provideMerge(ClusterLive)))
  await runtime.context() // build eagerly so no round pays for startup
  const round = Effect.gen(function*() {
    const entity = (yield* Counter.client)("counter-1")
    const latenciesUs = new Array<number>(opsPerRound)
    let replies = 0
    let last = -1
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) {
      const s = nowNs()
      const count = yield* entity.Increment()
      latenciesUs[i] = (nowNs() - s) / 1000
      // Replies must be consecutive counts: anything else is a lost or duplicated message.
      if (last === -1 || count === last + 1) replies++
      last = count
    }
    const elapsedNs = nowNs() - t0
    checkCount(id, replies, opsPerRound)
    return { ops: opsPerRound, elapsedNs, latenciesUs }
  })
  return { id, round: () => runtime.runPromise(round), dispose: () => runtime.dispose() }
}

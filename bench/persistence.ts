/**
 * Persistence benchmarks: version-checked state writes and journal appends per second,
 * 100 actors (distinct keys) writing concurrently, each at the version or sequence it
 * last saw. A conflict fails the round, and each round checks that every write landed.
 * The same two variants run against every store, so the figures compare.
 */
import { Effect, Exit, Scope } from "effect"
import type { StateKey, Stores } from "../src/index.ts"
import { nowNs, type RoundResult, type Variant } from "./Harness.ts"

const actors = 100
type Disposable = Variant & { readonly dispose: () => Promise<void> }

/**
 * A store to benchmark: how to open it (its connection lives across rounds), and how to
 * remove what the rounds wrote (for a server that outlives the run).
 */
export interface BenchStore {
  readonly open: Effect.Effect<Stores.Store, unknown, Scope.Scope>
  readonly cleanup?: () => Promise<void>
}

const withStore = async (
  id: string,
  target: BenchStore,
  round: (store: Stores.Store, run: string) => Effect.Effect<RoundResult, unknown>
): Promise<Disposable> => {
  const scope = Effect.runSync(Scope.make())
  const store = await Effect.runPromise(Scope.provide(target.open, scope))
  let rounds = 0
  return {
    id,
    round: () => Effect.runPromise(round(store, `${id}-${Date.now().toString(36)}-${++rounds}`)),
    dispose: async () => {
      await Effect.runPromise(Scope.close(scope, Exit.void))
      await target.cleanup?.()
    }
  }
}

/**
 * `opsPerRound` writes spread over 100 writers, each on its own key: `write(key, n)` is the
 * writer's n-th write (n from 0, the version or sequence it expects); `last(key)` reads back
 * how many landed, which must be all of them, for every key.
 */
const concurrentWrites = (
  id: string,
  target: BenchStore,
  opsPerRound: number,
  write: (store: Stores.Store, key: StateKey, n: number) => Effect.Effect<unknown, unknown>,
  last: (store: Stores.Store, key: StateKey) => Effect.Effect<number, unknown>
) =>
  withStore(id, target, (store, run) =>
    Effect.gen(function*() {
      const perActor = Math.ceil(opsPerRound / actors)
      const keys = Array.from({ length: actors }, (_, i): StateKey => ({ type: "Bench", id: `${run}-${i}`, record: "r" }))
      const latenciesUs: Array<number> = []
      const t0 = nowNs()
      yield* Effect.forEach(
        keys,
        (key) =>
          Effect.gen(function*() {
            for (let n = 0; n < perActor; n++) {
              const s = nowNs()
              yield* write(store, key, n)
              latenciesUs.push((nowNs() - s) / 1000)
            }
          }),
        { concurrency: "unbounded", discard: true }
      )
      const elapsedNs = nowNs() - t0
      const landed = yield* Effect.forEach(keys, (key) => last(store, key), { concurrency: 10 })
      const short = landed.findIndex((n) => n !== perActor)
      if (short >= 0) throw new Error(`${id}: writer ${short} landed ${landed[short]} of ${perActor}`)
      return { ops: perActor * actors, elapsedNs, latenciesUs }
    }))

/** Version-checked state writes: each writer writes at the version it last wrote. */
export const stateWrite = (id: string, target: BenchStore, opsPerRound: number) =>
  concurrentWrites(
    id,
    target,
    opsPerRound,
    (store, key, n) => store.state.write(key, `{"n":${n + 1}}`, n),
    (store, key) => Effect.map(store.state.read(key), (stored) => stored?.version ?? 0)
  )

/** One-event journal appends, each at the sequence the writer last appended. */
export const journalAppend = (id: string, target: BenchStore, opsPerRound: number) =>
  concurrentWrites(
    id,
    target,
    opsPerRound,
    (store, key, n) => store.journal.append(key, n, [`{"n":${n + 1}}`]),
    (store, key) => store.journal.lastSequence(key)
  )

/**
 * Reads: each of the 100 readers reads its own record (a 200-byte JSON value, written once
 * before the clock starts) again and again; every read must return it.
 */
export const stateRead = (id: string, target: BenchStore, opsPerRound: number) =>
  withStore(id, target, (store, run) =>
    Effect.gen(function*() {
      const perActor = Math.ceil(opsPerRound / actors)
      const keys = Array.from({ length: actors }, (_, i): StateKey => ({ type: "Bench", id: `${run}-${i}`, record: "r" }))
      const value = JSON.stringify({ name: "x".repeat(150), n: 1 })
      yield* Effect.forEach(keys, (key) => store.state.write(key, value, 0), { discard: true })
      const latenciesUs: Array<number> = []
      const t0 = nowNs()
      yield* Effect.forEach(
        keys,
        (key) =>
          Effect.gen(function*() {
            for (let n = 0; n < perActor; n++) {
              const s = nowNs()
              const stored = yield* store.state.read(key)
              latenciesUs.push((nowNs() - s) / 1000)
              if (stored?.data !== value) throw new Error(`${id}: ${key.id} read ${stored?.data}`)
            }
          }),
        { concurrency: "unbounded", discard: true }
      )
      return { ops: perActor * actors, elapsedNs: nowNs() - t0, latenciesUs }
    }))

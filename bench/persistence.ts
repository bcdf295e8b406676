/**
 * Persistence benchmarks: version-checked state writes and journal appends per second,
 * 100 actors (distinct keys) writing concurrently, each at the version or sequence it
 * last saw. A conflict fails the round, and each round checks that every write landed.
 * The same two variants run against every store, so the figures compare.
 */
import { Effect, Exit, Scope } from "effect"
import type { Stores } from "../src/index.ts"
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

/** `opsPerRound` writes spread over 100 writers; each keeps its own expected version. */
export const stateWrite = (id: string, target: BenchStore, opsPerRound: number) =>
  withStore(id, target, (store, run) =>
    Effect.gen(function*() {
      const perActor = Math.ceil(opsPerRound / actors)
      const latenciesUs: Array<number> = []
      const t0 = nowNs()
      yield* Effect.forEach(
        Array.from({ length: actors }, (_, i) => ({ type: "Bench", id: `${run}-${i}`, record: "state" })),
        (key) =>
          Effect.gen(function*() {
            for (let version = 0; version < perActor; version++) {
              const s = nowNs()
              yield* store.state.write(key, `{"n":${version + 1}}`, version)
              latenciesUs.push((nowNs() - s) / 1000)
            }
          }),
        { concurrency: "unbounded", discard: true }
      )
      const elapsedNs = nowNs() - t0
      const last = yield* store.state.read({ type: "Bench", id: `${run}-${actors - 1}`, record: "state" })
      if (last?.version !== perActor) throw new Error(`${id}: expected version ${perActor}, found ${last?.version}`)
      return { ops: perActor * actors, elapsedNs, latenciesUs }
    }))

/** `opsPerRound` one-event appends spread over 100 journals, each at its expected sequence. */
export const journalAppend = (id: string, target: BenchStore, opsPerRound: number) =>
  withStore(id, target, (store, run) =>
    Effect.gen(function*() {
      const perActor = Math.ceil(opsPerRound / actors)
      const latenciesUs: Array<number> = []
      const t0 = nowNs()
      yield* Effect.forEach(
        Array.from({ length: actors }, (_, i) => ({ type: "Bench", id: `${run}-${i}`, record: "journal" })),
        (key) =>
          Effect.gen(function*() {
            for (let sequence = 0; sequence < perActor; sequence++) {
              const s = nowNs()
              yield* store.journal.append(key, sequence, [`{"n":${sequence + 1}}`])
              latenciesUs.push((nowNs() - s) / 1000)
            }
          }),
        { concurrency: "unbounded", discard: true }
      )
      const elapsedNs = nowNs() - t0
      const last = yield* store.journal.lastSequence({ type: "Bench", id: `${run}-0`, record: "journal" })
      if (last !== perActor) throw new Error(`${id}: expected sequence ${perActor}, found ${last}`)
      return { ops: perActor * actors, elapsedNs, latenciesUs }
    }))

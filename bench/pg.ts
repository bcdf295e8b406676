/**
 * Benchmarks of the PostgreSQL store: 100 actors writing their state concurrently, and 100
 * actors appending to their journals concurrently. Every write is version-checked (each
 * writer keeps its own expected version or sequence, so a conflict fails the round), and
 * each round reads everything back to verify that every write landed.
 *
 * Needs the server at QUARK_PG_URL (default: the local `test` database). Rows go to
 * `quark_bench_*` tables under a key type of their own and are deleted by `dispose`.
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Exit, Redacted, Scope } from "effect"
import { Reactivity } from "effect/reactivity"
import type { StateKey } from "../src/index.ts"
import * as PgStore from "../src/Persistence/PgStore.ts"
import type { Store } from "../src/Persistence/Stores.ts"
import { nowNs, type RoundResult, type Variant } from "./Harness.ts"

const url = process.env.QUARK_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const tablePrefix = "quark_bench_"
const actors = 100

type Disposable = Variant & { readonly dispose: () => Promise<void> }

/** The store in a scope of its own; `dispose` deletes this run's rows and closes it. */
const open = async (label: string) => {
  const scope = Scope.makeUnsafe()
  const type = `Bench-${label}-${Date.now().toString(36)}`
  const [store, sql] = await Effect.runPromise(Scope.provide(scope)(Effect.all([
    PgStore.make("bench", { url, tablePrefix }),
    // A plain client for the cleanup only.
    PgClient.make({ url: Redacted.make(url), maxConnections: 1 }).pipe(
      Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
    )
  ])))
  const keys: ReadonlyArray<StateKey> = Array.from({ length: actors }, (_, i) => ({ type, id: `actor-${i}`, record: "r" }))
  const dispose = () =>
    Effect.runPromise(Effect.gen(function*() {
      for (const table of ["state", "journal"]) {
        yield* sql.unsafe(`DELETE FROM ${tablePrefix}${table} WHERE actor_type = $1`, [type])
      }
    }).pipe(Effect.ensuring(Scope.close(scope, Exit.void))))
  return { store: store as Store, keys, dispose }
}

const check = (id: string, what: string, got: unknown, want: unknown): void => {
  if (got !== want) throw new Error(`${id}: ${what}: expected ${String(want)}, got ${String(got)}`)
}

/**
 * Runs one round: every actor's writer does `perActor` sequential ops at once with the
 * others, each op timed; `verify` then checks the stored result.
 */
const concurrentRound = (
  opsPerRound: number,
  op: (actor: number) => Effect.Effect<unknown, unknown>,
  verify: (perActor: number) => Effect.Effect<void, unknown>
): Promise<RoundResult> => {
  const perActor = Math.max(1, Math.floor(opsPerRound / actors))
  const latenciesUs: Array<number> = []
  return Effect.runPromise(Effect.gen(function*() {
    const t0 = nowNs()
    yield* Effect.forEach(
      Array.from({ length: actors }, (_, i) => i),
      (actor) =>
        Effect.gen(function*() {
          for (let i = 0; i < perActor; i++) {
            const s = nowNs()
            yield* op(actor)
            latenciesUs.push((nowNs() - s) / 1000)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    const elapsedNs = nowNs() - t0
    yield* verify(perActor)
    return { ops: perActor * actors, elapsedNs, latenciesUs }
  }))
}

/** 100 actors, each writing its own state record at the version it last wrote. */
export const stateWritePg = async (opsPerRound: number): Promise<Disposable> => {
  const id = "state.write.pg"
  const { store, keys, dispose } = await open("state")
  const versions = keys.map(() => 0)
  const round = () =>
    concurrentRound(
      opsPerRound,
      (actor) =>
        Effect.map(
          store.state.write(keys[actor]!, `{"n":${versions[actor]! + 1}}`, versions[actor]!),
          (version) => (versions[actor] = version)
        ),
      () =>
        Effect.forEach(keys, (key, actor) =>
          Effect.map(store.state.read(key), (stored) => {
            check(id, `${key.id} version`, stored?.version, versions[actor])
            check(id, `${key.id} data`, stored?.data, `{"n":${versions[actor]}}`)
          }), { concurrency: 10, discard: true })
    )
  return { id, round, dispose }
}

/** 100 actors, each appending one event per op to its own journal at its last sequence. */
export const journalAppendPg = async (opsPerRound: number): Promise<Disposable> => {
  const id = "journal.append.pg"
  const { store, keys, dispose } = await open("journal")
  const sequences = keys.map(() => 0)
  const round = () => {
    const before = [...sequences]
    return concurrentRound(
      opsPerRound,
      (actor) =>
        Effect.map(
          store.journal.append(keys[actor]!, sequences[actor]!, [`{"event":${sequences[actor]! + 1}}`]),
          (sequence) => (sequences[actor] = sequence)
        ),
      (perActor) =>
        Effect.forEach(keys, (key, actor) =>
          Effect.map(store.journal.read(key, before[actor]! + 1), (entries) => {
            check(id, `${key.id} events`, entries.length, perActor)
            entries.forEach((entry, i) => {
              check(id, `${key.id} sequence`, entry.sequence, before[actor]! + i + 1)
              check(id, `${key.id} event`, entry.data, `{"event":${entry.sequence}}`)
            })
          }), { concurrency: 10, discard: true })
    )
  }
  return { id, round, dispose }
}

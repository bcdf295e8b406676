/**
 * Write-behind batching for the stores (PostgreSQL's state and reminder stores, Redis's
 * reminder store): the requests made while a batch is in the database go together in the
 * next one, so a store under load runs one statement or script (one commit, one round trip)
 * for many writers and an idle one runs each request at once. At most one request
 * per key goes in a batch (the others wait for the next), so each statement sees a key at
 * most once and each request gets its own result.
 *
 * @internal
 */
import { Effect, Exit, Queue, type Scope } from "effect"
import { StoreError } from "../PersistenceError.ts"

interface Pending<Request, Result> {
  readonly request: Request
  readonly resume: (effect: Effect.Effect<Result, StoreError>) => void
  /** The caller was interrupted before the request went out: it is dropped. */
  cancelled: boolean
}

const maxBatch = 1_000

/**
 * A function that queues a request for the next batch. `keyOf` names what a request
 * writes (two requests of one key never share a batch); `run` returns one result per
 * request, in order.
 */
export const batcher = <Request, Result>(
  store: string,
  operation: string,
  keyOf: (request: Request) => string,
  run: (batch: ReadonlyArray<Request>) => Effect.Effect<ReadonlyArray<Result>, StoreError>
): Effect.Effect<(request: Request) => Effect.Effect<Result, StoreError>, never, Scope.Scope> =>
  Effect.gen(function*() {
    const queue = yield* Queue.unbounded<Pending<Request, Result>>()
    let held: Array<Pending<Request, Result>> = []
    let inFlight: ReadonlyArray<Pending<Request, Result>> = []
    // Registered before the worker starts, so it runs after the worker is interrupted.
    yield* Effect.addFinalizer(() =>
      Effect.map(Queue.clear(queue), (queued) => {
        const closed = Effect.fail(new StoreError({ store, operation, reason: "the store was closed" }))
        for (const pending of [...inFlight, ...held, ...queued]) pending.resume(closed)
      })
    )
    yield* Effect.forkScoped(Effect.gen(function*() {
      while (true) {
        const taken = held.length === 0 ? yield* Queue.takeAll(queue) : [...held, ...(yield* Queue.clear(queue))]
        const batch: Array<Pending<Request, Result>> = []
        const keys = new Set<string>()
        held = []
        for (const pending of taken) {
          if (pending.cancelled) continue
          const key = keyOf(pending.request)
          if (keys.has(key) || batch.length === maxBatch) held.push(pending)
          else {
            keys.add(key)
            batch.push(pending)
          }
        }
        if (batch.length === 0) continue
        inFlight = batch
        const exit = yield* Effect.exit(run(batch.map((pending) => pending.request)))
        inFlight = []
        batch.forEach((pending, i) =>
          pending.resume(Exit.isSuccess(exit) ? Effect.succeed(exit.value[i]!) : Effect.failCause(exit.cause))
        )
      }
    }))
    return (request) =>
      Effect.callback<Result, StoreError>((resume) => {
        const pending: Pending<Request, Result> = { request, resume, cancelled: false }
        Queue.offerUnsafe(queue, pending)
        return Effect.sync(() => {
          pending.cancelled = true
        })
      })
  })

/**
 * `npm run example:pipeline`: a supervised pipeline.
 *
 * A virtual `Pipeline` actor spawns worker children and hands jobs to them in turn. A job
 * marked "poison" makes its worker die: the worker's caller gets a typed `ActorDefect`,
 * and the pipeline's supervisor restarts the worker after an exponential backoff (its
 * queued jobs wait and then run on the new incarnation). A worker that dies more than twice
 * within the window is stopped instead; the pipeline watches its workers and spawns a
 * replacement.
 */
import { Console, Effect, Layer, Logger, Ref, Schedule, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, type ActorRef, formatAddress, Silo, Supervisor } from "quark"

// --- Contracts ---------------------------------------------------------------------------

const Process = Rpc.make("Process", { payload: { job: Schema.String }, success: Schema.String })
const Worker = Actor.make("Worker", [Process])

const Submit = Rpc.make("Submit", { payload: { jobs: Schema.Array(Schema.String) }, success: Schema.Array(Schema.String) })
const Pipeline = Actor.make("Pipeline", [Submit])

// --- Worker: dies on poison --------------------------------------------------------------

const worker = (name: string) =>
  Effect.gen(function*() {
    const { address } = yield* ActorContext
    const done = yield* Ref.make(0)
    yield* Console.log(`    [start] ${name} (${formatAddress(address)})`)
    return Worker.of({
      Process: ({ job }) =>
        job === "poison" ?
          Effect.die(new Error(`${name} choked on poison`)) :
          Effect.map(Ref.updateAndGet(done, (n) => n + 1), (n) => `${job} by ${name} (#${n} since its start)`)
    })
  })

// --- Pipeline: spawns, supervises and replaces workers -----------------------------------

const PipelineLive = Pipeline.toLayer(
  Effect.gen(function*() {
    const ctx = yield* ActorContext
    const workers: Array<ActorRef<typeof Worker.rpcs[number]>> = []
    let spawned = 0

    const hire: Effect.Effect<void> = Effect.gen(function*() {
      const name = `worker-${++spawned}`
      const ref = yield* ctx.spawn(Worker, worker(name), { name })
      workers.push(ref)
      yield* ctx.watch(ref, (termination) =>
        Effect.gen(function*() {
          yield* Console.log(`    [gone]  ${name}: ${termination.reason}; hiring a replacement`)
          workers.splice(workers.indexOf(ref), 1)
          yield* hire
        }))
    })
    yield* Effect.repeat(hire, { times: 2 }) // three workers

    let next = 0
    return Pipeline.of({
      Submit: ({ jobs }) =>
        Effect.forEach(jobs, (job) => {
          const target = workers[next++ % workers.length]
          return target.Process({ job }).pipe(
            Effect.catchTags({
              ActorDefect: (e) => Effect.succeed(`${job} failed: ${e.defect}`),
              ActorStopped: (e) => Effect.succeed(`${job} failed: ${e.message}`)
            }),
            Effect.orDie
          )
        }, { concurrency: "unbounded" })
    })
  }),
  {
    // The pipeline's workers: restarted one at a time, after 50, 100, 200 ms...; a worker
    // that needs a third restart within 10 seconds is stopped.
    supervisor: Supervisor.oneForOne({
      backoff: Schedule.exponential("50 millis"),
      maxRestarts: 2,
      within: "10 seconds"
    })
  }
)

// --- Run ---------------------------------------------------------------------------------

const program = Effect.gen(function*() {
  const pipeline = yield* Pipeline.ref("main")
  // Three workers, three jobs a batch: every poison lands on the same worker.
  const batches = [
    ["a", "b", "c"],
    ["d", "poison", "e"],
    ["f", "poison", "g"],
    ["h", "poison", "i"],
    ["j", "k", "l"],
    ["m", "n", "o"]
  ]
  for (const [i, jobs] of batches.entries()) {
    yield* Console.log(`batch ${i + 1}: ${jobs.join(", ")}`)
    for (const line of yield* pipeline.Submit({ jobs })) yield* Console.log(`  ${line}`)
  }
})

// Supervision decisions are logged through Effect's logger; print them compactly.
const SupervisionLog = Logger.layer([
  Logger.make(({ message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    if (text.startsWith("supervisor:")) console.log(`    [log]   ${text}`)
  })
])

Effect.runPromise(
  program.pipe(Effect.provide(PipelineLive.pipe(Layer.provideMerge(Silo.layer()), Layer.provide(SupervisionLog))))
).then(
  () => console.log("done"),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)

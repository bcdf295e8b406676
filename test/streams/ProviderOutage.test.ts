/**
 * Streams through an outage of their Redis: a silo (this process) publishes and delivers on
 * a `redis-server` the test starts on a free port of 127.0.0.1, with an append-only file
 * written on every command (`appendfsync always`), and meanwhile that server is
 * - paused (SIGSTOP for 3 s, then SIGCONT): every command waits, none is lost;
 * - killed (SIGKILL) and started again 2 s later from its append-only file: commands in
 *   flight fail (`StreamProviderError`, outcome unknown), the agents try again every second.
 * A producer per stream publishes its events in order, trying a failed publish again (the
 * failed attempt may have appended it too: a copy the checks allow). After the outage, every
 * event `publish` acknowledged is delivered, and each stream's deliveries, de-duplicated by
 * token, are exactly the acknowledged events in order. Without redis-server installed the
 * test fails (`.ci/run` installs it).
 */
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"
import { Effect, Exit, Fiber, Layer, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Silo, StreamContract, Streams } from "../../src/index.ts"
import { RedisStreamProvider } from "../../src/Persistence/redis.ts"
import { freePort, pingRedis, pollUntil } from "../support/processes.ts"

const Numbered = Schema.Struct({ seq: Schema.Int })
const Numbers = StreamContract.make("numbers", Numbered)
const Take = Rpc.make("Take", { payload: Numbered })
const Counter = Actor.make("OutageCounter", [Take])

const streams = 10
const perStream = 300

interface Ledger {
  readonly acked: Array<{ readonly seq: number; readonly token: string }>
  readonly ambiguous: Set<number>
  readonly log: Array<{ readonly seq: number; readonly token: string }>
}

/** A redis-server on `port` with its data in `dir` (an append-only file synced on every write). */
const startServer = (port: number, dir: string): Effect.Effect<ChildProcess> =>
  Effect.gen(function*() {
    const child = spawn(
      "redis-server",
      ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--dir", dir],
      { stdio: "ignore" }
    )
    const failed = new Promise<string>((resolve) => {
      child.once("error", (error) => resolve(String(error)))
      child.once("exit", (code, signal) => resolve(`exited (${signal ?? code})`))
    })
    const answered = yield* pollUntil(10_000, Effect.promise(() => Promise.race([pingRedis(port), failed.then(() => true)])), { every: 20 })
    const early = yield* Effect.promise(() => Promise.race([failed, Promise.resolve(undefined)]))
    if (answered === null || early !== undefined) {
      return yield* Effect.die(new Error(`redis-server on port ${port} did not start: ${early ?? "no answer within 10 s"} (apt-get install redis-server)`))
    }
    return child
  })

const killServer = (child: ChildProcess, signal: NodeJS.Signals) =>
  Effect.promise(() =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => {
      child.once("exit", () => resolve())
      child.kill("SIGCONT")
      child.kill(signal)
    })
  )

const problemsOf = (key: string, ledger: Ledger): Array<string> => {
  const logged = new Set(ledger.log.map((d) => d.token))
  const missing = ledger.acked.filter((e) => !logged.has(e.token))
  if (missing.length > 0) return [`${key}: ${missing.length} acknowledged events never delivered (seq ${missing.slice(0, 5).map((e) => e.seq).join(", ")})`]
  const acked = new Set(ledger.acked.map((e) => e.token))
  const seen = new Set<string>()
  const firsts = ledger.log.filter((d) => {
    if (seen.has(d.token)) return false
    seen.add(d.token)
    return acked.has(d.token) || !ledger.ambiguous.has(d.seq) // a failed attempt's own copy aside
  })
  const got = firsts.map((d) => `${d.seq}@${d.token}`).join(" ")
  const want = ledger.acked.map((e) => `${e.seq}@${e.token}`).join(" ")
  return got === want ? [] : [`${key}: de-duplicated deliveries are not the acknowledged events in order`]
}

const runOutage = (outage: "pause" | "restart") =>
  Effect.gen(function*() {
    const port = yield* freePort()
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-streams-outage-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    let server = yield* startServer(port, dir)
    yield* Effect.addFinalizer(() => killServer(server, "SIGKILL"))

    const ledgers = new Map<string, Ledger>()
    for (let s = 0; s < streams; s++) ledgers.set(`n-${s}`, { acked: [], ambiguous: new Set(), log: [] })
    const CounterLive = Counter.toLayer(Effect.gen(function*() {
      const { id } = (yield* ActorContext).address
      return Counter.of({
        Take: ({ seq }) => Effect.map(Streams.currentEvent, (event) => void ledgers.get(id)!.log.push({ seq, token: event!.token }))
      })
    }))
    const scope = yield* Scope.make()
    yield* Effect.addFinalizer(() => Scope.close(scope, Exit.void))
    const silo = yield* Layer.buildWithScope(
      Layer.mergeAll(
        CounterLive,
        Streams.layer({
          provider: RedisStreamProvider.make({ url: `redis://127.0.0.1:${port}`, keyPrefix: "outage", partitions: 4 }),
          implicit: [Streams.implicit(Numbers, Counter, "Take")]
        })
      ).pipe(Layer.provideMerge(Silo.layer())),
      scope
    )

    const failures: Array<string> = []
    const produce = (key: string, ledger: Ledger) =>
      Effect.gen(function*() {
        for (let seq = 0; seq < perStream; seq++) {
          for (let attempt = 1;; attempt++) {
            const result = yield* Effect.result(Streams.publish(Numbers, key, { seq }).pipe(Effect.timeout("2 seconds")))
            if (result._tag === "Success") {
              ledger.acked.push({ seq, token: result.success })
              break
            }
            ledger.ambiguous.add(seq)
            failures.push(`${key}#${seq}: ${result.failure._tag}`)
            if (attempt >= 60) return yield* Effect.die(new Error(`publishing ${key}#${seq} kept failing: ${result.failure.message}`))
            yield* Effect.sleep("200 millis")
          }
          yield* Effect.sleep("5 millis") // a steady rate, so the outage falls mid-stream
        }
      }).pipe(Effect.provide(silo))
    const producers = yield* Effect.forkChild(Effect.forEach([...ledgers], ([key, ledger]) => produce(key, ledger), { concurrency: "unbounded", discard: true }))
    const acked = () => [...ledgers.values()].reduce((n, l) => n + l.acked.length, 0)
    const delivered = () => [...ledgers.values()].reduce((n, l) => n + new Set(l.log.map((d) => d.token)).size, 0)

    assert.isNotNull(yield* pollUntil(30_000, Effect.sync(() => acked() >= 0.3 * streams * perStream && delivered() > 0), { every: 20 }), "30 % published")
    const before = { acked: acked(), delivered: delivered() }
    if (outage === "pause") {
      server.kill("SIGSTOP")
      yield* Effect.sleep("3 seconds")
      server.kill("SIGCONT")
    } else {
      yield* killServer(server, "SIGKILL")
      yield* Effect.sleep("2 seconds")
      server = yield* startServer(port, dir)
    }
    const producersExit = yield* Fiber.await(producers)
    assert.isTrue(Exit.isSuccess(producersExit), `the producers: ${String(producersExit)}`)
    const allDelivered = yield* pollUntil(
      30_000,
      Effect.sync(() => [...ledgers.values()].every((l) => l.acked.every((e) => l.log.some((d) => d.token === e.token)))),
      { every: 50 }
    )
    const problems = [...ledgers].flatMap(([key, ledger]) => problemsOf(key, ledger))
    console.log(JSON.stringify({
      [`streams_provider_${outage}`]: {
        before,
        acked: acked(),
        deliveries: [...ledgers.values()].reduce((n, l) => n + l.log.length, 0),
        distinct: delivered(),
        publishFailures: failures.length,
        drainedMs: allDelivered
      }
    }))
    assert.isNotNull(allDelivered, `every acknowledged event delivered within 30 s after the outage: ${problems.slice(0, 5).join("; ")}`)
    assert.strictEqual(acked(), streams * perStream)
    assert.deepStrictEqual(problems, [])
  }).pipe(Effect.scoped)

describe("streams through an outage of their Redis", () => {
  it.live("the server paused for 3 s mid-stream: every acknowledged event delivered, in order", () => runOutage("pause"), 90_000)
  it.live("the server killed and started again from its append-only file: every acknowledged event delivered, in order", () => runOutage("restart"), 90_000)
})

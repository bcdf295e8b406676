/**
 * The operation commands of `quark` against a real silo: a local silo with reminders and
 * the diagnostics endpoints on a free port, the CLI run in this process with `--url`. Each
 * command's human output and `--json` (decoded with the endpoints' schemas), and its exit
 * code: 0 done, 1 failed (a replay whose delivery fails), 2 a wrong command line, 3 not
 * found (an unknown dead letter, a drain of a silo that is not clustered), 4 no silo there.
 * The new endpoints themselves too: 400 for a bad query, 404 without reminders.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Metric, Schedule, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { createServer } from "node:net"
import { Actor, ActorContext, Reminders, Silo, Telemetry } from "../../src/index.ts"
import { Endpoints } from "../../src/Telemetry/node.ts"
import * as Operations from "../../src/Telemetry/Operations.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"
import { runBin, runCli } from "./support.ts"

// An actor that opts in to a state summary (`ActorContext.describe`), which `quark actor` prints.
const Note = Rpc.make("Note", { payload: { text: Schema.String }, success: Schema.Int })
const Notebook = Actor.make("Notebook", [Note])
const notebookLayer = Notebook.toLayer(Effect.gen(function*() {
  const self = yield* ActorContext
  const notes: Array<string> = []
  yield* self.describe(() => ({ notes }))
  return Notebook.of({ Note: ({ text }) => Effect.sync(() => notes.push(text)) })
}))

const siloWith = (reminders: boolean) =>
  Endpoints.layer().pipe(
    Layer.provideMerge(reminders ? Reminders.layer({ retry: Schedule.recurs(0) }) : Layer.empty),
    Layer.provideMerge(Silo.layerTest(Layer.merge(counterLayer(), notebookLayer))),
    Layer.provideMerge(Telemetry.layer()),
    Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
  )

const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, ok: (a: A) => boolean) =>
  Effect.gen(function*() {
    for (let i = 0; i < 100; i++) {
      const value = yield* effect
      if (ok(value)) return value
      yield* Effect.sleep("50 millis")
    }
    return assert.fail("not within 5 s")
  })

/** A port nothing listens on: one the system gave, then closed. */
const closedPort = Effect.promise(() =>
  new Promise<number>((resolve) => {
    const server = createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
)

describe("quark against a local silo", () => {
  it.live("status, actors, actor, reminders list, dlq list/replay/discard: output, --json and exit codes", () =>
    Effect.gen(function*() {
      const { url } = yield* Endpoints.Endpoints
      for (const id of ["c-1", "c-2"]) yield* Effect.flatMap(Counter.ref(id), (c) => c.Increment({ by: 1 }))
      yield* Reminders.register(Counter, "c-1", "hourly", { message: "Increment", payload: { by: 1 }, every: "1 hour" })
      // Overdrawn on its one attempt (retry: recurs(0)): a dead letter.
      yield* Reminders.register(Counter, "c-2", "overdraw", { message: "Decrement", payload: { by: 100 }, after: "10 millis" })

      const status = yield* runCli("status", "--url", url)
      assert.strictEqual(status.code, 0, status.stderr)
      assert.match(status.stdout, /^silo +local$/m)
      assert.match(status.stdout, /^activations +\d+ \(.*Counter 2/m)
      const statusJson = JSON.parse((yield* runCli("status", "--url", url, "--json")).stdout)
      assert.strictEqual(statusJson.status.silo, "local")
      assert.isUndefined(statusJson.cluster)

      const actors = yield* runCli("actors", "--url", url, "--type", "Counter")
      assert.strictEqual(actors.code, 0, actors.stderr)
      assert.match(actors.stdout, /^TYPE +ID +SILO +STATE/m)
      assert.match(actors.stdout, /^Counter +c-1 +local /m)
      assert.match(actors.stdout, /^2 of 2 activations$/m)
      const limited = JSON.parse((yield* runCli("actors", "--url", url, "--type", "Counter", "--limit", "1", "--json")).stdout)
      assert.strictEqual(limited.items.length, 1)
      assert.strictEqual(limited.total, 2)

      const actor = yield* runCli("actor", "Counter/c-1", "--url", url)
      assert.strictEqual(actor.code, 0, actor.stderr)
      assert.match(actor.stdout, /^owner +local$/m)
      assert.match(actor.stdout, /^active +yes, on local$/m)
      assert.match(actor.stdout, /^hourly +Increment /m)
      const cold = Schema.decodeUnknownSync(Operations.ActorResponse)(
        JSON.parse((yield* runCli("actor", "Counter/never-called", "--url", url, "--json")).stdout)
      )
      assert.isFalse(cold.activeHere)
      assert.deepStrictEqual(cold.reminders, [])
      assert.isUndefined(cold.summary)
      yield* Effect.flatMap(Notebook.ref("n-1"), (notebook) => notebook.Note({ text: "hello" }))
      const described = yield* runCli("actor", "Notebook/n-1", "--url", url)
      assert.strictEqual(described.code, 0, described.stderr)
      assert.match(described.stdout, /state summary:\n\{\n {2}"notes": \[\n {4}"hello"\n {2}\]\n\}/)

      const reminders = Schema.decodeUnknownSync(Operations.RemindersResponse)(
        JSON.parse((yield* runCli("reminders", "list", "Counter/c-1", "--url", url, "--json")).stdout)
      )
      assert.deepStrictEqual(reminders.items.map((r) => [r.name, r.message, r.ticks]), [["hourly", "Increment", 0]])
      assert.match((yield* runCli("reminders", "list", "Counter/c-9", "--url", url)).stdout, /Counter\/c-9 has no reminders/)

      const letters = yield* eventually(
        Effect.map(runCli("dlq", "list", "--url", url, "--json"), (r) => Schema.decodeUnknownSync(Operations.DeadLettersResponse)(JSON.parse(r.stdout))),
        (answer) => answer.items.length > 0
      )
      const [letter] = letters.items
      assert.deepStrictEqual([letter!.address, letter!.message, letter!.reminder], [{ type: "Counter", id: "c-2" }, "Decrement", "overdraw"])
      const table = yield* runCli("dlq", "list", "--url", url)
      assert.match(table.stdout, new RegExp(`^${letter!.id.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&")} +reminder +\\S+ +Counter/c-2 +Decrement +overdraw +1 `, "m"))

      // The replayed Decrement fails again (Overdrawn): exit 1, and the letter stays.
      const replay = yield* runCli("dlq", "replay", letter!.id, "--url", url)
      assert.strictEqual(replay.code, 1, replay.stdout)
      assert.match(replay.stderr, /OperationFailed/)
      const discard = yield* runCli("dlq", "discard", letter!.id, "--url", url, "--json")
      assert.strictEqual(discard.code, 0, discard.stderr)
      assert.deepStrictEqual(JSON.parse(discard.stdout), { id: letter!.id, status: "discarded" })
      const again = yield* runCli("dlq", "discard", letter!.id, "--url", url)
      assert.strictEqual(again.code, 3)
      assert.match(again.stderr, /UnknownDeadLetter/)

      // A replay that delivers: overdrawn when it fired, paid for since.
      yield* Reminders.register(Counter, "c-3", "later", { message: "Decrement", payload: { by: 3 }, after: "10 millis" })
      const pending = yield* eventually(
        Effect.map(runCli("dlq", "list", "--url", url, "--json"), (r) => JSON.parse(r.stdout).items as Array<{ id: string }>),
        (items) => items.length > 0
      )
      yield* Effect.flatMap(Counter.ref("c-3"), (c) => c.Increment({ by: 5 }))
      const replayed = yield* runCli("dlq", "replay", pending[0]!.id, "--url", url)
      assert.strictEqual(replayed.code, 0, replayed.stderr)
      assert.strictEqual(replayed.stdout, `${pending[0]!.id}: replayed`)
      assert.strictEqual(yield* Effect.flatMap(Counter.ref("c-3"), (c) => c.Get()), 2)
      assert.match((yield* runCli("dlq", "list", "--url", url)).stdout, /^0 dead letters$/m)
      assert.strictEqual((yield* runCli("dlq", "replay", "no-such-id", "--url", url)).code, 3)

      // Not clustered: nothing to drain (404 from the silo).
      const drain = yield* runCli("drain", url)
      assert.strictEqual(drain.code, 3)
      assert.match(drain.stderr, /not a cluster member/)

      // The endpoints refuse a bad query.
      const bad = yield* Effect.promise(() => fetch(`${url}/quark/actor?address=nope`))
      assert.strictEqual(bad.status, 400)
      const unknownParameter = yield* Effect.promise(() => fetch(`${url}/quark/dlq?limit=0`))
      assert.strictEqual(unknownParameter.status, 400)
    }).pipe(Effect.provide(siloWith(true))))

  it.live("without reminders: 404 NoReminders, exit 3; the actor's reminders absent", () =>
    Effect.gen(function*() {
      const { url } = yield* Endpoints.Endpoints
      const list = yield* runCli("dlq", "list", "--url", url)
      assert.strictEqual(list.code, 3)
      assert.match(list.stderr, /NoReminders: this silo has no reminders/)
      const actor = JSON.parse((yield* runCli("actor", "Counter/x", "--url", url, "--json")).stdout)
      assert.isUndefined(actor.reminders)
    }).pipe(Effect.provide(siloWith(false))))

  it.live("no silo at the URL: exit 4; a wrong command line: exit 2, with the help", () =>
    Effect.gen(function*() {
      const port = yield* closedPort
      const down = yield* runCli("status", "--url", `http://127.0.0.1:${port}`)
      assert.strictEqual(down.code, 4)
      assert.match(down.stderr, /no silo answers at http:\/\/127\.0\.0\.1:\d+ \(ECONNREFUSED\)/)
      assert.strictEqual((yield* runCli("actor", "no-slash", "--url", "http://127.0.0.1:1")).code, 2)
      assert.strictEqual((yield* runCli("frobnicate")).code, 2)
      assert.strictEqual((yield* runCli("--help")).code, 0)
    }))

  it("the executable: exit codes reach the shell", async () => {
    const help = await runBin(["--help"])
    assert.strictEqual(help.code, 0)
    assert.include(help.stdout, "cluster")
    assert.strictEqual((await runBin(["dlq", "list"], { env: { QUARK_URL: "http://127.0.0.1:9" } })).code, 4)
    assert.strictEqual((await runBin(["add", "actor", "lowercase"])).code, 2)
    assert.strictEqual((await runBin(["cluster", "stop"], { cwd: "/" })).code, 3)
  })
})

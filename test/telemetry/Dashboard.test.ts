/**
 * The dashboard's server over real HTTP: the page and each JSON API decoded with its schema
 * (overview with per-type counts and turns per second, an actor with its children and
 * timers, the dead-letter queue with replay and delete); the access rules (off loopback
 * only with a token, the token by header, query-then-cookie, a wrong one refused, actions
 * only with their header, a non-loopback Host refused without a token); a 3-silo cluster
 * whose killed silo turns `dead`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Layer, Metric, Redacted, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { request as httpRequest } from "node:http"
import { Actor, ActorContext, MemoryReminderStore, Reminders, Silo, Telemetry } from "../../src/index.ts"
import { durationBoundsMillis } from "../../src/Telemetry/MetricCatalog.ts"
import { Dashboard } from "../../src/Telemetry/node.ts"
import { TestCluster } from "../../src/testing.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"

interface Reply {
  readonly status: number
  readonly headers: Headers
  readonly text: string
}

const call = (url: string, init?: RequestInit): Effect.Effect<Reply> =>
  Effect.promise(async () => {
    const response = await fetch(url, { redirect: "manual", ...init })
    return { status: response.status, headers: response.headers, text: await response.text() }
  })

const origin = Effect.map(Dashboard.Dashboard, ({ url }) => url.replace(/\/dashboard$/, ""))

const json = <A, I>(schema: Schema.Codec<A, I>, path: string, init?: RequestInit, status = 200) =>
  Effect.gen(function*() {
    const reply = yield* call((yield* origin) + path, init)
    assert.strictEqual(reply.status, status, `${path}: ${reply.text}`)
    assert.match(reply.headers.get("content-type") ?? "", /^application\/json/)
    return yield* Schema.decodeUnknownEffect(schema)(JSON.parse(reply.text))
  })

const action = { method: "POST", headers: { "x-quark-dashboard": "1" } }

/** Polls `effect` until `done` holds, for at most `millis` (real time). */
const eventually = <A, E, R>(effect: Effect.Effect<A, E, R>, done: (a: A) => boolean, millis: number): Effect.Effect<A, E, R> =>
  Effect.gen(function*() {
    const deadline = Date.now() + millis
    while (true) {
      const value = yield* effect
      if (done(value)) return value
      if (Date.now() > deadline) return assert.fail(`no success within ${millis} ms; last: ${JSON.stringify(value)}`)
      yield* Effect.sleep("50 millis")
    }
  })

// A parent that spawns a child and keeps a timer: the actor page's tree and timers.
const Grow = Rpc.make("Grow", { success: Schema.Int })
const Ping = Rpc.make("Ping", { success: Schema.String })
const Parent = Actor.make("Parent", [Grow])
const Kid = Actor.make("Kid", [Ping])
const parentLayer = Parent.toLayer(Effect.gen(function*() {
  const self = yield* ActorContext
  const grown = yield* Ref.make(0)
  // Opts in to a state summary; the child does not.
  yield* self.describe(() => ({ grown: Ref.getUnsafe(grown), note: "parent" }))
  return Parent.of({
    Grow: () =>
      Effect.gen(function*() {
        yield* self.startTimer("heartbeat", Effect.void, { period: "1 hour" })
        yield* self.spawn(Kid, Effect.succeed(Kid.of({ Ping: () => Effect.succeed("pong") })))
        return yield* Ref.updateAndGet(grown, (n) => n + 1)
      })
  })
}))

// Dies on `Boom`: its supervisor decides (resume, by default), and the actor page lists the failure.
const Boom = Rpc.make("Boom", { success: Schema.Int })
const Flaky = Actor.make("Flaky", [Boom, Ping])
const flakyLayer = Flaky.toLayer(Effect.succeed(Flaky.of({
  Boom: () => Effect.die(new Error("flaky blew up")),
  Ping: () => Effect.succeed("pong")
})))

const local = (options?: Dashboard.DashboardOptions) =>
  Dashboard.layer(options).pipe(
    Layer.provideMerge(Layer.effectDiscard(Layer.build(Reminders.layer({ store: MemoryReminderStore.make("dashboard-test"), deadLetterTells: true })))),
    Layer.provideMerge(Silo.layerTest(Layer.mergeAll(counterLayer(), parentLayer, flakyLayer))),
    Layer.provideMerge(Telemetry.layer({ logs: false })),
    Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
  )

describe("Dashboard on a local silo", () => {
  it.live("serves the page and the overview: per-type counts, turns per second from the catalog", () =>
    Effect.gen(function*() {
      const { address, url } = yield* Dashboard.Dashboard
      assert.strictEqual(address.host, "127.0.0.1")
      assert.strictEqual(url, `http://127.0.0.1:${address.port}/dashboard`)
      const page = yield* call(url)
      assert.strictEqual(page.status, 200)
      assert.match(page.headers.get("content-type") ?? "", /^text\/html/)
      assert.include(page.text, "/dashboard/api/overview")
      assert.strictEqual((yield* call((yield* origin) + "/")).headers.get("location"), "/dashboard")

      for (let i = 0; i < 3; i++) yield* Effect.flatMap(Counter.ref(`c-${i}`), (c) => c.Increment({ by: 1 }))
      const first = yield* json(Dashboard.Overview, "/dashboard/api/overview")
      assert.strictEqual(first.silo, "local")
      assert.isFalse(first.clustered)
      assert.isUndefined(first.turnsPerSecond, "one sample gives no rate yet")
      assert.isUndefined(first.types.find((row) => row.type === "Counter")?.p99Millis, "nor a latency")
      const counters = first.types.find((row) => row.type === "Counter")
      assert.deepStrictEqual([counters?.activations, counters?.mailboxDepth], [3, 0])
      // The reminder buckets are activations of this silo too (system actors).
      assert.strictEqual(first.activations, first.types.reduce((sum, row) => sum + row.activations, 0))
      assert.strictEqual(first.silos.length, 1)
      assert.strictEqual(first.silos[0]!.status, "alive")
      assert.strictEqual(first.silos[0]!.activations, first.activations)

      // 100 turns after the first sample; the next overview (500 ms later at the earliest) rates them.
      const counter = yield* Counter.ref("c-0")
      for (let i = 0; i < 100; i++) yield* counter.Increment({ by: 1 })
      const rated = yield* eventually(
        json(Dashboard.Overview, "/dashboard/api/overview"),
        (body) => body.now > first.now && body.turnsPerSecond !== undefined,
        5_000
      )
      const elapsed = (rated.now - first.now) / 1000
      const counterRate = rated.types.find((row) => row.type === "Counter")!.turnsPerSecond!
      assert.closeTo(counterRate, 100 / elapsed, 1e-9)
      // Other types (the reminder buckets) add their turns to the total.
      assert.isAtLeast(rated.turnsPerSecond!, counterRate)
      assert.strictEqual(rated.silos[0]!.turnsPerSecond, rated.turnsPerSecond)
      // Latency of those 100 turns, from the catalog's histogram: bucket bounds, p50 ≤ p99.
      const counterRow = rated.types.find((row) => row.type === "Counter")!
      assert.isAbove(counterRow.p50Millis!, 0)
      assert.isAtLeast(counterRow.p99Millis!, counterRow.p50Millis!)
      const p99 = counterRow.p99Millis!
      assert.isTrue(durationBoundsMillis.some((bound) => Math.abs(bound - p99) <= 1e-9 * bound), `${p99} ms is a bucket bound`)
    }).pipe(Effect.provide(local())))

  it.live("an actor: owner, state, timers and its child in the tree; an unknown type has no owner", () =>
    Effect.gen(function*() {
      const parent = yield* Parent.ref("p-1")
      assert.strictEqual(yield* parent.Grow(), 1)
      const detail = yield* json(Dashboard.ActorDetail, "/dashboard/api/actor?type=Parent&id=p-1")
      assert.strictEqual(detail.owner, "local")
      assert.isTrue(detail.here)
      assert.strictEqual(detail.activation?.state, "active")
      assert.deepStrictEqual(detail.activation?.timers, ["heartbeat"])
      assert.deepStrictEqual(detail.children.map((row) => [row.address.type, row.depth]), [["Kid", 1]])
      assert.deepStrictEqual(detail.reminders, [])
      assert.deepStrictEqual(detail.deadLetters, [])
      assert.deepStrictEqual(JSON.parse(detail.summary!), { grown: 1, note: "parent" })

      // The child, searched by its own address, is found under its parent.
      const child = detail.children[0]!.address
      const kid = yield* json(Dashboard.ActorDetail, `/dashboard/api/actor?type=Kid&id=${encodeURIComponent(child.id)}`)
      assert.isTrue(kid.here)
      assert.strictEqual(kid.activation?.depth, 0)
      assert.isUndefined(kid.summary)

      assert.deepStrictEqual(detail.failures, [])
      const flaky = yield* Flaky.ref("f-1")
      yield* Effect.flip(flaky.Boom())
      const failed = yield* eventually(
        json(Dashboard.ActorDetail, "/dashboard/api/actor?type=Flaky&id=f-1"),
        (body) => body.failures.length === 1,
        5_000
      )
      assert.include(failed.failures[0]!.failure, "flaky blew up")
      assert.strictEqual(failed.failures[0]!.decision, "resume") // the root strategy resumes after a defect
      assert.strictEqual(yield* flaky.Ping(), "pong")

      const unknown = yield* json(Dashboard.ActorDetail, "/dashboard/api/actor?type=Nobody&id=x")
      assert.isUndefined(unknown.owner)
      assert.isFalse(unknown.here)
      yield* json(Dashboard.Refusal, "/dashboard/api/actor?type=Parent", undefined, 400)
    }).pipe(Effect.provide(local())))

  it.live("dead letters: listed, a replay that fails again stays, one that succeeds leaves; delete", () =>
    Effect.gen(function*() {
      const counter = yield* Counter.ref("dlq-1")
      yield* counter.tell.Decrement({ by: 5 })
      const listed = yield* eventually(json(Dashboard.DeadLetters, "/dashboard/api/dead-letters"), (body) => body.letters.length === 1, 5_000)
      assert.isTrue(listed.available)
      const letter = listed.letters[0]!
      assert.deepStrictEqual([letter.kind, letter.address, letter.message], ["tell", { type: "Counter", id: "dlq-1" }, "Decrement"])

      // Without the action header: refused, and nothing happens.
      yield* json(Dashboard.Refusal, `/dashboard/api/dead-letters/replay?id=${letter.id}`, { method: "POST" }, 403)
      const failed = yield* json(Dashboard.ActionResult, `/dashboard/api/dead-letters/replay?id=${letter.id}`, action, 409)
      assert.isFalse(failed.done)
      assert.include(failed.error ?? "", "Overdrawn")
      assert.strictEqual((yield* json(Dashboard.DeadLetters, "/dashboard/api/dead-letters")).letters.length, 1)

      yield* counter.Increment({ by: 10 })
      const replayed = yield* json(Dashboard.ActionResult, `/dashboard/api/dead-letters/replay?id=${letter.id}`, action)
      assert.isTrue(replayed.done)
      assert.strictEqual(yield* counter.Get(), 5)
      assert.deepStrictEqual((yield* json(Dashboard.DeadLetters, "/dashboard/api/dead-letters")).letters, [])

      yield* counter.tell.Decrement({ by: 50 })
      const second = (yield* eventually(json(Dashboard.DeadLetters, "/dashboard/api/dead-letters"), (body) => body.letters.length === 1, 5_000)).letters[0]!
      assert.isTrue((yield* json(Dashboard.ActionResult, `/dashboard/api/dead-letters/discard?id=${second.id}`, action)).done)
      assert.isFalse((yield* json(Dashboard.ActionResult, `/dashboard/api/dead-letters/discard?id=${second.id}`, action, 404)).done)
      assert.strictEqual(yield* counter.Get(), 5, "a deleted letter is not delivered")
    }).pipe(Effect.provide(local())))

  it.live("without reminders the queue says it is not set up", () =>
    Effect.gen(function*() {
      assert.deepStrictEqual(yield* json(Dashboard.DeadLetters, "/dashboard/api/dead-letters"), { available: false, letters: [] })
      const detail = yield* json(Dashboard.ActorDetail, "/dashboard/api/actor?type=Counter&id=x")
      assert.isUndefined(detail.reminders)
    }).pipe(Effect.provide(Dashboard.layer().pipe(Layer.provideMerge(Silo.layerTest(counterLayer()))))))
})

describe("Dashboard access", () => {
  const token = "a-long-enough-test-token"

  it.live("off loopback without a token, or with a short token, the layer fails with DashboardRefused", () =>
    Effect.gen(function*() {
      const build = (options: Dashboard.DashboardOptions) =>
        Effect.flip(Layer.build(Dashboard.layer(options).pipe(Layer.provide(Silo.layerTest(counterLayer())))))
      const open = yield* build({ host: "0.0.0.0" })
      assert.strictEqual(open._tag, "DashboardRefused")
      assert.include((open as Dashboard.DashboardRefused).reason, "needs a token")
      const short = yield* build({ token: Redacted.make("short") })
      assert.include((short as Dashboard.DashboardRefused).reason, "at least 16")
    }).pipe(Effect.scoped))

  it.live("off loopback with a token it serves", () =>
    Effect.gen(function*() {
      const { address } = yield* Dashboard.Dashboard
      assert.strictEqual(address.host, "0.0.0.0")
      const reply = yield* call(`http://127.0.0.1:${address.port}/dashboard/api/overview`, { headers: { authorization: `Bearer ${token}` } })
      assert.strictEqual(reply.status, 200)
    }).pipe(Effect.provide(Dashboard.layer({ host: "0.0.0.0", token: Redacted.make(token) }).pipe(Layer.provideMerge(Silo.layerTest(counterLayer()))))))

  it.live("with a token: none or a wrong one is 401; Bearer, or the query once and then its cookie", () =>
    Effect.gen(function*() {
      const base = yield* origin
      for (const path of ["/dashboard", "/dashboard/api/overview", "/dashboard/api/dead-letters"]) {
        assert.strictEqual((yield* call(base + path)).status, 401, path)
        assert.strictEqual((yield* call(base + path, { headers: { authorization: `Bearer ${token}x` } })).status, 401, path)
        assert.strictEqual((yield* call(base + path + "?token=" + token.slice(0, -1))).status, 401, path)
      }
      assert.strictEqual((yield* call(base + "/dashboard/api/overview", { headers: { authorization: `Bearer ${token}` } })).status, 200)

      const first = yield* call(`${base}/dashboard?token=${token}`)
      assert.strictEqual(first.status, 200)
      const cookie = first.headers.get("set-cookie") ?? ""
      assert.match(cookie, /^quark_dashboard=/)
      assert.match(cookie, /HttpOnly/i)
      assert.match(cookie, /SameSite=Strict/i)
      const pair = cookie.split(";")[0]!
      assert.strictEqual((yield* call(base + "/dashboard/api/overview", { headers: { cookie: pair } })).status, 200)
      assert.strictEqual((yield* call(base + "/dashboard/api/overview", { headers: { cookie: "quark_dashboard=nope" } })).status, 401)
      // The action header is needed even with the token.
      const post = yield* call(base + "/dashboard/api/dead-letters/discard?id=x", { method: "POST", headers: { cookie: pair } })
      assert.strictEqual(post.status, 403)
    }).pipe(Effect.provide(Dashboard.layer({ token: Redacted.make(token) }).pipe(Layer.provideMerge(Silo.layerTest(counterLayer()))))))

  it.live("without a token, a request naming another host (DNS rebinding) is refused", () =>
    Effect.gen(function*() {
      const { address } = yield* Dashboard.Dashboard
      const status = (host: string) =>
        Effect.callback<number>((resume) => {
          const req = httpRequest({ host: "127.0.0.1", port: address.port, path: "/dashboard/api/overview", headers: { host } }, (res) => {
            res.resume()
            resume(Effect.succeed(res.statusCode ?? 0))
          })
          req.end()
        })
      assert.strictEqual(yield* status("evil.example:80"), 403)
      assert.strictEqual(yield* status(`localhost:${address.port}`), 200)
      assert.strictEqual(yield* status(`127.0.0.1:${address.port}`), 200)
    }).pipe(Effect.provide(Dashboard.layer().pipe(Layer.provideMerge(Silo.layerTest(counterLayer()))))))
})

describe("Dashboard on a cluster member", () => {
  it.live("lists the three silos with generations and ring shares; a crashed one turns dead, a stopped one left", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({
        silos: 3,
        implementations: counterLayer(),
        timings: { heartbeatInterval: "200 millis", suspectAfter: "600 millis", deadAfter: "1200 millis", refreshInterval: "200 millis" },
        config: { loadReportInterval: "200 millis" }
      })
      yield* cluster.settle
      const [first, second, third] = cluster.silos
      const dashboard = yield* Layer.build(Dashboard.layer().pipe(Layer.provide(Layer.succeedContext(first!.context))))
      yield* Effect.gen(function*() {
        const body = yield* eventually(
          json(Dashboard.Overview, "/dashboard/api/overview"),
          (o) => o.silos.every((silo) => silo.activations !== undefined),
          5_000
        )
        assert.strictEqual(body.silo, first!.id)
        assert.deepStrictEqual(body.silos.map((silo) => silo.id).sort(), cluster.silos.map((silo) => silo.id).sort())
        assert.closeTo(body.silos.reduce((sum, silo) => sum + silo.share, 0), 1, 1e-9)
        for (const silo of body.silos) {
          assert.oneOf(silo.status, ["alive", "suspected"])
          assert.strictEqual(`${silo.host}:${silo.port}@${silo.generation}`, silo.id)
          assert.strictEqual(silo.self, silo.id === first!.id)
          assert.isAtLeast(silo.uptimeMillis!, 0)
          assert.isBelow(silo.uptimeMillis!, 60_000)
        }

        const crashedAt = Date.now()
        yield* third!.crash
        const after = yield* eventually(
          json(Dashboard.Overview, "/dashboard/api/overview"),
          (o) => o.silos.some((silo) => silo.id === third!.id && silo.status === "dead"),
          10_000
        )
        // deadAfter (1.2 s) plus a refresh and the overview's 500 ms, with room for a loaded machine.
        assert.isBelow(Date.now() - crashedAt, 4_000)
        assert.strictEqual(after.silos.length, 3, "the dead silo stays listed")
        assert.strictEqual(after.silos.find((silo) => silo.id === third!.id)!.share, 0)

        // A silo that stops gracefully drains and leaves: `left`, not dead.
        yield* second!.stop
        const stopped = yield* eventually(
          json(Dashboard.Overview, "/dashboard/api/overview"),
          (o) => o.silos.some((silo) => silo.id === second!.id && silo.status !== "alive" && silo.status !== "suspected"),
          10_000
        )
        assert.strictEqual(stopped.silos.find((silo) => silo.id === second!.id)!.status, "left")
        assert.closeTo(stopped.silos.find((silo) => silo.self)!.share, 1, 1e-9)
      }).pipe(Effect.provide(Context.merge(first!.context, dashboard)))
    }).pipe(Effect.scoped), 20_000)
})

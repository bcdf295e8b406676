/**
 * The diagnostics endpoints over real HTTP (`fetch` against the silo's server on an
 * ephemeral port): every JSON body decoded with its schema from `Diagnostics`; /metrics
 * counting known asks; /quark/actors paging a known set; 400s for bad queries; redaction
 * in /quark/config (and `redact`'s properties); /ready passing, failing on a check, on a
 * store and on a fenced cluster member; /quark/cluster's ring shares (exact, against the
 * ring's own `owner`); POST /quark/drain draining a cluster member (and 404 on a local silo);
 * /quark/streams listing a silo's stream lanes, the most behind first.
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Deferred, Effect, Layer, Metric, Schedule, Schema } from "effect"
import { Rpc } from "effect/rpc"
import * as fc from "fast-check"
import * as fs from "node:fs"
import { Actor, ActorContext, Silo, StreamContract, Streams, Telemetry } from "../../src/index.ts"
import { Cluster, Directory, HashRing } from "../../src/Cluster/index.ts"
import { StoreError } from "../../src/Persistence/PersistenceError.ts"
import * as Stores from "../../src/Persistence/Stores.ts"
import { Diagnostics, Endpoints, Profiler } from "../../src/Telemetry/node.ts"
import { TestCluster } from "../../src/testing.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"
import { series } from "./support.ts"

interface Reply {
  readonly status: number
  readonly contentType: string | null
  readonly text: string
}

const get = (url: string): Effect.Effect<Reply> =>
  Effect.promise(async () => {
    const response = await fetch(url)
    return { status: response.status, contentType: response.headers.get("content-type"), text: await response.text() }
  })

/** GETs a path of the endpoints in context and decodes its JSON body with `schema`. */
const getJson = <A, I>(path: string, schema: Schema.Codec<A, I>, status = 200) =>
  Effect.gen(function*() {
    const { url } = yield* Endpoints.Endpoints
    const reply = yield* get(url + path)
    assert.strictEqual(reply.status, status, `${path}: ${reply.text}`)
    assert.match(reply.contentType ?? "", /^application\/json/)
    return yield* Schema.decodeUnknownEffect(schema)(JSON.parse(reply.text))
  })


/** A local silo with telemetry (a registry of its own) and the endpoints on a free port. */
const local = (options?: Endpoints.EndpointsOptions) =>
  Endpoints.layer(options).pipe(
    Layer.provideMerge(Silo.layerTest(counterLayer())),
    Layer.provideMerge(Telemetry.layer()),
    Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
  )

const version = (JSON.parse(fs.readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { version: string }).version

describe("Endpoints on a local silo", () => {
  it.live("listens on 127.0.0.1 on a free port; /health, /quark/status and /metrics after known asks", () =>
    Effect.gen(function*() {
      const { address, url } = yield* Endpoints.Endpoints
      assert.strictEqual(address.host, "127.0.0.1")
      assert.isAbove(address.port, 0)
      assert.strictEqual(url, `http://127.0.0.1:${address.port}`)

      assert.deepStrictEqual(yield* getJson("/health", Diagnostics.HealthResponse), { status: "ok" })

      const counter = yield* Counter.ref("status-1")
      for (let i = 0; i < 7; i++) yield* counter.Increment({ by: 1 })
      yield* Effect.exit(counter.Decrement({ by: 100 }))

      const metrics = yield* get(url + "/metrics")
      assert.strictEqual(metrics.status, 200)
      assert.match(metrics.contentType ?? "", /^text\/plain; version=0\.0\.4/)
      assert.strictEqual(series(metrics.text, "quark_turns_total", { type: "Counter", message: "Increment", outcome: "ok" }), 7)
      assert.strictEqual(series(metrics.text, "quark_turns_total", { type: "Counter", message: "Decrement", outcome: "error" }), 1)
      assert.strictEqual(series(metrics.text, "quark_activations_active", { type: "Counter" }), 1)

      const status = yield* getJson("/quark/status", Diagnostics.StatusResponse)
      assert.strictEqual(status.silo, "local")
      assert.strictEqual(status.version, version)
      assert.strictEqual(status.activations, 1)
      assert.deepStrictEqual(status.types, [{ type: "Counter", activations: 1 }])
      assert.isFalse(status.clustered)
      assert.isFalse(status.draining)
      assert.isAtLeast(status.uptimeMillis, 0)

      const notClustered = yield* getJson("/quark/cluster", Diagnostics.NotClustered, 404)
      assert.strictEqual(notClustered._tag, "NotClustered")
      assert.strictEqual((yield* get(url + "/nowhere")).status, 404)
    }).pipe(Effect.provide(local())))

  it.live("/quark/profile: the profiler beneath Telemetry.layer is fed by the silo; without one, 404", () =>
    Effect.gen(function*() {
      const counter = yield* Counter.ref("hot")
      for (let i = 0; i < 6; i++) yield* counter.Increment({ by: 1 })
      yield* Effect.flatMap(Counter.ref("cold"), (cold) => cold.Increment({ by: 1 }))
      const profile = yield* getJson("/quark/profile?top=1", Diagnostics.ProfileSnapshot)
      const increments = profile.messages.find((row) => row.type === "Counter" && row.message === "Increment")
      assert.strictEqual(increments?.count, 7)
      assert.deepStrictEqual(profile.hottestByTurns.map((row) => [row.id, row.turns]), [["hot", 6]])
      assert.strictEqual((yield* get((yield* Endpoints.Endpoints).url + "/quark/profile?top=0")).status, 400)
    }).pipe(Effect.provide(
      Endpoints.layer().pipe(
        Layer.provideMerge(Silo.layerTest(counterLayer())),
        Layer.provideMerge(Telemetry.layer().pipe(Layer.provideMerge(Profiler.layer()))),
        Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
      )
    )))

  it.live("/quark/profile without a profiler is a 404 that says how to add one", () =>
    Effect.gen(function*() {
      const missing = yield* getJson("/quark/profile", Diagnostics.NotProfiled, 404)
      assert.match(missing.reason, /Profiler\.layer/)
    }).pipe(Effect.provide(local())))

  it.live("/quark/actors pages a known set of activations in three pages, filtered by type", () =>
    Effect.gen(function*() {
      const ids = Array.from({ length: 25 }, (_, i) => `page-${String(i).padStart(2, "0")}`)
      for (const id of ids) yield* Effect.flatMap(Counter.ref(id), (counter) => counter.Increment({ by: 1 }))

      const seen: Array<string> = []
      const pages: Array<Diagnostics.ActorsResponse["page"]> = []
      let offset: number | undefined = 0
      while (offset !== undefined) {
        const body: Diagnostics.ActorsResponse = yield* getJson(`/quark/actors?type=Counter&offset=${offset}&limit=10`, Diagnostics.ActorsResponse)
        pages.push(body.page)
        for (const item of body.items) {
          assert.strictEqual(item.address.type, "Counter")
          assert.strictEqual(item.state, "active")
          assert.strictEqual(item.mailboxDepth, 0)
          assert.strictEqual(item.runningTurns, 0)
          assert.isAtLeast(item.ageMillis, 0)
          seen.push(item.address.id)
        }
        offset = body.page.nextOffset
      }
      assert.deepStrictEqual(pages, [
        { type: "Counter", offset: 0, limit: 10, total: 25, nextOffset: 10 },
        { type: "Counter", offset: 10, limit: 10, total: 25, nextOffset: 20 },
        { type: "Counter", offset: 20, limit: 10, total: 25 }
      ])
      assert.deepStrictEqual(seen, ids, "every activation once, in the order they arrived")

      const other = yield* getJson("/quark/actors?type=Missing", Diagnostics.ActorsResponse)
      assert.deepStrictEqual(other, { items: [], page: { type: "Missing", offset: 0, limit: 100, total: 0 } })
      const capped = yield* getJson("/quark/actors?limit=5000", Diagnostics.ActorsResponse)
      assert.strictEqual(capped.page.limit, 1000)
      assert.strictEqual(capped.items.length, 25)
      const past = yield* getJson("/quark/actors?offset=40", Diagnostics.ActorsResponse)
      assert.deepStrictEqual(past.items, [])
    }).pipe(Effect.provide(local())))

  it.live("a bad /quark/actors query is a 400 naming the parameter", () =>
    Effect.gen(function*() {
      const cases: ReadonlyArray<readonly [string, string]> = [
        ["offset=-1", "offset"],
        ["offset=1.5", "offset"],
        ["offset=", "offset"],
        ["limit=0", "limit"],
        ["limit=ten", "limit"],
        ["limit=1e3", "limit"],
        ["type=", "type"],
        ["offset=1&offset=2", "offset"],
        ["__proto__=1", "__proto__"],
        ["sort=id", "sort"]
      ]
      for (const [query, parameter] of cases) {
        const error = yield* getJson(`/quark/actors?${query}`, Diagnostics.InvalidQuery, 400)
        assert.strictEqual(error._tag, "InvalidQuery")
        assert.strictEqual(error.parameter, parameter, query)
        assert.isNotEmpty(error.reason)
      }
    }).pipe(Effect.provide(local())))

  it.live("/quark/config shows the configuration redacted, and the effective actor defaults", () =>
    Effect.gen(function*() {
      const { url } = yield* Endpoints.Endpoints
      const body = yield* getJson("/quark/config", Diagnostics.ConfigResponse)
      const config = body.config as any
      assert.strictEqual(config.redis.url, "redis://app:[redacted]@cache.internal:6379/0")
      assert.strictEqual(config.postgres.url, "postgres://quark:[redacted]@db:5432/quark?sslmode=require")
      assert.strictEqual(config.postgres.password, "[redacted]")
      assert.strictEqual(config.postgres.host, "db")
      assert.strictEqual(config.sampleRatio, 0.25)
      assert.strictEqual((body.actorDefaults as any).mailboxCapacity, 10_000)
      const raw = (yield* get(url + "/quark/config")).text
      for (const secret of ["hunter2", "pg-pass", "pg-secret"]) assert.notInclude(raw, secret)
    }).pipe(Effect.provide(local({
      config: {
        redis: { url: "redis://app:hunter2@cache.internal:6379/0" },
        postgres: { url: "postgres://quark:pg-pass@db:5432/quark?sslmode=require", password: "pg-secret", host: "db" },
        sampleRatio: 0.25
      }
    }))))

  it.live("/ready is 200 for a local silo and 503 while a readiness check fails", () => {
    let healthy = true
    return Effect.gen(function*() {
      const up = yield* getJson("/ready", Diagnostics.ReadyResponse)
      assert.isTrue(up.ready)
      assert.deepStrictEqual(up.checks.map((check) => check.name), ["draining", "store:default", "downstream"])
      assert.isTrue(up.checks.every((check) => check.ok))
      healthy = false
      const down = yield* getJson("/ready", Diagnostics.ReadyResponse, 503)
      assert.isFalse(down.ready)
      assert.deepStrictEqual(down.checks.find((check) => check.name === "downstream"), {
        name: "downstream",
        ok: false,
        detail: "downstream unreachable"
      })
      assert.isTrue(down.checks.filter((check) => check.name !== "downstream").every((check) => check.ok))
    }).pipe(Effect.provide(local({
      readiness: [{ name: "downstream", check: Effect.suspend(() => healthy ? Effect.void : Effect.fail("downstream unreachable")) }]
    })))
  })

  it.live("/ready probes the named stores: one that fails, or is missing, makes it 503", () => {
    const memory = Stores.memory("broken")
    const broken: Stores.Store = {
      ...memory,
      state: {
        ...memory.state,
        read: () => Effect.fail(new StoreError({ store: "broken", operation: "read", reason: "connection refused" }))
      }
    }
    return Effect.gen(function*() {
      const body = yield* getJson("/ready", Diagnostics.ReadyResponse, 503)
      const byName = new Map(body.checks.map((check) => [check.name, check]))
      assert.isTrue(byName.get("store:default")!.ok)
      assert.isFalse(byName.get("store:broken")!.ok)
      assert.include(byName.get("store:broken")!.detail, "connection refused")
      assert.isFalse(byName.get("store:absent")!.ok)
    }).pipe(Effect.provide(local({ stores: ["default", "broken", "absent"] }).pipe(
      Layer.provide(Layer.succeed(Stores.Stores, Stores.make([Stores.memory("default"), broken])))
    )))
  })
})

/** Polls `check` every 50 ms until it holds, for at most `millis` (the fence takes real time). */
const eventually = <A>(effect: Effect.Effect<A>, check: (a: A) => boolean, millis: number) =>
  effect.pipe(
    Effect.repeat({ until: check, schedule: Schedule.spaced("50 millis") }),
    Effect.timeoutOrElse({ duration: millis, orElse: () => Effect.die(new Error(`not within ${millis} ms`)) })
  )

describe("GET /quark/streams", () => {
  const Reading = Schema.Struct({ n: Schema.Int })
  const Readings = StreamContract.make("endpoint-readings", Reading)
  const Take = Rpc.make("Take", { payload: Reading })
  const Slow = Actor.make("EndpointsSlow", [Take])
  const gate = Deferred.makeUnsafe<void>()
  const SlowLive = Slow.toLayer(Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    // "held" waits for the gate: its lane fills; "quick" takes its events at once.
    return Slow.of({ Take: () => id === "held" ? Deferred.await(gate) : Effect.void })
  }))
  const withStreams = Endpoints.layer().pipe(
    Layer.provideMerge(Streams.layer({ implicit: [Streams.implicit(Readings, Slow, "Take")] })),
    Layer.provideMerge(Silo.layerTest(SlowLive))
  )

  it.live("lists the lanes the silo delivers, the most behind first, with totals; limit caps the list", () =>
    Effect.gen(function*() {
      yield* Effect.addFinalizer(() => Deferred.succeed(gate, undefined))
      for (let n = 0; n < 5; n++) yield* Streams.publish(Readings, "held", { n })
      for (let n = 0; n < 3; n++) yield* Streams.publish(Readings, "quick", { n })
      // One of "held"'s events is in its turn, four wait; "quick" delivered its three.
      const body = yield* getJson("/quark/streams", Diagnostics.StreamsResponse).pipe(
        Effect.repeat({ until: (b) => b.totals.buffered === 4 && b.totals.delivered === 3, schedule: Schedule.spaced("10 millis"), times: 500 })
      )
      assert.deepStrictEqual(body.totals, { lanes: 2, buffered: 4, delivered: 3, dropped: 0, failed: 0, maxLagMillis: body.lanes[0]!.lagMillis })
      assert.deepStrictEqual(body.lanes.map((lane) => [lane.stream.key, lane.subscriber.id, lane.buffered, lane.strategy]), [
        ["held", "held", 4, "Suspend"],
        ["quick", "quick", 0, "Suspend"]
      ])
      assert.isString(body.lanes[1]!.lastToken)
      const first = yield* getJson("/quark/streams?limit=1", Diagnostics.StreamsResponse)
      assert.deepStrictEqual(first.lanes.map((lane) => lane.stream.key), ["held"])
      assert.strictEqual(first.totals.lanes, 2, "totals count every lane, listed or not")
      const bad = yield* getJson("/quark/streams?limit=0", Diagnostics.InvalidQuery, 400)
      assert.strictEqual(bad.parameter, "limit")
    }).pipe(Effect.scoped, Effect.provide(withStreams))) // the gate opens before the silo closes

  it.live("a silo without streams answers 404 NoStreams", () =>
    Effect.gen(function*() {
      const body = yield* getJson("/quark/streams", Diagnostics.NoStreams, 404)
      assert.include(body.reason, "Streams.layer")
    }).pipe(Effect.provide(local())))
})

describe("Endpoints on a cluster member", () => {
  it.live("/quark/cluster lists the members with ring shares summing to 1; /ready fails once the silo is fenced", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({
        silos: 3,
        implementations: counterLayer(),
        // Short timings, so that the fence below comes about a second after the freeze; and a
        // fenced silo stays out, so /ready cannot turn 200 again before the poll sees it.
        timings: { heartbeatInterval: "200 millis", suspectAfter: "600 millis", deadAfter: "1200 millis", refreshInterval: "200 millis" },
        config: { onDeclaredDead: "stop" }
      })
      const first = cluster.silos[0]!
      const endpoints = yield* Layer.build(Endpoints.layer().pipe(
        Layer.provide(Layer.succeedContext(first.context)),
        Layer.provide(Layer.succeed(Directory.Directory, cluster.directory))
      ))
      yield* Effect.gen(function*() {
        const body = yield* getJson("/quark/cluster", Diagnostics.ClusterResponse)
        assert.strictEqual(body.self, first.id)
        assert.deepStrictEqual(body.members.map((member) => member.id).sort(), cluster.silos.map((silo) => silo.id).sort())
        const total = body.members.reduce((sum, member) => sum + member.share, 0)
        assert.closeTo(total, 1, 1e-9)
        for (const member of body.members) {
          // (Suspected too: on a loaded machine a heartbeat may be late.)
          assert.oneOf(member.status, ["alive", "suspected"])
          assert.strictEqual(member.host, "127.0.0.1")
          assert.strictEqual(`${member.host}:${member.port}@${member.generation}`, member.id)
          // 160 points each: a third ± 25 % (HashRing's documented spread).
          assert.closeTo(member.share, 1 / 3, 1 / 3 * 0.25)
        }

        const status = yield* getJson("/quark/status", Diagnostics.StatusResponse)
        assert.strictEqual(status.silo, first.id)
        assert.isTrue(status.clustered)
        const ready = yield* getJson("/ready", Diagnostics.ReadyResponse)
        assert.deepStrictEqual(ready.checks.find((check) => check.name === "membership"), { name: "membership", ok: true, detail: first.id })
        assert.isTrue(ready.checks.some((check) => check.name === "directory" && check.ok))

        // Its heartbeats stop counting: its lease runs out and it fences itself.
        yield* cluster.registry.freeze(first.id)
        const { url } = yield* Endpoints.Endpoints
        // The lease runs out first (membership fails), then the silo stops serving (draining).
        yield* eventually(get(url + "/ready"), (reply) => reply.text.includes(`"name":"draining","ok":false`), 10_000)
        const fenced = yield* getJson("/ready", Diagnostics.ReadyResponse, 503)
        assert.isFalse(fenced.checks.find((check) => check.name === "membership")!.ok)
        assert.isFalse(fenced.checks.find((check) => check.name === "draining")!.ok)
      }).pipe(Effect.provide(Context.merge(first.context, endpoints)))
    }).pipe(Effect.scoped), 20_000)
})

describe("POST /quark/drain", () => {
  const post = (url: string) =>
    Effect.promise(async () => {
      const response = await fetch(url, { method: "POST" })
      return { status: response.status, text: await response.text() }
    })

  it.live("drains a cluster member: 202 at once, /ready 503 (draining), then the silo has left and holds nothing", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 2, implementations: counterLayer() })
      const [first, second] = cluster.silos
      const endpoints = yield* Layer.build(Endpoints.layer().pipe(Layer.provide(Layer.succeedContext(first!.context))))
      const { url } = Context.get(endpoints, Endpoints.Endpoints)
      for (let i = 0; i < 20; i++) yield* first!.run(Effect.flatMap(Counter.ref(`drain-${i}`), (counter) => counter.Increment({ by: 1 })))
      const held = (yield* first!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations()))).map((row) => row.address.id)
      assert.isAbove(held.length, 0)

      const accepted = yield* post(url + "/quark/drain")
      assert.strictEqual(accepted.status, 202, accepted.text)
      assert.deepStrictEqual(
        yield* Schema.decodeUnknownEffect(Diagnostics.DrainResponse)(JSON.parse(accepted.text)),
        { silo: first!.id, status: "draining" }
      )
      const ready = yield* get(url + "/ready")
      assert.strictEqual(ready.status, 503)
      assert.include(ready.text, `"name":"draining","ok":false`)

      yield* first!.run(Effect.flatMap(Cluster, (c) => c.drained))
      assert.deepStrictEqual(yield* first!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations())), [])
      assert.deepStrictEqual(yield* second!.run(Effect.flatMap(Cluster, (c) => c.members)), [second!.id])
      // What the first silo held is served by the second now (a new activation: the counter keeps no durable state).
      assert.strictEqual(yield* second!.run(Effect.flatMap(Counter.ref(held[0]!), (counter) => counter.Increment({ by: 1 }))), 1)
      assert.include((yield* second!.run(Effect.flatMap(Silo.Silo, (silo) => silo.activations()))).map((row) => row.address.id), held[0])
      // Asked again: the same drain, already done.
      assert.strictEqual((yield* post(url + "/quark/drain")).status, 202)
    }).pipe(Effect.scoped), 20_000)

  it.live("a local silo has nothing to drain: 404 NotClustered", () =>
    Effect.gen(function*() {
      const { url } = yield* Endpoints.Endpoints
      const reply = yield* post(url + "/quark/drain")
      assert.strictEqual(reply.status, 404)
      assert.include(reply.text, "NotClustered")
    }).pipe(Effect.provide(local())))
})

describe("HashRing.shares (what /quark/cluster reports)", () => {
  // A hasher that places the ring's points where a test says, and hashes "k:<n>" to n, so
  // the ring's own `owner` can be asked about any position of the circle.
  const placed = (points: ReadonlyMap<string, number>): HashRing.Hasher => (input) =>
    input.startsWith("k:") ? Number(input.slice(2)) : points.get(input)!
  const circle = 2 ** 32

  /** How many positions of the circle each member owns, by asking the ring (a binary search per gap). */
  const ownedByRing = (ring: HashRing.HashRing, values: ReadonlyArray<number>): Map<string, number> => {
    const owner = (position: number) => ring.owner(`k:${position % circle}`)!
    const owned = new Map<string, number>()
    const add = (id: string, n: number) => owned.set(id, (owned.get(id) ?? 0) + n)
    const distinct = [...new Set(values)].sort((a, b) => a - b)
    distinct.forEach((value, g) => {
      const d = distinct.length === 1 ? circle : (distinct[(g + 1) % distinct.length]! - value + circle) % circle
      add(owner(value), 1)
      if (d === 1) return
      const before = owner(value + 1)
      const after = owner(value + d - 1)
      // The first offset in 1..d-1 not owned by `before` (ownership switches once in a gap).
      let lo = 1
      let hi = d - 1
      while (lo < hi) {
        const mid = Math.floor((lo + hi) / 2)
        if (owner(value + mid) !== before) hi = mid
        else lo = mid + 1
      }
      if (before === after) add(before, d - 1)
      else {
        add(before, lo - 1)
        add(after, d - lo)
      }
    })
    return owned
  }

  it("property: equals what the ring's owner says, position by position, ties included", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: 1, max: 4 }),
        // Points from a small pool, so that members often share one.
        fc.array(fc.oneof(fc.constantFrom(0, 1, 2, 2 ** 31, circle - 1), fc.integer({ min: 0, max: circle - 1 })), { minLength: 20, maxLength: 20 }),
        (ids, vnodes, pool) => {
          const points = new Map<string, number>()
          let next = 0
          for (const id of ids) for (let i = 0; i < vnodes; i++) points.set(`${id}#${i}`, pool[next++ % pool.length]!)
          const hasher = placed(points)
          const ring = HashRing.makeWith(hasher, ids.map((id) => ({ id })), { vnodesPerWeight: vnodes })
          const shares = ring.shares()
          const byRing = ownedByRing(ring, [...points.values()])
          for (const id of ids) assert.strictEqual(shares.get(id)! * circle, byRing.get(id) ?? 0, id)
          assert.strictEqual([...shares.values()].reduce((a, b) => a + b, 0), 1)
        }
      ),
      { numRuns: 300 }
    )
  })

  it.effect("with xxh32 and 160 points: close to the fraction of sampled keys each member owns", () =>
    Effect.gen(function*() {
      const hasher = yield* HashRing.xxhash32
      const ids = ["10.0.0.1:4000@1", "10.0.0.2:4000@1", "10.0.0.3:4000@1", "10.0.0.4:4000@1"]
      const ring = HashRing.makeWith(hasher, ids.map((id) => ({ id })))
      const counts = new Map<string, number>()
      const keys = 200_000
      for (let i = 0; i < keys; i++) {
        const owner = ring.owner(`Counter/${i}`)!
        counts.set(owner, (counts.get(owner) ?? 0) + 1)
      }
      const shares = ring.shares()
      // 200k samples: a share's standard error is under 0.0012.
      for (const id of ids) assert.closeTo(shares.get(id)!, counts.get(id)! / keys, 0.006, id)
      assert.deepStrictEqual(HashRing.makeWith(hasher, []).shares(), new Map())
      assert.deepStrictEqual(HashRing.makeWith(hasher, [{ id: "only" }]).shares(), new Map([["only", 1]]))
    }))
})

describe("Diagnostics.redact", () => {
  const secretKeys = fc.constantFrom(
    "password", "Password", "DB_PASSWORD", "passwd", "passphrase", "pwd", "secret", "clientSecret", "token",
    "accessToken", "refresh-token", "apiKey", "api_key", "privateKey", "key", "credentials", "credential", "auth",
    "authorization", "basicAuth"
  )
  // Keys and strings with nothing secret-looking: no secret word, no `://`, no `=`.
  const plainKey = fc.constantFrom("host", "port", "name", "db", "timeout", "ratio", "items", "keyPrefix", "mode", "__proto__")
  const plainString = fc.string({ maxLength: 12 }).filter((s) => !s.includes("://") && !s.includes("="))
  const plain: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
    value: fc.oneof(
      { depthSize: "small" },
      plainString,
      fc.integer(),
      fc.boolean(),
      fc.constant(null),
      fc.array(tie("value"), { maxLength: 3 }),
      fc.dictionary(plainKey, tie("value"), { maxKeys: 3, noNullPrototype: true })
    )
  })).value
  const secret = fc.string({ minLength: 1, maxLength: 10, unit: fc.constantFrom(..."abcXYZ019!$%*+") }).map((s) => `S3CR3T${s}`)
  const userinfo = fc.string({ minLength: 1, maxLength: 8, unit: fc.constantFrom(..."abcdefxyz0189_.-") })
  const scheme = fc.constantFrom("redis", "rediss", "postgres", "postgresql", "amqp", "https")

  it("property: plain JSON comes out unchanged", () => {
    fc.assert(fc.property(plain, (value) => assert.deepStrictEqual(Diagnostics.redact(value), value)), { numRuns: 300 })
  })

  it("property: a value under a secret key, at any depth, is hidden", () => {
    fc.assert(
      fc.property(plain, fc.array(plainKey, { maxLength: 4 }), secretKeys, secret, (around, path, key, value) => {
        let config: unknown = { [key]: value, other: around }
        for (const step of path) config = { [step]: config }
        const out = Diagnostics.redact(config)
        assert.notInclude(JSON.stringify(out), value)
        let at = out as any
        for (const step of [...path].reverse()) at = at[step]
        assert.strictEqual(at[key], "[redacted]")
        assert.deepStrictEqual(at.other, around)
      }),
      { numRuns: 300 }
    )
  })

  it("property: URL credentials are hidden, the user, host and path kept", () => {
    fc.assert(
      fc.property(scheme, userinfo, secret, fc.nat(65535), fc.constantFrom("", "/0", "/db?sslmode=require"), (s, user, pass, port, rest) => {
        const url = `${s}://${user}:${pass}@host.internal:${port}${rest}`
        assert.strictEqual(Diagnostics.redact(url), `${s}://${user}:[redacted]@host.internal:${port}${rest}`)
        assert.strictEqual(Diagnostics.redact(`${s}://${pass}@host${rest}`), `${s}://[redacted]@host${rest}`)
        const inText = Diagnostics.redact({ dsn: `primary ${url} and replica ${s}://${user}:${pass}@replica` })
        assert.notInclude(JSON.stringify(inText), pass)
        assert.strictEqual(Diagnostics.redact(`${s}://host.internal:${port}${rest}`), `${s}://host.internal:${port}${rest}`)
      }),
      { numRuns: 300 }
    )
  })

  it("property: secret query parameters and libpq pairs are hidden; redact is idempotent", () => {
    fc.assert(
      fc.property(secretKeys, secret, plain, (key, value, around) => {
        const input = { a: `https://host/path?x=1&${key}=${value}&y=2`, b: `host=db ${key}=${value} dbname=q`, around }
        const once = Diagnostics.redact(input)
        assert.notInclude(JSON.stringify(once), value)
        assert.strictEqual((once as any).a, `https://host/path?x=1&${key}=[redacted]&y=2`)
        assert.deepStrictEqual(Diagnostics.redact(once), once)
      }),
      { numRuns: 300 }
    )
  })

  it("turns what is not JSON into JSON", () => {
    const cycle: Record<string, unknown> = { name: "loop" }
    cycle.self = cycle
    const shared = { n: 1 }
    assert.deepStrictEqual(
      Diagnostics.redact({
        cycle,
        twice: [shared, shared],
        map: new Map<string, unknown>([["token", "t"], ["size", 2]]),
        set: new Set([1, 2]),
        big: 10n,
        fn: () => 1,
        nan: Number.NaN,
        missing: undefined,
        when: new Date(0)
      }),
      {
        cycle: { name: "loop", self: "[circular]" },
        twice: [{ n: 1 }, { n: 1 }],
        map: { token: "[redacted]", size: 2 },
        set: [1, 2],
        big: "10",
        fn: "[function]",
        nan: "NaN",
        when: "1970-01-01T00:00:00.000Z"
      }
    )
  })
})

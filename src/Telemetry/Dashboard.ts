/**
 * A live cluster dashboard in the browser, opt in: `Dashboard.layer(options)` serves one
 * page (plain HTML, CSS and JS shipped in the package: nothing to build) at `/dashboard`,
 * and the JSON it polls once a second at `/dashboard/api/*`, from any process with a `Silo`
 * (a cluster silo, a `ClusterClient`, a local silo).
 *
 * ```ts
 * const Main = Dashboard.layer({ port: 9465 }).pipe(Layer.provideMerge(SiloWithActors))
 * ```
 *
 * **Binding.** `127.0.0.1` and a free port unless told otherwise. Any other host needs a
 * `token` (16 characters at least): without one the layer fails with `DashboardRefused`.
 * With a token every request must carry it: `Authorization: Bearer <token>`, or
 * `?token=<token>` once (the answer sets it as an HttpOnly, SameSite=Strict cookie, and the
 * page drops it from the address bar), or that cookie. Without a token, a request whose
 * `Host` is not a loopback name is refused (a page elsewhere cannot reach the dashboard
 * through DNS rebinding). The two actions (replay and delete a dead letter) are POSTs that
 * need the header `x-quark-dashboard: 1`, which no cross-site form can send.
 *
 * **Pages** (hash-routed in the one page):
 * - *cluster*: every silo of the membership view with status, generation, uptime (from the
 *   generation, a start time), activations, CPU, event-loop lag p99, memory (each silo's
 *   last load report, `Load`), ring share, and turns per second for this process's silo;
 *   charts of turns per second and activations per silo over the last two minutes. A silo
 *   that leaves the view stays listed for 10 minutes, as `dead` if it was last seen
 *   suspected (it missed heartbeats), as `left` if it heartbeated to the end (the view is
 *   looked at every 200 ms for this, an in-memory read).
 * - *actors*: the actor types of this process's silo (activations, summed mailbox depth,
 *   turns per second), per message latency p50/p99 (with a `Profiler.layer()`), a heat map
 *   of activations across silos (their load reports), and a search by address.
 * - *actor*: where an address lives (its owner silo); if here, its state, mailbox, running
 *   turns, age, timers and children (the supervision tree); its reminders and dead letters.
 * - *reminders*: the dead-letter queue, with replay and delete.
 *
 * **Cost.** The overview (what the cluster and actors pages poll) is built at most once per
 * 500 ms whoever asks, and its per-type figures walk the silo's type tables once (a read of
 * each activation's mailbox depth): the cost is per second, not per turn, and nothing is
 * added to a turn. `bench/dashboard.ts` measures it against the same silo without.
 *
 * **What one process knows.** The membership view and every silo's load report are
 * cluster-wide; turns per second, per-type counts, latencies and activations' details are
 * this process's own (run a dashboard per silo, or look at the silo that owns an address).
 * Turns per second come from the metric catalog (`Telemetry.layer`), else the profiler's
 * window; without either they are not shown.
 *
 * @since 0.2.0
 */
import { createServer } from "node:http"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Clock, Context, Effect, Layer, Metric, Option, Redacted, Schedule, Schema } from "effect"
import { HttpRouter, HttpServer, type HttpServerError, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { Silo } from "../Actor/Silo.ts"
import { Cluster } from "../Cluster/Cluster.ts"
import * as HashRing from "../Cluster/HashRing.ts"
import * as Load from "../Cluster/Load.ts"
import * as Reminders from "../Reminders/Reminders.ts"
import {
  describe,
  type Durations,
  figures,
  findActivation,
  letterRow,
  quantileMillis,
  Sightings,
  summaryText,
  turnDurations,
  walk
} from "./internal/DashboardData.ts"
import * as Api from "./internal/DashboardSchemas.ts"
import { page } from "./internal/DashboardPage.ts"
import { ProfilerService } from "./Profiler.ts"

export {
  /** @since 0.2.0 */
  ActionResult,
  /** @since 0.2.0 */
  ActorDetail,
  /** @since 0.2.0 */
  DeadLetters,
  /** @since 0.2.0 */
  Overview,
  /** @since 0.2.0 */
  Refusal,
  /** @since 0.2.0 */
  SiloRow
} from "./internal/DashboardSchemas.ts"

/**
 * @since 0.2.0
 */
export interface DashboardOptions {
  /** The address to listen on. Default `127.0.0.1`; any other needs a `token`. */
  readonly host?: string | undefined
  /** Default 0: any free port (read it from `Dashboard`). */
  readonly port?: number | undefined
  /** Required off loopback; when given, every request must carry it (see the module doc). */
  readonly token?: Redacted.Redacted<string> | undefined
}

/**
 * Where the dashboard listens.
 *
 * @since 0.2.0
 */
export interface DashboardShape {
  readonly address: { readonly host: string; readonly port: number }
  /** The page: `http://host:port/dashboard`. */
  readonly url: string
}

/**
 * @since 0.2.0
 */
export class Dashboard extends Context.Service<Dashboard, DashboardShape>()("quark/Telemetry/Dashboard") {}

/**
 * The layer would serve the dashboard where it must not: off loopback without a token, or
 * with a token too short to be one.
 *
 * @since 0.2.0
 */
export class DashboardRefused extends Schema.TaggedError<DashboardRefused>()("DashboardRefused", {
  host: Schema.String,
  reason: Schema.String
}) {}

/** The overview is rebuilt at most this often, however many pages poll it. */
const overviewMillis = 500
/** How often the membership view is looked at between polls (an in-memory read). */
const watchMillis = 200
const deadLetterLimit = 500
const cookieName = "quark_dashboard"
const minimumTokenLength = 16

const isLoopback = (host: string): boolean =>
  host === "localhost" || host === "::1" || host === "[::1]" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(host)

/**
 * Serves the dashboard for the life of the layer.
 *
 * @since 0.2.0
 */
export const layer = (
  options: DashboardOptions = {}
): Layer.Layer<Dashboard, DashboardRefused | HttpServerError.ServeError, Silo> =>
  Layer.unwrap(Effect.gen(function*() {
    const host = options.host ?? "127.0.0.1"
    const token = options.token === undefined ? undefined : Redacted.value(options.token)
    if (token !== undefined && token.length < minimumTokenLength) {
      return yield* new DashboardRefused({ host, reason: `the token must be at least ${minimumTokenLength} characters` })
    }
    if (token === undefined && !isLoopback(host)) {
      return yield* new DashboardRefused({ host, reason: "a dashboard bound off loopback needs a token" })
    }
    const server = NodeHttpServer.layerServer(() => createServer(), { host, port: options.port ?? 0 })
    // A poll a second per open page: a log line per request would drown the silo's own.
    const app = HttpRouter.serve(routes(token), { disableLogger: true, disableListenLog: true })
    const dashboard = Layer.effect(
      Dashboard,
      Effect.gen(function*() {
        const { address } = yield* HttpServer.HttpServer
        const port = address._tag === "UnixPathAddress" ? 0 : address.port
        const shown = host.includes(":") && !host.startsWith("[") ? `[${host}]` : host
        return Dashboard.of({ address: { host, port }, url: `http://${shown}:${port}/dashboard` })
      })
    )
    return Layer.mergeAll(app, dashboard).pipe(Layer.provide(server))
  }))

// ---------------------------------------------------------------------------------------
// Access
// ---------------------------------------------------------------------------------------

/** Compares in time that depends on the secret's length only. */
const sameSecret = (given: string, secret: string): boolean => {
  let diff = given.length ^ secret.length
  for (let i = 0; i < secret.length; i++) diff |= (given.charCodeAt(i) | 0) ^ secret.charCodeAt(i)
  return diff === 0
}

interface Access {
  readonly refused?: { readonly status: number; readonly error: string }
  /** The token came in the query: set the cookie on the answer. */
  readonly setCookie?: string
}

const access = (request: HttpServerRequest.HttpServerRequest, token: string | undefined, mutating: boolean): Access => {
  if (mutating && request.headers["x-quark-dashboard"] !== "1") {
    return { refused: { status: 403, error: "an action needs the header x-quark-dashboard: 1" } }
  }
  if (token === undefined) {
    // Only loopback binds get here: a Host naming anything else came through DNS rebinding.
    const hostHeader = request.headers["host"] ?? ""
    let name = ""
    try {
      name = new URL(`http://${hostHeader}`).hostname
    } catch {
      // refused below
    }
    return isLoopback(name) ? {} : { refused: { status: 403, error: "this dashboard answers loopback host names only" } }
  }
  const bearer = /^Bearer (.+)$/.exec(request.headers["authorization"] ?? "")?.[1]
  if (bearer !== undefined && sameSecret(bearer, token)) return {}
  const cookie = request.cookies[cookieName]
  if (cookie !== undefined && sameSecret(cookie, token)) return {}
  const query = new URL(request.url, "http://dashboard.invalid").searchParams.get("token")
  if (query !== null && sameSecret(query, token)) return { setCookie: token }
  return { refused: { status: 401, error: "a token is needed: Authorization: Bearer <token>, or ?token=<token> once" } }
}

/** A JSON response encoded with its schema (encoding a value built here cannot fail: a defect if it does). */
const respond = <A>(
  schema: Schema.ConstraintCodec<A, unknown, never, never>,
  body: A,
  status = 200
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.orDie(HttpServerResponse.schemaJson(schema)(body, { status, headers: { "cache-control": "no-store" } }))

const guarded = (
  token: string | undefined,
  handler: (request: HttpServerRequest.HttpServerRequest) => Effect.Effect<HttpServerResponse.HttpServerResponse>,
  mutating = false
) =>
(request: HttpServerRequest.HttpServerRequest): Effect.Effect<HttpServerResponse.HttpServerResponse> => {
  const checked = access(request, token, mutating)
  if (checked.refused !== undefined) return respond(Api.Refusal, { error: checked.refused.error }, checked.refused.status)
  const { setCookie } = checked
  if (setCookie === undefined) return handler(request)
  return Effect.map(handler(request), (response) =>
    HttpServerResponse.setCookieUnsafe(response, cookieName, setCookie, { httpOnly: true, sameSite: "strict", path: "/dashboard" }))
}

// ---------------------------------------------------------------------------------------
// Routes
// ---------------------------------------------------------------------------------------

const routes = (token: string | undefined) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const silo = yield* Silo
    const local = silo.router
    const context = yield* Effect.context<never>()
    const cluster = Option.getOrUndefined(yield* Effect.serviceOption(Cluster))
    const profiler = Option.getOrUndefined(yield* Effect.serviceOption(ProfilerService))
    const hasher = cluster === undefined ? undefined : yield* HashRing.xxhash32
    const selfId = () => cluster?.self?.id ?? local.siloId ?? "local"

    // Turns per second: the difference of the catalog's turn counters between two overviews.
    let lastTurns: { readonly at: number; readonly byType: ReadonlyMap<string, number> } | undefined
    // Turn latency per type: the catalog's duration histogram between two overviews.
    let lastDurations: ReadonlyMap<string, Durations> | undefined
    const turnCounters = (): Map<string, number> | undefined => {
      const self = local.siloId
      let byType: Map<string, number> | undefined
      for (const snapshot of Metric.snapshotUnsafe(context)) {
        if (snapshot.id !== "quark_turns_total") continue
        const attributes = snapshot.attributes ?? {}
        // Several silos in one process (tests) label their series with their id.
        if (self !== undefined && attributes.silo !== undefined && attributes.silo !== self) continue
        const type = attributes.type ?? ""
        byType ??= new Map()
        byType.set(type, (byType.get(type) ?? 0) + Number((snapshot.state as { readonly count: number | bigint }).count))
      }
      return byType
    }

    let ring: { readonly key: string; readonly shares: ReadonlyMap<string, number> } | undefined
    const sightings = new Sightings()
    if (cluster !== undefined) {
      // A silo that vanishes between two polls must still be told dead from left: its last
      // status decides (see `Sightings`), so the view is looked at more often than polled.
      yield* Effect.forkScoped(
        Effect.flatMap(Effect.zip(Clock.currentTimeMillis, cluster.view), ([now, view]) => Effect.sync(() => sightings.observe(now, view))).pipe(
          Effect.repeat(Schedule.spaced(watchMillis))
        )
      )
    }
    let cached: { readonly at: number; readonly value: Api.Overview } | undefined

    const build = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      const snapshot = profiler?.snapshot(1)

      const types: Array<Api.TypeRow> = []
      let activations = 0
      const counters = turnCounters()
      const rates = new Map<string, number>()
      // The first sample has nothing to be compared with: no rate yet.
      const sampled = counters !== undefined && lastTurns !== undefined && now > lastTurns.at
      if (sampled) {
        for (const [type, count] of counters!) rates.set(type, Math.max(0, count - (lastTurns!.byType.get(type) ?? 0)) * 1000 / (now - lastTurns!.at))
      } else if (counters === undefined && snapshot !== undefined) {
        for (const row of snapshot.messages) rates.set(row.type, (rates.get(row.type) ?? 0) + row.turnsPerSecond)
      }
      if (counters !== undefined) lastTurns = { at: now, byType: counters }
      const durations = turnDurations(Metric.snapshotUnsafe(context), local.siloId)
      const before = lastDurations
      lastDurations = durations
      const rated = counters !== undefined ? sampled : snapshot !== undefined
      let total = 0
      for (const slot of local.slots.values()) {
        if (slot.activations.size === 0 && !rates.has(slot.name)) continue
        let depth = 0
        for (const act of slot.activations.values()) depth += act.mailboxDepth
        activations += slot.activations.size
        const rate = rates.get(slot.name)
        if (rate !== undefined) total += rate
        const latency = durations.get(slot.name)
        const p50 = latency === undefined || before === undefined ? undefined : quantileMillis(latency, before.get(slot.name), 0.5)
        const p99 = latency === undefined || before === undefined ? undefined : quantileMillis(latency, before.get(slot.name), 0.99)
        types.push({
          type: slot.name,
          activations: slot.activations.size,
          mailboxDepth: depth,
          ...(rated ? { turnsPerSecond: rate ?? 0 } : {}),
          ...(p50 === undefined ? {} : { p50Millis: p50 }),
          ...(p99 === undefined ? {} : { p99Millis: p99 })
        })
      }

      const silos: Array<Api.SiloRow> = []
      if (cluster !== undefined && hasher !== undefined) {
        const members = yield* cluster.members
        const key = members.join(",")
        if (ring?.key !== key) ring = { key, shares: HashRing.makeWith(hasher, members.map((id) => ({ id }))).shares() }
        const view = yield* cluster.view
        sightings.observe(now, view)
        for (const member of view) {
          const { generation, host, id, port } = member.identity
          const load = Load.fromMetadata(member.metadata)
          const self = id === cluster.self?.id
          silos.push({
            id,
            host,
            port,
            generation,
            status: member.status,
            self,
            draining: load.draining,
            // A generation is its silo's start time in milliseconds, times 1000 (`SiloIdentity`).
            uptimeMillis: Math.max(0, now - Math.floor(generation / 1000)),
            share: ring.shares.get(id) ?? 0,
            ...figures(load),
            ...(self && rated ? { turnsPerSecond: total } : {})
          })
        }
        silos.push(...sightings.gone())
      } else {
        silos.push({
          id: selfId(),
          host: "local",
          port: 0,
          status: "alive",
          self: true,
          draining: local.draining || local.shuttingDown,
          uptimeMillis: Math.max(0, now - local.startedAtMillis),
          share: 1,
          activations,
          ...(snapshot === undefined ? {} : {
            lagMillis: snapshot.eventLoop.p99Millis,
            memoryBytes: snapshot.heap.rssBytes
          }),
          ...(rated ? { turnsPerSecond: total } : {})
        })
      }

      return {
        now,
        silo: selfId(),
        clustered: cluster !== undefined,
        silos,
        activations,
        ...(rated ? { turnsPerSecond: total } : {}),
        types,
        messages: (snapshot?.messages ?? []).map((row) => ({
          type: row.type,
          message: row.message,
          count: row.count,
          failures: row.failures,
          turnsPerSecond: row.turnsPerSecond,
          p50Millis: row.p50Millis,
          p99Millis: row.p99Millis
        }))
      } satisfies Api.Overview
    })

    const overview = Effect.gen(function*() {
      const now = yield* Clock.currentTimeMillis
      if (cached !== undefined && now - cached.at < overviewMillis) return cached.value
      const value = yield* build
      cached = { at: now, value }
      return value
    })

    // Reminders are found through the silo (`Reminders.layer` attaches them to it), and are
    // absent when no layer did: the functions then die, which here means "not set up".
    const withSilo = <A, E>(effect: Effect.Effect<A, E, Silo>) => Effect.provideService(effect, Silo, silo)
    const deadLetters = withSilo(Reminders.deadLetters({ limit: deadLetterLimit })).pipe(
      Effect.map((letters) => letters.map(letterRow)),
      Effect.catchDefect(() => Effect.succeed(undefined))
    )

    const html = HttpServerResponse.html(page).pipe(
      HttpServerResponse.setHeader("cache-control", "no-store"),
      HttpServerResponse.setHeader("content-security-policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src 'self' data:"),
      HttpServerResponse.setHeader("x-frame-options", "DENY")
    )
    yield* router.add("GET", "/dashboard", guarded(token, () => Effect.succeed(html)))
    yield* router.add("GET", "/", guarded(token, () => Effect.succeed(HttpServerResponse.redirect("/dashboard"))))

    yield* router.add("GET", "/dashboard/api/overview", guarded(token, () => Effect.flatMap(overview, (body) => respond(Api.Overview, body))))

    yield* router.add("GET", "/dashboard/api/actor", guarded(token, (request) =>
      Effect.gen(function*() {
        const search = new URL(request.url, "http://dashboard.invalid").searchParams
        const type = search.get("type") ?? ""
        const id = search.get("id") ?? ""
        if (type === "" || id === "" || type.length > 256 || id.length > 256) {
          return yield* respond(Api.Refusal, { error: "give type and id (each 1 to 256 characters)" }, 400)
        }
        const address = { type, id }
        const owner = cluster !== undefined ? yield* cluster.ownerOf(address) : local.slots.has(type) ? "local" : undefined
        const now = yield* Clock.currentTimeMillis
        const act = findActivation(local.slots, type, id)
        const rows: Array<Api.ActivationRow> = []
        if (act !== undefined) walk(act, 0, now - local.startedAtMillis, rows)
        const reminders = yield* withSilo(Reminders.list(address)).pipe(
          Effect.map((list) => list.map(({ message, name, nextDue, ticks }) => ({ name, message, nextDue, ticks }))),
          Effect.catchDefect(() => Effect.succeed(undefined)),
          Effect.orElseSucceed(() => undefined)
        )
        const letters = yield* Effect.orElseSucceed(deadLetters, () => undefined)
        const summary = act === undefined ? undefined : summaryText(yield* silo.describe(address))
        return yield* respond(Api.ActorDetail, {
          address,
          ...(owner === undefined ? {} : { owner }),
          here: act !== undefined,
          ...(rows[0] === undefined ? {} : { activation: rows[0] }),
          ...(summary === undefined ? {} : { summary }),
          failures: act?.extras?.failures?.slice() ?? [],
          children: rows.slice(1),
          ...(reminders === undefined ? {} : { reminders }),
          ...(letters === undefined ? {} : { deadLetters: letters.filter((letter) => letter.address.type === type && letter.address.id === id) })
        })
      })))

    yield* router.add("GET", "/dashboard/api/dead-letters", guarded(token, () =>
      Effect.gen(function*() {
        const letters = yield* deadLetters
        return yield* respond(Api.DeadLetters, { available: letters !== undefined, letters: letters ?? [] })
      }).pipe(Effect.catch((error) => respond(Api.Refusal, { error: describe(error) }, 503)))))

    const action = (run: (id: string) => Effect.Effect<boolean, unknown, Silo>) =>
      guarded(token, (request) => {
        const id = new URL(request.url, "http://dashboard.invalid").searchParams.get("id") ?? ""
        if (id === "") return respond(Api.Refusal, { error: "give the dead letter's id" }, 400)
        return withSilo(run(id)).pipe(
          Effect.matchEffect({
            onSuccess: (done) => respond(Api.ActionResult, { id, done }, done ? 200 : 404),
            onFailure: (error) => respond(Api.ActionResult, { id, done: false, error: describe(error) }, 409)
          }),
          Effect.catchDefect((defect) => respond(Api.ActionResult, { id, done: false, error: describe(defect) }, 503))
        )
      }, true)
    yield* router.add("POST", "/dashboard/api/dead-letters/replay", action(Reminders.replay))
    yield* router.add("POST", "/dashboard/api/dead-letters/discard", action(Reminders.discard))
  }))


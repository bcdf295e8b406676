/**
 * A silo's diagnostics over HTTP, opt in: `Endpoints.layer(options)` serves, on
 * `127.0.0.1` and an ephemeral port unless told otherwise,
 *
 * - `GET /health`: the process answers (liveness);
 * - `GET /ready`: the silo is joined (a cluster member holding a live membership lease, not
 *   left nor declared dead), not draining, and reaches its stores; 200 or 503;
 * - `GET /metrics`: effect's metric registry in the Prometheus text format (the catalog,
 *   with `Telemetry.layer`);
 * - `GET /quark/status`, `/quark/actors?type=&offset=&limit=`, `/quark/cluster`,
 *   `/quark/profile?top=` (with a `Profiler.layer()` in the context), `/quark/streams?limit=`
 *   (with `Streams.layer`), `/quark/config`: JSON, each body encoded with its Schema from
 *   `Diagnostics`;
 * - `/quark/actor`, `/quark/reminders`, `/quark/dlq` (+ `POST …/replay`, `…/discard`): for the
 *   `quark` CLI, bodies from `Operations` (see `internal/OperatorRoutes.ts`);
 * - `POST /quark/drain`: starts the silo's drain (`Cluster.drain`) and answers 202 at once;
 *   `/ready` answers 503 from then on. It, replay and discard change things: bind the
 *   endpoints to a network only behind something that authenticates.
 *
 * ```ts
 * const Main = Endpoints.layer({ port: 9464, config: appConfig }).pipe(
 *   Layer.provideMerge(CounterLive),
 *   Layer.provideMerge(Silo.layer()),
 *   Layer.provide(Telemetry.layer())
 * )
 * ```
 *
 * It needs the `Silo`; a `Cluster` (a `ClusterSilo`), a `Directory` and `Reminders` in the
 * context are found and used when present, so the same layer serves a local silo and a
 * cluster member. `Endpoints` tells where it listens (port 0 picks a free one).
 *
 * Readiness probes each store it can find with one cheap read, bounded by `probeTimeout`:
 * the named stores of `Stores` (`stores`, default `["default"]`, a default that is absent
 * being skipped), the `Directory` (one lookup) and the reminder store (one get). The
 * membership registry is not probed: a silo that cannot reach it loses its lease, which the
 * `membership` check reads.
 *
 * Rejected: `HttpApi` (its OpenAPI machinery for seven GET routes, and a typed client that
 * would make the dashboard depend on the server module); effect's
 * `PrometheusMetrics.layerHttp` (it reads the registry of each request's context, where
 * this layer formats the registry the silo registered its metrics in).
 *
 * @since 0.2.0
 */
import { createServer } from "node:http"
import { createRequire } from "node:module"
import * as NodeHttpServer from "@effect/platform-node/NodeHttpServer"
import { Clock, Context, Duration, Effect, Layer, Option, Schema } from "effect"
import { HttpRouter, HttpServer, type HttpServerError, type HttpServerRequest, HttpServerResponse } from "effect/http"
import { PrometheusMetrics } from "effect/observability"
import { Silo, type SiloShape } from "../Actor/Silo.ts"
import { Cluster, type ClusterShape } from "../Cluster/Cluster.ts"
import { Directory, type DirectoryShape } from "../Cluster/Directory.ts"
import * as HashRing from "../Cluster/HashRing.ts"
import { Stores, type StoresShape } from "../Persistence/Stores.ts"
import { Reminders, type RemindersShape } from "../Reminders/Reminders.ts"
import * as Streams from "../Streams/Streams.ts"
import * as Diagnostics from "./Diagnostics.ts"
import * as OperatorRoutes from "./internal/OperatorRoutes.ts"
import { ProfilerService } from "./Profiler.ts"

/**
 * An extra readiness check: ready while `check` succeeds (within `probeTimeout`); its
 * failure, as a string, is the check's `detail`.
 *
 * @since 0.2.0
 */
export interface ReadinessCheck {
  readonly name: string
  readonly check: Effect.Effect<unknown, unknown>
}

/**
 * @since 0.2.0
 */
export interface EndpointsOptions {
  /** The address to listen on. Default `127.0.0.1`: diagnostics are not for the world. */
  readonly host?: string | undefined
  /** Default 0: any free port (read it from `Endpoints`). */
  readonly port?: number | undefined
  /** What `/quark/config` shows, redacted (see `Diagnostics.redact`). */
  readonly config?: unknown
  /** Checks `/ready` runs besides its own. */
  readonly readiness?: ReadonlyArray<ReadinessCheck> | undefined
  /** The `Stores` names `/ready` probes. Default `["default"]` (skipped when there is none). */
  readonly stores?: ReadonlyArray<string> | undefined
  /** Bound on each readiness probe. Default 2 seconds. */
  readonly probeTimeout?: Duration.Input | undefined
}

/**
 * Where the endpoints listen.
 *
 * @since 0.2.0
 */
export interface EndpointsShape {
  readonly address: { readonly host: string; readonly port: number }
  /** `http://host:port`, without a trailing slash. */
  readonly url: string
}

/**
 * @since 0.2.0
 */
export class Endpoints extends Context.Service<Endpoints, EndpointsShape>()("quark/Telemetry/Endpoints") {}

/** Rows per page when the query does not say, and the most a query may ask for. */
const defaultLimit = 100
const maxLimit = 1000

/** Quark's version, from the package's manifest (two levels up from both src/ and dist/). */
const version: string = (() => {
  try {
    const manifest = createRequire(import.meta.url)("../../package.json") as { readonly version?: unknown }
    return typeof manifest.version === "string" ? manifest.version : "unknown"
  } catch {
    return "unknown"
  }
})()

/**
 * The diagnostics endpoints of the silo in context, for the life of the layer.
 *
 * @since 0.2.0
 */
export const layer = (options: EndpointsOptions = {}): Layer.Layer<Endpoints, HttpServerError.ServeError, Silo> => {
  const host = options.host ?? "127.0.0.1"
  const server = NodeHttpServer.layerServer(() => createServer(), { host, port: options.port ?? 0 })
  // Scrapes come every few seconds: a log line per request would drown the silo's own.
  const app = HttpRouter.serve(routes(options), { disableLogger: true, disableListenLog: true })
  const endpoints = Layer.effect(
    Endpoints,
    Effect.gen(function*() {
      const { address } = yield* HttpServer.HttpServer
      const port = address._tag === "UnixPathAddress" ? 0 : address.port
      const shown = host.includes(":") ? `[${host}]` : host
      return Endpoints.of({ address: { host, port }, url: `http://${shown}:${port}` })
    })
  )
  return Layer.mergeAll(app, endpoints).pipe(Layer.provide(server))
}

const routes = (options: EndpointsOptions) =>
  HttpRouter.use(Effect.fnUntraced(function*(router) {
    const silo = yield* Silo
    const context = yield* Effect.context<never>()
    const cluster = Option.getOrUndefined(yield* Effect.serviceOption(Cluster))
    const profiler = Option.getOrUndefined(yield* Effect.serviceOption(ProfilerService))
    const streams = Option.getOrUndefined(yield* Effect.serviceOption(Streams.Streams))
    const hasher = cluster === undefined ? undefined : yield* HashRing.xxhash32
    const checks = readinessChecks(options, {
      router: silo.router,
      cluster,
      stores: yield* Stores,
      directory: Option.getOrUndefined(yield* Effect.serviceOption(Directory)),
      reminders: Option.getOrUndefined(yield* Effect.serviceOption(Reminders))
    })
    const local = silo.router

    yield* router.add("GET", "/health", respond(Diagnostics.HealthResponse, { status: "ok" }))

    yield* router.add(
      "GET",
      "/ready",
      Effect.gen(function*() {
        const results = yield* Effect.all(checks, { concurrency: "unbounded" })
        const ready = results.every((check) => check.ok)
        return yield* respond(Diagnostics.ReadyResponse, { ready, checks: results }, ready ? 200 : 503)
      })
    )

    yield* router.add(
      "GET",
      "/metrics",
      Effect.sync(() =>
        HttpServerResponse.text(PrometheusMetrics.formatUnsafe(context), {
          contentType: "text/plain; version=0.0.4; charset=utf-8"
        })
      )
    )

    yield* router.add(
      "GET",
      "/quark/status",
      Effect.gen(function*() {
        const rows = yield* silo.activations()
        const byType = new Map<string, number>()
        for (const row of rows) byType.set(row.address.type, (byType.get(row.address.type) ?? 0) + 1)
        const now = yield* Clock.currentTimeMillis
        return yield* respond(Diagnostics.StatusResponse, {
          silo: cluster?.self?.id ?? local.siloId ?? "local",
          version,
          uptimeMillis: Math.max(0, now - local.startedAtMillis),
          activations: rows.length,
          types: [...byType].map(([type, activations]) => ({ type, activations })),
          clustered: cluster !== undefined,
          draining: local.shuttingDown || local.draining
        })
      })
    )

    yield* router.add("GET", "/quark/actors", (request) =>
      Effect.gen(function*() {
        const query = yield* actorsQuery(request)
        const rows = yield* silo.activations(query.type)
        // The silo's order (types, then activations, in the order they arrived) is stable:
        // new activations come last, so paging by offset neither repeats nor skips rows
        // that stay; sorting a million rows per page would cost more than it buys.
        const page = rows.slice(query.offset, query.offset + query.limit)
        const next = query.offset + page.length
        return yield* respond(Diagnostics.ActorsResponse, {
          items: page.map((row) => ({
            address: { type: row.address.type, id: row.address.id },
            state: row.state,
            mailboxDepth: row.mailboxDepth,
            runningTurns: row.runningTurns,
            ageMillis: row.ageMillis,
            ...(row.parent === undefined ? {} : { parent: { type: row.parent.type, id: row.parent.id } })
          })),
          page: {
            ...(query.type === undefined ? {} : { type: query.type }),
            offset: query.offset,
            limit: query.limit,
            total: rows.length,
            ...(next < rows.length ? { nextOffset: next } : {})
          }
        })
      }).pipe(Effect.catchTag("InvalidQuery", (error) => respond(Diagnostics.InvalidQuery, error, 400))))

    yield* router.add("GET", "/quark/profile", (request) =>
      Effect.gen(function*() {
        const top = (yield* queryValues(request, profileParameters)).get("top") as number | undefined
        if (profiler === undefined) {
          return yield* respond(
            Diagnostics.NotProfiled,
            new Diagnostics.NotProfiled({ reason: "this silo has no profiler: provide Profiler.layer() beneath Telemetry.layer" }),
            404
          )
        }
        return yield* respond(Diagnostics.ProfileSnapshot, profiler.snapshot(top ?? 10))
      }).pipe(Effect.catchTag("InvalidQuery", (error) => respond(Diagnostics.InvalidQuery, error, 400))))

    yield* router.add(
      "GET",
      "/quark/cluster",
      Effect.gen(function*() {
        if (cluster === undefined || hasher === undefined) {
          return yield* respond(
            Diagnostics.NotClustered,
            new Diagnostics.NotClustered({ reason: "this silo is not a cluster member" }),
            404
          )
        }
        const view = yield* cluster.view
        const shares = HashRing.makeWith(hasher, (yield* cluster.members).map((id) => ({ id }))).shares()
        return yield* respond(Diagnostics.ClusterResponse, {
          self: cluster.self?.id ?? "",
          members: view.map((member) => ({
            id: member.identity.id,
            host: member.identity.host,
            port: member.identity.port,
            generation: member.identity.generation,
            status: member.status,
            share: shares.get(member.identity.id) ?? 0
          }))
        })
      })
    )

    yield* router.add(
      "POST",
      "/quark/drain",
      Effect.gen(function*() {
        if (cluster === undefined) {
          return yield* respond(
            Diagnostics.NotClustered,
            new Diagnostics.NotClustered({ reason: "this silo is not a cluster member: nothing to drain" }),
            404
          )
        }
        // Detached: the drain outlives this request (and is run once, whoever asks).
        yield* Effect.forkDetach(cluster.drain)
        return yield* respond(Diagnostics.DrainResponse, { silo: cluster.self?.id ?? "", status: "draining" }, 202)
      })
    )

    yield* router.add("GET", "/quark/streams", (request) =>
      Effect.gen(function*() {
        const limit = Math.min(maxLimit, ((yield* queryValues(request, streamsParameters)).get("limit") as number | undefined) ?? defaultLimit)
        if (streams === undefined) {
          return yield* respond(Diagnostics.NoStreams, new Diagnostics.NoStreams({ reason: "this silo has no streams: provide Streams.layer" }), 404)
        }
        const lanes = yield* Effect.provideService(Streams.lag, Silo, silo)
        const totals = { lanes: lanes.length, buffered: 0, delivered: 0, dropped: 0, failed: 0, maxLagMillis: 0 }
        for (const lane of lanes) {
          totals.buffered += lane.buffered
          totals.delivered += lane.delivered
          totals.dropped += lane.dropped
          totals.failed += lane.failed
          totals.maxLagMillis = Math.max(totals.maxLagMillis, lane.lagMillis)
        }
        const behind = [...lanes].sort((a, b) => b.lagMillis - a.lagMillis || b.buffered - a.buffered).slice(0, limit)
        return yield* respond(Diagnostics.StreamsResponse, {
          lanes: behind.map(({ lastToken, ...lane }) => (lastToken === undefined ? lane : { ...lane, lastToken })),
          totals
        })
      }).pipe(Effect.catchTag("InvalidQuery", (error) => respond(Diagnostics.InvalidQuery, error, 400))))

    // Redacted once: the configuration does not change while the silo runs.
    const config = { actorDefaults: Diagnostics.redact(local.defaults), config: Diagnostics.redact(options.config ?? null) }
    yield* router.add("GET", "/quark/config", respond(Diagnostics.ConfigResponse, config))
    yield* OperatorRoutes.add(router) // /quark/actor, /quark/reminders, /quark/dlq (the CLI's)
  }))

/** A JSON response encoded with its schema (encoding a value built here cannot fail: a defect if it does). */
const respond = <A>(
  schema: Schema.ConstraintCodec<A, unknown, never, never>,
  body: A,
  status = 200
): Effect.Effect<HttpServerResponse.HttpServerResponse> =>
  Effect.orDie(HttpServerResponse.schemaJson(schema)(body, { status }))

// ---------------------------------------------------------------------------------------
// /quark/actors query
// ---------------------------------------------------------------------------------------

const Digits = Schema.String.check(Schema.isPattern(/^\d{1,9}$/, { message: "expected a whole number" }))
const Offset = Digits.pipe(Schema.decodeTo(Schema.NumberFromString))
const Limit = Digits.pipe(Schema.decodeTo(Schema.NumberFromString.check(Schema.isGreaterThanOrEqualTo(1))))
const TypeName = Schema.NonEmptyString

/** The parameters `/quark/actors` takes, by name (a Map: names from the wire never reach an object's prototype). */
const actorsParameters = new Map<string, Schema.Codec<unknown, string>>([
  ["type", TypeName as Schema.Codec<unknown, string>],
  ["offset", Offset as Schema.Codec<unknown, string>],
  ["limit", Limit as Schema.Codec<unknown, string>]
])

interface ActorsQuery {
  readonly type: string | undefined
  readonly offset: number
  readonly limit: number
}

/** A request's query parameters, each decoded by its schema; an unknown or repeated one is refused. */
const queryValues = (
  request: HttpServerRequest.HttpServerRequest,
  parameters: ReadonlyMap<string, Schema.Codec<unknown, string>>
): Effect.Effect<Map<string, unknown>, Diagnostics.InvalidQuery> =>
  Effect.gen(function*() {
    const search = new URL(request.url, "http://diagnostics.invalid").searchParams
    const values = new Map<string, unknown>()
    for (const [name, raw] of search) {
      const schema = parameters.get(name)
      if (schema === undefined) {
        return yield* new Diagnostics.InvalidQuery({
          parameter: name,
          reason: `unknown parameter (expected ${[...parameters.keys()].join(", ")})`
        })
      }
      if (values.has(name)) return yield* new Diagnostics.InvalidQuery({ parameter: name, reason: "given more than once" })
      const decoded = Schema.decodeUnknownExit(schema)(raw)
      if (decoded._tag === "Failure") {
        return yield* new Diagnostics.InvalidQuery({ parameter: name, reason: schemaReason(decoded.cause) })
      }
      values.set(name, decoded.value)
    }
    return values
  })

const actorsQuery = (request: HttpServerRequest.HttpServerRequest): Effect.Effect<ActorsQuery, Diagnostics.InvalidQuery> =>
  Effect.gen(function*() {
    const values = yield* queryValues(request, actorsParameters)
    return {
      type: values.get("type") as string | undefined,
      offset: (values.get("offset") as number | undefined) ?? 0,
      // Capped rather than refused: a client asking for "everything" gets the most there is.
      limit: Math.min(maxLimit, (values.get("limit") as number | undefined) ?? defaultLimit)
    }
  })

/** `/quark/streams?limit=N`: how many lanes to list, the most behind first. */
const streamsParameters = new Map<string, Schema.Codec<unknown, string>>([["limit", Limit as Schema.Codec<unknown, string>]])

/** `/quark/profile?top=N`: how many hottest activations to list (1 to 100, default 10). */
const profileParameters = new Map<string, Schema.Codec<unknown, string>>([
  ["top", Digits.pipe(Schema.decodeTo(Schema.NumberFromString.check(Schema.isBetween({ minimum: 1, maximum: 100 })))) as Schema.Codec<unknown, string>]
])

const schemaReason = (cause: { readonly reasons: ReadonlyArray<unknown> }): string => {
  for (const reason of cause.reasons) {
    const error = (reason as { readonly error?: { readonly message?: unknown } }).error
    if (typeof error?.message === "string") return error.message
  }
  return "invalid value"
}

// ---------------------------------------------------------------------------------------
// /ready
// ---------------------------------------------------------------------------------------

/** What `/ready` looks at, found in the layer's context. */
interface ReadinessSources {
  readonly router: SiloShape["router"]
  readonly cluster: ClusterShape | undefined
  readonly stores: StoresShape
  readonly directory: DirectoryShape | undefined
  readonly reminders: RemindersShape | undefined
}

const readinessChecks = (
  options: EndpointsOptions,
  { cluster, directory, reminders, router, stores }: ReadinessSources
): ReadonlyArray<Effect.Effect<Diagnostics.ReadinessCheckResult>> => {
  const timeout = Duration.fromInputUnsafe(options.probeTimeout ?? Duration.seconds(2))
  const late = `no answer within ${Duration.format(timeout)}`
  const probe = (name: string, check: Effect.Effect<unknown, unknown>): Effect.Effect<Diagnostics.ReadinessCheckResult> =>
    check.pipe(
      Effect.timeoutOrElse({ duration: timeout, orElse: () => Effect.fail(late) }),
      Effect.matchCause({
        onSuccess: () => ({ name, ok: true }),
        // A driver's message may quote a URL with its password: the detail is redacted too.
        onFailure: (cause) => ({ name, ok: false, detail: Diagnostics.redact(describeCause(cause)) as string })
      })
    )
  const checks: Array<Effect.Effect<Diagnostics.ReadinessCheckResult>> = []

  checks.push(Effect.sync(() =>
    router.shuttingDown || router.draining ?
      { name: "draining", ok: false, detail: "the silo is draining, shutting down or stopped serving" } :
      { name: "draining", ok: true }
  ))

  if (cluster !== undefined) {
    checks.push(Effect.map(cluster.view, (view) => {
      const self = cluster.self
      if (self === undefined) return { name: "membership", ok: false, detail: "not joined" }
      if (!view.some((member) => member.identity.id === self.id)) {
        return { name: "membership", ok: false, detail: `${self.id} is not in the membership (left or declared dead)` }
      }
      if (router.lease !== undefined && !router.lease()) {
        return { name: "membership", ok: false, detail: `${self.id} holds no live membership lease` }
      }
      return { name: "membership", ok: true, detail: self.id }
    }))
  }

  // A key no actor uses: reading it is one round trip that finds nothing.
  const key = { type: "QuarkReadiness", id: "probe", record: "probe" }
  for (const name of options.stores ?? ["default"]) {
    checks.push(
      Effect.flatMap(Effect.exit(stores.get(name)), (found) =>
        found._tag === "Success" ?
          probe(`store:${name}`, found.value.state.read(key)) :
          // Only a store the program named is missing for sure; the default may just not be used.
          options.stores === undefined ?
          Effect.succeed({ name: `store:${name}`, ok: true, detail: "no such store: not checked" }) :
          Effect.succeed({ name: `store:${name}`, ok: false, detail: `no store named "${name}"` }))
    )
  }

  if (directory !== undefined) checks.push(probe("directory", directory.lookup({ type: "QuarkReadiness", id: "probe" })))
  if (reminders !== undefined) {
    checks.push(probe("reminders", reminders.store.get({ type: "QuarkReadiness", id: "probe", name: "probe" })))
  }

  for (const extra of options.readiness ?? []) checks.push(probe(extra.name, extra.check))
  return checks
}

const describeCause = (cause: { readonly reasons: ReadonlyArray<unknown> }): string => {
  for (const reason of cause.reasons) {
    const r = reason as { readonly _tag: string; readonly error?: unknown; readonly defect?: unknown }
    const value = r._tag === "Fail" ? r.error : r._tag === "Die" ? r.defect : undefined
    if (value === undefined) continue
    if (typeof value === "string") return value
    const message = (value as { readonly message?: unknown }).message
    const tag = (value as { readonly _tag?: unknown })._tag
    if (typeof message === "string" && message !== "") return typeof tag === "string" ? `${tag}: ${message}` : message
    return typeof tag === "string" ? tag : String(value)
  }
  return "interrupted"
}


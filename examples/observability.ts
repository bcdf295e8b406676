/**
 * `npm run example:observability` (needs `prometheus`: `apt-get install prometheus`): one
 * silo, watched the ways an operator watches one.
 *
 * - three actors call each other: `Order/<id>` reserves stock at `Inventory/<sku>` and
 *   charges `Payment/<customer>`; erin's card is declined (a typed `CardDeclined`), so her
 *   orders release their stock and fail with that error;
 * - `Telemetry.layer` keeps the metric catalog and traces every turn (`sampleRatio: 1`), with
 *   `Profiler.layer()` beneath it; `Endpoints.layer()` serves `/metrics`, `/ready` and
 *   `/quark/profile` on 127.0.0.1 (a free port);
 * - spans go out with effect's `OtlpTracer` (OTLP/HTTP, JSON) to a receiver this process runs
 *   (`support/otlpReceiver.ts`, standing in for a collector);
 * - a `prometheus` child process (temp dir, its own port) scrapes `/metrics` every second;
 * - 50 orders, in two rounds (10, then 40) with a scrape between them, so that `rate()` over
 *   the turn-duration histogram has an earlier sample to subtract; then it prints a PromQL
 *   query's result as Prometheus stored it, a p99 per actor type, the trace tree of one
 *   declined order, the hottest activation from `/quark/profile`, and `/ready`.
 *
 * Every wait is a bounded poll. Without `prometheus` (`QUARK_PROMETHEUS` names the binary, else
 * /usr/bin or PATH) it says how to install it and exits 1.
 */
import { NodeRuntime } from "@effect/platform-node"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Console, Effect, Layer, Schedule, Schema } from "effect"
import { FetchHttpClient } from "effect/http"
import { OtlpSerialization, OtlpTracer } from "effect/observability"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Silo, Telemetry } from "quark"
import { Diagnostics, Endpoints, Profiler } from "quark/telemetry/node"
import * as OtlpReceiver from "./support/otlpReceiver.ts"
import { formatTraceTree } from "./support/traceTree.ts"

// --- The actors ----------------------------------------------------------------------------------

class CardDeclined extends Schema.TaggedError<CardDeclined>()("CardDeclined", {
  customer: Schema.String,
  reason: Schema.String
}) {}

const Reserve = Rpc.make("Reserve", { payload: { qty: Schema.Number }, success: Schema.Number })
const Release = Rpc.make("Release", { payload: { qty: Schema.Number }, success: Schema.Number })
const Inventory = Actor.make("Inventory", [Reserve, Release])

const Charge = Rpc.make("Charge", { payload: { cents: Schema.Number }, success: Schema.String, error: CardDeclined })
const Payment = Actor.make("Payment", [Charge])

const Place = Rpc.make("Place", {
  payload: { sku: Schema.String, customer: Schema.String, qty: Schema.Number },
  success: Schema.String,
  error: CardDeclined
})
const Order = Actor.make("Order", [Place])

const InventoryLive = Inventory.toLayer(Effect.sync(() => {
  let stock = 1_000
  return Inventory.of({
    Reserve: ({ qty }) => Effect.sync(() => stock -= qty),
    Release: ({ qty }) => Effect.sync(() => stock += qty)
  })
}))

const PaymentLive = Payment.toLayer(Effect.gen(function*() {
  const customer = (yield* ActorContext).address.id
  let receipts = 0
  return Payment.of({
    Charge: () =>
      customer === "erin" ?
        Effect.fail(new CardDeclined({ customer, reason: "insufficient funds" })) :
        Effect.sync(() => `${customer}-receipt-${++receipts}`)
  })
}))

const OrderLive = Order.toLayer(Effect.sync(() =>
  Order.of({
    Place: ({ customer, qty, sku }) =>
      Effect.gen(function*() {
        const inventory = yield* Inventory.ref(sku)
        yield* inventory.Reserve({ qty })
        const payment = yield* Payment.ref(customer)
        // Declined: put the stock back, then fail with the payment's error.
        return yield* payment.Charge({ cents: 999 * qty }).pipe(
          Effect.tapError((error) => error._tag === "CardDeclined" ? inventory.Release({ qty }) : Effect.void)
        )
      }).pipe(Actor.orDieOnCallError)
  })
))

// --- The workload --------------------------------------------------------------------------------

const skus = ["widget", "gadget", "gizmo"]
const customers = ["alice", "bob", "carol", "dave", "erin"]
const firstRound = 10
const orders = 50
const shownOrder = `order-${orders}` // erin's: a declined one
const skuOf = (n: number) => skus[(n - 1) % skus.length]!
const customerOf = (n: number) => customers[(n - 1) % customers.length]!

/** Turns the first `n` orders make: Place, Reserve and Charge each, and a Release for each declined one. */
const turnsUpTo = (n: number) => {
  let turns = 0
  for (let i = 1; i <= n; i++) turns += customerOf(i) === "erin" ? 4 : 3
  return turns
}

/** Orders `from`..`to`, one at a time, each under a `checkout` span; how many were declined. */
const placeOrders = (from: number, to: number) =>
  Effect.gen(function*() {
    let declined = 0
    for (let n = from; n <= to; n++) {
      const id = `order-${n}`
      const placed = yield* Effect.flatMap(Order.ref(id), (order) => order.Place({ sku: skuOf(n), customer: customerOf(n), qty: 1 })).pipe(
        Actor.orDieOnCallError,
        Effect.withSpan("checkout", { attributes: { "order.id": id } }),
        Effect.result
      )
      if (placed._tag === "Failure") declined++
    }
    return declined
  })

// --- Prometheus ----------------------------------------------------------------------------------

class PrometheusMissing extends Schema.TaggedError<PrometheusMissing>()("PrometheusMissing", { looked: Schema.String }) {}
class PrometheusFailed extends Schema.TaggedError<PrometheusFailed>()("PrometheusFailed", { reason: Schema.String }) {}
class TimedOut extends Schema.TaggedError<TimedOut>()("TimedOut", { waitingFor: Schema.String }) {}

const executable = (file: string) => {
  try {
    fs.accessSync(file, fs.constants.X_OK)
    return fs.statSync(file).isFile()
  } catch {
    return false
  }
}

/**
 * `QUARK_PROMETHEUS` when set (a path to the binary; also how the test checks the message for a
 * machine without one), else `/usr/bin/prometheus` (the Debian package's), else the first on PATH.
 */
const findPrometheus = Effect.suspend(() => {
  const given = process.env.QUARK_PROMETHEUS
  const candidates = given !== undefined && given !== "" ?
    [given] :
    ["/usr/bin", ...(process.env.PATH ?? "").split(path.delimiter)].filter((dir) => dir !== "").map((dir) => path.join(dir, "prometheus"))
  const found = candidates.find(executable)
  return found === undefined ? Effect.fail(new PrometheusMissing({ looked: candidates.length === 1 ? candidates[0]! : "/usr/bin and PATH" })) : Effect.succeed(found)
})

/** A port nobody listens on right now (Prometheus takes its address on the command line). */
const freePort = Effect.promise(() =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer()
    server.once("error", reject)
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
  })
)

const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "quark-observability-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

interface PrometheusProcess {
  readonly child: ChildProcess
  readonly url: string
  /** Its last lines of output, for the message if it fails. */
  readonly output: Array<string>
}

const running = new Set<ChildProcess>()
// Should this process die without closing its scope, Prometheus must not outlive it.
process.on("exit", () => running.forEach((child) => child.kill("SIGKILL")))

/** Prometheus scraping `target` every second, for the life of the scope (SIGTERM, SIGKILL after 5 s). */
const startPrometheus = (binary: string, target: number) =>
  Effect.gen(function*() {
    const dir = yield* tempDir
    const config = path.join(dir, "prometheus.yml")
    fs.writeFileSync(
      config,
      [
        "global:",
        "  scrape_interval: 1s",
        "  scrape_timeout: 1s",
        "scrape_configs:",
        "  - job_name: quark",
        "    static_configs:",
        `      - targets: ["127.0.0.1:${target}"]`,
        ""
      ].join("\n")
    )
    const port = yield* freePort
    return yield* Effect.acquireRelease(
      Effect.sync((): PrometheusProcess => {
        const child = spawn(binary, [
          `--config.file=${config}`,
          `--storage.tsdb.path=${path.join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=warn"
        ], { stdio: ["ignore", "pipe", "pipe"] })
        running.add(child)
        const output: Array<string> = []
        const keep = (chunk: Buffer) => {
          output.push(chunk.toString())
          if (output.length > 50) output.shift()
        }
        child.stdout!.on("data", keep)
        child.stderr!.on("data", keep)
        child.on("error", (error) => output.push(String(error)))
        return { child, url: `http://127.0.0.1:${port}`, output }
      }),
      ({ child }) =>
        Effect.promise(() =>
          new Promise<void>((resolve) => {
            if (child.exitCode !== null || child.signalCode !== null) return resolve()
            const timer = setTimeout(() => child.kill("SIGKILL"), 5_000)
            child.once("exit", () => {
              clearTimeout(timer)
              running.delete(child)
              resolve()
            })
            child.kill("SIGTERM")
          })
        )
    )
  })

/** Fails if Prometheus has exited (polling it any longer would only time out). */
const alive = (prometheus: PrometheusProcess) =>
  Effect.suspend(() =>
    prometheus.child.exitCode === null && prometheus.child.signalCode === null ?
      Effect.void :
      Effect.fail(new PrometheusFailed({
        reason: `it exited (${prometheus.child.exitCode ?? prometheus.child.signalCode})${prometheus.output.length === 0 ? "" : `:\n${prometheus.output.join("")}`}`
      }))
  )

const QueryResponse = Schema.Struct({
  status: Schema.String,
  error: Schema.optional(Schema.String),
  data: Schema.optional(Schema.Struct({
    result: Schema.Array(Schema.Struct({
      metric: Schema.Record(Schema.String, Schema.String),
      value: Schema.Tuple([Schema.Number, Schema.String])
    }))
  }))
})

interface Sample {
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** An instant query's vector; undefined while Prometheus does not answer yet. A refused query fails. */
const query = (prometheus: PrometheusProcess, promql: string) =>
  Effect.gen(function*() {
    yield* alive(prometheus)
    const body = yield* Effect.promise(() =>
      fetch(`${prometheus.url}/api/v1/query?query=${encodeURIComponent(promql)}`).then((r) => r.json() as Promise<unknown>).catch(() => undefined)
    )
    if (body === undefined) return undefined
    const response = yield* Schema.decodeUnknownEffect(QueryResponse)(body).pipe(
      Effect.mapError((error) => new PrometheusFailed({ reason: `unexpected answer to ${promql}: ${error.message}` }))
    )
    if (response.status !== "success") {
      return yield* new PrometheusFailed({ reason: `${promql}: ${response.error ?? response.status}` })
    }
    return (response.data?.result ?? []).map((row): Sample => ({ labels: row.metric, value: Number(row.value[1]) }))
  })

/** Repeats `attempt` every 100 ms until it gives a value that `done` accepts, for at most `seconds`. */
const poll = <A, E>(waitingFor: string, seconds: number, attempt: Effect.Effect<A | undefined, E>, done: (a: A) => boolean) =>
  attempt.pipe(
    Effect.repeat({ until: (a) => a !== undefined && done(a), schedule: Schedule.spaced("100 millis") }),
    Effect.timeoutOrElse({ duration: `${seconds} seconds`, orElse: () => Effect.fail(new TimedOut({ waitingFor })) }),
    Effect.map((a) => a as A)
  )

/** Until Prometheus has stored a scrape holding every turn of the first `n` orders. */
const scrapedOrders = (prometheus: PrometheusProcess, n: number) =>
  poll(
    `Prometheus to scrape the turns of ${n} orders`,
    10,
    query(prometheus, `sum(quark_turns_total{job="quark"})`),
    (vector) => (vector[0]?.value ?? 0) >= turnsUpTo(n)
  )

// --- Printing ------------------------------------------------------------------------------------

/** Rows as columns, left-aligned but for the last (a number). */
const table = (header: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === cells.length - 1 ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)).join("  ")
  return [header, ...rows].map((cells) => `  ${line(cells)}`).join("\n")
}

const getJson = <A>(url: string, schema: Schema.Codec<A, unknown>) =>
  Effect.promise(() => fetch(url).then((reply) => reply.json())).pipe(Effect.flatMap(Schema.decodeUnknownEffect(schema)), Effect.orDie)

// --- The run -------------------------------------------------------------------------------------

const run = (binary: string, receiver: OtlpReceiver.OtlpReceiver) =>
  Effect.gen(function*() {
    const endpoints = yield* Endpoints.Endpoints
    const started = performance.now()
    const prometheus = yield* startPrometheus(binary, endpoints.address.port)
    yield* poll(
      "Prometheus to start",
      15,
      Effect.andThen(alive(prometheus), Effect.promise(() => fetch(`${prometheus.url}/-/ready`).then((r) => r.ok || undefined, () => undefined))),
      () => true
    )
    yield* Console.log(`silo endpoints on ${endpoints.url}; prometheus ${prometheus.url} scrapes ${endpoints.url}/metrics every 1 s`)

    const declinedFirst = yield* placeOrders(1, firstRound)
    yield* scrapedOrders(prometheus, firstRound)
    const declinedRest = yield* placeOrders(firstRound + 1, orders)
    yield* Console.log(`${orders} orders placed: ${orders - declinedFirst - declinedRest} paid, ${declinedFirst + declinedRest} declined (CardDeclined)`)
    yield* scrapedOrders(prometheus, orders)
    yield* Console.log(`prometheus has the final values ${((performance.now() - started) / 1000).toFixed(1)} s after it started`)

    // (a) what Prometheus stored, through its query API
    const turnsQuery = `sum by (type, message, outcome) (quark_turns_total{job="quark"}) > 0`
    const turns = (yield* query(prometheus, turnsQuery)) ?? []
    const rows = turns
      .map((s) => [s.labels.type ?? "", s.labels.message ?? "", s.labels.outcome ?? "", String(s.value)])
      .sort((a, b) => a.join(" ").localeCompare(b.join(" ")))
    yield* Console.log(`\n$ ${turnsQuery}\n${table(["type", "message", "outcome", "turns"], rows)}`)

    const p99Query = `histogram_quantile(0.99, sum by (le, type) (rate(quark_turn_duration_seconds_bucket{job="quark"}[1m])))`
    // Two samples in the window (after each round) make a rate; a quantile of nothing is NaN, skipped.
    const p99 = yield* poll("a p99 per type", 3, query(prometheus, p99Query), (vector) => vector.some((s) => Number.isFinite(s.value))).pipe(
      Effect.catchTag("TimedOut", () => Effect.succeed([] as ReadonlyArray<Sample>))
    )
    const p99Rows = p99.filter((s) => Number.isFinite(s.value))
      .map((s) => [s.labels.type ?? "", `${(s.value * 1000).toFixed(3)} ms`])
      .sort((a, b) => a[0]!.localeCompare(b[0]!))
    if (p99Rows.length > 0) yield* Console.log(`\n$ ${p99Query}\n${table(["type", "p99 turn"], p99Rows)}`)

    // (b) one order's trace, as the OTLP receiver decoded it
    const traceOf = (spans: ReadonlyArray<OtlpReceiver.ReceivedSpan>) => {
      const root = spans.find((s) => s.name === "checkout" && s.attributes["order.id"] === shownOrder)
      return root === undefined ? [] : spans.filter((s) => s.traceId === root.traceId)
    }
    const trace = yield* poll(
      `the spans of ${shownOrder} at the OTLP receiver`,
      10,
      Effect.sync(() => traceOf(receiver.spans)),
      (spans) => ["checkout", "Order/Place", "Inventory/Reserve", "Payment/Charge", "Inventory/Release"].every((name) => spans.some((s) => s.name === name))
    ).pipe(
      // Say whether nothing came or what came could not be read.
      Effect.mapError((error) =>
        error._tag === "TimedOut" && receiver.rejected.length > 0 ?
          new TimedOut({ waitingFor: `${error.waitingFor} (exports refused: ${receiver.rejected.join("; ")})` }) :
          error
      )
    )
    yield* Console.log(`\nthe trace of ${shownOrder} (OTLP/HTTP JSON, ${receiver.spans.length} spans received so far):`)
    yield* Console.log(formatTraceTree(trace, { attributes: ["order.id", "quark.actor.id", "error.type"] }))

    // (c) the silo's own endpoints
    const profile = yield* getJson(`${endpoints.url}/quark/profile?top=1`, Diagnostics.ProfileSnapshot)
    const hottest = profile.hottestByTurns[0]
    if (hottest !== undefined) {
      yield* Console.log(`\n/quark/profile: hottest activation ${hottest.type}/${hottest.id}, ${hottest.turns} turns (${hottest.millis.toFixed(1)} ms) in the last ${Math.round(profile.coveredSeconds)} s`)
    }
    const ready = yield* getJson(`${endpoints.url}/ready`, Diagnostics.ReadyResponse)
    yield* Console.log(`/ready: ${ready.ready} (${ready.checks.map((check) => `${check.name} ${check.ok ? "ok" : `failing: ${check.detail}`}`).join(", ")})`)
  }).pipe(Effect.scoped) // Prometheus stops before the silo does

const Live = (tracesUrl: string) =>
  Endpoints.layer().pipe(
    Layer.provideMerge(Layer.mergeAll(OrderLive, InventoryLive, PaymentLive)),
    Layer.provideMerge(Silo.layer()),
    // Every turn timed: a demo's two hundred turns, where the default (one in eight) would leave the histogram thin.
    Layer.provide(Telemetry.layer({ tracing: { sampleRatio: 1 }, metrics: { timeOneTurnIn: 1 } }).pipe(Layer.provideMerge(Profiler.layer()))),
    // Beneath everything: the silo's turns and the program's `checkout` spans share the tracer.
    Layer.provideMerge(
      OtlpTracer.layer({ url: tracesUrl, resource: { serviceName: "orders-silo" }, exportInterval: "100 millis" }).pipe(
        Layer.provide(OtlpSerialization.layerJson),
        Layer.provide(FetchHttpClient.layer)
      )
    )
  )

const fail = (message: string) => Effect.andThen(Console.error(message), Effect.sync(() => void (process.exitCode = 1)))

const main = Effect.gen(function*() {
  const binary = yield* findPrometheus
  const receiver = yield* OtlpReceiver.scoped
  yield* run(binary, receiver).pipe(Effect.provide(Live(receiver.tracesUrl)))
  yield* Console.log("done")
}).pipe(
  Effect.scoped,
  Effect.catchTags({
    PrometheusMissing: (error) =>
      fail(
        `This example runs Prometheus, and no \`prometheus\` binary was found (looked in ${error.looked}).\n` +
          "Install it, e.g. `sudo apt-get install prometheus` (Debian, Ubuntu), put one on PATH, or point QUARK_PROMETHEUS at one."
      ),
    PrometheusFailed: (error) => fail(`Prometheus failed: ${error.reason}`),
    TimedOut: (error) => fail(`Timed out waiting for ${error.waitingFor}.`),
    ServeError: (error) => fail(`The silo's endpoints could not listen: ${error.message}`)
  })
)

NodeRuntime.runMain(main)

/**
 * A real Prometheus (the Debian package's binary, started by this test) scrapes a silo's
 * `/metrics` every second; after a known number of asks, Prometheus' own query API must
 * report that count for the turn counter's series.
 *
 * Without a `prometheus` binary the test is skipped, except under `CI=true`, where it
 * fails (.ci/run installs the package). Every wait is a bounded poll of Prometheus' state.
 */
import { assert, describe, it } from "@effect/vitest"
import { type ChildProcess, spawn } from "node:child_process"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"
import { Effect, Layer, Metric, Schedule } from "effect"
import { Silo, Telemetry } from "../../src/index.ts"
import { Endpoints } from "../../src/Telemetry/node.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"
import { prometheusBinary } from "./support.ts"

const binary = prometheusBinary
const ci = process.env.CI === "true"

/** A port nobody listens on right now (Prometheus needs a number on its command line). */
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

/** A scratch directory for the life of the scope. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "quark-prometheus-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

/** Prometheus as a child process for the life of the scope; its output is kept for failure messages. */
const startPrometheus = (file: string, args: ReadonlyArray<string>) =>
  Effect.acquireRelease(
    Effect.sync(() => {
      const child = spawn(file, args, { stdio: ["ignore", "pipe", "pipe"] })
      const output: Array<string> = []
      const keep = (chunk: Buffer) => {
        output.push(chunk.toString())
        if (output.length > 200) output.shift()
      }
      child.stdout!.on("data", keep)
      child.stderr!.on("data", keep)
      return { child, output }
    }),
    ({ child }) => stop(child)
  )

const stop = (child: ChildProcess) =>
  Effect.promise(() =>
    new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      child.once("exit", () => resolve())
      child.kill("SIGTERM")
      // Prometheus flushes its head block on SIGTERM; one that hangs is killed.
      setTimeout(() => child.kill("SIGKILL"), 5_000).unref()
    })
  )

interface QueryResponse {
  readonly status: string
  readonly data?: { readonly result?: ReadonlyArray<{ readonly value?: readonly [number, string] }> }
}

/** The value of an instant query, or undefined while Prometheus has no sample (or is not up yet). */
const query = (base: string, promql: string): Effect.Effect<number | undefined> =>
  Effect.promise(async () => {
    try {
      const response = await fetch(`${base}/api/v1/query?query=${encodeURIComponent(promql)}`)
      if (!response.ok) return undefined
      const body = (await response.json()) as QueryResponse
      const value = body.data?.result?.[0]?.value?.[1]
      return value === undefined ? undefined : Number(value)
    } catch {
      return undefined
    }
  })

const calls = 42

describe.skipIf(binary === undefined && !ci)("Prometheus scrapes /metrics", () => {
  it.live(
    `reports quark_turns_total = ${calls} after ${calls} asks`,
    () =>
      Effect.gen(function*() {
        if (binary === undefined) {
          return yield* Effect.die(new Error("no prometheus binary (/usr/bin/prometheus or on PATH): install the Debian package `prometheus` (see .ci/run)"))
        }
        const { address } = yield* Endpoints.Endpoints
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
            `      - targets: ["127.0.0.1:${address.port}"]`,
            ""
          ].join("\n")
        )
        const port = yield* freePort
        const prometheus = yield* startPrometheus(binary, [
          `--config.file=${config}`,
          `--storage.tsdb.path=${path.join(dir, "data")}`,
          `--web.listen-address=127.0.0.1:${port}`,
          "--log.level=warn"
        ])

        const counter = yield* Counter.ref("scraped")
        for (let i = 0; i < calls; i++) yield* counter.Increment({ by: 1 })

        // Until a scrape after the asks has been stored: a wrong count above 42 ends the
        // wait too, and fails the assertion below; one below never ends it (and times out).
        const promql = `quark_turns_total{job="quark",type="Counter",message="Increment",outcome="ok"}`
        const value = yield* query(`http://127.0.0.1:${port}`, promql).pipe(
          Effect.repeat({ until: (v) => v !== undefined && v >= calls, schedule: Schedule.spaced("200 millis") }),
          Effect.timeoutOrElse({
            duration: "30 seconds",
            orElse: () =>
              Effect.die(new Error(`Prometheus did not report ${promql} >= ${calls} within 30 s:\n${prometheus.output.join("")}`))
          })
        )
        assert.strictEqual(value, calls)
      }).pipe(
        Effect.scoped,
        Effect.provide(Endpoints.layer().pipe(
          Layer.provideMerge(Silo.layerTest(counterLayer())),
          Layer.provideMerge(Telemetry.layer()),
          Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
        ))
      ),
    45_000
  )
})

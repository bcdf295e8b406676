/**
 * The examples run as the README says (`npm start`, `npm run example:*`): each exits 0 and
 * ends with what it is there to show, the Redis ones leave no key behind, and without a
 * Redis they say so, and how to start one, instead of a stack trace.
 *
 * `example:observability` needs a `prometheus` binary: without one its run is skipped, except
 * under `CI=true`, where it fails (.ci/run installs the package), as in
 * test/telemetry/Prometheus.test.ts; its message for a machine without one is checked anywhere.
 */
import { assert, describe, it } from "@effect/vitest"
import { spawnSync } from "node:child_process"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { Redis } from "ioredis"
import { redisUrl, unreachable } from "./persistence/services.ts"
import { prometheusBinary } from "./telemetry/support.ts"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..")

const runExample = (file: string, env: Record<string, string> = {}) => {
  const result = spawnSync(process.execPath, ["--conditions=quark-source", path.join(repo, "examples", file)], {
    cwd: repo,
    encoding: "utf8",
    env: { ...process.env, NODE_NO_WARNINGS: "1", ...env },
    timeout: 90_000
  })
  return { status: result.status, stdout: result.stdout, stderr: result.stderr, all: `${result.stdout}\n${result.stderr}` }
}

const prometheus = prometheusBinary
const ci = process.env.CI === "true"

/** Keys an example run may leave: its store prefix, or a cluster's membership, directory and state. */
const exampleKeys = async (): Promise<Array<string>> => {
  const redis = new Redis(redisUrl, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
  redis.on("error", () => {})
  try {
    await redis.connect().catch((cause) => Promise.reject(unreachable("Redis", redisUrl, cause)))
    const found: Array<string> = []
    for (const match of ["quark-example-*", "quark:{membership:example-*", "quark:{directory:example-*", "quark:example-*"]) {
      found.push(...(await redis.keys(match)))
    }
    return found
  } finally {
    redis.disconnect()
  }
}

describe("examples", () => {
  it("npm start: the bank demo on the in-memory silo", () => {
    const run = runExample("bank.ts")
    assert.strictEqual(run.status, 0, run.all)
    assert.include(run.stdout, "refused: deadlock: Account/alice -> Account/bob -> Account/alice")
    assert.match(run.stdout, /done\s*$/)
  }, 100_000)

  it("example:pipeline: workers crash and are restarted", () => {
    const run = runExample("pipeline.ts")
    assert.strictEqual(run.status, 0, run.all)
    assert.match(run.stdout, /done\s*$/)
  }, 100_000)

  it("example:persistence: state survives a restart, and the run deletes its keys", async () => {
    const before = await exampleKeys()
    const run = runExample("persistence.ts", { QUARK_REDIS_URL: redisUrl })
    assert.strictEqual(run.status, 0, run.all)
    assert.include(run.stdout, "a deposit over a stale version is refused: StateConflict")
    assert.match(run.stdout, /deleted the run's \d+ Redis keys/)
    assert.deepStrictEqual((await exampleKeys()).filter((k) => !before.includes(k)), [])
  }, 100_000)

  it("example:cluster: a killed silo's accounts come back on the others, and the run deletes its keys", async () => {
    const before = await exampleKeys()
    const run = runExample("cluster.ts", { QUARK_REDIS_URL: redisUrl })
    assert.strictEqual(run.status, 0, run.all)
    assert.include(run.stdout, "9/9 intact")
    assert.match(run.stdout, /deleted the run's \d+ Redis keys/)
    assert.deepStrictEqual((await exampleKeys()).filter((k) => !before.includes(k)), [])
  }, 100_000)

  it("example:reminders: renewals go on after a kill -9 of the silo owning the most buckets, none lost, and the run deletes its keys", async () => {
    const before = await exampleKeys()
    const run = runExample("reminders.ts", { QUARK_REDIS_URL: redisUrl })
    assert.strictEqual(run.status, 0, run.all)
    assert.match(run.stdout, /kill -9 silo [ABC]/)
    assert.include(run.stdout, "due times never charged: 0;")
    assert.include(run.stdout, "dead letters: 0")
    assert.include(run.stdout, "statements in Redis: 12/12 match")
    assert.match(run.stdout, /deleted the run's \d+ Redis keys/)
    assert.deepStrictEqual((await exampleKeys()).filter((k) => !before.includes(k)), [])
  }, 100_000)

  it("example:streams: sensor readings survive a kill -9 of the silo owning the most partitions, none lost or counted twice, and the run deletes its keys", async () => {
    const before = await exampleKeys()
    const run = runExample("streams.ts", { QUARK_REDIS_URL: redisUrl })
    assert.strictEqual(run.status, 0, run.all)
    assert.match(run.stdout, /kill -9 silo [ABC]/)
    assert.include(run.stdout, "ok  every reading reached its device and the fleet")
    assert.include(run.stdout, "ok  devices in Redis: 20/20 counted each of their readings once")
    assert.include(run.stdout, "ok  fleet total 1200 == 1200 published")
    assert.include(run.stdout, "ok  fleet per sensor: 20/20 streams counted once each")
    assert.notInclude(run.stdout, "FAILED")
    assert.match(run.stdout, /all checks passed: 1200 readings published, none lost, none counted twice/)
    assert.match(run.stdout, /deleted the run's \d+ Redis keys/)
    assert.deepStrictEqual((await exampleKeys()).filter((k) => !before.includes(k)), [])
  }, 100_000)

  it("without a Redis, the Redis examples say how to get one and exit 1", () => {
    // A port nothing listens on (the registry outage tests use ports of their own).
    const nowhere = "redis://127.0.0.1:1"
    for (const file of ["persistence.ts", "cluster.ts", "reminders.ts", "streams.ts"]) {
      const run = runExample(file, { QUARK_REDIS_URL: nowhere })
      assert.strictEqual(run.status, 1, `${file}: ${run.all}`)
      assert.include(run.stderr, `Cannot reach Redis at ${nowhere}`, file)
      assert.include(run.stderr, "QUARK_REDIS_URL", file)
      assert.notInclude(run.all, "    at ", `${file} prints no stack trace`)
    }
  }, 100_000)

  it.skipIf(prometheus === undefined && !ci)(
    "example:observability: Prometheus reports the workload's exact turn counts, and one order's trace nests",
    () => {
      assert.isDefined(prometheus, "no prometheus binary (/usr/bin/prometheus or on PATH): install the Debian package `prometheus` (see .ci/run)")
      const run = runExample("observability.ts", { QUARK_PROMETHEUS: prometheus! })
      assert.strictEqual(run.status, 0, run.all)
      assert.include(run.stdout, "50 orders placed: 40 paid, 10 declined (CardDeclined)")
      // The PromQL table: 50 orders, erin's 10 declined (each releasing its stock).
      for (const [type, message, outcome, turns] of [
        ["Inventory", "Release", "ok", 10],
        ["Inventory", "Reserve", "ok", 50],
        ["Order", "Place", "error", 10],
        ["Order", "Place", "ok", 40],
        ["Payment", "Charge", "error", 10],
        ["Payment", "Charge", "ok", 40]
      ] as const) {
        assert.match(run.stdout, new RegExp(`^ {2}${type} +${message} +${outcome} +${turns}$`, "m"), `${type} ${message} ${outcome}\n${run.stdout}`)
      }
      // order-50's trace: the turn under the checkout span, its calls under the turn.
      assert.match(run.stdout, /^└─ checkout {2}internal {2}\[orders-silo\] .*ERROR {2}order\.id=order-50$/m, run.stdout)
      assert.match(run.stdout, /^ {3}└─ Order\/Place {2}internal .*quark\.actor\.id=order-50 {2}error\.type=CardDeclined$/m, run.stdout)
      assert.match(run.stdout, /^ {6}├─ Inventory\/Reserve {2}internal .*quark\.actor\.id=gadget$/m, run.stdout)
      assert.match(run.stdout, /^ {6}├─ Payment\/Charge {2}internal .*ERROR {2}quark\.actor\.id=erin {2}error\.type=CardDeclined$/m, run.stdout)
      assert.match(run.stdout, /^ {6}└─ Inventory\/Release {2}internal .*quark\.actor\.id=gadget$/m, run.stdout)
      assert.match(run.stdout, /^\/quark\/profile: hottest activation Inventory\/gadget, 21 turns/m, run.stdout)
      assert.include(run.stdout, "/ready: true (draining ok, store:default ok)")
      assert.match(run.stdout, /done\s*$/)
    },
    100_000
  )

  it("without prometheus, example:observability says how to install it and exits 1", () => {
    const run = runExample("observability.ts", { QUARK_PROMETHEUS: path.join(repo, "no-such-prometheus") })
    assert.strictEqual(run.status, 1, run.all)
    assert.include(run.stderr, "no `prometheus` binary was found")
    assert.include(run.stderr, "apt-get install prometheus")
    assert.notInclude(run.all, "    at ", "no stack trace")
  }, 100_000)
})

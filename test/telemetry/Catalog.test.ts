import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Layer, Metric } from "effect"
import { PrometheusMetrics } from "effect/observability"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { MetricCatalog, Silo, Telemetry } from "../../src/index.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

/** The catalog as docs/observability.md lists it. */
const renderCatalog = (): string =>
  [
    "| metric | kind | unit | labels | meaning |",
    "| --- | --- | --- | --- | --- |",
    ...MetricCatalog.all.map((m) =>
      `| \`${m.name}\` | ${m.kind} | ${m.unit} | ${m.labels.map((l) => `\`${l}\``).join(", ")} | ${m.description} |`
    )
  ].join("\n")

describe("the metric catalog", () => {
  it("docs/observability.md lists it as the code defines it", () => {
    const doc = fs.readFileSync(path.join(repo, "docs/observability.md"), "utf8")
    const listed = doc.slice(doc.indexOf("<!-- catalog:start -->") + "<!-- catalog:start -->".length, doc.indexOf("<!-- catalog:end -->")).trim()
    assert.strictEqual(listed, renderCatalog(), `expected between the catalog markers:\n${renderCatalog()}`)
  })

  it("has unique names that follow Prometheus conventions", () => {
    const names = MetricCatalog.all.map((m) => m.name)
    assert.strictEqual(new Set(names).size, names.length)
    for (const m of MetricCatalog.all) {
      assert.match(m.name, /^quark_[a-z_]+$/)
      assert.strictEqual(m.name.endsWith("_total"), m.kind === "counter", m.name)
      if (m.unit === "seconds") assert.isTrue(m.name.endsWith("_seconds") || m.name.endsWith("_seconds_total"), m.name)
      assert.notInclude(m.labels, "id", `${m.name}: no actor id label`)
    }
  })

  it.effect("every quark series a silo exports is in it, with its kind", () =>
    Effect.gen(function*() {
      const counter = yield* Counter.ref("c-1")
      yield* counter.Increment({ by: 1 })
      yield* Effect.exit(counter.Decrement({ by: 5 }))
      yield* Effect.exit(counter.Crash({ message: "boom" }))
      assert.isTrue(Exit.isSuccess(yield* Effect.exit(counter.Get())))
      const text = yield* PrometheusMetrics.format()
      const byName = new Map(MetricCatalog.all.map((m) => [m.name, m]))
      const types = [...text.matchAll(/^# TYPE (quark_\w+) (\w+)$/gm)]
      assert.isAtLeast(types.length, 8)
      for (const [, name, type] of types) {
        const definition = byName.get(name!)
        assert.isDefined(definition, `${name} is not in the catalog`)
        assert.strictEqual(type, definition!.kind, name)
      }
    }).pipe(Effect.provide(Silo.layerTest(counterLayer()).pipe(
      Layer.provideMerge(Telemetry.layer()),
      Layer.provideMerge(Layer.succeed(Metric.MetricRegistry, new Map()))
    ))))
})

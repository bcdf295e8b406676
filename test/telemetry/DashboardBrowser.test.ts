/**
 * The dashboard in a real browser: headless Chromium (Debian's, driven by playwright-core)
 * against a 3-silo test cluster under a light load, the dashboard served by the first silo.
 * The cluster page lists the three silos; an actor searched by address shows its owner
 * silo; the dead-letter queue's Replay button replays (the counter moves, the letter
 * leaves); a crashed silo turns `dead` within the failure-detection time. Each page is
 * screenshotted: to a temporary directory, or to docs/images/dashboard-<page>.png with
 * QUARK_SCREENSHOTS=1 (docs/dashboard.md shows them).
 *
 * Chromium at /usr/bin/chromium (or QUARK_CHROMIUM): without it the suite is skipped
 * locally and fails under CI=true (`.ci/run` installs it).
 */
import { assert, describe, it } from "@effect/vitest"
import { Context, Effect, Fiber, Layer, Metric } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type Browser, chromium, type Page } from "playwright-core"
import { Cluster } from "../../src/Cluster/index.ts"
import { MemoryReminderStore, Reminders, Telemetry } from "../../src/index.ts"
import { Dashboard } from "../../src/Telemetry/node.ts"
import { TestCluster } from "../../src/testing.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"

// The functions given to `page.evaluate` and `page.waitForFunction` run in the page; the
// repository compiles without the DOM library, so the globals they use are declared loosely.
interface PageElement {
  readonly textContent: string | null
}
declare const document: {
  querySelector(selector: string): PageElement | null
  querySelectorAll(selector: string): ArrayLike<PageElement> & Iterable<PageElement>
  getElementById(id: string): PageElement | null
}
declare const location: { hash: string }

const executablePath = process.env.QUARK_CHROMIUM ?? "/usr/bin/chromium"
const present = fs.existsSync(executablePath)
if (!present && process.env.CI === "true") throw new Error(`CI=true and no Chromium at ${executablePath}: install it (apt-get install chromium)`)

const screenshots = process.env.QUARK_SCREENSHOTS === "1"
  ? path.join(import.meta.dirname, "../../docs/images")
  : fs.mkdtempSync(path.join(os.tmpdir(), "quark-dashboard-"))

const timings = { heartbeatInterval: "200 millis", suspectAfter: "600 millis", deadAfter: "1200 millis", refreshInterval: "200 millis" } as const
const deadAfterMillis = 1200

const shoot = (page: Page, name: string) =>
  Effect.promise(() => page.screenshot({ path: path.join(screenshots, `dashboard-${name}.png`), fullPage: true }))

/** Goes to a page of the dashboard and waits for its first drawing. */
const open = (page: Page, hash: string) =>
  Effect.promise(async () => {
    await page.evaluate((h) => {
      location.hash = h
    }, hash)
    await page.waitForSelector(`body[data-ready="${hash.split("/")[1]}"]`, { timeout: 10_000 })
  })

describe.skipIf(!present)("Dashboard in Chromium", () => {
  it.live("lists the silos, finds an actor's silo, replays a dead letter, shows a killed silo dead", () =>
    Effect.gen(function*() {
      const store = MemoryReminderStore.make("dashboard-browser")
      const cluster = yield* TestCluster.make({
        silos: 3,
        implementations: Layer.mergeAll(
          counterLayer(),
          Layer.effectDiscard(Layer.build(Reminders.layer({ store, deadLetterTells: true, bucketCount: 8 })))
        ),
        timings,
        config: { loadReportInterval: "200 millis" }
      })
      yield* cluster.settle
      const [first, second, third] = cluster.silos
      const dashboard = yield* Layer.build(Dashboard.layer().pipe(Layer.provide(Layer.succeedContext(first!.context))))
      const { url } = Context.get(dashboard, Dashboard.Dashboard)

      // A light load: 200 counters asked from the first silo, in batches, while the pages are open.
      const load = yield* Effect.forkScoped(first!.run(Effect.forever(Effect.gen(function*() {
        yield* Effect.forEach(
          Array.from({ length: 50 }, () => `load-${Math.floor(Math.random() * 200)}`),
          // (A call in flight to the silo killed below may fail: the load goes on.)
          (id) => Effect.ignore(Effect.flatMap(Counter.ref(id), (counter) => counter.Increment({ by: 1 }))),
          { concurrency: 10, discard: true }
        )
        yield* Effect.sleep("20 millis")
      }))))

      const browser: Browser = yield* Effect.acquireRelease(
        Effect.promise(() => chromium.launch({ executablePath, args: ["--no-sandbox"] })),
        (browser) => Effect.promise(() => browser.close())
      )
      const page = yield* Effect.promise(() => browser.newPage({ viewport: { width: 1280, height: 860 } }))
      yield* Effect.promise(() => page.goto(`${url}#/cluster`))
      yield* Effect.promise(() => page.waitForSelector("body[data-ready=cluster]"))

      // The cluster page lists the three silos, alive.
      yield* Effect.promise(() => page.waitForFunction(() => document.querySelectorAll("tr[data-silo]").length === 3, undefined, { timeout: 10_000 }))
      const listed = yield* Effect.promise(() => page.$$eval("tr[data-silo]", (rows) => rows.map((row) => row.getAttribute("data-silo"))))
      assert.deepStrictEqual([...listed].sort(), cluster.silos.map((silo) => silo.id).sort())
      // Wait for every silo's first load report and a few chart samples before the picture.
      yield* Effect.promise(() =>
        page.waitForFunction(() => [...document.querySelectorAll("tr[data-silo] td:nth-child(5)")].every((cell) => /\d/.test(cell.textContent ?? "")), undefined, { timeout: 10_000 })
      )
      yield* Effect.promise(() => page.waitForFunction(() => document.querySelectorAll("polyline").length >= 4, undefined, { timeout: 10_000 }))
      yield* shoot(page, "cluster")

      yield* open(page, "#/actors")
      yield* Effect.promise(() => page.waitForSelector("tr[data-type=Counter]", { timeout: 10_000 }))
      assert.strictEqual(yield* Effect.promise(() => page.locator("[data-heat]").count()), 3)
      yield* shoot(page, "actors")

      // An actor owned by the second silo, searched by address: the page names its silo.
      const id = yield* first!.run(Effect.gen(function*() {
        const view = yield* Cluster
        for (let i = 0; ; i++) {
          if ((yield* view.ownerOf({ type: "Counter", id: `find-${i}` })) === second!.id) return `find-${i}`
        }
      }))
      yield* first!.run(Effect.flatMap(Counter.ref(id), (counter) => counter.Increment({ by: 3 })))
      yield* Effect.promise(async () => {
        await page.fill("#type", "Counter")
        await page.fill("#id", id)
        await page.click("#search button")
        await page.waitForFunction((owner) => document.getElementById("owner")?.textContent === owner, second!.id, { timeout: 10_000 })
      })
      assert.include(yield* Effect.promise(() => page.locator("#here").innerText()), "no")
      yield* shoot(page, "actor")

      // A failed tell lands in the dead-letter queue; once the counter can pay, Replay delivers it.
      const counter = yield* first!.run(Counter.ref("dlq-1"))
      yield* first!.run(counter.tell.Decrement({ by: 5 }))
      yield* open(page, "#/reminders")
      yield* Effect.promise(() => page.waitForSelector("button[data-replay]", { timeout: 10_000 }))
      yield* shoot(page, "reminders")
      yield* first!.run(counter.Increment({ by: 10 }))
      yield* Effect.promise(async () => {
        await page.click("button[data-replay]")
        await page.waitForFunction(() => document.querySelectorAll("tr[data-letter]").length === 0, undefined, { timeout: 10_000 })
      })
      assert.match(yield* Effect.promise(() => page.locator("#action").innerText()), /^replayed /)
      assert.strictEqual(yield* first!.run(counter.Get()), 5)
      assert.deepStrictEqual(yield* first!.run(Reminders.deadLetters()), [])

      // Kill the third silo: its row turns dead within deadAfter, a refresh, a poll and slack.
      yield* open(page, "#/cluster")
      const killedAt = Date.now()
      yield* third!.crash
      yield* Effect.promise(() =>
        page.waitForFunction(
          (silo) => document.querySelector(`tr[data-silo="${silo}"] td.status`)?.textContent === "dead",
          third!.id,
          { timeout: 15_000 }
        )
      )
      const took = Date.now() - killedAt
      // deadAfter (1.2 s), then at most a membership refresh (0.2 s), the overview's age
      // (0.5 s) and the page's poll (1 s); 2 s more for a loaded machine.
      assert.isBelow(took, deadAfterMillis + 200 + 500 + 1000 + 2000, `dead after ${took} ms`)
      yield* shoot(page, "cluster-dead")
      yield* Fiber.interrupt(load)
    }).pipe(
      Effect.scoped,
      Effect.provide(Telemetry.layer({ logs: false })),
      Effect.provide(Layer.succeed(Metric.MetricRegistry, new Map()))
    ), 60_000)
})

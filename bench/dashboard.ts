/**
 * What an open dashboard costs a silo under load (issue 17: at most 5 % of
 * `local.ask.concurrent`): the same 100 callers asking 100 actors at random, on a silo with
 * the metric catalog (`Telemetry.layer`, what the dashboard reads turns per second from),
 * without the dashboard and with it served and polled ten times as hard as an open page
 * polls it: the overview every 100 ms (a page asks once a second; the overview is rebuilt at
 * most every 500 ms, the other polls are served the same body), by `fetch` in the same
 * process, so the client's own work is counted against the silo too (a browser elsewhere
 * would not be). Both variants run in one group, their rounds interleaved.
 */
import { Context, Layer, ManagedRuntime } from "effect"
import { Silo, Telemetry } from "../src/index.ts"
import { Dashboard } from "../src/Telemetry/node.ts"
import type { Variant } from "./Harness.ts"
import { concurrentRound, CounterLive } from "./local.ts"

type Disposable = Variant & { readonly dispose: () => Promise<void> }

export const askConcurrent = async (opsPerRound: number, served: boolean): Promise<Disposable> => {
  const id = served ? "dashboard.ask.concurrent.served" : "dashboard.ask.concurrent.off"
  const silo = CounterLive.pipe(Layer.provideMerge(Silo.layer()), Layer.provide(Telemetry.layer({ logs: false })))
  const runtime = served
    ? ManagedRuntime.make(Dashboard.layer().pipe(Layer.provideMerge(silo)))
    : ManagedRuntime.make(silo)
  const context = await runtime.context()
  let poller: ReturnType<typeof setInterval> | undefined
  let polls = 0
  let inFlight: Promise<void> = Promise.resolve()
  if (served) {
    const { url } = Context.get(context as unknown as Context.Context<Dashboard.Dashboard>, Dashboard.Dashboard)
    poller = setInterval(() => {
      inFlight = fetch(url + "/api/overview").then((response) => response.json()).then(() => void polls++)
    }, 100)
  }
  const round = concurrentRound(id, opsPerRound)
  return {
    id,
    round: () => (runtime as ManagedRuntime.ManagedRuntime<Silo.Silo, never>).runPromise(round),
    extra: (): Record<string, number> => (served ? { polls } : {}),
    dispose: async () => {
      if (poller !== undefined) clearInterval(poller)
      await inFlight
      await runtime.dispose()
    }
  }
}

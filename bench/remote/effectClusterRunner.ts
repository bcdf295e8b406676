/**
 * Child process: an effect/cluster runner (NodeClusterSocket, storage in PostgreSQL, see
 * cluster.ts) hosting the `BenchCounter` entity, listening on 127.0.0.1 at the port given as
 * the first argument (a free one if absent or 0). Prints `ready {"port":…}` once the runner is
 * registered and holds the shard of the entity named by the second argument (default
 * `counter-1`), which it checks by calling that entity itself; the count therefore starts
 * at 0 for the caller.
 */
import { Effect, ManagedRuntime } from "effect"
import { announceReady, onParentGone } from "./Peer.ts"
import { Counter, runnerLayer } from "./cluster.ts"
import { freePort, host } from "../rawNet.ts"


const port = Number(process.argv[2] ?? 0) || await freePort()
const entityId = process.argv[3] ?? "counter-1"
const runtime = ManagedRuntime.make(runnerLayer(host, port))
onParentGone(() => runtime.dispose())
await runtime.runPromise(Effect.gen(function*() {
  const counter = (yield* Counter.client)(entityId)
  // Waits (retrying) until this runner holds the entity's shard; `by: 0` leaves the count at 0.
  const n = yield* counter.Increment({ by: 0 })
  if (n !== 0) return yield* Effect.die(`fresh ${entityId} replied ${n}`)
}).pipe(Effect.timeout("20 seconds")))
announceReady({ port, entityId })

/**
 * The cost of `Profiler.record` (src/Telemetry/Profiler.ts), the profiler's per-turn hook:
 * 10 M calls against an empty function with the same signature and arguments, in the same
 * run (the baseline holds the loop and the argument reads). Two workloads:
 * - `hot`: 4 types × 5 messages over 200 activations (every key stays tracked);
 * - `churn`: 1 M distinct activations, each seen once per pass (every turn a new key: the
 *   activation table fills and prunes all the time, the worst case).
 * `node_modules/node/bin/node bench/profiler.ts`; not part of `npm run bench`. Median of 5
 * rounds, each on a fresh profiler.
 */
import { Profiler } from "../src/Telemetry/Profiler.ts"

const n = 10_000_000
const rounds = 5

interface Workload {
  readonly types: Array<string>
  readonly messages: Array<string>
  readonly keys: Array<string>
  readonly millis: Float64Array
}

const workload = (distinctKeys: number): Workload => {
  const typeNames = ["Counter", "Cart", "Session", "Room"]
  const messageNames = ["Get", "Add", "Remove", "Update", "Ping"]
  const size = 1 << 20
  const types: Array<string> = []
  const messages: Array<string> = []
  const keys: Array<string> = []
  const millis = new Float64Array(size)
  const keyNames = Array.from({ length: Math.min(distinctKeys, size) }, (_, i) => `id-${i}`)
  let seed = 42
  const random = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32
  for (let i = 0; i < size; i++) {
    const t = i % typeNames.length
    types.push(typeNames[t]!)
    messages.push(messageNames[Math.floor(random() * messageNames.length)]!)
    keys.push(keyNames[i % keyNames.length]!)
    // Turns of 1 µs to 1 ms, log-uniform.
    millis[i] = 0.001 * Math.pow(1000, random())
  }
  return { types, messages, keys, millis }
}

/**
 * Nothing but what the caller would have done anyway: in a silo the activation's key was
 * just used to route the turn, so its string is in cache. Reading its length here puts it
 * there for both loops (the churn workload's million keys are otherwise cold, and a first
 * touch, ~100 ns, would be charged to `record`).
 */
let sink = 0
const empty = (_type: string, _message: string, key: string, millis: number, _failed: boolean): void => {
  if (millis > 1e9 || key.length === 0) sink++
}

// Two loops, not one taking the function: each call site then sees a single target, as
// the silo's `onTurn` call does, and V8 may inline it there as it would in a silo.
const runBaseline = (w: Workload): number => {
  const mask = w.keys.length - 1
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const j = i & mask
    empty(w.types[j]!, w.messages[j]!, w.keys[j]!, w.millis[j]!, (i & 1023) === 0)
  }
  return (performance.now() - t0) * 1e6 / n
}

const runRecord = (profiler: Profiler, w: Workload): number => {
  const mask = w.keys.length - 1
  const t0 = performance.now()
  for (let i = 0; i < n; i++) {
    const j = i & mask
    const key = w.keys[j]!
    if (key.length === 0) sink++
    profiler.record(w.types[j]!, w.messages[j]!, key, w.millis[j]!, (i & 1023) === 0)
  }
  return (performance.now() - t0) * 1e6 / n
}

const median = (values: Array<number>): number => values.sort((a, b) => a - b)[Math.floor(values.length / 2)]!

for (const [name, w] of [["hot", workload(200)], ["churn", workload(1 << 20)]] as const) {
  const base: Array<number> = []
  const profiled: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    base.push(runBaseline(w))
    const profiler = new Profiler()
    profiled.push(runRecord(profiler, w))
    sink += profiler.snapshot(1).messages.length
  }
  const b = median(base)
  const p = median(profiled)
  console.log(
    `${name.padEnd(6)} baseline ${b.toFixed(1)} ns/op   record ${p.toFixed(1)} ns/op   ` +
      `ratio ${(p / b).toFixed(1)}×   record − baseline ${(p - b).toFixed(1)} ns`
  )
}
if (sink < 0) console.log(sink)

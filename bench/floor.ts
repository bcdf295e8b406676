/**
 * The floor of a one-way message in an Effect design, without any actor runtime: the
 * sender's step (`Effect.withFiber`) and the handler's effect (`Ref.updateAndGet`), alone
 * and together, in one loop. `node bench/floor.ts`; not part of `npm run bench`. It bounds
 * `local.tell` (see "Where the time goes" in docs/benchmarks.md).
 */
import { Effect, Ref } from "effect"

const n = 3_000_000
const rounds = 5

const rate = async (effect: Effect.Effect<void>): Promise<number> => {
  const rates: Array<number> = []
  for (let r = 0; r < rounds; r++) {
    const t0 = performance.now()
    await Effect.runPromise(effect)
    rates.push(n / (performance.now() - t0) * 1000)
  }
  return rates.sort((a, b) => a - b)[Math.floor(rounds / 2)]!
}

let sent = 0
const send = () =>
  Effect.withFiber(() => {
    sent++
    return Effect.void
  })
const results = {
  "sender step (withFiber)": await rate(Effect.gen(function*() {
    for (let i = 0; i < n; i++) yield* send()
  })),
  "handler step (Ref.updateAndGet)": await rate(Effect.gen(function*() {
    const ref = yield* Ref.make(0)
    for (let i = 0; i < n; i++) yield* Ref.updateAndGet(ref, (x) => x + 1)
  })),
  "both": await rate(Effect.gen(function*() {
    const ref = yield* Ref.make(0)
    for (let i = 0; i < n; i++) {
      yield* send()
      yield* Ref.updateAndGet(ref, (x) => x + 1)
    }
  }))
}
for (const [name, perSecond] of Object.entries(results)) {
  console.log(`${name.padEnd(34)} ${Math.round(perSecond).toLocaleString("en-US")}/s`)
}
if (sent !== 2 * rounds * n) throw new Error(`expected ${2 * rounds * n} sends, got ${sent}`)

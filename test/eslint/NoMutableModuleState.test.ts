/**
 * `quark/no-mutable-module-state`: actor code writing a module-level variable, or mutating a
 * module-level container, is reported at each write; state kept in the build, module-level
 * constants read by handlers, and writes outside actor code are not.
 */
import { noMutableModuleState } from "../../src/Eslint/rules/NoMutableModuleState.ts"
import { counter, prelude, ruleTester } from "./support.ts"

const get = "Get: () => Ref.get(count)"
const where = "Handler `Increment` of `Counter`"

ruleTester.run("no-mutable-module-state", noMutableModuleState, {
  valid: [
    // docs/concepts.md's Counter: state in a Ref made by the build.
    counter(`Increment: ({ by }) => Ref.updateAndGet(count, (n) => n + by),\n${get}`),
    // A `let` inside the build is per activation.
    counter(`Increment: ({ by }) => Effect.sync(() => (total += by)),\n${get}`, "let total = 0"),
    // Module-level constants read (not written) by handlers.
    `${prelude}
const limits = { max: 10 }
const names = new Map([["a", 1]])
let mode = "fast"
export const CounterLive = Counter.toLayer(Effect.succeed(Counter.of({
  Increment: ({ by }) => Effect.succeed(Math.min(by, limits.max) + (names.get("a") ?? 0) + mode.length),
  Get: () => Effect.succeed(0)
})))`,
    // Written outside actor code: module initialization.
    `${prelude}
let started = 0
const seen = new Set<string>()
started = Date.now()
seen.add("boot")
export const CounterLive = Counter.toLayer(Effect.succeed(Counter.of({
  Increment: ({ by }) => Effect.succeed(by + started + seen.size),
  Get: () => Effect.succeed(0)
})))`,
    // A const holding something not known to be a container (a Ref made at module level is
    // its own lint's business), and a file without actor code.
    `const cache = new Map<string, number>()\nexport const remember = (k: string) => cache.set(k, 1)`
  ],
  invalid: [
    {
      code: `${prelude}
let calls = 0
export const CounterLive = Counter.toLayer(Effect.succeed(Counter.of({
  Increment: ({ by }) => Effect.sync(() => { calls++; return by }),
  Get: () => Effect.succeed(calls)
})))`,
      errors: [{ messageId: "assign", data: { where, name: "calls" } }]
    },
    {
      // Each mutation of a module-level container, in handlers and the build.
      code: `${prelude}
const log: Array<number> = []
const byId = new Map<string, number>()
const totals = { sum: 0, nested: { n: 0 } }
export const CounterLive = Counter.toLayer(Effect.gen(function*() {
  const { address } = yield* ActorContext
  byId.set(address.id, 0)
  return Counter.of({
    Increment: ({ by }) => Effect.sync(() => {
      log.push(by)
      totals.sum += by
      totals.nested.n++
      delete (totals as any).extra
      Object.assign(totals, { sum: 0 })
      return by
    }),
    Get: () => Effect.succeed(log.length)
  })
}))`,
      errors: [
        { messageId: "mutate", data: { where: "The build of `Counter`", how: "calls .set() on", name: "byId" } },
        { messageId: "mutate", data: { where, how: "calls .push() on", name: "log" } },
        { messageId: "mutate", data: { where, how: "assigns a property of", name: "totals" } },
        { messageId: "mutate", data: { where, how: "updates a property of", name: "totals" } },
        { messageId: "mutate", data: { where, how: "deletes a property of", name: "totals" } },
        { messageId: "mutate", data: { where, how: "calls Object.assign on", name: "totals" } }
      ]
    },
    {
      // examples/persistence.ts's replay counter: a process-wide total across activations.
      code: `${prelude}
let replayed = 0
export const CounterLive = Counter.toLayer(Effect.gen(function*() {
  const reduce = (n: number) => { replayed++; return n }
  return Counter.of({ Increment: ({ by }) => Effect.succeed(reduce(by)), Get: () => Effect.succeed(replayed) })
}))`,
      errors: [{ messageId: "assign", data: { where: "The build of `Counter`", name: "replayed" } }]
    }
  ]
})

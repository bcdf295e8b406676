/**
 * `quark/no-await-in-handler`: `await`, `for await` and `.then(…)` in actor code are reported,
 * except inside the thunk given to `Effect.promise` / `Effect.tryPromise`, where a promise
 * belongs; the same outside actor code is not.
 */
import { noAwaitInHandler } from "../../src/Eslint/rules/NoAwaitInHandler.ts"
import { counter, prelude, ruleTester } from "./support.ts"

const where = "handler `Increment` of `Counter`"
const get = "Get: () => Ref.get(count)"

ruleTester.run("no-await-in-handler", noAwaitInHandler, {
  valid: [
    // Inside Effect.promise / Effect.tryPromise (function or { try }).
    counter(`Increment: ({ by }) => Effect.promise(async () => { const r = await fetch("x"); return by + (await r.json()) }),
      ${get}`),
    counter(`Increment: ({ by }) => Effect.tryPromise({ try: () => fetch("x").then((r) => r.status + by), catch: () => "failed" }).pipe(Effect.orDie),
      ${get}`),
    counter(`Increment: ({ by }) => Effect.tryPromise(async () => { for await (const _ of [1]) {} return by }).pipe(Effect.orDie),
      ${get}`),
    // Outside actor code (examples/bank.ts's entry point, a script helper).
    `${prelude}
export const main = async () => { await fetch("x") }
Effect.runPromise(Effect.void).then(() => console.log("done"))`
  ],
  invalid: [
    {
      // Fire and forget: the turn ends, the continuation runs beside the next message.
      code: counter(`Increment: ({ by }) => Effect.sync(() => { fetch("x").then((r) => r.status); return by }),
      ${get}`),
      errors: [{ messageId: "await", data: { what: "`.then(…)`", where } }]
    },
    {
      code: counter(`Increment: ({ by }) => Effect.forEach([by], async (n) => { await fetch("x"); return n }),
      ${get}`),
      errors: [{ messageId: "await", data: { what: "`await`", where } }]
    },
    {
      code: counter(`Increment: ({ by }) => Effect.sync(async () => { for await (const n of [by]) console.log(n) }).pipe(Effect.as(by)),
      ${get}`),
      errors: [{ messageId: "await", data: { what: "`for await`", where } }]
    },
    {
      // In the build too.
      code: counter(`Increment: ({ by }) => Effect.succeed(by),
      ${get}`, `void fetch("warm-up").then(() => undefined)`),
      errors: [{ messageId: "await", data: { what: "`.then(…)`", where: "the build of `Counter`" } }]
    },
    {
      // The promise thunk of an outer call does not cover an async callback elsewhere.
      code: counter(`Increment: ({ by }) => Effect.flatMap(Effect.promise(() => fetch("x")), () => Effect.sync(async () => { await Promise.resolve(by) })).pipe(Effect.as(by)),
      ${get}`),
      errors: [{ messageId: "await", data: { what: "`await`", where } }]
    }
  ]
})

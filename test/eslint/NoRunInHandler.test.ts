/**
 * `quark/no-run-in-handler`: `Effect.run…` and a runtime's `run…` in actor code are reported;
 * running the program at the top level (every example does) and yielding or forking the
 * effect inside the handler are not.
 */
import { noRunInHandler } from "../../src/Eslint/rules/NoRunInHandler.ts"
import { counter, prelude, ruleTester } from "./support.ts"

const where = "handler `Increment` of `Counter`"

ruleTester.run("no-run-in-handler", noRunInHandler, {
  valid: [
    // The program's entry point, outside actor code (examples/bank.ts).
    `${counter(`Increment: ({ by }) => Ref.updateAndGet(count, (n) => n + by),
      Get: () => Ref.get(count)`)}
Effect.runPromise(Effect.provide(Effect.void, CounterLive)).then(() => console.log("done"))`,
    // Yielding and forking in the turn.
    counter(`Increment: ({ by }) => Effect.gen(function*() {
        yield* Effect.fork(Effect.log("later"))
        return yield* Ref.updateAndGet(count, (n) => n + by)
      }),
      Get: () => Ref.get(count)`, `yield* Effect.forkScoped(Effect.never)`),
    // A method named like a runner on something that is not called.
    counter(`Increment: ({ by }) => Effect.succeed(by),
      Get: () => Effect.succeed(typeof Effect.runSync === "function" ? 1 : 0)`)
  ],
  invalid: [
    {
      code: counter(`Increment: ({ by }) => Effect.sync(() => Effect.runSync(Ref.updateAndGet(count, (n) => n + by))),
      Get: () => Ref.get(count)`),
      errors: [{ messageId: "run", data: { call: "Effect.runSync", where } }]
    },
    {
      code: counter(`Increment: ({ by }) => Effect.promise(() => Effect.runPromise(Effect.succeed(by))),
      Get: () => Ref.get(count)`),
      errors: [{ messageId: "run", data: { call: "Effect.runPromise", where } }]
    },
    {
      // A ManagedRuntime's run* and runFork in the build.
      code: counter(`Increment: ({ by }) => Effect.sync(() => { runtime.runPromiseExit(Effect.succeed(by)); return by }),
      Get: () => Ref.get(count)`, `Effect.runFork(Effect.log("background"))`).replace(
        "const Counter",
        "declare const runtime: { runPromiseExit: (e: unknown) => unknown }\nconst Counter"
      ),
      errors: [
        { messageId: "run", data: { call: "Effect.runFork", where: "the build of `Counter`" } },
        { messageId: "run", data: { call: "runtime.runPromiseExit", where } }
      ]
    },
    {
      // A runner imported by name from effect.
      code: `import { runSync } from "effect/Effect"
${counter(`Increment: ({ by }) => Effect.sync(() => runSync(Effect.succeed(by))),
      Get: () => Ref.get(count)`)}`,
      errors: [{ messageId: "run", data: { call: "runSync", where } }]
    },
    {
      code: `${prelude}
export const CounterLive = Counter.toLayer(Effect.succeed(Counter.of({
  Increment: ({ by }) => Effect.sync(() => Effect.runFork(Effect.succeed(by))).pipe(Effect.as(by)),
  Get: () => Effect.succeed(0)
})))`,
      errors: [{ messageId: "run", data: { call: "Effect.runFork", where } }]
    }
  ]
})

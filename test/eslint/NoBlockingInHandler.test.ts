/**
 * `quark/no-blocking-in-handler`: sync I/O, `Atomics.wait` and busy waits in actor code are
 * reported with the handler (or build) they are in; the same calls outside actor code, the
 * asynchronous forms, Effect's own `…Sync` functions and loops that yield are not.
 */
import { noBlockingInHandler } from "../../src/Eslint/rules/NoBlockingInHandler.ts"
import { counter, prelude, ruleTester } from "./support.ts"

ruleTester.run("no-blocking-in-handler", noBlockingInHandler, {
  valid: [
    // Outside actor code: module initialization may read a file.
    `${prelude}\nconst config = fs.readFileSync("config.json", "utf8")\n`,
    // The asynchronous form, inside Effect.
    counter(`Increment: ({ by }) => Effect.promise(() => fs.promises.readFile("x")).pipe(Effect.as(by)),
      Get: () => Ref.get(count)`),
    // Effect's own …Sync functions are not blocking I/O.
    counter(`Increment: ({ by }) => Effect.sync(() => Schema.decodeUnknownSync(Schema.Int)(by)),
      Get: () => Ref.get(count)`),
    // A loop on the clock that yields each round is a wait, not a spin.
    counter(`Increment: ({ by }) => Effect.gen(function*() {
        const end = Date.now() + 10
        while (Date.now() < end) yield* Effect.sleep("1 millis")
        return by
      }),
      Get: () => Ref.get(count)`),
    // A loop that does not read the clock.
    counter(`Increment: ({ by }) => Effect.sync(() => { let n = 0; while (n < by) n++; return n }),
      Get: () => Ref.get(count)`),
    // An Effect service's \`.of\` is not a handler table (test/chaos/siloMain.ts's Recorder).
    `import * as Fs from "node:fs"
     import { Context, Effect, Layer } from "effect"
     class Recorder extends Context.Service<Recorder, { readonly turn: (s: string) => void }>()("Recorder") {}
     export const RecorderLive = Layer.effect(Recorder, Effect.sync(() => Recorder.of({ turn: (s) => void Fs.writeSync(1, s) })))`,
    // A name called readFileSync that is not fs's.
    counter(`Increment: ({ by }) => Effect.sync(() => readFileSync(by)),
      Get: () => Ref.get(count)`, "const readFileSync = (n: number) => n")
  ],
  invalid: [
    {
      code: counter(`Increment: ({ by }) => Effect.sync(() => fs.readFileSync("x").length + by),
      Get: () => Ref.get(count)`),
      errors: [{ messageId: "blockingCall", data: { call: "fs.readFileSync", where: "handler `Increment` of `Counter`" } }]
    },
    {
      code: counter(`Increment: ({ by }) => Effect.sync(() => { execSync("sync"); return by }),
      Get: () => Ref.get(count)`),
      errors: [{ messageId: "blockingCall", data: { call: "execSync", where: "handler `Increment` of `Counter`" } }]
    },
    {
      // In the build: it runs on the same event loop, once per activation.
      code: counter(`Increment: ({ by }) => Ref.updateAndGet(count, (n) => n + by),
      Get: () => Ref.get(count)`, `const seed = fs.readFileSync("seed", "utf8")`),
      errors: [{ messageId: "blockingCall", data: { call: "fs.readFileSync", where: "the build of `Counter`" } }]
    },
    {
      code: `import { readFileSync as read } from "fs"
${counter(`Increment: ({ by }) => Effect.sync(() => read("x").length + by),
      Get: () => Ref.get(count)`).replace('import * as fs from "node:fs"', "")}`,
      errors: [{ messageId: "blockingCall", data: { call: "read", where: "handler `Increment` of `Counter`" } }]
    },
    {
      code: counter(`Increment: ({ by }) => Effect.sync(() => { Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, by); return by }),
      Get: () => Ref.get(count)`),
      errors: [{ messageId: "blockingCall", data: { call: "Atomics.wait", where: "handler `Increment` of `Counter`" } }]
    },
    {
      code: counter(`Increment: ({ by }) => Effect.sync(() => {
        const end = Date.now() + by
        while (Date.now() < end) {}
        return by
      }),
      Get: () => Ref.get(count)`),
      errors: [{ messageId: "busyWait", data: { where: "handler `Increment` of `Counter`" } }]
    },
    {
      code: counter(`Increment: ({ by }) => Effect.sync(() => {
        const start = performance.now()
        let spins = 0
        do { spins++ } while (performance.now() - start < by)
        for (; new Date().getTime() < start + by;) spins++
        return spins
      }),
      Get: () => Ref.get(count)`),
      errors: [{ messageId: "busyWait" }, { messageId: "busyWait" }]
    },
    {
      // A handler given by name: the named function is the handler.
      code: `${prelude}
const get = () => Effect.sync(() => fs.statSync("x").size)
export const CounterLive = Counter.toLayer(Effect.succeed(Counter.of({ Increment: ({ by }) => Effect.succeed(by), Get: get })))`,
      errors: [{ messageId: "blockingCall", data: { call: "fs.statSync", where: "handler `Get` of `Counter`" } }]
    },
    {
      // A child actor's build and handlers are actor code too.
      code: `${prelude}
const Parent = Actor.make("Parent", [Rpc.make("Start")])
export const ParentLive = Parent.toLayer(Effect.gen(function*() {
  const ctx = yield* ActorContext
  return Parent.of({
    Start: () => ctx.spawn(Counter, Effect.succeed(Counter.of({
      Increment: ({ by }) => Effect.sync(() => fs.readFileSync("x").length + by),
      Get: () => Effect.succeed(0)
    })), {}).pipe(Effect.asVoid)
  })
}))`,
      errors: [{ messageId: "blockingCall", data: { call: "fs.readFileSync", where: "handler `Increment` of `Counter`" } }]
    }
  ]
})

/**
 * Defining and calling actors: typed asks and tells, declared errors, unknown types,
 * id validation, untyped dispatch, actors calling actors, and handler defects.
 */
import { assert, describe, it } from "@effect/vitest"
import { Cause, Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorDefect, DeclaredError, InvalidActorId, maxIdLength, MessageDecodeError, Silo, UnknownActorType, UnknownMessage } from "../src/index.ts"
import {
  Clerk,
  clerkLayer,
  Greeter,
  greeterLayer,
  Ping,
  pingLayer,
  pongLayer
} from "./fixtures/CallsFixtures.ts"
import { Counter, counterLayer, Lifecycle, Overdrawn } from "./fixtures/Counter.ts"

/** Ids of the live activations of `type` (all types when omitted), sorted. */
const liveIds = (type?: string) =>
  Effect.flatMap(Silo.Silo, (silo) => silo.activations(type)).pipe(
    Effect.map((rows) => rows.map((row) => `${row.address.type}/${row.address.id}`).sort())
  )

/** A contract that no silo in this file ever registers. */
const Ghost = Actor.make("Ghost", [
  Rpc.make("Boo", { success: Schema.String }),
  Rpc.make("Haunt", { payload: { room: Schema.String }, success: Schema.Int })
])

describe("Calls", () => {
  describe("ask and tell", () => {
    it.effect("ask returns the typed success", () =>
      Effect.gen(function*() {
        const counter = yield* Counter.ref("ask-1")
        const first: number = yield* counter.Increment({ by: 2 })
        const second = yield* counter.Increment({ by: 3 })
        assert.strictEqual(first, 2)
        assert.strictEqual(second, 5)
        assert.strictEqual(yield* counter.Get(), 5)
        assert.deepStrictEqual(counter.address, { type: "Counter", id: "ask-1" })
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))

    it.effect("a declared error arrives typed in the error channel", () =>
      Effect.gen(function*() {
        const counter = yield* Counter.ref("overdrawn-1")
        yield* counter.Increment({ by: 1 })
        const error = yield* Effect.flip(counter.Decrement({ by: 4 }))
        assert.instanceOf(error, Overdrawn)
        assert.strictEqual(error._tag, "Overdrawn")
        // Narrowed by tag: the declared error's fields are typed.
        const by = yield* counter.Decrement({ by: 4 }).pipe(
          Effect.catchTag("Overdrawn", (e) => Effect.succeed(-e.by))
        )
        assert.strictEqual(by, -3)
        // The failed turn did not change the state.
        assert.strictEqual(yield* counter.Get(), 1)
        assert.strictEqual(yield* counter.Decrement({ by: 1 }), 0)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))

    it.effect("tell delivers (observed with a later ask)", () =>
      Effect.gen(function*() {
        const counter = yield* Counter.ref("tell-1")
        // To a fresh id: the tell creates the activation.
        yield* counter.tell.Increment({ by: 4 })
        assert.strictEqual(yield* counter.Get(), 4)
        // To an active, idle activation, several in a row.
        yield* counter.tell.Increment({ by: 1 })
        yield* counter.tell.Increment({ by: 10 })
        yield* counter.tell.Decrement({ by: 2 })
        assert.strictEqual(yield* counter.Get(), 13)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))

    it.effect("a tell whose handler fails with a declared error does not affect later messages", () =>
      Effect.gen(function*() {
        const counter = yield* Counter.ref("tell-fail-1")
        yield* counter.tell.Decrement({ by: 1 })
        yield* counter.tell.Increment({ by: 2 })
        assert.strictEqual(yield* counter.Get(), 2)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))
  })

  describe("unknown actor type", () => {
    it.effect("ask and tell to a contract never registered fail with UnknownActorType; nothing is activated", () =>
      Effect.gen(function*() {
        const ghost = yield* Ghost.ref("g-1")
        const askError = yield* Effect.flip(ghost.Boo())
        assert.instanceOf(askError, UnknownActorType)
        assert.strictEqual((askError as UnknownActorType).type, "Ghost")
        const askWithPayload = yield* Effect.flip(ghost.Haunt({ room: "attic" }))
        assert.instanceOf(askWithPayload, UnknownActorType)
        const tellError = yield* Effect.flip(ghost.tell.Boo())
        assert.instanceOf(tellError, UnknownActorType)
        assert.strictEqual(tellError.type, "Ghost")
        assert.deepStrictEqual(yield* liveIds(), [])
        assert.deepStrictEqual(yield* liveIds("Ghost"), [])
        // The silo still serves the registered type.
        const counter = yield* Counter.ref("c-1")
        assert.strictEqual(yield* counter.Increment({ by: 1 }), 1)
        assert.deepStrictEqual(yield* liveIds(), ["Counter/c-1"])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))
  })

  describe("actor ids", () => {
    it.effect("an empty id fails with InvalidActorId at ref", () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Counter.ref(""))
        assert.instanceOf(error, InvalidActorId)
        assert.strictEqual(error.type, "Counter")
        assert.strictEqual(error.id, "")
        assert.isTrue(error.reason.length > 0)
        assert.deepStrictEqual(yield* liveIds(), [])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))

    it.effect("a 257-character id fails with InvalidActorId at ref", () =>
      Effect.gen(function*() {
        assert.strictEqual(maxIdLength, 256)
        const id = "x".repeat(257)
        const error = yield* Effect.flip(Counter.ref(id))
        assert.instanceOf(error, InvalidActorId)
        assert.strictEqual(error.type, "Counter")
        assert.strictEqual(error.id, id)
        assert.deepStrictEqual(yield* liveIds(), [])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))

    it.effect("a 256-character id works", () =>
      Effect.gen(function*() {
        const id = "y".repeat(256)
        const counter = yield* Counter.ref(id)
        assert.strictEqual(yield* counter.Increment({ by: 7 }), 7)
        assert.strictEqual(yield* counter.Get(), 7)
        assert.deepStrictEqual(yield* liveIds("Counter"), [`Counter/${id}`])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))
  })

  describe("Silo.dispatch (untyped input)", () => {
    const layer = () => Silo.layerTest(counterLayer(), clerkLayer)

    it.effect("succeeds, and the result comes back encoded with the success schema", () =>
      Effect.gen(function*() {
        const silo = yield* Silo.Silo
        assert.strictEqual(yield* silo.dispatch({ type: "Counter", id: "d-1", tag: "Increment", payload: { by: 3 } }), 3)
        assert.strictEqual(yield* silo.dispatch({ type: "Counter", id: "d-1", tag: "Get", payload: undefined }), 3)
        // Same state as a typed ref sees.
        const counter = yield* Counter.ref("d-1")
        assert.strictEqual(yield* counter.Get(), 3)
        // The payload is decoded (string -> number) and the success encoded (number -> string).
        const doubled = yield* silo.dispatch({ type: "Clerk", id: "k-1", tag: "Double", payload: { amount: "21" } })
        assert.strictEqual(doubled, "42")
        const clerk = yield* Clerk.ref("k-1")
        assert.strictEqual(yield* clerk.Total(), 21)
        assert.strictEqual(yield* clerk.Double({ amount: 5 }), 10)
      }).pipe(Effect.provide(layer())))

    it.effect("a declared error comes back encoded in a DeclaredError; every error is a tag to catch", () =>
      Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const error = yield* Effect.flip(
          silo.dispatch({ type: "Counter", id: "d-2", tag: "Decrement", payload: { by: 1 } })
        )
        assert.instanceOf(error, DeclaredError)
        assert.deepStrictEqual((error as DeclaredError).error, { _tag: "Overdrawn", by: 1 })
        assert.notInstanceOf((error as DeclaredError).error, Overdrawn, "encoded, as a gateway would send it")
        assert.deepStrictEqual((error as DeclaredError).address, { type: "Counter", id: "d-2" })
        assert.strictEqual((error as DeclaredError).tag, "Decrement")

        // The error channel is a union of tagged errors: each is caught by its tag, and what
        // is left after catching them all is `never` (a compile error here otherwise).
        const outcome = (request: Silo.UntypedRequest) =>
          silo.dispatch(request).pipe(
            Effect.catchTags({
              DeclaredError: (e) => Effect.succeed(`declared ${(e.error as { _tag: string })._tag}`),
              UnknownActorType: (e) => Effect.succeed(`no type ${e.type}`),
              UnknownMessage: (e) => Effect.succeed(`no message ${e.tag}`),
              InvalidActorId: (e) => Effect.succeed(`bad id ${e.id}`),
              MessageDecodeError: (e) => Effect.succeed(`bad payload for ${e.tag}`),
              ActivationFailed: () => Effect.succeed("activation failed"),
              MailboxFull: () => Effect.succeed("full"),
              Deadlock: () => Effect.succeed("deadlock"),
              CallTimeout: () => Effect.succeed("timeout"),
              OutcomeUnknown: () => Effect.succeed("unknown"),
              ActorDefect: () => Effect.succeed("defect"),
              ActorUnavailable: () => Effect.succeed("unavailable"),
              ActorStopped: () => Effect.succeed("stopped"),
              PayloadTooLarge: () => Effect.succeed("too large"),
              NoHostForType: () => Effect.succeed("no host"),
              Unauthorized: () => Effect.succeed("unauthorized"),
              Unauthenticated: () => Effect.succeed("unauthenticated")
            })
          )
        const handled: Effect.Effect<unknown, never> = outcome({ type: "Counter", id: "d-2", tag: "Decrement", payload: { by: 2 } })
        assert.strictEqual(yield* handled, "declared Overdrawn")
        assert.strictEqual(yield* outcome({ type: "Counter", id: "d-2", tag: "Nope", payload: {} }), "no message Nope")
        assert.strictEqual(yield* outcome({ type: "Counter", id: "", tag: "Get", payload: undefined }), "bad id ")
        assert.strictEqual(yield* outcome({ type: "Counter", id: "d-2", tag: "Get", payload: undefined }), 0)
      }).pipe(Effect.provide(layer())))

    it.effect("refOrDie: no InvalidActorId in the error channel; an invalid id is a defect", () =>
      Effect.gen(function*() {
        const counter: Actor.Ref<typeof Counter> = yield* Counter.refOrDie("r-1")
        assert.strictEqual(yield* counter.Increment({ by: 2 }), 2)
        const exit = yield* Effect.exit(Counter.refOrDie(""))
        assert.isTrue(exit._tag === "Failure" && Cause.hasDies(exit.cause), "an empty id dies")
        const failure = exit._tag === "Failure" ? Cause.squash(exit.cause) : undefined
        assert.instanceOf(failure, InvalidActorId)
      }).pipe(Effect.provide(layer())))

    it.effect("unknown type, unknown message, invalid ids and undecodable payloads fail; no activation is created", () =>
      Effect.gen(function*() {
        const silo = yield* Silo.Silo

        const unknownType = yield* Effect.flip(
          silo.dispatch({ type: "Ghost", id: "g-1", tag: "Boo", payload: undefined })
        )
        assert.instanceOf(unknownType, UnknownActorType)
        assert.strictEqual((unknownType as UnknownActorType).type, "Ghost")

        const unknownMessage = yield* Effect.flip(
          silo.dispatch({ type: "Counter", id: "d-3", tag: "Reset", payload: {} })
        )
        assert.instanceOf(unknownMessage, UnknownMessage)
        assert.strictEqual((unknownMessage as UnknownMessage).type, "Counter")
        assert.strictEqual((unknownMessage as UnknownMessage).tag, "Reset")

        const emptyId = yield* Effect.flip(
          silo.dispatch({ type: "Counter", id: "", tag: "Increment", payload: { by: 1 } })
        )
        assert.instanceOf(emptyId, InvalidActorId)
        assert.strictEqual((emptyId as InvalidActorId).id, "")

        const longId = yield* Effect.flip(
          silo.dispatch({ type: "Counter", id: "z".repeat(257), tag: "Increment", payload: { by: 1 } })
        )
        assert.instanceOf(longId, InvalidActorId)

        const badPayloads: ReadonlyArray<unknown> = [
          { by: "one" }, // wrong type
          { by: 1.5 }, // not an Int
          {}, // missing field
          undefined, // no payload at all
          "by=1"
        ]
        for (const payload of badPayloads) {
          const error = yield* Effect.flip(
            silo.dispatch({ type: "Counter", id: "d-3", tag: "Increment", payload })
          )
          assert.instanceOf(error, MessageDecodeError, `payload ${JSON.stringify(payload)}`)
          assert.deepStrictEqual((error as MessageDecodeError).address, { type: "Counter", id: "d-3" })
          assert.strictEqual((error as MessageDecodeError).tag, "Increment")
        }
        const badClerk = yield* Effect.flip(
          silo.dispatch({ type: "Clerk", id: "k-2", tag: "Double", payload: { amount: "many" } })
        )
        assert.instanceOf(badClerk, MessageDecodeError)

        // None of the bad calls created an activation.
        assert.deepStrictEqual(yield* liveIds(), [])

        // And the good path still works on the id the bad payloads targeted, with fresh state.
        assert.strictEqual(yield* silo.dispatch({ type: "Counter", id: "d-3", tag: "Increment", payload: { by: 1 } }), 1)
        assert.deepStrictEqual(yield* liveIds(), ["Counter/d-3"])
      }).pipe(Effect.provide(layer())))

    it.effect("fields that are not strings, and payloads that make the decoder throw, are typed errors", () =>
      Effect.gen(function*() {
        const silo = yield* Silo.Silo
        const untyped = (request: Record<string, unknown>) => silo.dispatch(request as unknown as Silo.UntypedRequest)

        const numericId = yield* Effect.flip(untyped({ type: "Counter", id: 42, tag: "Increment", payload: { by: 1 } }))
        assert.instanceOf(numericId, InvalidActorId)
        assert.strictEqual((numericId as InvalidActorId).id, "42")
        assert.instanceOf(yield* Effect.flip(untyped({ type: ["Counter"], id: "n-1", tag: "Get", payload: undefined })), UnknownActorType)
        assert.instanceOf(yield* Effect.flip(untyped({ type: "Counter", id: "n-1", tag: { toString: () => "Get" }, payload: undefined })), UnknownMessage)
        for (const tag of ["constructor", "toString", "__proto__", "hasOwnProperty"]) {
          assert.instanceOf(yield* Effect.flip(untyped({ type: "Counter", id: "n-1", tag, payload: {} })), UnknownMessage, tag)
        }

        const throwing = { get by(): number { throw new Error("a getter that throws") } }
        const thrown = yield* Effect.flip(untyped({ type: "Counter", id: "n-1", tag: "Increment", payload: throwing }))
        assert.instanceOf(thrown, MessageDecodeError)
        assert.include((thrown as MessageDecodeError).reason, "a getter that throws")

        // "42" as a string is the one activation; nothing was created by the bad calls.
        assert.deepStrictEqual(yield* liveIds(), [])
        assert.strictEqual(yield* untyped({ type: "Counter", id: "42", tag: "Increment", payload: { by: 1 } }), 1)
        assert.deepStrictEqual(yield* liveIds(), ["Counter/42"])
      }).pipe(Effect.provide(layer())))
  })

  describe("actors calling actors", () => {
    it.effect("a Greeter asks the Counter through its contract", () =>
      Effect.gen(function*() {
        const greeter = yield* Greeter.ref("greeter-1")
        assert.strictEqual(yield* greeter.Greet({ name: "ada" }), "Hello, ada (#1)")
        assert.strictEqual(yield* greeter.Greet({ name: "ada" }), "Hello, ada (#2)")
        assert.strictEqual(yield* greeter.Greet({ name: "lin" }), "Hello, lin (#1)")
        const ada = yield* Counter.ref("ada")
        assert.strictEqual(yield* ada.Get(), 2)
        assert.deepStrictEqual(yield* liveIds(), ["Counter/ada", "Counter/lin", "Greeter/greeter-1"])
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(), greeterLayer))))

    it.effect("a declared error of the callee passes through the caller typed", () =>
      Effect.gen(function*() {
        const greeter = yield* Greeter.ref("greeter-2")
        yield* greeter.Greet({ name: "nia" })
        assert.strictEqual(yield* greeter.Spend({ name: "nia", amount: 1 }), 0)
        const error = yield* Effect.flip(greeter.Spend({ name: "nia", amount: 2 }))
        assert.instanceOf(error, Overdrawn)
        assert.strictEqual((error as Overdrawn).by, 2)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer(), greeterLayer))))

    it.effect("two types call each other (Ping asks Pong, Pong tells Ping)", () =>
      Effect.gen(function*() {
        const ping = yield* Ping.ref("ping-1")
        assert.strictEqual(yield* ping.Start({ text: "hi" }), "echo: hi")
        assert.strictEqual(yield* ping.Start({ text: "again" }), "echo: again")
        // Pong's one-way notes reached Ping, in order, after each Start turn.
        assert.deepStrictEqual(yield* ping.Notes(), ["pong saw hi", "pong saw again"])
      }).pipe(Effect.provide(Silo.layerTest(pingLayer, pongLayer))))
  })

  describe("handler defects", () => {
    it.effect("a handler that dies fails that call with ActorDefect; the activation goes on with its state", () =>
      Effect.gen(function*() {
        const lifecycle = yield* Effect.sync(() => new Lifecycle())
        return yield* Effect.gen(function*() {
          const counter = yield* Counter.ref("crash-1")
          assert.strictEqual(yield* counter.Increment({ by: 5 }), 5)
          const error = yield* Effect.flip(counter.Crash({ message: "boom" }))
          assert.instanceOf(error, ActorDefect)
          assert.deepStrictEqual((error as ActorDefect).address, { type: "Counter", id: "crash-1" })
          assert.strictEqual((error as ActorDefect).tag, "Crash")
          assert.include((error as ActorDefect).defect, "boom")
          // Same activation, same state.
          assert.strictEqual(yield* counter.Increment({ by: 1 }), 6)
          assert.strictEqual(lifecycle.activated.get("crash-1"), 1)
          assert.strictEqual(lifecycle.deactivated.get("crash-1"), undefined)
          // A crash in a one-way turn does not stop the activation either.
          yield* counter.tell.Crash({ message: "quiet boom" })
          assert.strictEqual(yield* counter.Get(), 6)
          assert.strictEqual(lifecycle.activated.get("crash-1"), 1)
        }).pipe(Effect.provide(Silo.layerTest(counterLayer(lifecycle))))
      }))

    it.effect("a handler that throws synchronously fails with ActorDefect; the next call succeeds", () =>
      Effect.gen(function*() {
        const clerk = yield* Clerk.ref("clerk-throw")
        assert.strictEqual(yield* clerk.Double({ amount: 2 }), 4)
        const error = yield* Effect.flip(clerk.Explode())
        assert.instanceOf(error, ActorDefect)
        assert.strictEqual((error as ActorDefect).tag, "Explode")
        assert.include((error as ActorDefect).defect, "kaboom")
        assert.strictEqual(yield* clerk.Total(), 2)
      }).pipe(Effect.provide(Silo.layerTest(clerkLayer))))

    it.effect("a defect in a queued turn does not affect the turns queued behind it", () =>
      Effect.gen(function*() {
        const counter = yield* Counter.ref("crash-2")
        const results = yield* Effect.all(
          [
            counter.Increment({ by: 1 }),
            Effect.flip(counter.Crash({ message: "mid" })),
            counter.Increment({ by: 1 }),
            counter.Increment({ by: 1 })
          ],
          { concurrency: "unbounded" }
        )
        assert.instanceOf(results[1], ActorDefect)
        assert.deepStrictEqual([results[0], results[2], results[3]].sort(), [1, 2, 3])
        assert.strictEqual(yield* counter.Get(), 3)
      }).pipe(Effect.provide(Silo.layerTest(counterLayer()))))
  })
})

/**
 * What a peer sends cannot take a silo down: names read from the wire (actor types, message
 * tags) are looked up as own properties or in `Map`s, so `constructor`, `__proto__` or
 * `toString` are unknown names with typed answers, and the silo goes on serving. The same
 * holds for the untyped entry point, `Silo.dispatch`.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import type { MessageEntry } from "../../src/Actor/internal/HostedType.ts"
import { decodeFailure } from "../../src/Cluster/internal/MessageCodec.ts"
import * as SiloIdentity from "../../src/Cluster/SiloIdentity.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"
import { Actor, Silo } from "../../src/index.ts"
import * as Connection from "../../src/Transport/Connection.ts"
import { Counter, counterLayer } from "../fixtures/Counter.ts"

const inherited = ["constructor", "__proto__", "toString", "hasOwnProperty", "valueOf"]

/** Decodes the Quark error of a failure reply (kind 1 needs no message entry). */
const quarkError = (bytes: Uint8Array) => decodeFailure({} as MessageEntry, bytes) as { readonly _tag: string }

describe("hostile input", () => {
  it.effect("a request whose tag or type is an Object.prototype name gets a typed error; the silo serves on", () =>
    Effect.gen(function*() {
      const cluster = yield* TestCluster.make({ silos: 1, implementations: counterLayer() })
      const [silo] = cluster.silos
      const address = SiloIdentity.parseId(silo!.id)!.address
      const colon = address.lastIndexOf(":")
      const connection = yield* Connection.make({ host: address.slice(0, colon), port: Number(address.slice(colon + 1)) })
      const ask = (type: string, tag: string) =>
        connection.call({
          target: { type, id: "x-1" },
          tag,
          payload: new Uint8Array(0),
          context: { correlationId: "", metadata: {} },
          chain: []
        })
      for (const name of inherited) {
        const byTag = yield* ask("Counter", name)
        assert.strictEqual(byTag._tag, "Failure", `tag ${name}`)
        if (byTag._tag === "Failure") assert.strictEqual(quarkError(byTag.error)._tag, "UnknownMessage")
        const byType = yield* ask(name, "Get")
        assert.strictEqual(byType._tag, "Failure", `type ${name}`)
        // No member announces such a type: no host for it.
        if (byType._tag === "Failure") assert.strictEqual(quarkError(byType.error)._tag, "NoHostForType")
      }
      // Still serving, typed calls and untyped ones alike.
      assert.strictEqual(yield* silo!.run(Effect.flatMap(Counter.ref("x-1"), (ref) => ref.Increment({ by: 2 }))), 2)
      for (const name of inherited) {
        const error = yield* silo!.run(
          Effect.flip(Effect.flatMap(Silo.Silo, (s) => s.dispatch({ type: "Counter", id: "x-1", tag: name, payload: {} })))
        )
        assert.strictEqual((error as { readonly _tag: string })._tag, "UnknownMessage", `dispatch ${name}`)
      }
    }).pipe(Effect.scoped))

  it("a contract may not take the control requests' reserved type name", () => {
    assert.throws(() => Actor.make("$quark", []), /reserved/)
  })
})

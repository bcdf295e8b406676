/**
 * Operators can see which silo served a call: every turn runs with the log annotation
 * `quark.silo` (the serving silo's id, updated when it joins again), and a program's view of
 * the membership can be inspected (`Cluster.view`).
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Layer, Logger, References, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor } from "../../src/index.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as TestCluster from "../../src/Cluster/TestCluster.ts"

const Say = Rpc.make("Say", { payload: { text: Schema.String } })
const Talker = Actor.make("Talker", [Say])

const lines: Array<{ readonly text: unknown; readonly silo: unknown }> = []
const capture = Logger.make<unknown, void>(({ fiber, message }) => {
  const annotations = fiber.getRef(References.CurrentLogAnnotations)
  lines.push({ text: Array.isArray(message) ? message[0] : message, silo: annotations["quark.silo"] })
})

const talkerLayer = Talker.toLayer(Effect.succeed(Talker.of({ Say: ({ text }) => Effect.log(text) }))).pipe(
  Layer.provide(Logger.layer([capture]))
)

describe("which silo served a call", () => {
  it.effect("a handler's log lines carry the serving silo's id; Cluster.view lists the members with their status", () =>
    Effect.gen(function*() {
      lines.length = 0
      const cluster = yield* TestCluster.make({ silos: 2, implementations: talkerLayer })
      const client = yield* cluster.addClient
      for (let i = 0; i < 6; i++) {
        yield* client.run(Effect.flatMap(Talker.ref(`t-${i}`), (ref) => ref.Say({ text: `t-${i}` })))
      }
      for (let i = 0; i < 6; i++) {
        const owner = yield* client.run(Effect.flatMap(Cluster, (c) => c.ownerOf({ type: "Talker", id: `t-${i}` })))
        assert.deepStrictEqual(lines.filter((line) => line.text === `t-${i}`).map((line) => line.silo), [owner])
      }
      const view = yield* client.run(Effect.flatMap(Cluster, (c) => c.view))
      assert.deepStrictEqual(view.map((member) => member.identity.id), cluster.silos.map((silo) => silo.id).sort())
      assert.deepStrictEqual(view.map((member) => member.status), ["alive", "alive"])
    }).pipe(Effect.scoped))
})

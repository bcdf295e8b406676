/**
 * Streams on one silo with the Redis Streams provider given to `Streams.layer` as an effect
 * (the layer opens and closes it): events go through Redis encoded and come back decoded,
 * tokens are Redis entry ids, durable subscriptions outlive the silo, and a silo that closes
 * acknowledges what it delivered before its provider's connections close (nothing is left
 * pending to be delivered again). An unreachable Redis fails the test under CI=true.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Exit, Layer, Logger, Schema, Scope } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Silo, StreamContract, Streams, StreamToken } from "../../src/index.ts"
import { RedisStreamProvider } from "../../src/Persistence/redis.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"

const run = `quark-test-streams-silo-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`

const Reading = Schema.Struct({ n: Schema.Int, at: Schema.Date })
const Readings = StreamContract.make("readings", Reading)
const Record = Rpc.make("Record", { payload: Reading })
const Sensor = Actor.make("RedisSensor", [Record])
const Audit = Actor.make("RedisAudit", [Record])

interface Seen {
  readonly actor: string
  readonly n: number
  readonly at: Date
  readonly token: string
}

const recorder = <Type extends string>(contract: Actor.Actor<Type, typeof Record>, seen: Array<Seen>, done: () => void) =>
  contract.toLayer(Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    return contract.of({
      Record: ({ at, n }) =>
        Effect.map(Streams.currentEvent, (event) => {
          seen.push({ actor: `${contract.type}/${id}`, n, at, token: event!.token })
          done()
        })
    })
  }))

/** A silo with both recorders and streams on Redis under `prefix`, built in `scope`. */
const buildSilo = (prefix: string, seen: Array<Seen>, done: () => void, logs: Array<string>, scope: Scope.Scope) =>
  Layer.buildWithScope(
    Layer.mergeAll(
      recorder(Sensor, seen, done),
      recorder(Audit, seen, done),
      Streams.layer({
        provider: RedisStreamProvider.make({ url: redisUrl, keyPrefix: prefix, partitions: 4 }),
        implicit: [Streams.implicit(Readings, Sensor, "Record")]
      })
    ).pipe(
      Layer.provideMerge(Silo.layer()),
      Layer.provide(Logger.layer([Logger.make((entry) => logs.push(String(entry.message)))], { mergeWithExisting: false }))
    ),
    scope
  ).pipe(Effect.mapError((error) => unreachable("Redis", redisUrl, error)))

describe("streams on Redis, one silo", () => {
  it.live("events round-trip through Redis in order per stream; a closing silo leaves nothing pending; a durable subscription outlives it", () =>
    Effect.gen(function*() {
      const prefix = `${run}-1`
      const redis = yield* rawRedis
      yield* Effect.addFinalizer(() =>
        Effect.promise(async () => {
          const keys = await redis.keys(`${prefix}:*`)
          if (keys.length > 0) await redis.del(...keys)
        })
      )
      const seen: Array<Seen> = []
      const logs: Array<string> = []
      const streams = 10
      const perStream = 20
      // Every stream's events to its sensor, and s-0's to the audit too.
      let expected = streams * perStream + perStream
      let allSeen = Deferred.makeUnsafe<void>()
      const done = () => {
        if (seen.length === expected) Deferred.doneUnsafe(allSeen, Exit.void)
      }

      const first = yield* Scope.make()
      const silo1 = yield* buildSilo(prefix, seen, done, logs, first)
      const at = new Date(1_700_000_000_000)
      const tokens = new Map<string, Array<string>>()
      yield* Effect.gen(function*() {
        yield* Streams.subscribe(Readings, "s-0", { actor: Audit, id: "audit", message: "Record" })
        for (let i = 0; i < perStream; i++) {
          for (let s = 0; s < streams; s++) {
            const token = yield* Streams.publish(Readings, `s-${s}`, { n: i, at })
            tokens.set(`s-${s}`, [...(tokens.get(`s-${s}`) ?? []), token])
          }
        }
      }).pipe(Effect.provide(silo1))
      yield* Deferred.await(allSeen).pipe(Effect.timeout("20 seconds"))
      for (let s = 0; s < streams; s++) {
        const mine = seen.filter((d) => d.actor === `RedisSensor/s-${s}`)
        assert.deepStrictEqual(mine.map((d) => d.n), Array.from({ length: perStream }, (_, i) => i), `s-${s} in order`)
        assert.deepStrictEqual(mine.map((d) => d.token), tokens.get(`s-${s}`), "the token is the one publish returned")
        assert.isTrue(mine.every((d) => d.at instanceof Date && d.at.getTime() === at.getTime()), "decoded by the Schema")
      }
      assert.deepStrictEqual(seen.filter((d) => d.actor === "RedisAudit/audit").map((d) => d.n), Array.from({ length: perStream }, (_, i) => i))

      yield* Scope.close(first, Exit.void)
      let pending = 0
      for (let p = 0; p < 4; p++) {
        const summary = (yield* Effect.promise(() => redis.call("XPENDING", [RedisStreamProvider.redisKeys(prefix).partition(p), "quark"]))) as Array<unknown>
        pending += Number(summary[0])
      }
      assert.strictEqual(pending, 0, "the silo acknowledged its deliveries before its provider closed")
      assert.deepStrictEqual(logs.filter((line) => line.includes("acknowledging failed")), [])

      // A new silo on the same Redis: the audit's subscription is still there, and delivers.
      seen.length = 0
      expected = 2
      allSeen = Deferred.makeUnsafe<void>()
      const second = yield* Scope.make()
      const silo2 = yield* buildSilo(prefix, seen, done, logs, second)
      const later = yield* Streams.publish(Readings, "s-0", { n: 99, at }).pipe(Effect.provide(silo2))
      yield* Deferred.await(allSeen).pipe(Effect.timeout("20 seconds"))
      assert.sameMembers(seen.map((d) => `${d.actor} ${d.n}`), ["RedisSensor/s-0 99", "RedisAudit/audit 99"], "nothing delivered again")
      assert.isTrue(StreamToken.isAfter(later, tokens.get("s-0")!.at(-1)))
      yield* Scope.close(second, Exit.void)
    }).pipe(Effect.scoped))
})

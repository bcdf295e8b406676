/**
 * The activation directory: one behavioural suite run against the in-memory directory (on
 * the TestClock) and against Redis (real time, short leases, bounded waits), then the
 * specifics of Redis.
 *
 * `pass(ms)` lets time go by (memory: adjusts the TestClock; Redis: sleeps). A lease that
 * must have run out is checked with a bounded wait (`waitExpired`), never a fixed sleep.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, Scope } from "effect"
import { TestClock } from "effect/testing"
import { type DirectoryAddress, DirectoryError, type DirectoryShape } from "../../src/Cluster/Directory.ts"
import * as MemoryDirectory from "../../src/Cluster/MemoryDirectory.ts"
import * as RedisDirectory from "../../src/Cluster/RedisDirectory.ts"
import { rawRedis, redisUrl, unreachable } from "../persistence/services.ts"

interface Subject {
  readonly label: string
  readonly test: typeof it.effect
  /** The lease the suite uses. */
  readonly lease: number
  /** A directory (one per test), closed with the scope. */
  readonly directory: Effect.Effect<DirectoryShape, never, Scope.Scope>
  /** Lets `millis` go by. */
  readonly pass: (millis: number) => Effect.Effect<void>
  /** How long past the lease an expiry may take to show. */
  readonly slack: number
}

const run = `run-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`
let counter = 0
const freshAddress = (): DirectoryAddress => ({ type: `Dir-${run}`, id: `actor-${++counter}` })
let generation = 1000
/** Silo ids no other test uses (a silo's entries are shared state in Redis). */
const silos = () => {
  const g = ++generation
  return (n: number) => `10.0.0.${n}:4000@${g}`
}
const silo = silos()

const suite = (subject: Subject) => {
  const { lease, pass, slack, test } = subject

  /** Waits until `address` reads as free, failing past the lease plus `slack`. */
  const waitExpired = (directory: DirectoryShape, address: DirectoryAddress) =>
    Effect.gen(function*() {
      const step = Math.max(10, lease / 20)
      for (let waited = 0; waited <= lease + slack; waited += step) {
        if ((yield* directory.lookup(address)) === undefined) return
        yield* pass(step)
      }
      return assert.fail(`the lease of ${address.id} did not run out within ${lease + slack} ms`)
    })

  describe(`${subject.label}: directory`, () => {
    test("register, lookup, unregister", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        assert.isUndefined(yield* directory.lookup(address))
        assert.deepStrictEqual(yield* directory.register(address, silo(1), lease), { _tag: "Registered" })
        assert.strictEqual(yield* directory.lookup(address), silo(1))
        // Registering again as the owner is fine (and restarts the lease).
        assert.deepStrictEqual(yield* directory.register(address, silo(1), lease), { _tag: "Registered" })
        yield* directory.unregister(address, silo(1))
        assert.isUndefined(yield* directory.lookup(address))
        assert.deepStrictEqual(yield* directory.register(address, silo(2), lease), { _tag: "Registered" })
        assert.strictEqual(yield* directory.lookup(address), silo(2))
      }).pipe(Effect.scoped))

    test("Taken reports the owner", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        yield* directory.register(address, silo(1), lease)
        assert.deepStrictEqual(yield* directory.register(address, silo(2), lease), { _tag: "Taken", owner: silo(1) })
        assert.strictEqual(yield* directory.lookup(address), silo(1))
      }).pipe(Effect.scoped))

    test("of 50 concurrent registrations from different owners exactly one wins", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        const results = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i),
          (i) => directory.register(address, silo(i), lease),
          { concurrency: "unbounded" }
        )
        const winners = results.flatMap((result, i) => result._tag === "Registered" ? [silo(i)] : [])
        assert.strictEqual(winners.length, 1)
        for (const result of results) {
          if (result._tag === "Taken") assert.strictEqual(result.owner, winners[0])
        }
        assert.strictEqual(yield* directory.lookup(address), winners[0])
      }).pipe(Effect.scoped))

    test("type and id are kept apart; odd characters are fine", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const base = freshAddress()
        const a = { type: `${base.type}:x`, id: base.id }
        const b = { type: base.type, id: `x:${base.id}` }
        const odd = { type: base.type, id: `${base.id}/with:colon {brace} "q" ünï 𝄞` }
        yield* directory.register(a, silo(1), lease)
        assert.isUndefined(yield* directory.lookup(b))
        assert.deepStrictEqual(yield* directory.register(b, silo(2), lease), { _tag: "Registered" })
        assert.deepStrictEqual(yield* directory.register(odd, silo(3), lease), { _tag: "Registered" })
        assert.strictEqual(yield* directory.lookup(a), silo(1))
        assert.strictEqual(yield* directory.lookup(b), silo(2))
        assert.strictEqual(yield* directory.lookup(odd), silo(3))
      }).pipe(Effect.scoped))

    test("a lease runs out; then another owner can register and the old one cannot renew", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        yield* directory.register(address, silo(1), lease)
        yield* pass(lease / 2)
        assert.strictEqual(yield* directory.lookup(address), silo(1))
        yield* waitExpired(directory, address)
        assert.isFalse(yield* directory.renew(address, silo(1), lease))
        assert.deepStrictEqual(yield* directory.register(address, silo(2), lease), { _tag: "Registered" })
        assert.strictEqual(yield* directory.lookup(address), silo(2))
      }).pipe(Effect.scoped))

    test("renew by the owner extends the lease; renew by another fails", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        yield* directory.register(address, silo(1), lease)
        yield* pass(lease / 2)
        assert.isFalse(yield* directory.renew(address, silo(2), lease))
        assert.isTrue(yield* directory.renew(address, silo(1), lease))
        // Past the first lease, inside the renewed one.
        yield* pass(lease / 2 + lease / 4)
        assert.strictEqual(yield* directory.lookup(address), silo(1))
        assert.deepStrictEqual(yield* directory.register(address, silo(2), lease), { _tag: "Taken", owner: silo(1) })
      }).pipe(Effect.scoped))

    test("unregister by a non-owner does nothing", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        yield* directory.register(address, silo(1), lease)
        yield* directory.unregister(address, silo(2))
        assert.strictEqual(yield* directory.lookup(address), silo(1))
        assert.isTrue(yield* directory.renew(address, silo(1), lease))
      }).pipe(Effect.scoped))

    test("removeSilo drops only that silo's entries", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const [a1, a2, b1] = [freshAddress(), freshAddress(), freshAddress()]
        yield* directory.register(a1, silo(1), lease)
        yield* directory.register(a2, silo(1), lease)
        yield* directory.register(b1, silo(2), lease)
        // Silo 1 once owned `moved`, then silo 3 took it over.
        const moved = freshAddress()
        yield* directory.register(moved, silo(1), lease)
        yield* directory.unregister(moved, silo(1))
        yield* directory.register(moved, silo(3), lease)
        assert.strictEqual(yield* directory.removeSilo(silo(1)), 2)
        assert.isUndefined(yield* directory.lookup(a1))
        assert.isUndefined(yield* directory.lookup(a2))
        assert.strictEqual(yield* directory.lookup(b1), silo(2))
        assert.strictEqual(yield* directory.lookup(moved), silo(3))
        assert.strictEqual(yield* directory.removeSilo(silo(1)), 0)
        assert.deepStrictEqual(yield* directory.register(a1, silo(2), lease), { _tag: "Registered" })
      }).pipe(Effect.scoped))

    test("transfer moves a live entry from its owner to another, lease and silo sets included", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        yield* directory.register(address, silo(1), lease)
        assert.isTrue(yield* directory.transfer(address, silo(1), silo(2), lease))
        assert.strictEqual(yield* directory.lookup(address), silo(2))
        // The new owner renews; the old one no longer can, nor unregister it.
        assert.isFalse(yield* directory.renew(address, silo(1), lease))
        yield* directory.unregister(address, silo(1))
        assert.strictEqual(yield* directory.lookup(address), silo(2))
        assert.isTrue(yield* directory.renew(address, silo(2), lease))
        assert.deepStrictEqual(yield* directory.register(address, silo(3), lease), { _tag: "Taken", owner: silo(2) })
        // The entry left the old owner's set and joined the new one's.
        assert.strictEqual(yield* directory.removeSilo(silo(1)), 0)
        assert.strictEqual(yield* directory.lookup(address), silo(2))
        assert.strictEqual(yield* directory.removeSilo(silo(2)), 1)
        assert.isUndefined(yield* directory.lookup(address))
      }).pipe(Effect.scoped))

    test("transfer by a non-owner, or of a free or expired entry, changes nothing", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        assert.isFalse(yield* directory.transfer(address, silo(1), silo(2), lease))
        assert.isUndefined(yield* directory.lookup(address))
        yield* directory.register(address, silo(1), lease)
        assert.isFalse(yield* directory.transfer(address, silo(3), silo(2), lease))
        assert.strictEqual(yield* directory.lookup(address), silo(1))
        yield* waitExpired(directory, address)
        assert.isFalse(yield* directory.transfer(address, silo(1), silo(2), lease))
        assert.isUndefined(yield* directory.lookup(address))
      }).pipe(Effect.scoped))

    test("transfer restarts the lease", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        yield* directory.register(address, silo(1), lease)
        yield* pass(lease / 2)
        assert.isTrue(yield* directory.transfer(address, silo(1), silo(2), lease))
        // Past the first lease, inside the one the transfer started.
        yield* pass(lease / 2 + lease / 4)
        assert.strictEqual(yield* directory.lookup(address), silo(2))
        yield* waitExpired(directory, address)
      }).pipe(Effect.scoped))

    test("of 50 concurrent transfers from the owner to different silos exactly one wins", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        yield* directory.register(address, silo(0), lease)
        const results = yield* Effect.forEach(
          Array.from({ length: 50 }, (_, i) => i + 1),
          (i) => directory.transfer(address, silo(0), silo(i), lease),
          { concurrency: "unbounded" }
        )
        const winners = results.flatMap((moved, i) => moved ? [silo(i + 1)] : [])
        assert.strictEqual(winners.length, 1)
        assert.strictEqual(yield* directory.lookup(address), winners[0])
      }).pipe(Effect.scoped))

    test("an invalid lease or owner fails with DirectoryError", () =>
      Effect.gen(function*() {
        const directory = yield* subject.directory
        const silo = silos()
        const address = freshAddress()
        for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
          const error = yield* Effect.flip(directory.register(address, silo(1), bad))
          assert.instanceOf(error, DirectoryError)
          assert.strictEqual(error.operation, "register")
        }
        assert.instanceOf(yield* Effect.flip(directory.register(address, "", lease)), DirectoryError)
        assert.instanceOf(yield* Effect.flip(directory.renew(address, silo(1), 0)), DirectoryError)
        yield* directory.register(address, silo(1), lease)
        for (const [from, to, bad] of [[silo(1), silo(2), 0], ["", silo(2), lease], [silo(1), "", lease]] as const) {
          const error = yield* Effect.flip(directory.transfer(address, from, to, bad))
          assert.instanceOf(error, DirectoryError)
          assert.strictEqual(error.operation, "transfer")
        }
        assert.strictEqual(yield* directory.lookup(address), silo(1))
      }).pipe(Effect.scoped))
  })
}

suite({
  label: "memory",
  test: it.effect,
  lease: 10_000,
  // One directory shared by every silo of a test; time moves only with the TestClock.
  directory: MemoryDirectory.make,
  pass: (millis) => TestClock.adjust(millis),
  slack: 0
})

const cluster = `test-${run}`
const redisDirectory = (options?: RedisDirectory.RedisDirectoryOptions) =>
  RedisDirectory.make({ url: redisUrl, cluster, ...options }).pipe(
    Effect.mapError((error) => unreachable("Redis", redisUrl, error)),
    Effect.orDie
  )

suite({
  label: "redis",
  test: it.live,
  // Real time: generous margins (a lease of 2 s, checks 0.5 s or more from its edges), so a
  // stalled event loop on a loaded machine cannot make these tests flaky.
  lease: 2_000,
  directory: redisDirectory(),
  pass: (millis) => Effect.sleep(millis),
  slack: 1_000
})


describe("redis: directory specifics", () => {
  it.live("the documented key layout is what is stored, with the lease as expiry", () =>
    Effect.gen(function*() {
      const prefix = `quark-test-${run}`
      const directory = yield* redisDirectory({ keyPrefix: prefix, cluster: "c:1" })
      const redis = yield* Effect.orDie(rawRedis)
      const owner = silo(7)
      yield* directory.register({ type: "Chat/Room", id: "a:b{c}" }, owner, 5_000)

      const base = `${prefix}:{directory:c%3A1}`
      const entry = `${base}:entry:Chat%2FRoom:a%3Ab%7Bc%7D`
      const set = `${base}:silo:${encodeURIComponent(owner)}`
      const stored = yield* Effect.promise(() => redis.keys(`${prefix}:*`))
      assert.deepStrictEqual(stored.sort(), [entry, set].sort())
      assert.strictEqual(yield* Effect.promise(() => redis.get(entry)), owner)
      const ttl = yield* Effect.promise(() => redis.pttl(entry))
      assert.isTrue(ttl > 4_000 && ttl <= 5_000, `entry ttl ${ttl}`)
      assert.deepStrictEqual(yield* Effect.promise(() => redis.smembers(set)), [entry])
      assert.isTrue((yield* Effect.promise(() => redis.pttl(set))) > 4_000)
      // A transfer keeps the layout: the entry names the new owner and moves to its set.
      const next = silo(8)
      const nextSet = `${base}:silo:${encodeURIComponent(next)}`
      assert.isTrue(yield* directory.transfer({ type: "Chat/Room", id: "a:b{c}" }, owner, next, 6_000))
      assert.strictEqual(yield* Effect.promise(() => redis.get(entry)), next)
      const moved = yield* Effect.promise(() => redis.pttl(entry))
      assert.isTrue(moved > 5_000 && moved <= 6_000, `entry ttl after the transfer ${moved}`)
      assert.deepStrictEqual(yield* Effect.promise(() => redis.smembers(set)), [])
      assert.deepStrictEqual(yield* Effect.promise(() => redis.smembers(nextSet)), [entry])
      assert.isTrue((yield* Effect.promise(() => redis.pttl(nextSet))) > 5_000)
      const written = yield* Effect.promise(() => redis.keys(`${prefix}:*`))
      yield* Effect.promise(() => redis.del(...written))
    }).pipe(Effect.scoped))

  it.live("an unreachable server fails make with DirectoryError promptly", () =>
    Effect.gen(function*() {
      const error = yield* RedisDirectory.make({ url: "redis://127.0.0.1:1" }).pipe(
        Effect.scoped,
        Effect.timeout("3 seconds"),
        Effect.flip
      )
      assert.instanceOf(error, DirectoryError)
      if (error instanceof DirectoryError) assert.strictEqual(error.operation, "connect")
    }))

  it.live("an operation on a closed directory fails with DirectoryError", () =>
    Effect.gen(function*() {
      const scope = yield* Scope.make()
      const directory = yield* Scope.provide(scope)(redisDirectory())
      yield* Scope.close(scope, Exit.void)
      const error = yield* Effect.flip(directory.lookup(freshAddress()))
      assert.instanceOf(error, DirectoryError)
      assert.strictEqual(error.operation, "lookup")
    }))
})

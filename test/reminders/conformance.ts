/**
 * The conformance suite every `ReminderStore` provider must pass. A provider's test file
 * calls `reminderConformance("redis", makeStore)`, where each run of `makeStore` gives a
 * fresh, empty store (its own key prefix or tables) and removes what it created when its
 * scope closes; a server that cannot be reached fails `makeStore`, and so the test.
 *
 * Strings order by Unicode code point (UTF-8 byte order), in every provider.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Exit, type Scope } from "effect"
import { StateConflict, StoreError } from "../../src/Persistence/PersistenceError.ts"
import type { DeadLetter, ReminderKey, ReminderStore, StoredReminder } from "../../src/Reminders/ReminderStore.ts"

const key = (type: string, id: string, name: string): ReminderKey => ({ type, id, name })

/** The keys of a result, as `type|id|name` strings, for readable comparisons. */
const keysOf = (reminders: ReadonlyArray<StoredReminder>) => reminders.map((r) => `${r.key.type}|${r.key.id}|${r.key.name}`)

const conflictOf = (exit: Exit.Exit<unknown, unknown>): StateConflict => {
  assert.isTrue(Exit.isFailure(exit), "expected a StateConflict, got a success")
  const error = Exit.isFailure(exit) ? exit.cause.reasons.find((r) => r._tag === "Fail") : undefined
  assert.instanceOf(error?._tag === "Fail" ? error.error : undefined, StateConflict)
  return (error as { readonly error: StateConflict }).error
}

/** Exercises `effect` expecting a `StateConflict` with these versions. */
const expectConflict = <A, E>(effect: Effect.Effect<A, E>, expectedVersion: number, actualVersion: number) =>
  Effect.map(Effect.exit(effect), (exit) => {
    const conflict = conflictOf(exit)
    assert.strictEqual(conflict.expectedVersion, expectedVersion)
    assert.strictEqual(conflict.actualVersion, actualVersion)
  })

export const reminderConformance = <E>(label: string, makeStore: Effect.Effect<ReminderStore, E, Scope.Scope>) => {
  describe(`${label}: reminder store conformance`, () => {
    it.live("an empty store has no reminder, history, due reminder or dead letter", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "a", "r")
        assert.isUndefined(yield* store.get(k))
        assert.deepStrictEqual(yield* store.list("T", "a"), [])
        assert.deepStrictEqual(yield* store.history(k), [])
        assert.deepStrictEqual(yield* store.due(0, Number.MAX_SAFE_INTEGER, 100), [])
        assert.deepStrictEqual(yield* store.deadLetters({ limit: 100 }), [])
        assert.isFalse(yield* store.removeDeadLetter("nope"))
      }))

    it.live("put at version 0 creates version 1; each put bumps the version and replaces the fields", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("Billing", "acct-1", "renew")
        assert.strictEqual(yield* store.put({ key: k, bucket: 3, nextDue: 1_700_000_000_123, data: `{"n":1}` }, 0), 1)
        assert.deepStrictEqual(yield* store.get(k), {
          key: k,
          bucket: 3,
          nextDue: 1_700_000_000_123,
          data: `{"n":1}`,
          version: 1
        })
        assert.strictEqual(yield* store.put({ key: k, bucket: 3, nextDue: 1_700_000_060_123.5, data: `{"n":2}` }, 1), 2)
        assert.deepStrictEqual(yield* store.get(k), {
          key: k,
          bucket: 3,
          nextDue: 1_700_000_060_123.5,
          data: `{"n":2}`,
          version: 2
        })
        assert.strictEqual(yield* store.put({ key: k, bucket: 3, nextDue: 0, data: "" }, 2), 3)
        assert.deepStrictEqual(yield* store.get(k), { key: k, bucket: 3, nextDue: 0, data: "", version: 3 })
      }))

    it.live("a put at any other version fails with StateConflict and changes nothing", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "a", "r")
        yield* expectConflict(store.put({ key: k, bucket: 0, nextDue: 10, data: "x" }, 1), 1, 0)
        assert.isUndefined(yield* store.get(k))
        yield* store.put({ key: k, bucket: 0, nextDue: 10, data: "a" }, 0)
        yield* store.put({ key: k, bucket: 0, nextDue: 20, data: "b" }, 1)
        const write = { key: k, bucket: 0, nextDue: 30, data: "c" }
        yield* expectConflict(store.put(write, 0), 0, 2) // create, but it exists
        yield* expectConflict(store.put(write, 1), 1, 2) // stale
        yield* expectConflict(store.put(write, 3), 3, 2) // ahead
        yield* expectConflict(store.put(write, -1), -1, 2)
        yield* expectConflict(store.put(write, 1.5), 1.5, 2)
        assert.deepStrictEqual(yield* store.get(k), { key: k, bucket: 0, nextDue: 20, data: "b", version: 2 })
        assert.deepStrictEqual(keysOf(yield* store.due(0, 100, 10)), ["T|a|r"])
        assert.strictEqual((yield* store.due(0, 100, 10))[0]!.nextDue, 20)
      }))

    it.live("remove checks the version, and takes the reminder out of get, list, due and history", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "a", "r")
        const other = key("T", "a", "s")
        yield* store.put({ key: k, bucket: 1, nextDue: 10, data: "x" }, 0)
        yield* store.put({ key: k, bucket: 1, nextDue: 10, data: "y" }, 1)
        yield* store.put({ key: other, bucket: 1, nextDue: 20, data: "o" }, 0)
        yield* store.appendHistory(k, "h1", 10)
        yield* store.appendHistory(other, "o1", 10)

        yield* expectConflict(store.remove(k, 0), 0, 2)
        yield* expectConflict(store.remove(k, 1), 1, 2)
        yield* expectConflict(store.remove(k, 3), 3, 2)
        assert.strictEqual((yield* store.get(k))?.version, 2)
        assert.deepStrictEqual(yield* store.history(k), ["h1"])

        yield* store.remove(k, 2)
        assert.isUndefined(yield* store.get(k))
        assert.deepStrictEqual(keysOf(yield* store.list("T", "a")), ["T|a|s"])
        assert.deepStrictEqual(keysOf(yield* store.due(1, 100, 10)), ["T|a|s"])
        assert.deepStrictEqual(yield* store.history(k), [])
        assert.deepStrictEqual(yield* store.history(other), ["o1"])

        // Gone: removing again at version 0 succeeds, at any other version conflicts.
        yield* store.remove(k, 0)
        yield* expectConflict(store.remove(k, 2), 2, 0)
        yield* store.remove(key("T", "never", "r"), 0)
        yield* expectConflict(store.remove(key("T", "never", "r"), 1), 1, 0)

        // A new reminder under the key starts at version 1, with no history.
        assert.strictEqual(yield* store.put({ key: k, bucket: 1, nextDue: 5, data: "z" }, 0), 1)
        assert.deepStrictEqual(yield* store.history(k), [])
        assert.deepStrictEqual(keysOf(yield* store.due(1, 100, 10)), ["T|a|r", "T|a|s"])
      }))

    it.live("of 20 concurrent puts at one version exactly one wins; the others conflict", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "race", "r")
        const race = (expected: number, data: (i: number) => string) =>
          Effect.forEach(
            Array.from({ length: 20 }, (_, i) => i),
            (i) => Effect.exit(store.put({ key: k, bucket: 2, nextDue: 100 + i, data: data(i) }, expected)),
            { concurrency: "unbounded" }
          )
        const winnerOf = (exits: ReadonlyArray<Exit.Exit<number, unknown>>, version: number) => {
          const winners = exits.flatMap((exit, i) => Exit.isSuccess(exit) ? [i] : [])
          assert.strictEqual(winners.length, 1, `winners: ${winners}`)
          assert.strictEqual((exits[winners[0]!] as Exit.Success<number>).value, version)
          for (const exit of exits) if (Exit.isFailure(exit)) conflictOf(exit)
          return winners[0]!
        }

        const created = winnerOf(yield* race(0, (i) => `create-${i}`), 1)
        assert.deepStrictEqual(yield* store.get(k), {
          key: k,
          bucket: 2,
          nextDue: 100 + created,
          data: `create-${created}`,
          version: 1
        })
        const updated = winnerOf(yield* race(1, (i) => `update-${i}`), 2)
        assert.deepStrictEqual(yield* store.get(k), {
          key: k,
          bucket: 2,
          nextDue: 100 + updated,
          data: `update-${updated}`,
          version: 2
        })
        // The bucket holds the reminder once, at the winner's due time.
        const due = yield* store.due(2, 1_000, 100)
        assert.deepStrictEqual(due.map((r) => r.nextDue), [100 + updated])

        const removes = yield* Effect.forEach(
          Array.from({ length: 20 }, (_, i) => i),
          () => Effect.exit(store.remove(k, 2)),
          { concurrency: "unbounded" }
        )
        assert.strictEqual(removes.filter(Exit.isSuccess).length, 1)
        for (const exit of removes) if (Exit.isFailure(exit)) assert.strictEqual(conflictOf(exit).actualVersion, 0)
        assert.isUndefined(yield* store.get(k))
      }))

    it.live("due orders by nextDue, then by key (type, id, name) by code point", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        // In due order. At one due time, parts compare by code point: a shorter part first,
        // so type "T" with any id comes before type "T-"; U+FFFD before U+1D11E (which
        // UTF-16 code units would order the other way round).
        const tied: ReadonlyArray<ReminderKey> = [
          key("T", "", ""),
          key("T", "", "a"),
          key("T", "a", ""),
          key("T", "a", "b"),
          key("T", "a", "b!"),
          key("T", "a", "b-"),
          key("T", "a b", "a"),
          key("T", "a!", "a"),
          key("T", "a%", "a"),
          key("T", "a-", "a"),
          key("T", "a/b", "a"),
          key("T", "a0", "a"),
          key("T", "aB", "a"),
          key("T", "ab", "a"),
          key("T", "z", "z"),
          key("T", "é", "a"),
          key("T", "日", "a"),
          key("T", "\uFFFD", "a"),
          key("T", "𝄞", "a"),
          key("T-", "a", "a"),
          key("T:", "a", "a"),
          key("U", "a", "a"),
          key("a", "a", "a")
        ]
        const early = key("zzz", "z", "z")
        const late = key("A", "a", "a")
        // Written in reverse, so an insertion order cannot pass for the key order.
        for (const k of [...tied].reverse()) yield* store.put({ key: k, bucket: 7, nextDue: 5_000, data: "t" }, 0)
        yield* store.put({ key: late, bucket: 7, nextDue: 5_001, data: "late" }, 0)
        yield* store.put({ key: early, bucket: 7, nextDue: 4_999, data: "early" }, 0)

        const due = yield* store.due(7, 10_000, 100)
        assert.deepStrictEqual(keysOf(due), keysOf([early, ...tied, late].map((k) => ({ key: k }) as StoredReminder)))
        assert.deepStrictEqual(due.map((r) => r.key), [early, ...tied, late])
        assert.deepStrictEqual(due.map((r) => r.nextDue), [4_999, ...tied.map(() => 5_000), 5_001])
        assert.isTrue(due.every((r) => r.bucket === 7 && r.version === 1))
        assert.deepStrictEqual(due[0], { key: early, bucket: 7, nextDue: 4_999, data: "early", version: 1 })
      }))

    it.live("due includes until, excludes what is later, and returns at most limit", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        for (const [i, at] of [100, 200, 200, 300, 301].entries()) {
          yield* store.put({ key: key("T", `r${i}`, "n"), bucket: 4, nextDue: at, data: `${i}` }, 0)
        }
        const dueAt = (until: number, limit = 100) => Effect.map(store.due(4, until, limit), keysOf)
        assert.deepStrictEqual(yield* dueAt(99), [])
        assert.deepStrictEqual(yield* dueAt(100), ["T|r0|n"])
        assert.deepStrictEqual(yield* dueAt(199.5), ["T|r0|n"])
        assert.deepStrictEqual(yield* dueAt(200), ["T|r0|n", "T|r1|n", "T|r2|n"])
        assert.deepStrictEqual(yield* dueAt(300), ["T|r0|n", "T|r1|n", "T|r2|n", "T|r3|n"])
        assert.deepStrictEqual(yield* dueAt(1_000), ["T|r0|n", "T|r1|n", "T|r2|n", "T|r3|n", "T|r4|n"])
        assert.deepStrictEqual(yield* dueAt(1_000, 2), ["T|r0|n", "T|r1|n"])
        assert.deepStrictEqual(yield* dueAt(1_000, 3), ["T|r0|n", "T|r1|n", "T|r2|n"])
        assert.deepStrictEqual(yield* dueAt(1_000, 1), ["T|r0|n"])
        assert.deepStrictEqual(yield* dueAt(1_000, 0), [])
        assert.deepStrictEqual(yield* dueAt(Number.MAX_SAFE_INTEGER, 5), yield* dueAt(1_000))
      }))

    it.live("buckets are separate", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        yield* store.put({ key: key("T", "a", "one"), bucket: 1, nextDue: 10, data: "" }, 0)
        yield* store.put({ key: key("T", "a", "two"), bucket: 2, nextDue: 10, data: "" }, 0)
        yield* store.put({ key: key("T", "b", "two"), bucket: 2, nextDue: 20, data: "" }, 0)
        yield* store.put({ key: key("T", "a", "ten"), bucket: 10, nextDue: 5, data: "" }, 0)
        assert.deepStrictEqual(keysOf(yield* store.due(1, 100, 10)), ["T|a|one"])
        assert.deepStrictEqual(keysOf(yield* store.due(2, 100, 10)), ["T|a|two", "T|b|two"])
        assert.deepStrictEqual(keysOf(yield* store.due(10, 100, 10)), ["T|a|ten"])
        assert.deepStrictEqual(yield* store.due(0, 100, 10), [])
        assert.deepStrictEqual(yield* store.due(3, 100, 10), [])
        // One actor's reminders may sit in different buckets; list finds them all.
        assert.deepStrictEqual(keysOf(yield* store.list("T", "a")), ["T|a|one", "T|a|ten", "T|a|two"])
      }))

    it.live("a put that moves nextDue moves the reminder in due", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const a = key("T", "a", "r")
        const b = key("T", "b", "r")
        const c = key("T", "c", "r")
        yield* store.put({ key: a, bucket: 5, nextDue: 100, data: "a1" }, 0)
        yield* store.put({ key: b, bucket: 5, nextDue: 200, data: "b1" }, 0)
        yield* store.put({ key: c, bucket: 5, nextDue: 300, data: "c1" }, 0)
        assert.deepStrictEqual(keysOf(yield* store.due(5, 1_000, 10)), ["T|a|r", "T|b|r", "T|c|r"])

        // a fires and moves past b; c moves back before everything.
        yield* store.put({ key: a, bucket: 5, nextDue: 250, data: "a2" }, 1)
        yield* store.put({ key: c, bucket: 5, nextDue: 50, data: "c2" }, 1)
        assert.deepStrictEqual(keysOf(yield* store.due(5, 1_000, 10)), ["T|c|r", "T|b|r", "T|a|r"])
        assert.deepStrictEqual(keysOf(yield* store.due(5, 200, 10)), ["T|c|r", "T|b|r"])
        assert.deepStrictEqual(yield* store.due(5, 1_000, 10), [
          { key: c, bucket: 5, nextDue: 50, data: "c2", version: 2 },
          { key: b, bucket: 5, nextDue: 200, data: "b1", version: 1 },
          { key: a, bucket: 5, nextDue: 250, data: "a2", version: 2 }
        ])
        // Onto a tie with b: then by key.
        yield* store.put({ key: a, bucket: 5, nextDue: 200, data: "a3" }, 2)
        assert.deepStrictEqual(keysOf(yield* store.due(5, 1_000, 10)), ["T|c|r", "T|a|r", "T|b|r"])
        // Far ahead: due no longer finds it before then.
        yield* store.put({ key: a, bucket: 5, nextDue: 1e13, data: "a4" }, 3)
        assert.deepStrictEqual(keysOf(yield* store.due(5, 1_000, 10)), ["T|c|r", "T|b|r"])
        assert.deepStrictEqual(keysOf(yield* store.due(5, 1e13, 10)), ["T|c|r", "T|b|r", "T|a|r"])
      }))

    it.live("list gives one actor's reminders by name; actors are separate", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const names = ["b", "a", "", "a/b", "a b", "x:y", "{}", "ü", "𝄞", "\uFFFD", "B", "a-"]
        for (const [i, name] of names.entries()) {
          yield* store.put({ key: key("Acct", "x", name), bucket: i % 3, nextDue: 1_000 - i, data: `${i}` }, 0)
        }
        // Actors whose type and id run into each other if joined naively.
        yield* store.put({ key: key("Acct", "x-", "a"), bucket: 0, nextDue: 1, data: "" }, 0)
        yield* store.put({ key: key("Acct", "", "a"), bucket: 0, nextDue: 1, data: "" }, 0)
        yield* store.put({ key: key("Acct-x", "", "a"), bucket: 0, nextDue: 1, data: "" }, 0)
        yield* store.put({ key: key("A:B", "C", "n"), bucket: 0, nextDue: 1, data: "ab-c" }, 0)
        yield* store.put({ key: key("A", "B:C", "n"), bucket: 0, nextDue: 1, data: "a-bc" }, 0)
        yield* store.put({ key: key("A!B", "C", "n"), bucket: 0, nextDue: 1, data: "a!b-c" }, 0)
        yield* store.put({ key: key("A", "B!C", "n"), bucket: 0, nextDue: 1, data: "a-b!c" }, 0)

        const listed = yield* store.list("Acct", "x")
        assert.deepStrictEqual(listed.map((r) => r.key.name), ["", "B", "a", "a b", "a-", "a/b", "b", "x:y", "{}", "ü", "\uFFFD", "𝄞"])
        for (const r of listed) {
          const i = names.indexOf(r.key.name)
          assert.deepStrictEqual(r, { key: key("Acct", "x", r.key.name), bucket: i % 3, nextDue: 1_000 - i, data: `${i}`, version: 1 })
        }
        assert.deepStrictEqual(keysOf(yield* store.list("Acct", "x-")), ["Acct|x-|a"])
        assert.deepStrictEqual(keysOf(yield* store.list("Acct", "")), ["Acct||a"])
        assert.deepStrictEqual(keysOf(yield* store.list("Acct-x", "")), ["Acct-x||a"])
        assert.deepStrictEqual((yield* store.list("A:B", "C")).map((r) => r.data), ["ab-c"])
        assert.deepStrictEqual((yield* store.list("A", "B:C")).map((r) => r.data), ["a-bc"])
        assert.deepStrictEqual((yield* store.list("A!B", "C")).map((r) => r.data), ["a!b-c"])
        assert.deepStrictEqual((yield* store.list("A", "B!C")).map((r) => r.data), ["a-b!c"])
        assert.deepStrictEqual(yield* store.list("A", "B"), [])
        assert.deepStrictEqual(yield* store.list("acct", "x"), [])
      }))

    it.live("odd characters in type, id and name round-trip through get, list and due", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const odd = ["a/b", "x:y", "{}", "{a}b}", "%41", "!", "a!b", "\"q\" \\", "ünï 日本 👩‍👩‍👧", "", " ", "\t\n", "*?[]"]
        const keys = odd.flatMap((text) => [key(text, "id", "n"), key("T", text, "n"), key("T", "id", text)])
        for (const [i, k] of keys.entries()) yield* store.put({ key: k, bucket: 9, nextDue: i, data: `v${i}` }, 0)
        for (const [i, k] of keys.entries()) {
          assert.deepStrictEqual(yield* store.get(k), { key: k, bucket: 9, nextDue: i, data: `v${i}`, version: 1 })
        }
        const due = yield* store.due(9, keys.length, 1_000)
        assert.deepStrictEqual(due.map((r) => r.key), keys)
        assert.deepStrictEqual(due.map((r) => r.data), keys.map((_, i) => `v${i}`))
        for (const text of odd) {
          assert.deepStrictEqual((yield* store.list(text, "id")).map((r) => r.key), [key(text, "id", "n")])
        }
        for (const [i, k] of keys.entries()) {
          yield* store.appendHistory(k, `h${i}`, 2)
          assert.deepStrictEqual(yield* store.history(k), [`h${i}`])
        }
        for (const k of keys) yield* store.remove(k, 1)
        assert.deepStrictEqual(yield* store.due(9, keys.length, 1_000), [])
      }))

    it.live("data round-trips as given: 100 KB, unicode, quotes and escapes", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "big", "r")
        const data = JSON.stringify({ text: "x".repeat(100_000), s: "ü€𝄞 日本語 👩‍👩‍👧 \"q\" \\ \n" })
        yield* store.put({ key: k, bucket: 0, nextDue: 1, data }, 0)
        assert.strictEqual((yield* store.get(k))?.data, data)
        assert.strictEqual((yield* store.list("T", "big"))[0]?.data, data)
        assert.strictEqual((yield* store.due(0, 1, 1))[0]?.data, data)
        yield* store.appendHistory(k, data, 1)
        assert.deepStrictEqual(yield* store.history(k), [data])
      }))

    it.live("a put with a nextDue or bucket that cannot be ordered fails with StoreError and stores nothing", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "bad", "r")
        for (const write of [
          { key: k, bucket: 0, nextDue: Number.NaN, data: "" },
          { key: k, bucket: 0, nextDue: Infinity, data: "" },
          { key: k, bucket: -1, nextDue: 1, data: "" },
          { key: k, bucket: 1.5, nextDue: 1, data: "" }
        ]) {
          const error = yield* Effect.flip(store.put(write, 0))
          assert.instanceOf(error, StoreError)
          assert.strictEqual((error as StoreError).operation, "put")
        }
        assert.isUndefined(yield* store.get(k))
        assert.deepStrictEqual(yield* store.list("T", "bad"), [])
        assert.deepStrictEqual(yield* store.due(0, Number.MAX_SAFE_INTEGER, 10), [])
        const error = yield* Effect.flip(store.addDeadLetter({ id: "x", kind: "tell", at: Number.NaN, data: "" }))
        assert.strictEqual(error.operation, "addDeadLetter")
        assert.deepStrictEqual(yield* store.deadLetters({ limit: 10 }), [])
      }))

    it.live("history is newest first, keeps the newest `keep`, and is per reminder", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "a", "r")
        const other = key("T", "a", "r2")
        yield* store.put({ key: k, bucket: 0, nextDue: 1, data: "" }, 0)
        yield* store.put({ key: other, bucket: 0, nextDue: 1, data: "" }, 0)
        for (let i = 1; i <= 5; i++) yield* store.appendHistory(k, `e${i}`, 3)
        assert.deepStrictEqual(yield* store.history(k), ["e5", "e4", "e3"])
        assert.deepStrictEqual(yield* store.history(other), [])
        // A larger keep lets it grow again; a smaller one trims at the next append.
        yield* store.appendHistory(k, "e6", 5)
        yield* store.appendHistory(k, "e7", 5)
        assert.deepStrictEqual(yield* store.history(k), ["e7", "e6", "e5", "e4", "e3"])
        yield* store.appendHistory(k, "e8", 2)
        assert.deepStrictEqual(yield* store.history(k), ["e8", "e7"])
        yield* store.appendHistory(k, "e9", 1)
        assert.deepStrictEqual(yield* store.history(k), ["e9"])
        // Entries equal to each other are kept as separate entries.
        yield* store.appendHistory(other, "same", 10)
        yield* store.appendHistory(other, "same", 10)
        assert.deepStrictEqual(yield* store.history(other), ["same", "same"])
        // Puts do not touch the history.
        yield* store.put({ key: k, bucket: 0, nextDue: 2, data: "moved" }, 1)
        assert.deepStrictEqual(yield* store.history(k), ["e9"])
        // keep 0 keeps nothing.
        yield* store.appendHistory(k, "e10", 0)
        assert.deepStrictEqual(yield* store.history(k), [])
      }))

    it.live("a put with a history entry appends it when the put succeeds, and only then", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "ph", "r")
        assert.strictEqual(yield* store.put({ key: k, bucket: 0, nextDue: 1, data: "a" }, 0, { entry: "t1", keep: 2 }), 1)
        assert.deepStrictEqual(yield* store.history(k), ["t1"])
        yield* store.put({ key: k, bucket: 0, nextDue: 2, data: "b" }, 1, { entry: "t2", keep: 2 })
        yield* store.put({ key: k, bucket: 0, nextDue: 3, data: "c" }, 2, { entry: "t3", keep: 2 })
        assert.deepStrictEqual(yield* store.history(k), ["t3", "t2"])
        // A lost compare-and-set writes neither the reminder nor its entry.
        const stale = yield* Effect.flip(store.put({ key: k, bucket: 0, nextDue: 9, data: "x" }, 1, { entry: "lost", keep: 2 }))
        assert.instanceOf(stale, StateConflict)
        assert.deepStrictEqual(yield* store.history(k), ["t3", "t2"])
        assert.strictEqual((yield* store.get(k))?.data, "c")
        // keep 0 keeps nothing, as for appendHistory.
        yield* store.put({ key: k, bucket: 0, nextDue: 4, data: "d" }, 3, { entry: "t4", keep: 0 })
        assert.deepStrictEqual(yield* store.history(k), [])
      }))

    it.live("a key with no reminder has no history: appending to it stores nothing", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const k = key("T", "gone", "r")
        yield* store.appendHistory(k, "orphan", 10)
        assert.deepStrictEqual(yield* store.history(k), [])
        yield* store.put({ key: k, bucket: 0, nextDue: 1, data: "" }, 0)
        yield* store.appendHistory(k, "e1", 10)
        yield* store.remove(k, 1)
        // A tick that finishes after its reminder was removed leaves nothing behind.
        yield* store.appendHistory(k, "late", 10)
        assert.deepStrictEqual(yield* store.history(k), [])
        yield* store.put({ key: k, bucket: 0, nextDue: 1, data: "" }, 0)
        assert.deepStrictEqual(yield* store.history(k), [])
      }))

    it.live("dead letters: ordered by at then id, filtered by kind, limited, replaced by id, removed", () =>
      Effect.gen(function*() {
        const store = yield* makeStore
        const letter = (id: string, kind: string, at: number): DeadLetter => ({ id, kind, at, data: `{"id":${JSON.stringify(id)}}` })
        const entries = [
          letter("m", "reminder", 300),
          letter("b", "tell", 100),
          letter("a/b", "reminder", 200),
          letter("a", "reminder", 200),
          letter("x:y", "tell", 200),
          letter("{}", "tell", 50.5),
          letter("ü", "reminder", 200),
          letter("", "tell", 400)
        ]
        for (const entry of entries) yield* store.addDeadLetter(entry)
        const ids = (options: { readonly limit: number; readonly kind?: string }) =>
          Effect.map(store.deadLetters(options), (letters) => letters.map((l) => l.id))

        assert.deepStrictEqual(yield* ids({ limit: 100 }), ["{}", "b", "a", "a/b", "x:y", "ü", "m", ""])
        assert.deepStrictEqual(yield* store.deadLetters({ limit: 2 }), [letter("{}", "tell", 50.5), letter("b", "tell", 100)])
        assert.deepStrictEqual(yield* ids({ limit: 0 }), [])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: "reminder" }), ["a", "a/b", "ü", "m"])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: "tell" }), ["{}", "b", "x:y", ""])
        assert.deepStrictEqual(yield* ids({ limit: 2, kind: "tell" }), ["{}", "b"])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: "other" }), [])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: undefined }), yield* ids({ limit: 100 }))
        const all = yield* store.deadLetters({ limit: 100 })
        assert.deepStrictEqual(all[0], letter("{}", "tell", 50.5))
        assert.deepStrictEqual(all.find((l) => l.id === "ü"), letter("ü", "reminder", 200))

        // Same id: replaced (time, kind and data), not added.
        yield* store.addDeadLetter({ id: "b", kind: "reminder", at: 250, data: "replaced" })
        assert.deepStrictEqual(yield* ids({ limit: 100 }), ["{}", "a", "a/b", "x:y", "ü", "b", "m", ""])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: "tell" }), ["{}", "x:y", ""])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: "reminder" }), ["a", "a/b", "ü", "b", "m"])
        assert.deepStrictEqual((yield* store.deadLetters({ limit: 100 })).find((l) => l.id === "b"), {
          id: "b",
          kind: "reminder",
          at: 250,
          data: "replaced"
        })

        assert.isTrue(yield* store.removeDeadLetter("a/b"))
        assert.isFalse(yield* store.removeDeadLetter("a/b"))
        assert.isTrue(yield* store.removeDeadLetter(""))
        assert.isFalse(yield* store.removeDeadLetter("never"))
        assert.deepStrictEqual(yield* ids({ limit: 100 }), ["{}", "a", "x:y", "ü", "b", "m"])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: "reminder" }), ["a", "ü", "b", "m"])
        assert.deepStrictEqual(yield* ids({ limit: 100, kind: "tell" }), ["{}", "x:y"])
        // A removed id can be added again.
        yield* store.addDeadLetter(letter("a/b", "tell", 1))
        assert.deepStrictEqual(yield* ids({ limit: 2 }), ["a/b", "{}"])
      }))
  })
}

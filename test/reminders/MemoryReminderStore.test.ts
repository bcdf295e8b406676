import { assert, describe, it } from "@effect/vitest"
import { Effect } from "effect"
import * as fc from "fast-check"
import { SortedList } from "../../src/Reminders/internal/SortedList.ts"
import { compareCodePoints, compareKeys } from "../../src/Reminders/internal/StoreOrder.ts"
import * as MemoryReminderStore from "../../src/Reminders/MemoryReminderStore.ts"
import type { ReminderKey, StoredReminder } from "../../src/Reminders/ReminderStore.ts"
import { reminderConformance } from "./conformance.ts"

reminderConformance("memory", Effect.sync(() => MemoryReminderStore.make("memory")))

describe("memory: provider specifics", () => {
  it("compareCodePoints is the byte order of UTF-8", () =>
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), fc.string({ unit: "grapheme" }), (a, b) => {
        const expected = Math.sign(Buffer.compare(Buffer.from(a, "utf8"), Buffer.from(b, "utf8")))
        assert.strictEqual(Math.sign(compareCodePoints(a, b)), expected)
      }),
      { numRuns: 2_000 }
    ))

  it("a SortedList with small chunks agrees with a sorted array through inserts and deletes", () =>
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 60 })), { maxLength: 400 }),
        fc.integer({ min: 1, max: 4 }),
        (ops, load) => {
          const list = new SortedList<number>((a, b) => a - b, load)
          const model = new Set<number>()
          for (const [insert, value] of ops) {
            if (insert && !model.has(value)) {
              list.insert(value)
              model.add(value)
            } else if (!insert) {
              assert.strictEqual(list.delete(value), model.delete(value))
            }
            assert.strictEqual(list.size, model.size)
          }
          const sorted = [...model].sort((a, b) => a - b)
          assert.deepStrictEqual(list.takeWhile(Infinity, () => true), sorted)
          assert.deepStrictEqual(list.takeWhile(3, () => true), sorted.slice(0, 3))
          assert.deepStrictEqual(list.takeWhile(Infinity, (v) => v <= 30), sorted.filter((v) => v <= 30))
        }
      ),
      { numRuns: 500 }
    ))

  it.effect("due agrees with a sorted scan through random puts and removes", () =>
    Effect.gen(function*() {
      const store = MemoryReminderStore.make("memory")
      const model = new Map<string, StoredReminder>()
      let seed = 42
      const random = (n: number) => {
        seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648
        return seed % n
      }
      const byDue = (a: StoredReminder, b: StoredReminder) =>
        a.nextDue - b.nextDue || compareKeys(a.key, b.key)
      for (let step = 0; step < 5_000; step++) {
        const k: ReminderKey = { type: "T", id: `a${random(30)}`, name: `r${random(10)}` }
        const at = JSON.stringify([k.type, k.id, k.name])
        const current = model.get(at)
        if (current !== undefined && random(4) === 0) {
          yield* store.remove(k, current.version)
          model.delete(at)
        } else {
          const write = { key: k, bucket: Number(k.id.slice(1)) % 3, nextDue: random(500), data: `${step}` }
          const version = yield* store.put(write, current?.version ?? 0)
          model.set(at, { ...write, version })
        }
        if (step % 50 === 0) {
          const until = random(600)
          for (const bucket of [0, 1, 2]) {
            const expected = [...model.values()].filter((r) => r.bucket === bucket && r.nextDue <= until).sort(byDue)
            assert.deepStrictEqual(yield* store.due(bucket, until, 20), expected.slice(0, 20))
          }
        }
      }
    }))
})

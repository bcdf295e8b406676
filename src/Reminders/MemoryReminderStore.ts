/**
 * The in-memory `ReminderStore`: the default for a single silo and tests, and the reference
 * the conformance suite holds the Redis and PostgreSQL providers to. Each operation is one
 * synchronous step, so every compare-and-set is atomic by construction.
 *
 * **Structures.**
 * - `reminders`: key → stored reminder (the record of truth).
 * - `buckets`: bucket → the bucket's reminders in `(nextDue, type, id, name)` order, kept
 *   in a {@link SortedList}. `due` reads the head of one list (no scan of anything else); a
 *   put that moves `nextDue` is one delete and one insert, each a binary search plus a
 *   splice inside one chunk of at most `2 × 512` entries, so a write costs O(log n) compares
 *   and a bounded copy however many reminders the bucket holds.
 * - `actors`: actor → its reminders by name (sorted when listed: an actor has few).
 * - `histories`: key → entries, newest first.
 * - dead letters: id → entry, plus one `SortedList` by `(at, id)` over all of them and one
 *   per kind.
 *
 * **Order of keys.** Strings compare by Unicode code point (which is UTF-8 byte order, the
 * order of Redis sorted-set members and of PostgreSQL's `"C"` collation), not by UTF-16
 * code unit as JavaScript's `<` does, so all providers agree on ties.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { StateConflict, StoreError } from "../Persistence/PersistenceError.ts"
import { SortedList } from "./internal/SortedList.ts"
import { compareCodePoints, compareKeys, countOf, invalidDeadLetter, invalidWrite } from "./internal/StoreOrder.ts"
import type { DeadLetter, ReminderKey, ReminderStore, StoredReminder } from "./ReminderStore.ts"

/** The order of `due`: `nextDue`, then key. */
const byDue = (a: StoredReminder, b: StoredReminder): number => a.nextDue - b.nextDue || compareKeys(a.key, b.key)

/** The order of the dead-letter queue: `at`, then id. */
const byAt = (a: DeadLetter, b: DeadLetter): number => a.at - b.at || compareCodePoints(a.id, b.id)

/** A printable form of a key, for errors. */
const display = (key: ReminderKey): string => `${key.type}/${key.id}/${key.name}`

/**
 * A `ReminderStore` in this process's memory, named `name`.
 *
 * @since 0.1.0
 */
export const make = (name: string): ReminderStore => {
  // Keys as JSON arrays: unambiguous for any strings.
  const reminderId = (key: ReminderKey) => JSON.stringify([key.type, key.id, key.name])
  const actorId = (type: string, id: string) => JSON.stringify([type, id])

  const reminders = new Map<string, StoredReminder>()
  const buckets = new Map<number, SortedList<StoredReminder>>()
  const actors = new Map<string, Map<string, StoredReminder>>()
  const histories = new Map<string, Array<string>>()
  const deadLetters = new Map<string, DeadLetter>()
  const deadLettersByAt = new SortedList<DeadLetter>(byAt)
  const deadLettersByKind = new Map<string, SortedList<DeadLetter>>()

  const bucketList = (bucket: number) => {
    let list = buckets.get(bucket)
    if (list === undefined) buckets.set(bucket, list = new SortedList(byDue))
    return list
  }
  const conflict = (key: ReminderKey, expectedVersion: number, actualVersion: number) =>
    Effect.fail(new StateConflict({ key: display(key), expectedVersion, actualVersion }))

  /** Takes a stored reminder out of the bucket and actor indexes. */
  const unindex = (stored: StoredReminder) => {
    const list = buckets.get(stored.bucket)
    if (list !== undefined) {
      list.delete(stored)
      if (list.size === 0) buckets.delete(stored.bucket)
    }
    const actor = actorId(stored.key.type, stored.key.id)
    const names = actors.get(actor)
    if (names !== undefined) {
      names.delete(stored.key.name)
      if (names.size === 0) actors.delete(actor)
    }
  }

  const kindList = (kind: string) => {
    let list = deadLettersByKind.get(kind)
    if (list === undefined) deadLettersByKind.set(kind, list = new SortedList(byAt))
    return list
  }
  const removeDeadLetter = (id: string): boolean => {
    const entry = deadLetters.get(id)
    if (entry === undefined) return false
    deadLetters.delete(id)
    deadLettersByAt.delete(entry)
    const list = deadLettersByKind.get(entry.kind)
    if (list !== undefined) {
      list.delete(entry)
      if (list.size === 0) deadLettersByKind.delete(entry.kind)
    }
    return true
  }

  return {
    name,
    get: (key) => Effect.sync(() => reminders.get(reminderId(key))),
    put: (reminder, expectedVersion) =>
      Effect.suspend((): Effect.Effect<number, StateConflict | StoreError> => {
        const invalid = invalidWrite(reminder)
        if (invalid !== undefined) return Effect.fail(new StoreError({ store: name, operation: "put", reason: invalid }))
        const id = reminderId(reminder.key)
        const current = reminders.get(id)
        const actual = current?.version ?? 0
        if (actual !== expectedVersion) return conflict(reminder.key, expectedVersion, actual)
        const stored: StoredReminder = {
          key: { type: reminder.key.type, id: reminder.key.id, name: reminder.key.name },
          bucket: reminder.bucket,
          nextDue: reminder.nextDue,
          data: reminder.data,
          version: actual + 1
        }
        if (current !== undefined) unindex(current)
        reminders.set(id, stored)
        bucketList(stored.bucket).insert(stored)
        const actor = actorId(stored.key.type, stored.key.id)
        let names = actors.get(actor)
        if (names === undefined) actors.set(actor, names = new Map())
        names.set(stored.key.name, stored)
        return Effect.succeed(stored.version)
      }),
    remove: (key, expectedVersion) =>
      Effect.suspend(() => {
        const id = reminderId(key)
        const current = reminders.get(id)
        const actual = current?.version ?? 0
        if (actual !== expectedVersion) return conflict(key, expectedVersion, actual)
        if (current !== undefined) {
          unindex(current)
          reminders.delete(id)
          histories.delete(id)
        }
        return Effect.void
      }),
    list: (type, id) =>
      Effect.sync(() => {
        const names = actors.get(actorId(type, id))
        if (names === undefined) return []
        return Array.from(names.values()).sort((a, b) => compareCodePoints(a.key.name, b.key.name))
      }),
    due: (bucket, until, limit) =>
      Effect.sync(() => buckets.get(bucket)?.takeWhile(countOf(limit), (r) => r.nextDue <= until) ?? []),
    appendHistory: (key, entry, keep) =>
      Effect.sync(() => {
        const id = reminderId(key)
        // History lives and dies with its reminder: none is kept for a key with no reminder.
        if (!reminders.has(id)) return
        const kept = countOf(keep)
        if (kept === 0) {
          histories.delete(id)
          return
        }
        const entries = histories.get(id) ?? []
        entries.unshift(entry)
        if (entries.length > kept) entries.length = kept
        histories.set(id, entries)
      }),
    history: (key) => Effect.sync(() => histories.get(reminderId(key))?.slice() ?? []),
    addDeadLetter: (entry) =>
      Effect.suspend(() => {
        const invalid = invalidDeadLetter(entry)
        if (invalid !== undefined) {
          return Effect.fail(new StoreError({ store: name, operation: "addDeadLetter", reason: invalid }))
        }
        removeDeadLetter(entry.id)
        const stored: DeadLetter = { id: entry.id, kind: entry.kind, at: entry.at, data: entry.data }
        deadLetters.set(stored.id, stored)
        deadLettersByAt.insert(stored)
        kindList(stored.kind).insert(stored)
        return Effect.void
      }),
    deadLetters: ({ kind, limit }) =>
      Effect.sync(() => {
        const list = kind === undefined ? deadLettersByAt : deadLettersByKind.get(kind)
        return list?.takeWhile(countOf(limit), () => true) ?? []
      }),
    removeDeadLetter: (id) => Effect.sync(() => removeDeadLetter(id))
  }
}

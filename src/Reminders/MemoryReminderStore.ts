/**
 * The in-memory `ReminderStore`: the default for a single silo and tests, and the reference
 * the conformance suite holds the Redis and PostgreSQL providers to. Each operation is one
 * synchronous step, so every compare-and-set is atomic by construction.
 *
 * **Structures.**
 * - `reminders`: key → stored reminder (the record of truth).
 * - `buckets`: bucket → its reminders by key, unordered. A put is O(1); `due` scans the
 *   bucket and sorts what is due by `(nextDue, type, id, name)`. Puts are the hot path (one
 *   per fired tick), `due` is not: a bucket reads it once, when it is activated. Kept in
 *   order instead (a sorted list), every put cost a delete and an insert, which measured as
 *   the largest part of a tick on this store (`npm run bench -- --only=reminders.lag.memory`).
 * - `actors`: actor → its reminders by name (sorted when listed: an actor has few).
 * - `histories`: key → entries, newest first.
 * - dead letters: id → entry, plus one `SortedList` by `(at, id)` over all of them and one
 *   per kind.
 *
 * **Order of keys.** Strings compare by Unicode code point (which is UTF-8 byte order, the
 * order of Redis sorted-set members and of PostgreSQL's `"C"` collation), not by UTF-16
 * code unit as JavaScript's `<` does, so all providers agree on ties.
 *
 * Operations are timed as store kind `"memory"` (`internal/ReminderStoreMetrics.ts`).
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import { StateConflict, StoreError } from "../Persistence/PersistenceError.ts"
import { instrumentReminderStore } from "./internal/ReminderStoreMetrics.ts"
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
  const buckets = new Map<number, Map<string, StoredReminder>>()
  const actors = new Map<string, Map<string, StoredReminder>>()
  const histories = new Map<string, Array<string>>()
  const deadLetters = new Map<string, DeadLetter>()
  const deadLettersByAt = new SortedList<DeadLetter>(byAt)
  const deadLettersByKind = new Map<string, SortedList<DeadLetter>>()

  const bucketOf = (bucket: number) => {
    let members = buckets.get(bucket)
    if (members === undefined) buckets.set(bucket, members = new Map())
    return members
  }
  const conflict = (key: ReminderKey, expectedVersion: number, actualVersion: number) =>
    Effect.fail(new StateConflict({ key: display(key), expectedVersion, actualVersion }))

  /** Takes a stored reminder out of the bucket and actor indexes. */
  const unindex = (id: string, stored: StoredReminder) => {
    const members = buckets.get(stored.bucket)
    if (members !== undefined) {
      members.delete(id)
      if (members.size === 0) buckets.delete(stored.bucket)
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

  const appendHistory = (id: string, entry: string, keep: number) => {
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
  }

  return instrumentReminderStore("memory", {
    name,
    get: (key) => Effect.sync(() => reminders.get(reminderId(key))),
    put: (reminder, expectedVersion, history) =>
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
        if (current !== undefined && current.bucket !== stored.bucket) unindex(id, current)
        reminders.set(id, stored)
        bucketOf(stored.bucket).set(id, stored)
        const actor = actorId(stored.key.type, stored.key.id)
        let names = actors.get(actor)
        if (names === undefined) actors.set(actor, names = new Map())
        names.set(stored.key.name, stored)
        if (history !== undefined) appendHistory(id, history.entry, history.keep)
        return Effect.succeed(stored.version)
      }),
    remove: (key, expectedVersion) =>
      Effect.suspend(() => {
        const id = reminderId(key)
        const current = reminders.get(id)
        const actual = current?.version ?? 0
        if (actual !== expectedVersion) return conflict(key, expectedVersion, actual)
        if (current !== undefined) {
          unindex(id, current)
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
      Effect.sync(() => {
        const count = countOf(limit)
        const members = buckets.get(bucket)
        if (members === undefined || count === 0) return []
        const due: Array<StoredReminder> = []
        for (const stored of members.values()) if (stored.nextDue <= until) due.push(stored)
        return due.sort(byDue).slice(0, count)
      }),
    appendHistory: (key, entry, keep) => Effect.sync(() => appendHistory(reminderId(key), entry, keep)),
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
  })
}

/**
 * The in-memory provider: the default store, and the reference the conformance suite
 * holds the others to. Plain maps; each operation is one synchronous step, so version
 * checks are atomic by construction.
 *
 * @since 0.1.0
 */
import { Effect } from "effect"
import type { Journal, JournalEntry, Snapshot } from "./Journal.ts"
import { JournalConflict, StateConflict } from "./PersistenceError.ts"
import { formatKey, type StateKey, type StateStore, type StoredState } from "./StateStore.ts"

/**
 * @since 0.1.0
 */
export const makeMemoryStateStore = (name: string): StateStore => {
  const records = new Map<string, StoredState>()
  const versionOf = (key: string) => records.get(key)?.version ?? 0
  return {
    name,
    read: (key) => Effect.sync(() => records.get(formatKey(key))),
    write: (key, data, expectedVersion) =>
      Effect.suspend(() => {
        const at = formatKey(key)
        const actual = versionOf(at)
        if (actual !== expectedVersion) {
          return Effect.fail(new StateConflict({ key: at, expectedVersion, actualVersion: actual }))
        }
        records.set(at, { data, version: actual + 1 })
        return Effect.succeed(actual + 1)
      }),
    clear: (key, expectedVersion) =>
      Effect.suspend(() => {
        const at = formatKey(key)
        const actual = versionOf(at)
        if (actual !== expectedVersion) {
          return Effect.fail(new StateConflict({ key: at, expectedVersion, actualVersion: actual }))
        }
        records.delete(at)
        return Effect.void
      })
  }
}

/**
 * @since 0.1.0
 */
export const makeMemoryJournal = (name: string): Journal => {
  const journals = new Map<string, Array<string>>()
  const snapshots = new Map<string, Snapshot>()
  const entries = (key: StateKey) => journals.get(formatKey(key)) ?? []
  return {
    name,
    append: (key, expectedSequence, events) =>
      Effect.suspend(() => {
        const at = formatKey(key)
        let stored = journals.get(at)
        if (stored === undefined) journals.set(at, stored = [])
        if (stored.length !== expectedSequence) {
          return Effect.fail(
            new JournalConflict({ key: at, expectedSequence, actualSequence: stored.length })
          )
        }
        for (const event of events) stored.push(event)
        return Effect.succeed(stored.length)
      }),
    read: (key, from, to) =>
      Effect.sync(() => {
        const stored = entries(key)
        const last = Math.min(to ?? stored.length, stored.length)
        const out: Array<JournalEntry> = []
        for (let sequence = Math.max(from, 1); sequence <= last; sequence++) {
          out.push({ sequence, data: stored[sequence - 1] })
        }
        return out
      }),
    lastSequence: (key) => Effect.sync(() => entries(key).length),
    saveSnapshot: (key, snapshot) =>
      Effect.sync(() => {
        const at = formatKey(key)
        const current = snapshots.get(at)
        if (current === undefined || current.sequence <= snapshot.sequence) snapshots.set(at, snapshot)
      }),
    loadSnapshot: (key) => Effect.sync(() => snapshots.get(formatKey(key)))
  }
}

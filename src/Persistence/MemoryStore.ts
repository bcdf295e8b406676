/**
 * The in-memory provider: the default store, and the reference the conformance suite
 * holds the others to. Plain maps; each operation is one synchronous step, so version
 * checks are atomic by construction. Operations are timed as store kind `"memory"`
 * (`internal/StoreMetrics.ts`): each step returns its `Exit`, timed where it runs, since
 * an effect wrapped around a step this short would cost more than the step.
 *
 * @since 0.1.0
 */
import { Effect, Exit } from "effect"
import type { Journal, JournalEntry, Snapshot } from "./Journal.ts"
import { JournalConflict, StateConflict } from "./PersistenceError.ts"
import { formatKey, type StateKey, type StateStore, type StoredState } from "./StateStore.ts"
import { registerJournalScan, registerStateScan } from "./internal/StoreScan.ts"
import { syncTimer } from "./internal/StoreMetrics.ts"

const timeRead = syncTimer("memory", "state.read")
const timeWrite = syncTimer("memory", "state.write")
const timeClear = syncTimer("memory", "state.clear")
const timeAppend = syncTimer("memory", "journal.append")
const timeReadJournal = syncTimer("memory", "journal.read")
const timeLastSequence = syncTimer("memory", "journal.last_sequence")
const timeSaveSnapshot = syncTimer("memory", "snapshot.save")
const timeLoadSnapshot = syncTimer("memory", "snapshot.load")

/**
 * @since 0.1.0
 */
export const makeMemoryStateStore = (name: string): StateStore => {
  const records = new Map<string, StoredState>()
  // The key of each record, for the re-encryption scan (`internal/StoreScan.ts`).
  const keys = new Map<string, StateKey>()
  const versionOf = (key: string) => records.get(key)?.version ?? 0
  return registerStateScan({
    name,
    read: (key) => timeRead(() => Exit.succeed(records.get(formatKey(key)))),
    write: (key, data, expectedVersion) =>
      timeWrite(() => {
        const at = formatKey(key)
        const actual = versionOf(at)
        if (actual !== expectedVersion) {
          return Exit.fail(new StateConflict({ key: at, expectedVersion, actualVersion: actual }))
        }
        records.set(at, { data, version: actual + 1 })
        if (actual === 0) keys.set(at, { type: key.type, id: key.id, record: key.record })
        return Exit.succeed(actual + 1)
      }),
    clear: (key, expectedVersion) =>
      timeClear(() => {
        const at = formatKey(key)
        const actual = versionOf(at)
        if (actual !== expectedVersion) {
          return Exit.fail(new StateConflict({ key: at, expectedVersion, actualVersion: actual }))
        }
        records.delete(at)
        keys.delete(at)
        return Exit.void
      })
  }, { stateKeys: () => Exit.succeed({ keys: [...keys.values()], cursor: undefined }) })
}

/**
 * @since 0.1.0
 */
export const makeMemoryJournal = (name: string): Journal => {
  const journals = new Map<string, Array<string>>()
  const snapshots = new Map<string, Snapshot>()
  // The key of each journal and snapshot, for the re-encryption scan (`internal/StoreScan.ts`).
  const keys = new Map<string, StateKey>()
  const entries = (key: StateKey) => journals.get(formatKey(key)) ?? []
  const listed = (of: Map<string, unknown>) => () =>
    Exit.succeed({ keys: [...of.keys()].flatMap((at) => keys.has(at) ? [keys.get(at)!] : []), cursor: undefined })
  return registerJournalScan({
    name,
    append: (key, expectedSequence, events) =>
      timeAppend(() => {
        const at = formatKey(key)
        let stored = journals.get(at)
        if (stored === undefined) {
          journals.set(at, stored = [])
          keys.set(at, { type: key.type, id: key.id, record: key.record })
        }
        if (stored.length !== expectedSequence) {
          return Exit.fail(new JournalConflict({ key: at, expectedSequence, actualSequence: stored.length }))
        }
        for (const event of events) stored.push(event)
        return Exit.succeed(stored.length)
      }),
    read: (key, from, to) =>
      timeReadJournal(() => {
        const stored = entries(key)
        const last = Math.min(to ?? stored.length, stored.length)
        const out: Array<JournalEntry> = []
        for (let sequence = Math.max(from, 1); sequence <= last; sequence++) {
          out.push({ sequence, data: stored[sequence - 1] })
        }
        return Exit.succeed(out)
      }),
    lastSequence: (key) => timeLastSequence(() => Exit.succeed(entries(key).length)),
    saveSnapshot: (key, snapshot) =>
      timeSaveSnapshot(() => {
        const at = formatKey(key)
        const current = snapshots.get(at)
        if (current === undefined || current.sequence <= snapshot.sequence) snapshots.set(at, snapshot)
        if (!keys.has(at)) keys.set(at, { type: key.type, id: key.id, record: key.record })
        return Exit.void
      }),
    loadSnapshot: (key) => timeLoadSnapshot(() => Exit.succeed(snapshots.get(formatKey(key))))
  }, {
    journalKeys: listed(journals),
    snapshotKeys: listed(snapshots),
    replaceEvent: (key, sequence, expected, data) =>
      Effect.sync(() => {
        const stored = journals.get(formatKey(key))
        if (stored?.[sequence - 1] !== expected) return false
        stored[sequence - 1] = data
        return true
      }),
    replaceSnapshot: (key, sequence, expected, data) =>
      Effect.sync(() => {
        const at = formatKey(key)
        const current = snapshots.get(at)
        if (current?.sequence !== sequence || current.data !== expected) return false
        snapshots.set(at, { sequence, data })
        return true
      })
  })
}

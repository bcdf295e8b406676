/**
 * Times every operation of the built-in reminder stores into
 * `quark_store_operation_duration_seconds{store,operation}`, as the state stores are (see
 * `Persistence/internal/StoreMetrics.ts`): each provider wraps what it returns, so a
 * batched put is timed from its call to its result.
 *
 * @internal
 */
import { type StoreKind, timer } from "../../Persistence/internal/StoreMetrics.ts"
import type { ReminderStore } from "../ReminderStore.ts"

/** `store` with every operation timed. @internal */
export const instrumentReminderStore = (kind: StoreKind, store: ReminderStore): ReminderStore => {
  const get = timer(kind, "reminder.get")
  const put = timer(kind, "reminder.put")
  const remove = timer(kind, "reminder.remove")
  const list = timer(kind, "reminder.list")
  const due = timer(kind, "reminder.due")
  const appendHistory = timer(kind, "reminder.history_append")
  const history = timer(kind, "reminder.history")
  const addDeadLetter = timer(kind, "dead_letter.add")
  const deadLetters = timer(kind, "dead_letter.list")
  const removeDeadLetter = timer(kind, "dead_letter.remove")
  return {
    name: store.name,
    get: (key) => get(store.get(key)),
    put: (reminder, expectedVersion, entry) => put(store.put(reminder, expectedVersion, entry)),
    remove: (key, expectedVersion) => remove(store.remove(key, expectedVersion)),
    list: (type, id) => list(store.list(type, id)),
    due: (bucket, until, limit) => due(store.due(bucket, until, limit)),
    appendHistory: (key, entry, keep) => appendHistory(store.appendHistory(key, entry, keep)),
    history: (key) => history(store.history(key)),
    addDeadLetter: (entry) => addDeadLetter(store.addDeadLetter(entry)),
    deadLetters: (options) => deadLetters(store.deadLetters(options)),
    removeDeadLetter: (id) => removeDeadLetter(store.removeDeadLetter(id))
  }
}

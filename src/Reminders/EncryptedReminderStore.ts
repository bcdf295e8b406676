/**
 * Encrypted reminders over any `ReminderStore`: the same keyring and envelope as state
 * (`Persistence/Encryption.ts`), put where the plain store was:
 *
 * ```ts
 * Reminders.layer({ store: EncryptedReminderStore.wrap(RedisReminderStore.make("reminders"), keyring) })
 * ```
 *
 * The rules:
 * - **Encrypted:** a reminder's `data` (the message, its payload, the timing, the tick
 *   count), each history entry, and a dead letter's `data` (its payload, the last error).
 * - **In clear**, because the store orders, indexes or compares them: a reminder's key
 *   (type, id, name), `bucket`, `nextDue` and `version`; a dead letter's `id`, `kind` and
 *   `at`. Whoever reads the store sees which actors have reminders and when they fire.
 * - **Bound to its place:** a reminder's data and history to its key, a dead letter to its
 *   id and kind; copied elsewhere, they do not decrypt.
 * - **A single read** (`get`) that does not decrypt fails with `DecryptionError` (a
 *   `StoreError`). **A read of many** (`due`, `list`, `history`, `deadLetters`) leaves such
 *   an entry out and logs it (record and key id), as the reminder service does with a
 *   record that does not decode: one bad record must not stop a bucket's other reminders.
 * - **Plaintext** already stored reads as it is unless `requireEncrypted`.
 * - **Rotation:** {@link reencrypt} rewrites each reminder not under the active key with a
 *   compare-and-set on its version (a tick that advanced it meanwhile wins: `skipped`; it
 *   wrote with the active key). History entries and dead letters are append-only and have
 *   no version to compare, so the job does not rewrite them: history turns over as ticks
 *   fire (the newest `historySize` are kept), and dead letters are replayed or discarded;
 *   the report counts those still under other keys, which need their key until then.
 *
 * @since 0.2.0
 */
import { Effect } from "effect"
import {
  activeIdOf,
  decryptionError,
  type Keyring,
  keyIdOf,
  type Opened,
  openSync,
  type Options,
  sealSync,
  type Wrap,
  wrapper
} from "../Persistence/Encryption.ts"
import { StoreError } from "../Persistence/PersistenceError.ts"
import type { ReencryptCounts } from "../Persistence/EncryptedStore.ts"
import type { DeadLetter, ReminderKey, ReminderStore, StoredReminder } from "./ReminderStore.ts"

const reminderContext = (key: ReminderKey) => JSON.stringify(["reminder", key.type, key.id, key.name])
const historyContext = (key: ReminderKey) => JSON.stringify(["reminder-history", key.type, key.id, key.name])
const deadLetterContext = (entry: { readonly id: string; readonly kind: string }) =>
  JSON.stringify(["dead-letter", entry.id, entry.kind])
const display = (key: ReminderKey) => `reminder ${key.type}/${key.id}/${key.name}`

type Failed = Extract<Opened, { readonly _tag: "Failed" }>
/** One entry of a read of many: opened, or not (and which record, for the log). */
type Result<B> = { readonly _tag: "Ok"; readonly value: B } | { readonly _tag: "Failed"; readonly record: string; readonly failed: Failed }

const wrappedStores = new WeakMap<ReminderStore, { readonly underlying: ReminderStore; readonly keyring: Keyring }>()

const wrapStore = (store: ReminderStore, keyring: Keyring, options?: Options): ReminderStore => {
  const required = options?.requireEncrypted === true
  const open = (data: string, context: string) => openSync(keyring, data, context, required)
  const logLeftOut = (record: string, failed: Failed) =>
    Effect.logError(`${decryptionError(store.name, record, failed).message}; left out`)

  /** The entries that open; the others logged and left out. */
  const openAll = <A, B>(
    entries: ReadonlyArray<A>,
    openOne: (entry: A) => Result<B>
  ): Effect.Effect<ReadonlyArray<B>> => {
    const out: Array<B> = []
    const failures: Array<Effect.Effect<void>> = []
    for (const entry of entries) {
      const result = openOne(entry)
      if (result._tag === "Ok") out.push(result.value)
      else failures.push(logLeftOut(result.record, result.failed))
    }
    return failures.length === 0 ? Effect.succeed(out) : Effect.as(Effect.all(failures, { discard: true }), out)
  }
  const openReminder = (stored: StoredReminder): Result<StoredReminder> => {
    const opened = open(stored.data, reminderContext(stored.key))
    return opened._tag === "Plain" ?
      { _tag: "Ok", value: { ...stored, data: opened.text } } :
      { _tag: "Failed", record: display(stored.key), failed: opened }
  }

  const wrapped: ReminderStore = {
    name: store.name,
    get: (key) =>
      Effect.flatMap(store.get(key), (stored) => {
        if (stored === undefined) return Effect.succeed(undefined)
        const opened = openReminder(stored)
        return opened._tag === "Ok" ?
          Effect.succeed(opened.value) :
          Effect.fail(decryptionError(store.name, opened.record, opened.failed))
      }),
    put: (reminder, expectedVersion, history) =>
      Effect.suspend(() =>
        store.put(
          { ...reminder, data: sealSync(keyring, reminder.data, reminderContext(reminder.key)) },
          expectedVersion,
          history === undefined ? undefined : {
            entry: sealSync(keyring, history.entry, historyContext(reminder.key)),
            keep: history.keep
          }
        )
      ),
    remove: (key, expectedVersion) => store.remove(key, expectedVersion),
    list: (type, id) => Effect.flatMap(store.list(type, id), (stored) => openAll(stored, openReminder)),
    due: (bucket, until, limit) => Effect.flatMap(store.due(bucket, until, limit), (stored) => openAll(stored, openReminder)),
    appendHistory: (key, entry, keep) =>
      Effect.suspend(() => store.appendHistory(key, sealSync(keyring, entry, historyContext(key)), keep)),
    history: (key) =>
      Effect.flatMap(store.history(key), (entries) =>
        openAll(entries, (entry): Result<string> => {
          const opened = open(entry, historyContext(key))
          return opened._tag === "Plain" ?
            { _tag: "Ok", value: opened.text } :
            { _tag: "Failed", record: `history of ${display(key)}`, failed: opened }
        })),
    addDeadLetter: (entry) =>
      Effect.suspend(() => store.addDeadLetter({ ...entry, data: sealSync(keyring, entry.data, deadLetterContext(entry)) })),
    deadLetters: (query) =>
      Effect.flatMap(store.deadLetters(query), (entries) =>
        openAll(entries, (entry): Result<DeadLetter> => {
          const opened = open(entry.data, deadLetterContext(entry))
          return opened._tag === "Plain" ?
            { _tag: "Ok", value: { ...entry, data: opened.text } } :
            { _tag: "Failed", record: `dead letter ${entry.id}`, failed: opened }
        })),
    removeDeadLetter: (id) => store.removeDeadLetter(id)
  }
  wrappedStores.set(wrapped, { underlying: store, keyring })
  return wrapped
}

/**
 * A reminder store (or the effect that opens one) encrypted with `keyring`.
 *
 * @since 0.2.0
 */
export const wrap: Wrap<ReminderStore> = wrapper(wrapStore)

/**
 * What {@link reencrypt} did.
 *
 * @since 0.2.0
 */
export interface ReminderReencryptReport {
  readonly store: string
  readonly reminders: ReencryptCounts
  /** History entries of the reminders walked that are not under the active key (not rewritten). */
  readonly historyUnderOtherKeys: number
  /** Dead letters not under the active key (not rewritten). */
  readonly deadLettersUnderOtherKeys: number
}

/**
 * Re-encrypts the reminders of a store made by {@link wrap} that are not under the active
 * key (see the module doc), walking buckets `0 ≤ b < bucketCount` (the reminders layer's
 * `bucketCount`, default 64).
 *
 * @since 0.2.0
 */
export const reencrypt = (
  store: ReminderStore,
  options?: { readonly bucketCount?: number | undefined; readonly concurrency?: number | undefined }
): Effect.Effect<ReminderReencryptReport, StoreError> =>
  Effect.gen(function*() {
    const wrapped = wrappedStores.get(store)
    if (wrapped === undefined) {
      return yield* new StoreError({
        store: store.name,
        operation: "reencrypt",
        reason: "not an encrypted reminder store (made by EncryptedReminderStore.wrap)"
      })
    }
    const { keyring, underlying } = wrapped
    const counts = { rewritten: 0, current: 0, skipped: 0, failed: 0 }
    let historyUnderOtherKeys = 0
    const notActive = (data: string) => keyIdOf(data) !== activeIdOf(keyring)
    const buckets = Array.from({ length: options?.bucketCount ?? 64 }, (_, bucket) => bucket)
    yield* Effect.forEach(buckets, (bucket) =>
      Effect.gen(function*() {
        const reminders = yield* underlying.due(bucket, Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER)
        for (const stored of reminders) {
          const history = yield* underlying.history(stored.key)
          historyUnderOtherKeys += history.filter(notActive).length
          if (!notActive(stored.data)) {
            counts.current++
            continue
          }
          const context = reminderContext(stored.key)
          const opened = openSync(keyring, stored.data, context, false)
          if (opened._tag === "Failed") {
            counts.failed++
            yield* Effect.logError(`re-encryption: ${decryptionError(store.name, display(stored.key), opened).message}`)
            continue
          }
          const { bucket: at, key, nextDue } = stored
          yield* underlying.put({ key, bucket: at, nextDue, data: sealSync(keyring, opened.text, context) }, stored.version).pipe(
            Effect.map(() => void counts.rewritten++),
            Effect.catchTag("StateConflict", () => Effect.sync(() => void counts.skipped++))
          )
        }
      }), { concurrency: options?.concurrency ?? 4, discard: true })
    const deadLetters = yield* underlying.deadLetters({ limit: Number.MAX_SAFE_INTEGER })
    return {
      store: store.name,
      reminders: counts,
      historyUnderOtherKeys,
      deadLettersUnderOtherKeys: deadLetters.filter((entry) => notActive(entry.data)).length
    }
  })

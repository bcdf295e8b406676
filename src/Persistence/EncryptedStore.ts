/**
 * Encrypted state records, journals and snapshots over any store: a wrapper that seals what
 * is written with the keyring's active key and opens what is read (see `Encryption` for the
 * envelope), plus the job that re-encrypts what is stored after a key rotation.
 *
 * ```ts
 * const keyring = yield* Encryption.makeKeyring({ keys: [{ id: "k1", key: Redacted.make(base64) }], active: "k1" })
 * Stores.layer(EncryptedStore.wrap(RedisStore.make("redis"), keyring))
 * // or, over the stores another layer provides:
 * EncryptedStore.layer(keyring).pipe(Layer.provide(Stores.layer(RedisStore.make("redis"))))
 * ```
 *
 * The rules:
 * - **What is encrypted:** a state record's `data`, each event's `data`, a snapshot's
 *   `data`. **In clear:** the keys (actor type, id, record or journal name), versions and
 *   sequence numbers, which the stores compare and index.
 * - **Bound to its place:** a record's additional data is its key; an event's is its
 *   journal and sequence; a snapshot's is its journal and sequence. Moved elsewhere, it
 *   fails with `DecryptionError` (a `StoreError`), as does an unknown key id or a tampered
 *   value: never a defect, never an empty state.
 * - **Turning it on needs no downtime:** plaintext already stored reads as it is (unless
 *   `requireEncrypted`); the next write encrypts it, and {@link reencrypt} encrypts the rest.
 * - **Rotation:** add the new key to every silo's keyring, then activate it (new writes use
 *   it, old records still read with theirs), run {@link reencrypt}, then remove the old key.
 *
 * **The re-encryption job** walks the store (built-in stores can enumerate; see
 * `internal/StoreScan.ts`) and rewrites each value not under the active key, plaintext
 * included, with a compare-and-set, so a concurrent write is never overwritten: a state
 * record at the version read (a write since then wins, and the record counts as
 * `skipped`: that write used the active key), an event or snapshot only if still stored
 * exactly as read (events are immutable; rewriting one leaves its sequence). A state
 * rewrite bumps the record's version, so an activation holding it sees one
 * `StateConflict` on its next write, as after any concurrent write. Values that do not
 * decrypt are counted as `failed` and logged (record and key id): keep their key until
 * they are dealt with.
 *
 * @since 0.2.0
 */
import { Effect, Layer } from "effect"
import type { Journal, JournalEntry } from "./Journal.ts"
import {
  activeIdOf,
  decryptionError,
  type InvalidKey,
  type Keyring,
  keyIdOf,
  type Opened,
  openSync,
  type Options,
  sealSync,
  type Wrap,
  wrapper
} from "./Encryption.ts"
import { StoreError, type UnknownStore } from "./PersistenceError.ts"
import { formatKey, type StateKey, type StateStore } from "./StateStore.ts"
import { type Store, Stores } from "./Stores.ts"
import { journalScanOf, type KeyPage, stateScanOf } from "./internal/StoreScan.ts"

const stateContext = (key: StateKey) => JSON.stringify(["state", key.type, key.id, key.record])
const eventContext = (key: StateKey, sequence: number) => JSON.stringify(["event", key.type, key.id, key.record, sequence])
const snapshotContext = (key: StateKey, sequence: number) =>
  JSON.stringify(["snapshot", key.type, key.id, key.record, sequence])

type Failed = Extract<Opened, { readonly _tag: "Failed" }>

/** What a wrapped store was made from, for {@link reencrypt}. */
interface Wrapped {
  readonly underlying: Store
  readonly keyring: Keyring
}
const wrappedStores = new WeakMap<Store, Wrapped>()

/**
 * `state` sealing what it writes and opening what it reads.
 *
 * @since 0.2.0
 */
export const wrapState = (state: StateStore, keyring: Keyring, options?: Options): StateStore => {
  const required = options?.requireEncrypted === true
  return {
    name: state.name,
    read: (key) =>
      Effect.flatMap(state.read(key), (stored) => {
        if (stored === undefined) return Effect.succeed(undefined)
        const opened = openSync(keyring, stored.data, stateContext(key), required)
        return opened._tag === "Plain" ?
          Effect.succeed({ data: opened.text, version: stored.version }) :
          Effect.fail(decryptionError(state.name, formatKey(key), opened))
      }),
    write: (key, data, expectedVersion) =>
      Effect.suspend(() => state.write(key, sealSync(keyring, data, stateContext(key)), expectedVersion)),
    clear: (key, expectedVersion) => state.clear(key, expectedVersion)
  }
}

/**
 * `journal` sealing the events and snapshots it writes and opening those it reads.
 *
 * @since 0.2.0
 */
export const wrapJournal = (journal: Journal, keyring: Keyring, options?: Options): Journal => {
  const required = options?.requireEncrypted === true
  const failed = (key: StateKey, what: string, opened: Failed) =>
    Effect.fail(decryptionError(journal.name, `${formatKey(key)}${what}`, opened))
  return {
    name: journal.name,
    append: (key, expectedSequence, events) =>
      Effect.suspend(() =>
        journal.append(
          key,
          expectedSequence,
          events.map((event, i) => sealSync(keyring, event, eventContext(key, expectedSequence + i + 1)))
        )
      ),
    read: (key, from, to) =>
      Effect.flatMap(journal.read(key, from, to), (entries) => {
        const out: Array<JournalEntry> = []
        for (const entry of entries) {
          const opened = openSync(keyring, entry.data, eventContext(key, entry.sequence), required)
          if (opened._tag === "Failed") return failed(key, `#${entry.sequence}`, opened)
          out.push({ sequence: entry.sequence, data: opened.text })
        }
        return Effect.succeed(out)
      }),
    lastSequence: (key) => journal.lastSequence(key),
    saveSnapshot: (key, snapshot) =>
      Effect.suspend(() =>
        journal.saveSnapshot(key, {
          sequence: snapshot.sequence,
          data: sealSync(keyring, snapshot.data, snapshotContext(key, snapshot.sequence))
        })
      ),
    loadSnapshot: (key) =>
      Effect.flatMap(journal.loadSnapshot(key), (snapshot) => {
        if (snapshot === undefined) return Effect.succeed(undefined)
        const opened = openSync(keyring, snapshot.data, snapshotContext(key, snapshot.sequence), required)
        return opened._tag === "Plain" ?
          Effect.succeed({ sequence: snapshot.sequence, data: opened.text }) :
          failed(key, "@snapshot", opened)
      })
  }
}

const wrapStore = (store: Store, keyring: Keyring, options?: Options): Store => {
  const wrapped: Store = {
    name: store.name,
    state: wrapState(store.state, keyring, options),
    journal: wrapJournal(store.journal, keyring, options)
  }
  wrappedStores.set(wrapped, { underlying: store, keyring })
  return wrapped
}

/**
 * A store (or the effect that opens one) encrypted with `keyring`: put it in
 * `Stores.layer(...)` where the plain one was.
 *
 * @since 0.2.0
 */
export const wrap: Wrap<Store> = wrapper(wrapStore)

/**
 * Options of {@link layer}.
 *
 * @since 0.2.0
 */
export interface LayerOptions extends Options {
  /** The names of the stores to encrypt. Default: every store. */
  readonly stores?: ReadonlyArray<string> | undefined
}

/**
 * Replaces the `Stores` it is given (by the layer it is provided with, or the default) by
 * the same stores encrypted with `keyring`; a keyring given as an effect is made when the
 * layer is built.
 *
 * @since 0.2.0
 */
export const layer = (
  keyring: Keyring | Effect.Effect<Keyring, InvalidKey>,
  options?: LayerOptions
): Layer.Layer<never, InvalidKey> =>
  Layer.effect(
    Stores,
    Effect.gen(function*() {
      const ring = Effect.isEffect(keyring) ? yield* keyring : keyring
      const inner = yield* Stores
      const selected = options?.stores === undefined ? undefined : new Set(options.stores)
      const cache = new Map<Store, Store>()
      return {
        get: (name: string) =>
          Effect.map(inner.get(name), (store) => {
            if (selected !== undefined && !selected.has(name)) return store
            let wrapped = cache.get(store)
            if (wrapped === undefined) cache.set(store, wrapped = wrapStore(store, ring, options))
            return wrapped
          })
      }
    })
  )

/**
 * What the job did with one kind of value.
 *
 * @since 0.2.0
 */
export interface ReencryptCounts {
  /** Rewritten under the active key (plaintext encrypted included). */
  readonly rewritten: number
  /** Already under the active key. */
  readonly current: number
  /** Changed (or removed) by someone else between the job's read and its write: left as the writer left it. */
  readonly skipped: number
  /** Did not decrypt (logged): still under a key that must be kept. */
  readonly failed: number
}

/**
 * @since 0.2.0
 */
export interface ReencryptReport {
  readonly store: string
  readonly state: ReencryptCounts
  readonly events: ReencryptCounts
  readonly snapshots: ReencryptCounts
}

/**
 * Options of {@link reencrypt}.
 *
 * @since 0.2.0
 */
export interface ReencryptOptions {
  /** Values rewritten at once. Default 16. */
  readonly concurrency?: number | undefined
}

type Outcome = keyof ReencryptCounts

const tally = (outcomes: ReadonlyArray<Outcome>): ReencryptCounts => {
  const counts = { rewritten: 0, current: 0, skipped: 0, failed: 0 }
  for (const outcome of outcomes) counts[outcome]++
  return counts
}

/** Every key of a paged scan. */
const allKeys = (page: (cursor: string | undefined) => Effect.Effect<KeyPage, StoreError>) =>
  Effect.gen(function*() {
    const keys: Array<StateKey> = []
    let cursor: string | undefined = undefined
    do {
      const next: KeyPage = yield* page(cursor)
      for (const key of next.keys) keys.push(key)
      cursor = next.cursor
    } while (cursor !== undefined)
    return keys
  })

/**
 * What a stored value needs: nothing (`current`: under the active key), nothing possible
 * (`failed`, logged with its record and key id), or a rewrite of this plaintext.
 */
const reopen = (
  keyring: Keyring,
  store: string,
  record: string,
  data: string,
  context: string
): Effect.Effect<"current" | "failed" | { readonly text: string }> => {
  const keyId = keyIdOf(data)
  if (keyId !== undefined && keyId === activeIdOf(keyring)) return Effect.succeed("current")
  const opened = openSync(keyring, data, context, false)
  if (opened._tag === "Plain") return Effect.succeed({ text: opened.text })
  return Effect.as(Effect.logError(`re-encryption: ${decryptionError(store, record, opened).message}`), "failed")
}

const pageSize = 1_000

/**
 * Re-encrypts what `store` holds under keys other than its keyring's active one (see the
 * module doc): `store` is one made by {@link wrap} or {@link layer}, or its name in
 * `Stores`. Fails with `StoreError` if the store fails, or cannot enumerate its records (a
 * store other than the built-in ones).
 *
 * @since 0.2.0
 */
export const reencrypt = (
  store: string | Store,
  options?: ReencryptOptions
): Effect.Effect<ReencryptReport, StoreError | UnknownStore> =>
  Effect.gen(function*() {
    const encrypted = typeof store === "string" ? yield* Effect.flatMap(Stores, (stores) => stores.get(store)) : store
    const refuse = (reason: string) => new StoreError({ store: encrypted.name, operation: "reencrypt", reason })
    const wrapped = wrappedStores.get(encrypted)
    if (wrapped === undefined) return yield* refuse("not an encrypted store (made by EncryptedStore.wrap or layer)")
    const { keyring, underlying } = wrapped
    const stateScan = stateScanOf(underlying.state)
    const journalScan = journalScanOf(underlying.journal)
    if (stateScan === undefined || journalScan === undefined) return yield* refuse("the store cannot enumerate its records")
    const name = encrypted.name
    const concurrency = options?.concurrency ?? 16

    const state = yield* Effect.forEach(yield* allKeys(stateScan.stateKeys), (key) =>
      Effect.gen(function*(): Effect.fn.Return<Outcome, StoreError> {
        const stored = yield* underlying.state.read(key)
        if (stored === undefined) return "skipped"
        const plain = yield* reopen(keyring, name, formatKey(key), stored.data, stateContext(key))
        if (typeof plain === "string") return plain
        return yield* underlying.state.write(key, sealSync(keyring, plain.text, stateContext(key)), stored.version).pipe(
          Effect.as("rewritten" as const),
          Effect.catchTag("StateConflict", () => Effect.succeed("skipped" as const))
        )
      }), { concurrency })

    const events: Array<Outcome> = []
    yield* Effect.forEach(yield* allKeys(journalScan.journalKeys), (key) =>
      Effect.gen(function*() {
        for (let from = 1;; from += pageSize) {
          const entries = yield* underlying.journal.read(key, from, from + pageSize - 1)
          for (const entry of entries) {
            const context = eventContext(key, entry.sequence)
            const plain = yield* reopen(keyring, name, `${formatKey(key)}#${entry.sequence}`, entry.data, context)
            if (typeof plain === "string") {
              events.push(plain)
              continue
            }
            const replaced = yield* journalScan.replaceEvent(key, entry.sequence, entry.data, sealSync(keyring, plain.text, context))
            events.push(replaced ? "rewritten" : "skipped")
          }
          if (entries.length < pageSize) return
        }
      }), { concurrency, discard: true })

    const snapshots = yield* Effect.forEach(yield* allKeys(journalScan.snapshotKeys), (key) =>
      Effect.gen(function*(): Effect.fn.Return<Outcome, StoreError> {
        const snapshot = yield* underlying.journal.loadSnapshot(key)
        if (snapshot === undefined) return "skipped"
        const context = snapshotContext(key, snapshot.sequence)
        const plain = yield* reopen(keyring, name, `${formatKey(key)}@snapshot`, snapshot.data, context)
        if (typeof plain === "string") return plain
        const replaced = yield* journalScan.replaceSnapshot(key, snapshot.sequence, snapshot.data, sealSync(keyring, plain.text, context))
        return replaced ? "rewritten" : "skipped"
      }), { concurrency })

    return { store: name, state: tally(state), events: tally(events), snapshots: tally(snapshots) }
  })

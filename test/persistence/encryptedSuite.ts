/**
 * The suite every store runs encrypted (`EncryptedStore` over memory, Redis, PostgreSQL):
 * what is stored is an envelope naming its key, tampering, moving and unknown keys fail
 * with `DecryptionError`, plaintext written before encryption reads (and is refused when
 * required), a rotation with the re-encryption job running against a concurrent writer,
 * and actors (`ActorState`, `EventSourced`) end to end.
 *
 * A backend gives a fresh store (its own key prefix or tables, removed when the scope
 * closes) and a way to read what the server really holds, behind the store's back.
 */
import { assert, describe, it } from "@effect/vitest"
import { Deferred, Effect, Fiber, Layer, Redacted, type Scope } from "effect"
import { ActivationFailed, Silo, type StateKey, type StateStore, type StoreError, Stores } from "../../src/index.ts"
import * as EncryptedStore from "../../src/Persistence/EncryptedStore.ts"
import * as Encryption from "../../src/Persistence/Encryption.ts"
import { journalScanOf, registerStateScan, stateScanOf } from "../../src/Persistence/internal/StoreScan.ts"
import { Account, accountLayer, Ledger, ledgerLayer } from "../fixtures/Bank.ts"

/** What the server holds for a state record, an event, a snapshot: read with a client of the test's own. */
export interface Raw {
  readonly state: (key: StateKey) => Effect.Effect<string | undefined, unknown>
  readonly event: (key: StateKey, sequence: number) => Effect.Effect<string | undefined, unknown>
  readonly snapshot: (key: StateKey) => Effect.Effect<string | undefined, unknown>
}

export interface Backend {
  readonly label: string
  readonly open: Effect.Effect<{ readonly store: Stores.Store; readonly raw: Raw }, unknown, Scope.Scope>
}

/** Fixed keys, so that a failure can be reproduced (they are test keys, nothing else). */
export const k1: Encryption.KeySpec = { id: "k1", key: Redacted.make(Buffer.alloc(32, 1).toString("base64")) }
export const k2: Encryption.KeySpec = { id: "k2", key: Redacted.make(Buffer.alloc(32, 2).toString("hex")), encoding: "hex" }
export const k9: Encryption.KeySpec = { id: "k9", key: Redacted.make(new Uint8Array(32).fill(9)) }
const ring = (active: Encryption.KeySpec, ...others: ReadonlyArray<Encryption.KeySpec>) =>
  Encryption.makeKeyring({ keys: [active, ...others], active: active.id })

const key = (id: string, record = "balance"): StateKey => ({ type: "Account", id, record })
const secret = `{"ssn":"078-05-1120"}`

/** The `DecryptionError` an effect fails with (the test fails if it succeeds or fails otherwise). */
const decryptionFailure = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
  Effect.map(Effect.flip(effect), (error) => {
    assert.instanceOf(error, Encryption.DecryptionError, String(error))
    return error as unknown as Encryption.DecryptionError
  })

/** Flips one character of an envelope's body (the base64url of iv, ciphertext and tag). */
const tamper = (envelope: string): string => {
  const at = envelope.length - 10
  return envelope.slice(0, at) + (envelope[at] === "A" ? "B" : "A") + envelope.slice(at + 1)
}

export const encryptedSuite = (backend: Backend) => {
  const { label } = backend
  describe(`${label}: encrypted store`, () => {
    it.live("state, events and snapshots round-trip; the server holds envelopes naming the key, not the plaintext", () =>
      Effect.gen(function*() {
        const { raw, store } = yield* backend.open
        const encrypted = EncryptedStore.wrap(store, yield* ring(k1))
        const k = key("rt")
        assert.strictEqual(yield* encrypted.state.write(k, secret, 0), 1)
        assert.deepStrictEqual(yield* encrypted.state.read(k), { data: secret, version: 1 })
        assert.strictEqual(yield* encrypted.journal.append(k, 0, [secret, `"two"`]), 2)
        assert.deepStrictEqual(yield* encrypted.journal.read(k, 1), [{ sequence: 1, data: secret }, { sequence: 2, data: `"two"` }])
        yield* encrypted.journal.saveSnapshot(k, { sequence: 2, data: secret })
        assert.deepStrictEqual(yield* encrypted.journal.loadSnapshot(k), { sequence: 2, data: secret })

        const held = [yield* raw.state(k), yield* raw.event(k, 1), yield* raw.event(k, 2), yield* raw.snapshot(k)]
        for (const text of held) {
          assert.isString(text)
          assert.match(text!, /^qenc:1:k1:[A-Za-z0-9_-]+$/)
          assert.notInclude(text!, "078-05-1120")
          assert.notInclude(text!, "ssn")
        }
        // A fresh IV per record: the same plaintext is never stored alike.
        assert.notStrictEqual(held[0], held[1])
        assert.notStrictEqual(held[1], held[3])
      }).pipe(Effect.scoped))

    it.live("a tampered value fails with DecryptionError naming the record and key id, and nothing else", () =>
      Effect.gen(function*() {
        const { store } = yield* backend.open
        const encrypted = EncryptedStore.wrap(store, yield* ring(k1))
        const k = key("tamper")
        yield* encrypted.state.write(k, secret, 0)
        const stored = (yield* store.state.read(k))!
        yield* store.state.write(k, tamper(stored.data), 1)
        const error = yield* decryptionFailure(encrypted.state.read(k))
        assert.strictEqual(error._tag, "StoreError", "a StoreError, so the store contracts are unchanged")
        assert.strictEqual(error.failure, "authentication-failed")
        assert.strictEqual(error.keyId, "k1")
        assert.strictEqual(error.record, "Account/tamper/balance")
        assert.include(error.message, `"k1"`)
        assert.notInclude(`${error.message} ${JSON.stringify(error)}`, Redacted.value(k1.key as Redacted.Redacted<string>))

        yield* encrypted.journal.append(k, 0, [secret])
        const event = (yield* store.journal.read(k, 1))[0]!.data
        assert.isTrue(yield* journalScanOf(store.journal)!.replaceEvent(k, 1, event, tamper(event)))
        const eventError = yield* decryptionFailure(encrypted.journal.read(k, 1))
        assert.strictEqual(eventError.record, "Account/tamper/balance#1")
        assert.strictEqual(eventError.failure, "authentication-failed")
      }).pipe(Effect.scoped))

    it.live("a value copied to another record, or relabelled with another key id, does not decrypt", () =>
      Effect.gen(function*() {
        const { store } = yield* backend.open
        const encrypted = EncryptedStore.wrap(store, yield* ring(k1, k2))
        const a = key("moved-a")
        const b = key("moved-b")
        yield* encrypted.state.write(a, secret, 0)
        const stored = (yield* store.state.read(a))!.data
        yield* store.state.write(b, stored, 0)
        assert.strictEqual((yield* decryptionFailure(encrypted.state.read(b))).failure, "authentication-failed")
        // The same record's event, one sequence later: bound to its sequence too.
        yield* encrypted.journal.append(a, 0, [secret])
        yield* store.journal.append(a, 1, [(yield* store.journal.read(a, 1))[0]!.data])
        assert.strictEqual((yield* decryptionFailure(encrypted.journal.read(a, 1))).record, "Account/moved-a/balance#2")
        // Another key id in the header: the header is authenticated as well.
        yield* store.state.write(a, stored.replace("qenc:1:k1:", "qenc:1:k2:"), 1)
        const relabelled = yield* decryptionFailure(encrypted.state.read(a))
        assert.deepStrictEqual([relabelled.failure, relabelled.keyId], ["authentication-failed", "k2"])
      }).pipe(Effect.scoped))

    it.live("a value under a key the keyring does not have fails with DecryptionError naming that key id", () =>
      Effect.gen(function*() {
        const { store } = yield* backend.open
        const k = key("unknown")
        yield* EncryptedStore.wrap(store, yield* ring(k9)).state.write(k, secret, 0)
        const error = yield* decryptionFailure(EncryptedStore.wrap(store, yield* ring(k1)).state.read(k))
        assert.deepStrictEqual([error.failure, error.keyId, error.operation], ["unknown-key", "k9", "decrypt"])
        assert.include(error.message, `key "k9" is not in the keyring`)
      }).pipe(Effect.scoped))

    it.live("plaintext written before encryption reads as it is, and is refused under requireEncrypted", () =>
      Effect.gen(function*() {
        const { store } = yield* backend.open
        const keyring = yield* ring(k1)
        const k = key("legacy")
        yield* store.state.write(k, secret, 0)
        yield* store.journal.append(k, 0, [secret])
        yield* store.journal.saveSnapshot(k, { sequence: 1, data: secret })
        const lenient = EncryptedStore.wrap(store, keyring)
        assert.deepStrictEqual(yield* lenient.state.read(k), { data: secret, version: 1 })
        assert.deepStrictEqual(yield* lenient.journal.read(k, 1), [{ sequence: 1, data: secret }])
        assert.deepStrictEqual(yield* lenient.journal.loadSnapshot(k), { sequence: 1, data: secret })

        const strict = EncryptedStore.wrap(store, keyring, { requireEncrypted: true })
        const reads: ReadonlyArray<Effect.Effect<unknown, StoreError>> = [strict.state.read(k), strict.journal.read(k, 1), strict.journal.loadSnapshot(k)]
        for (const read of reads) {
          assert.strictEqual((yield* decryptionFailure(read)).failure, "not-encrypted")
        }
        // The next write through the wrapper encrypts it.
        yield* lenient.state.write(k, secret, 1)
        assert.deepStrictEqual(yield* strict.state.read(k), { data: secret, version: 2 })
      }).pipe(Effect.scoped))

    it.live("rotation: old records read after the switch, the job rewrites them beside a concurrent writer, the old key goes", () =>
      Effect.gen(function*() {
        const { raw, store } = yield* backend.open
        const keyring = yield* ring(k1)
        const encrypted = EncryptedStore.wrap(store, keyring)
        const records = Array.from({ length: 10 }, (_, i) => key(`rot-${i}`))
        for (const [i, k] of records.entries()) yield* encrypted.state.write(k, `{"n":${i}}`, 0)
        const ledger = key("rot-ledger", "ledger")
        yield* encrypted.journal.append(ledger, 0, [`"e1"`, `"e2"`, `"e3"`])
        yield* encrypted.journal.saveSnapshot(ledger, { sequence: 3, data: `"s3"` })
        const hot = key("rot-hot")
        const busy = key("rot-busy")
        yield* encrypted.state.write(hot, `"hot-0"`, 0)
        yield* encrypted.state.write(busy, `0`, 0)
        const legacy = key("rot-legacy")
        yield* store.state.write(legacy, `"plain"`, 0)

        yield* keyring.add(k2)
        yield* keyring.activate("k2")
        assert.deepStrictEqual(yield* encrypted.state.read(records[3]!), { data: `{"n":3}`, version: 1 })
        const fresh = key("rot-new")
        yield* encrypted.state.write(fresh, `"new"`, 0)
        assert.match((yield* raw.state(fresh))!, /^qenc:1:k2:/)
        assert.match((yield* raw.state(records[0]!))!, /^qenc:1:k1:/)

        // The job reads through a view of the store that lets an actor write "hot" right after
        // the job read it: the job's compare-and-set must then lose, and leave the actor's value.
        const actorWrote = yield* Deferred.make<void>()
        const view: StateStore = {
          ...store.state,
          read: (k) =>
            Effect.tap(store.state.read(k), (stored) =>
              k.id === hot.id && !Deferred.isDoneUnsafe(actorWrote) ?
                Effect.andThen(Effect.orDie(encrypted.state.write(hot, `"hot-actor"`, stored!.version)), Deferred.succeed(actorWrote, undefined)) :
                Effect.void)
        }
        registerStateScan(view, stateScanOf(store.state)!)
        const job = EncryptedStore.wrap({ ...store, state: view }, keyring)

        // Meanwhile an actor keeps writing "busy", read-modify-write at the version it read; a
        // conflict (the job rewrote it in between) is read again, as a restarted activation would.
        const writeOnce = (n: number) =>
          Effect.flatMap(encrypted.state.read(busy), (current) => encrypted.state.write(busy, String(n), current!.version))
        const writer = yield* Effect.forkChild(Effect.gen(function*() {
          for (let n = 1; n <= 20; n++) {
            yield* writeOnce(n).pipe(Effect.retry({ while: (error) => error._tag === "StateConflict", times: 5 }))
            yield* Effect.yieldNow
          }
        }))
        const report = yield* EncryptedStore.reencrypt(job, { concurrency: 4 })
        yield* Fiber.join(writer)
        assert.isTrue(Deferred.isDoneUnsafe(actorWrote))

        const { current, failed, rewritten, skipped } = report.state
        assert.strictEqual(rewritten + current + skipped, 14, JSON.stringify(report))
        assert.strictEqual(failed, 0)
        assert.isAtLeast(skipped, 1, "hot changed under the job")
        assert.isAtLeast(rewritten, 11, "the ten records and the plaintext one")
        assert.isAtLeast(current, 1, "the record written after the switch")
        assert.deepStrictEqual(report.events, { rewritten: 3, current: 0, skipped: 0, failed: 0 })
        assert.deepStrictEqual(report.snapshots, { rewritten: 1, current: 0, skipped: 0, failed: 0 })

        yield* keyring.remove("k1")
        for (const [i, k] of records.entries()) {
          assert.deepStrictEqual(yield* encrypted.state.read(k), { data: `{"n":${i}}`, version: 2 })
          assert.match((yield* raw.state(k))!, /^qenc:1:k2:/)
        }
        assert.strictEqual((yield* encrypted.state.read(hot))!.data, `"hot-actor"`, "the actor's write stood")
        assert.strictEqual((yield* encrypted.state.read(busy))!.data, "20", "the actor's last write stood")
        assert.strictEqual((yield* encrypted.state.read(legacy))!.data, `"plain"`)
        assert.match((yield* raw.state(legacy))!, /^qenc:1:k2:/)
        assert.deepStrictEqual((yield* encrypted.journal.read(ledger, 1)).map((e) => e.data), [`"e1"`, `"e2"`, `"e3"`])
        assert.deepStrictEqual(yield* encrypted.journal.loadSnapshot(ledger), { sequence: 3, data: `"s3"` })
        assert.match((yield* raw.event(ledger, 2))!, /^qenc:1:k2:/)

        const again = yield* EncryptedStore.reencrypt(encrypted)
        assert.deepStrictEqual(again.state, { rewritten: 0, current: 14, skipped: 0, failed: 0 })
        assert.deepStrictEqual(again.events, { rewritten: 0, current: 3, skipped: 0, failed: 0 })
      }).pipe(Effect.scoped))

    it.live("actors keep their state and journals through the encrypted store, and fail to activate on a foreign key", () =>
      Effect.gen(function*() {
        const { raw, store } = yield* backend.open
        const keyring = yield* ring(k1)
        const silo = Silo.layerTest(accountLayer({ store: label }), ledgerLayer(2, [], label)).pipe(
          Layer.provide(EncryptedStore.layer(keyring).pipe(Layer.provide(Stores.layer(store))))
        )
        yield* Effect.gen(function*() {
          const account = yield* Account.ref("e2e")
          yield* account.Deposit({ amount: 42 })
          assert.strictEqual(yield* account.Save(), 1)
          const ledger = yield* Ledger.ref("e2e")
          yield* ledger.Post({ entries: [{ _tag: "Credited", amount: 5 }, { _tag: "Credited", amount: 7 }] })
          yield* ledger.Post({ entries: [{ _tag: "Debited", amount: 2 }] })
          const silo = yield* Silo.Silo
          assert.isTrue(yield* silo.deactivate({ type: "Account", id: "e2e" }))
          assert.isTrue(yield* silo.deactivate({ type: "Ledger", id: "e2e" }))
          assert.deepStrictEqual(yield* account.Get(), { amount: 42, updates: 1 })
          assert.deepStrictEqual(yield* ledger.Read(), { state: { balance: 10, entries: 3 }, sequence: 3 })
        }).pipe(Effect.provide(silo))
        const stored = (yield* raw.state(key("e2e")))!
        assert.match(stored, /^qenc:1:k1:/)
        assert.notInclude(stored, "amount")
        assert.match((yield* raw.event({ type: "Ledger", id: "e2e", record: "ledger" }, 1))!, /^qenc:1:k1:/)

        // The same store under a keyring without k1: the activation fails, nothing reads as empty.
        const foreign = Silo.layerTest(accountLayer({ store: label })).pipe(
          Layer.provide(EncryptedStore.layer(ring(k2)).pipe(Layer.provide(Stores.layer(store))))
        )
        const failure = yield* Effect.flip(Effect.flatMap(Account.ref("e2e"), (account) => account.Get()).pipe(Effect.provide(foreign)))
        assert.instanceOf(failure, ActivationFailed)
        assert.include(failure.message, `key "k1" is not in the keyring`)
      }).pipe(Effect.scoped))
  })
}

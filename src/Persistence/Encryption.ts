/**
 * Encryption at rest: a keyring of AES-256-GCM keys and the envelope records are stored in.
 * The store wrappers (`EncryptedStore`, `EncryptedReminderStore`) use it; it can also seal
 * and open text directly.
 *
 * The rules, with their numbers:
 * - **Keys.** 32 bytes (AES-256), given as `Redacted` bytes, base64 (or base64url) or hex,
 *   each under an id of 1 to 64 characters from `A-Z a-z 0-9 . _ -`. The material is kept
 *   as a node `KeyObject` and never appears in an error, a log or `String(keyring)`.
 * - **One active key** encrypts every new record; every key of the keyring decrypts. Add a
 *   key, activate it, re-encrypt (`EncryptedStore.reencrypt`), then remove the old key: no
 *   downtime (see docs/security.md for the order across silos).
 * - **Envelope.** `qenc:1:<keyId>:<base64url(iv ‖ ciphertext ‖ tag)>`: format version 1, a
 *   fresh random 96-bit IV per record, a 128-bit tag. Text, so every store holds it as it
 *   holds JSON (PostgreSQL `text` cannot hold NUL).
 * - **Additional data.** The tag covers the envelope's header (`qenc:1:<keyId>:`) and the
 *   record's identity (a state record's type/id/name, an event's journal and sequence, a
 *   reminder's key): a ciphertext copied to another record, or relabelled with another key
 *   id, does not decrypt.
 * - **Plaintext.** A stored value not starting with `qenc:` (a record written before
 *   encryption was turned on: JSON never starts with `q`) is returned as it is, unless
 *   `requireEncrypted` refuses it.
 * - **Failures** are a typed {@link DecryptionError} naming the record and the key id: an
 *   unknown key, a failed tag, a malformed envelope, or plaintext refused.
 *
 * @since 0.2.0
 */
import type * as NodeCrypto from "node:crypto"
import { Effect, Redacted, Schema } from "effect"
import { StoreError } from "./PersistenceError.ts"

type KeyObject = NodeCrypto.KeyObject

// Loaded on first use, not imported: the main entry point loads `effect` and nothing else
// (test/ImportGraph.test.ts), and only a program that encrypts needs `node:crypto`.
let loaded: typeof NodeCrypto | undefined
const crypto = (): typeof NodeCrypto => loaded ??= process.getBuiltinModule("node:crypto")

/**
 * A key's material and id, as configuration gives it. A string is base64 (base64url too)
 * unless `encoding` says `"hex"`.
 *
 * @since 0.2.0
 */
export interface KeySpec {
  readonly id: string
  readonly key: Redacted.Redacted<Uint8Array> | Redacted.Redacted<string>
  readonly encoding?: "base64" | "hex" | undefined
}

/**
 * A key or keyring was refused: the reason says why (never with the key's material).
 *
 * @since 0.2.0
 */
export class InvalidKey extends Schema.TaggedError<InvalidKey>()("InvalidKey", {
  keyId: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `encryption key "${this.keyId}": ${this.reason}`
  }
}

/**
 * Why a stored value did not decrypt.
 *
 * @since 0.2.0
 */
export type DecryptionFailure = "unknown-key" | "authentication-failed" | "malformed" | "not-encrypted"

/**
 * A stored value did not decrypt: its key id is not in the keyring, its tag did not verify
 * (tampered, or moved from another record), its envelope is malformed, or it is plaintext
 * and `requireEncrypted` is set. A `StoreError` (operation `"decrypt"`), so the store
 * contracts are unchanged; tell it apart with `instanceof DecryptionError`.
 *
 * @since 0.2.0
 */
export class DecryptionError extends StoreError.extend<DecryptionError>("DecryptionError")({
  record: Schema.String,
  keyId: Schema.String,
  failure: Schema.Literals(["unknown-key", "authentication-failed", "malformed", "not-encrypted"])
}) {
  override get message(): string {
    return `store "${this.store}": ${this.record} does not decrypt: ${this.reason}`
  }
}

/**
 * Keys by id and the active one. Changes take effect for the next record sealed or opened.
 *
 * @since 0.2.0
 */
export interface Keyring {
  /** The id of the key that encrypts new records. */
  readonly active: Effect.Effect<string>
  /** The ids of every key that decrypts. */
  readonly ids: Effect.Effect<ReadonlyArray<string>>
  /** Adds a key (decrypts from now on); the same id with other material is refused. */
  readonly add: (spec: KeySpec) => Effect.Effect<void, InvalidKey>
  /** Makes a key of the keyring the one new records are encrypted with. */
  readonly activate: (id: string) => Effect.Effect<void, InvalidKey>
  /** Removes a key: what it encrypted no longer decrypts. The active key cannot be removed. */
  readonly remove: (id: string) => Effect.Effect<void, InvalidKey>
}

/** The keys of a keyring, out of its public shape (a `KeyObject` prints none of its material). */
interface KeyringInternals {
  readonly keys: Map<string, KeyObject>
  activeId: string
}

const internals = new WeakMap<Keyring, KeyringInternals>()
const stateOf = (keyring: Keyring): KeyringInternals => {
  const state = internals.get(keyring)
  if (state === undefined) throw new TypeError("not a keyring made by Encryption.makeKeyring")
  return state
}

const idPattern = /^[A-Za-z0-9._-]{1,64}$/
const base64Pattern = /^[A-Za-z0-9+/_-]+={0,2}$/

const material = (spec: KeySpec): KeyObject | InvalidKey => {
  const invalid = (reason: string) => new InvalidKey({ keyId: String(spec.id), reason })
  if (typeof spec.id !== "string" || !idPattern.test(spec.id)) {
    return invalid("an id is 1 to 64 characters of A-Z a-z 0-9 . _ -")
  }
  const value: unknown = Redacted.isRedacted(spec.key) ? Redacted.value(spec.key as Redacted.Redacted<unknown>) : undefined
  let bytes: Buffer
  if (value instanceof Uint8Array) {
    bytes = Buffer.from(value)
  } else if (typeof value === "string") {
    const text = value.trim()
    if (spec.encoding === "hex") {
      if (!/^[0-9a-fA-F]*$/.test(text) || text.length % 2 !== 0) return invalid("the key is not hex")
      bytes = Buffer.from(text, "hex")
    } else {
      if (!base64Pattern.test(text)) return invalid("the key is not base64")
      bytes = Buffer.from(text, "base64")
    }
  } else {
    return invalid("the key must be Redacted bytes or a Redacted string")
  }
  if (bytes.length !== 32) return invalid(`a key is 32 bytes (AES-256), this one is ${bytes.length}`)
  const key = crypto().createSecretKey(bytes)
  bytes.fill(0)
  return key
}

/**
 * A keyring from its keys and the id of the active one.
 *
 * @since 0.2.0
 */
export const makeKeyring = (options: {
  readonly keys: ReadonlyArray<KeySpec>
  readonly active: string
}): Effect.Effect<Keyring, InvalidKey> =>
  Effect.suspend(() => {
    const keys = new Map<string, KeyObject>()
    for (const spec of options.keys) {
      const key = material(spec)
      if (key instanceof InvalidKey) return Effect.fail(key)
      if (keys.has(spec.id)) return Effect.fail(new InvalidKey({ keyId: spec.id, reason: "the id is given twice" }))
      keys.set(spec.id, key)
    }
    if (!keys.has(options.active)) {
      return Effect.fail(new InvalidKey({ keyId: String(options.active), reason: "the active key is not in the keyring" }))
    }
    const state: KeyringInternals = { keys, activeId: options.active }
    const keyring: Keyring = {
      active: Effect.sync(() => state.activeId),
      ids: Effect.sync(() => [...state.keys.keys()]),
      add: (spec) =>
        Effect.suspend(() => {
          const key = material(spec)
          if (key instanceof InvalidKey) return Effect.fail(key)
          const existing = state.keys.get(spec.id)
          if (existing !== undefined && !existing.equals(key)) {
            return Effect.fail(new InvalidKey({ keyId: spec.id, reason: "another key has this id" }))
          }
          state.keys.set(spec.id, key)
          return Effect.void
        }),
      activate: (id) =>
        Effect.suspend(() => {
          if (!state.keys.has(id)) return Effect.fail(new InvalidKey({ keyId: id, reason: "not in the keyring" }))
          state.activeId = id
          return Effect.void
        }),
      remove: (id) =>
        Effect.suspend(() => {
          if (id === state.activeId) return Effect.fail(new InvalidKey({ keyId: id, reason: "the active key cannot be removed" }))
          state.keys.delete(id)
          return Effect.void
        }),
      toString: () => `Keyring(active: ${state.activeId})`
    } as Keyring
    internals.set(keyring, state)
    return Effect.succeed(keyring)
  })

/**
 * Options of the store wrappers.
 *
 * @since 0.2.0
 */
export interface Options {
  /** Refuse (with `DecryptionError`, failure `"not-encrypted"`) a stored value that is plaintext. Default false. */
  readonly requireEncrypted?: boolean | undefined
}

/**
 * A wrapper that encrypts a store: given the store, or the effect that opens one (what
 * `Stores.layer` and `Reminders.layer` take), it gives the same kind back.
 *
 * @since 0.2.0
 */
export interface Wrap<S> {
  (store: S, keyring: Keyring, options?: Options): S
  <E, R>(store: Effect.Effect<S, E, R>, keyring: Keyring, options?: Options): Effect.Effect<S, E, R>
}

/** A {@link Wrap} from the function that wraps an opened store. @internal */
export const wrapper = <S>(wrapStore: (store: S, keyring: Keyring, options?: Options) => S): Wrap<S> =>
  ((store: S | Effect.Effect<S, unknown, unknown>, keyring: Keyring, options?: Options) =>
    Effect.isEffect(store) ?
      Effect.map(store, (opened) => wrapStore(opened, keyring, options)) :
      wrapStore(store as S, keyring, options)) as Wrap<S>

/** The first characters of every envelope. @internal */
export const envelopePrefix = "qenc:"
const version = "1"
const ivBytes = 12
const tagBytes = 16

// IVs come from a pool refilled 512 at a time: one `randomBytes(12)` call costs ~8 µs
// (measured on Node 24), more than the AES-GCM of a small record; 512 at once cost about
// the same. Each IV is still 96 fresh random bits, used once.
const ivPool = Buffer.alloc(ivBytes * 512)
let ivNext = ivPool.length
const freshIv = (): Buffer => {
  if (ivNext === ivPool.length) {
    crypto().randomFillSync(ivPool)
    ivNext = 0
  }
  const iv = Buffer.from(ivPool.subarray(ivNext, ivNext + ivBytes))
  ivNext += ivBytes
  return iv
}

/**
 * `plaintext` sealed with the active key, bound to `context` (the record's identity).
 *
 * @internal
 */
export const sealSync = (keyring: Keyring, plaintext: string, context: string): string => {
  const state = stateOf(keyring)
  const keyId = state.activeId
  const header = `${envelopePrefix}${version}:${keyId}:`
  const iv = freshIv()
  const cipher = crypto().createCipheriv("aes-256-gcm", state.keys.get(keyId)!, iv, { authTagLength: tagBytes })
  cipher.setAAD(Buffer.from(header + context, "utf8"))
  const body = Buffer.concat([iv, cipher.update(plaintext, "utf8"), cipher.final(), cipher.getAuthTag()])
  return header + body.toString("base64url")
}

/** What opening found: the plaintext, or why not (with the key id when the envelope names one). @internal */
export type Opened =
  | { readonly _tag: "Plain"; readonly text: string; readonly keyId: string | undefined }
  | { readonly _tag: "Failed"; readonly failure: DecryptionFailure; readonly keyId: string; readonly detail: string }

/**
 * Opens a stored value: an envelope is decrypted (`keyId` set), anything else is plaintext
 * (`keyId` undefined) unless `requireEncrypted`.
 *
 * @internal
 */
export const openSync = (keyring: Keyring, stored: string, context: string, requireEncrypted: boolean): Opened => {
  if (!stored.startsWith(envelopePrefix)) {
    return requireEncrypted ?
      { _tag: "Failed", failure: "not-encrypted", keyId: "", detail: "it is stored as plaintext and encryption is required" } :
      { _tag: "Plain", text: stored, keyId: undefined }
  }
  const versionEnd = stored.indexOf(":", envelopePrefix.length)
  const idEnd = versionEnd < 0 ? -1 : stored.indexOf(":", versionEnd + 1)
  if (idEnd < 0) return { _tag: "Failed", failure: "malformed", keyId: "", detail: "the envelope has no key id" }
  const keyId = stored.slice(versionEnd + 1, idEnd)
  if (stored.slice(envelopePrefix.length, versionEnd) !== version) {
    return { _tag: "Failed", failure: "malformed", keyId, detail: "unsupported envelope version" }
  }
  const key = stateOf(keyring).keys.get(keyId)
  if (key === undefined) return { _tag: "Failed", failure: "unknown-key", keyId, detail: `key "${keyId}" is not in the keyring` }
  const body = Buffer.from(stored.slice(idEnd + 1), "base64url")
  if (body.length < ivBytes + tagBytes) {
    return { _tag: "Failed", failure: "malformed", keyId, detail: "the envelope is too short" }
  }
  try {
    const decipher = crypto().createDecipheriv("aes-256-gcm", key, body.subarray(0, ivBytes), { authTagLength: tagBytes })
    decipher.setAAD(Buffer.from(stored.slice(0, idEnd + 1) + context, "utf8"))
    decipher.setAuthTag(body.subarray(body.length - tagBytes))
    const text = Buffer.concat([decipher.update(body.subarray(ivBytes, body.length - tagBytes)), decipher.final()])
    return { _tag: "Plain", text: text.toString("utf8"), keyId }
  } catch {
    return {
      _tag: "Failed",
      failure: "authentication-failed",
      keyId,
      detail: `authentication with key "${keyId}" failed (altered, or copied from another record)`
    }
  }
}

/** The key id an envelope names; `undefined` for plaintext. @internal */
export const keyIdOf = (stored: string): string | undefined => {
  if (!stored.startsWith(envelopePrefix)) return undefined
  const versionEnd = stored.indexOf(":", envelopePrefix.length)
  const idEnd = versionEnd < 0 ? -1 : stored.indexOf(":", versionEnd + 1)
  return idEnd < 0 ? "" : stored.slice(versionEnd + 1, idEnd)
}

/** The active key's id, synchronously. @internal */
export const activeIdOf = (keyring: Keyring): string => stateOf(keyring).activeId

/** The error of a failed open. @internal */
export const decryptionError = (
  store: string,
  record: string,
  failed: Extract<Opened, { readonly _tag: "Failed" }>
): DecryptionError =>
  new DecryptionError({ store, operation: "decrypt", reason: failed.detail, record, keyId: failed.keyId, failure: failed.failure })

/**
 * Seals `plaintext` with the active key, bound to `context` (any text naming the record:
 * the same context must be given to {@link decrypt}).
 *
 * @since 0.2.0
 */
export const encrypt = (keyring: Keyring, plaintext: string, context: string): Effect.Effect<string> =>
  Effect.sync(() => sealSync(keyring, plaintext, context))

/**
 * Opens what {@link encrypt} sealed (plaintext passes through unless `requireEncrypted`).
 *
 * @since 0.2.0
 */
export const decrypt = (
  keyring: Keyring,
  stored: string,
  context: string,
  options?: Options
): Effect.Effect<string, DecryptionError> =>
  Effect.suspend(() => {
    const opened = openSync(keyring, stored, context, options?.requireEncrypted === true)
    return opened._tag === "Plain" ? Effect.succeed(opened.text) : Effect.fail(decryptionError("", context, opened))
  })

/**
 * A fresh random key, base64, for tests and for generating one (`node -e` works as well:
 * `crypto.randomBytes(32).toString("base64")`).
 *
 * @since 0.2.0
 */
export const generateKey: Effect.Effect<Redacted.Redacted<string>> = Effect.sync(() =>
  Redacted.make(crypto().randomBytes(32).toString("base64"))
)

/**
 * The keyring and the envelope on their own: keys are validated and never printed, an
 * envelope round-trips any text bound to any context, and any change to it (one byte of
 * the body, the header, the context) fails to decrypt.
 */
import { assert, describe, it } from "@effect/vitest"
import { Effect, Redacted } from "effect"
import * as fc from "fast-check"
import * as Encryption from "../../src/Persistence/Encryption.ts"

const material = Buffer.alloc(32, 7).toString("base64")
const spec = (id: string, key: string = material): Encryption.KeySpec => ({ id, key: Redacted.make(key) })
const ring = Effect.runSync(Encryption.makeKeyring({ keys: [spec("k1")], active: "k1" }))

describe("keyring", () => {
  it.effect("refuses keys that are not 32 bytes, bad ids, duplicates, and an active key it lacks; never printing material", () =>
    Effect.gen(function*() {
      const refused = (keys: ReadonlyArray<Encryption.KeySpec>, active = "k1") =>
        Effect.flip(Encryption.makeKeyring({ keys, active }))
      const short = Buffer.alloc(16, 3).toString("base64")
      const errors = [
        yield* refused([spec("k1", short)]),
        yield* refused([spec("k1", "not base64 at all!")]),
        yield* refused([{ id: "k1", key: Redacted.make("zz"), encoding: "hex" }]),
        yield* refused([spec("has space")], "has space"),
        yield* refused([spec("k1"), spec("k1")]),
        yield* refused([spec("k1")], "k2")
      ]
      assert.deepStrictEqual(errors.map((e) => e._tag), Array(6).fill("InvalidKey"))
      assert.include(errors[0]!.message, "32 bytes")
      for (const error of errors) assert.notInclude(`${error.message}${JSON.stringify(error)}`, short)
      assert.strictEqual(String(ring), "Keyring(active: k1)")
      assert.notInclude(`${JSON.stringify(ring)}${String(ring)}`, material)
    }))

  it.effect("rotates: add, activate, remove; the active key cannot be removed nor an id reused with other material", () =>
    Effect.gen(function*() {
      const keyring = yield* Encryption.makeKeyring({ keys: [spec("k1")], active: "k1" })
      const old = yield* Encryption.encrypt(keyring, "v1", "ctx")
      yield* keyring.add({ id: "k2", key: Redacted.make(new Uint8Array(32).fill(2)) })
      yield* keyring.add(spec("k2", Buffer.alloc(32, 2).toString("base64"))) // the same key again: fine
      assert.strictEqual((yield* Effect.flip(keyring.add(spec("k2")))).reason, "another key has this id")
      yield* keyring.activate("k2")
      assert.strictEqual(yield* keyring.active, "k2")
      assert.match(yield* Encryption.encrypt(keyring, "v2", "ctx"), /^qenc:1:k2:/)
      assert.strictEqual(yield* Encryption.decrypt(keyring, old, "ctx"), "v1")
      assert.strictEqual((yield* Effect.flip(keyring.remove("k2"))).reason, "the active key cannot be removed")
      yield* keyring.remove("k1")
      assert.deepStrictEqual(yield* keyring.ids, ["k2"])
      const gone = yield* Effect.flip(Encryption.decrypt(keyring, old, "ctx"))
      assert.deepStrictEqual([gone.failure, gone.keyId], ["unknown-key", "k1"])
      assert.strictEqual((yield* Effect.flip(keyring.activate("k1")))._tag, "InvalidKey")
    }))
})

describe("envelope", () => {
  const text = fc.string({ unit: "grapheme", maxLength: 300 })

  it.effect("any text round-trips under any context; the same text seals differently each time", () =>
    Effect.sync(() =>
      fc.assert(fc.property(text, text, (plain, context) => {
        const sealed = Effect.runSync(Encryption.encrypt(ring, plain, context))
        assert.strictEqual(Effect.runSync(Encryption.decrypt(ring, sealed, context)), plain)
        assert.notStrictEqual(Effect.runSync(Encryption.encrypt(ring, plain, context)), sealed)
      }), { numRuns: 300 })
    ))

  it.effect("any single changed character of the body, or another context, fails with a DecryptionError", () =>
    Effect.sync(() =>
      fc.assert(fc.property(text, text, fc.nat(), fc.integer({ min: 1, max: 63 }), (plain, context, at, delta) => {
        const sealed = Effect.runSync(Encryption.encrypt(ring, plain, context))
        const head = sealed.lastIndexOf(":") + 1
        const body = Buffer.from(sealed.slice(head), "base64url")
        const i = at % body.length
        body[i] = body[i]! ^ delta
        const changed = sealed.slice(0, head) + body.toString("base64url")
        const error = Effect.runSync(Effect.flip(Encryption.decrypt(ring, changed, context)))
        assert.instanceOf(error, Encryption.DecryptionError)
        assert.strictEqual(error.failure, "authentication-failed")
        const moved = Effect.runSync(Effect.flip(Encryption.decrypt(ring, sealed, `${context}.`)))
        assert.strictEqual(moved.failure, "authentication-failed")
      }), { numRuns: 300 })
    ))

  it.effect("malformed envelopes and unsupported versions fail as malformed; plaintext passes unless required", () =>
    Effect.gen(function*() {
      for (const bad of ["qenc:", "qenc:1:k1", "qenc:1:k1:AAAA", "qenc:2:k1:" + "A".repeat(60)]) {
        assert.strictEqual((yield* Effect.flip(Encryption.decrypt(ring, bad, "c"))).failure, "malformed", bad)
      }
      assert.strictEqual(yield* Encryption.decrypt(ring, `{"a":1}`, "c"), `{"a":1}`)
      const refused = yield* Effect.flip(Encryption.decrypt(ring, `{"a":1}`, "c", { requireEncrypted: true }))
      assert.strictEqual(refused.failure, "not-encrypted")
    }))
})

/**
 * The JSON fast paths of payloads (src/Transport/internal/JsonText.ts) against JSON.parse /
 * JSON.stringify: the same text out, the same value in (own `__proto__`, key order, -0 and
 * all), and on bytes that are not JSON the same SyntaxError, never a value. The properties
 * run with a fixed seed, so a run is reproducible.
 */
import { describe, expect, it } from "@effect/vitest"
import { Schema } from "effect"
import fc from "fast-check"
import { payloadCodec } from "../../src/Transport/Envelope.ts"
import { declined, parseFast, parseJson, stringifyFast, stringifyJson } from "../../src/Transport/internal/JsonText.ts"

// Taken before any test runs, to check that none added anything to them.
const prototypeKeys = Reflect.ownKeys(Object.prototype)
const arrayPrototypeKeys = Reflect.ownKeys(Array.prototype)

const seed = 20261202
const runs = (numRuns: number) => ({ seed, numRuns })

/**
 * Where `a` and `b` differ as JSON.parse results, or `undefined`: numbers by `Object.is`
 * (-0 is not 0), objects by prototype, own keys in order (so an own `__proto__` counts) and
 * values.
 */
const difference = (a: unknown, b: unknown, path = "$"): string | undefined => {
  if (typeof a !== "object" || a === null || typeof b !== "object" || b === null) {
    return Object.is(a, b) ? undefined : `${path}: ${String(a)} vs ${String(b)}`
  }
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return `${path}: prototypes differ`
  const keysA = Reflect.ownKeys(a)
  const keysB = Reflect.ownKeys(b)
  if (keysA.length !== keysB.length || keysA.some((k, i) => k !== keysB[i])) {
    return `${path}: keys ${keysA.map(String).join(",")} vs ${keysB.map(String).join(",")}`
  }
  for (const key of keysA) {
    const da = Object.getOwnPropertyDescriptor(a, key)!
    const db = Object.getOwnPropertyDescriptor(b, key)!
    if (!("value" in da) || !("value" in db)) return `${path}.${String(key)}: not a data property`
    const d = difference(da.value, db.value, `${path}.${String(key)}`)
    if (d !== undefined) return d
  }
  return undefined
}

const bytesOf = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "utf8"))

type Outcome = { readonly value: unknown } | { readonly error: unknown }

const attempt = (f: () => unknown): Outcome => {
  try {
    return { value: f() }
  } catch (error) {
    return { error }
  }
}

/** What the codec's contract is measured against: JSON.parse of the bytes' UTF-8 text. */
const reference = (bytes: Uint8Array): Outcome => attempt(() => JSON.parse(Buffer.from(bytes).toString("utf8")))

/**
 * `parseJson` gives what JSON.parse gives: the same value, or a SyntaxError with the same
 * message (so the fallback saw the same text); and the fast path alone either declines or
 * agrees (it never accepts what JSON.parse rejects). Returns whether the fast path took it.
 */
const agreesWithJsonParse = (bytes: Uint8Array): boolean => {
  const expected = reference(bytes)
  const actual = attempt(() => parseJson(bytes))
  const fast = parseFast(bytes)
  if ("error" in expected) {
    expect(expected.error).toBeInstanceOf(SyntaxError)
    expect("error" in actual, `parseJson returned a value for ${Buffer.from(bytes).toString("latin1")}`).toBe(true)
    const error = (actual as { readonly error: unknown }).error
    expect(error).toBeInstanceOf(SyntaxError)
    expect((error as Error).message).toBe((expected.error as Error).message)
    expect(fast).toBe(declined)
    return false
  }
  expect("value" in actual, `parseJson threw for ${Buffer.from(bytes).toString("latin1")}`).toBe(true)
  expect(difference((actual as { readonly value: unknown }).value, expected.value)).toBeUndefined()
  if (fast === declined) return false
  expect(difference(fast, expected.value)).toBeUndefined()
  return true
}

/** The encode side: `stringifyJson` is JSON.stringify, and the fast path declines or agrees. */
const agreesWithJsonStringify = (value: unknown): boolean => {
  const expected = JSON.stringify(value)
  expect(stringifyJson(value)).toBe(expected)
  const fast = stringifyFast(value)
  if (fast === undefined) return false
  expect(fast).toBe(expected)
  return true
}

// ---------------------------------------------------------------------------------------
// arbitraries

/** Keys JSON.parse and plain assignment treat differently, or that need escaping. */
const trickyKey = fc.constantFrom(
  "__proto__",
  "constructor",
  "prototype",
  "toString",
  "valueOf",
  "hasOwnProperty",
  "toJSON",
  "",
  "a\"b",
  "back\\slash",
  "tab\t",
  "nul\u0000",
  "del\u007f",
  "\u2028\u2029",
  "é",
  "日本",
  "😀",
  "\ud800",
  "\udc00x",
  "0",
  "1",
  "-1",
  "01",
  "4294967294",
  "4294967295",
  "1.5",
  "k".repeat(64),
  "k".repeat(65)
)

const key = fc.oneof(trickyKey, fc.string({ maxLength: 8 }), fc.string({ unit: "binary", maxLength: 8 }))

const trickyNumber = fc.constantFrom(
  0,
  -0,
  1,
  -1,
  1e21,
  -1e21,
  1e-7,
  123e-20,
  0.1,
  5e-324,
  Number.MAX_VALUE,
  Number.MIN_SAFE_INTEGER,
  Number.MAX_SAFE_INTEGER,
  2 ** 53 + 2,
  999_999_999_999_999,
  1_000_000_000_000_000,
  -999_999_999_999_999,
  NaN,
  Infinity,
  -Infinity
)

const trickyString = fc.oneof(
  trickyKey,
  fc.string({ maxLength: 70 }),
  fc.string({ unit: "binary", maxLength: 20 }),
  fc.string({ unit: "grapheme", maxLength: 10 })
)

const scalar = fc.oneof(
  trickyNumber,
  fc.integer(),
  fc.double(),
  fc.integer({ min: -(10 ** 15), max: 10 ** 15 }),
  trickyString,
  fc.boolean(),
  fc.constant(null)
)

/** A plain object built the way JSON.parse builds one (own data properties, `__proto__` included). */
const objectOf = <A>(value: fc.Arbitrary<A>, maxKeys: number) =>
  fc.array(fc.tuple(key, value), { maxLength: maxKeys }).map((entries) => Object.fromEntries(entries))

/** The fast path's own shape: short plain keys, scalar values. */
const plainKey = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 10 })
  .filter((k) => !k.includes("\"") && !k.includes("\\") && k !== "__proto__")
const flatObject = fc.array(
  fc.tuple(plainKey, fc.oneof(fc.integer({ min: -(10 ** 15), max: 10 ** 15 }), plainKey, fc.boolean(), fc.constant(null))),
  { maxLength: 16 }
).map((entries) => Object.fromEntries(entries))

const anyValue = fc.oneof(
  fc.jsonValue(),
  scalar,
  objectOf(scalar, 20),
  flatObject,
  objectOf(fc.jsonValue({ maxDepth: 2 }), 5),
  fc.array(scalar, { maxLength: 5 })
)

// ---------------------------------------------------------------------------------------

describe("JsonText", () => {
  it("encodes exactly as JSON.stringify", () => {
    let fast = 0
    fc.assert(
      fc.property(anyValue, (value) => {
        if (agreesWithJsonStringify(value)) fast++
      }),
      runs(5_000)
    )
    // The fast path must actually have been exercised for this to mean anything.
    expect(fast).toBeGreaterThan(500)
  })

  it("encodes the edge cases exactly as JSON.stringify", () => {
    const cases: Array<unknown> = [
      -0,
      1e21,
      1e-7,
      NaN,
      Infinity,
      "",
      "x".repeat(64),
      "x".repeat(65),
      "\u007f",
      "a\"b",
      {},
      { a: undefined },
      { a: () => 1 },
      { a: 1, toJSON: 2 },
      { toJSON: () => 7 },
      { a: new Date(0) },
      Object.fromEntries([["__proto__", 1]]),
      { 2: "b", 1: "a", z: 0 },
      Object.fromEntries(Array.from({ length: 16 }, (_, i) => [`k${i}`, i])),
      Object.fromEntries(Array.from({ length: 17 }, (_, i) => [`k${i}`, i])),
      Object.assign(Object.create(null), { a: 1 }),
      [1, 2],
      null,
      true,
      false
    ]
    for (const value of cases) agreesWithJsonStringify(value)
    expect(stringifyFast({ a: 1, b: "x", c: null, d: false })).toBe("{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":false}")
    expect(stringifyFast(-0)).toBe("0")
  })

  it("decodes JSON.stringify output exactly as JSON.parse", () => {
    let fast = 0
    fc.assert(
      fc.property(anyValue, (value) => {
        const text = JSON.stringify(value)
        if (text === undefined) return
        if (agreesWithJsonParse(bytesOf(text))) fast++
      }),
      runs(5_000)
    )
    expect(fast).toBeGreaterThan(500)
  })

  it("keeps `__proto__` an own property and pollutes no prototype", () => {
    const texts = [
      "{\"__proto__\":{\"polluted\":1}}",
      "{\"__proto__\":1}",
      "{\"__proto__\":\"x\"}",
      "{\"a\":1,\"__proto__\":null}",
      "{\"__proto__\":{}}",
      "{\"constructor\":{\"prototype\":{\"polluted\":1}}}",
      "{\"constructor\":1,\"toString\":2,\"hasOwnProperty\":3,\"valueOf\":4}",
      "{\"prototype\":{\"polluted\":1}}"
    ]
    for (const text of texts) {
      const bytes = bytesOf(text)
      agreesWithJsonParse(bytes)
      const value = parseJson(bytes) as Record<string, unknown>
      expect(Object.getPrototypeOf(value)).toBe(Object.prototype)
    }
    const proto = parseJson(bytesOf("{\"__proto__\":1}")) as object
    expect(Object.hasOwn(proto, "__proto__")).toBe(true)
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, "polluted")).toBe(false)
    expect(Object.keys(Object.prototype)).toEqual([])
  })

  it("decodes the edge cases exactly as JSON.parse", () => {
    const texts = [
      "-0",
      "0",
      "00",
      "-",
      "-01",
      "+1",
      "1.",
      "1.5",
      "1e3",
      "1E3",
      "999999999999999",
      "-999999999999999",
      "1000000000000000",
      "9007199254740993",
      "\"\"",
      "\"a\"",
      "\"a",
      "\"a\\\"b\"",
      "\"\u007f\"",
      "\"\t\"",
      "true",
      "truex",
      "tru",
      "false",
      "fals",
      "null",
      "nul",
      "NaN",
      "{}",
      "{",
      "{}x",
      "{\"a\":1}",
      "{\"a\":-0}",
      "{\"a\":1,}",
      "{\"a\":1 }",
      "{\"a\" :1}",
      "{\"a\":}",
      "{\"a\"}",
      "{\"a\":1,\"a\":2}",
      "{\"b\":1,\"a\":2,\"b\":3}",
      "{\"2\":1,\"1\":2}",
      "{\"a\":{\"b\":1}}",
      "{\"a\":[1]}",
      "{\"a\":tru}",
      "{'a':1}",
      "[1,2]",
      " 1",
      "1 ",
      "\ufeff1",
      "",
      `"${"x".repeat(510)}"`,
      `"${"x".repeat(511)}"`
    ]
    for (const text of texts) agreesWithJsonParse(bytesOf(text))
    expect(Object.is(parseFast(bytesOf("-0")), -0)).toBe(true)
    expect(parseFast(bytesOf("{\"a\":1,\"b\":\"x\",\"c\":null,\"d\":true}"))).toEqual({ a: 1, b: "x", c: null, d: true })
    expect(parseFast(bytesOf("{\"__proto__\":1}"))).toBe(declined)
  })

  it("answers arbitrary strings as JSON.parse does: the same value or the same SyntaxError", () => {
    const text = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.string({ unit: fc.constantFrom(..."{}[]\":,-0123456789.eEtruefalsn \\x"), maxLength: 30 }),
      fc.string({ unit: "binary", maxLength: 20 })
    )
    fc.assert(fc.property(text, (t) => void agreesWithJsonParse(bytesOf(t))), runs(10_000))
  })

  it("answers arbitrary bytes as JSON.parse does (invalid UTF-8 included)", () => {
    fc.assert(fc.property(fc.uint8Array({ maxLength: 40 }), (bytes) => void agreesWithJsonParse(bytes)), runs(5_000))
  })

  /** A byte edit of valid JSON: flip a bit, overwrite, insert, delete or truncate. */
  const interesting = [0x22, 0x5c, 0x7b, 0x7d, 0x5b, 0x5d, 0x2c, 0x3a, 0x20, 0x30, 0x31, 0x2d, 0x2e, 0x65, 0x00, 0x7f, 0x80, 0xc3, 0xff]
  const edit = fc.tuple(fc.integer({ min: 0, max: 4 }), fc.nat(), fc.oneof(fc.constantFrom(...interesting), fc.integer({ min: 0, max: 255 })))
  const mutate = (bytes: Uint8Array, edits: ReadonlyArray<readonly [number, number, number]>): Uint8Array => {
    let out = Array.from(bytes)
    for (const [op, at, byte] of edits) {
      const i = out.length === 0 ? 0 : at % out.length
      switch (op) {
        case 0:
          if (out.length > 0) out[i] = out[i]! ^ (1 << (byte % 8))
          break
        case 1:
          if (out.length > 0) out[i] = byte
          break
        case 2:
          out.splice(i, 0, byte)
          break
        case 3:
          out.splice(i, 1)
          break
        default:
          out = out.slice(0, i)
      }
    }
    return Uint8Array.from(out)
  }

  it("answers mutated JSON as JSON.parse does, and takes the fast path for some of it", () => {
    let fast = 0
    fc.assert(
      fc.property(fc.oneof(flatObject, anyValue), fc.array(edit, { minLength: 1, maxLength: 3 }), (value, edits) => {
        const text = JSON.stringify(value)
        if (text === undefined) return
        if (agreesWithJsonParse(mutate(bytesOf(text), edits))) fast++
      }),
      runs(20_000)
    )
    expect(fast).toBeGreaterThan(100)
  })

  it("makes the payload codec fail on hostile bytes exactly when JSON.parse + the schema would", () => {
    const schema = Schema.Struct({ n: Schema.Number, s: Schema.optional(Schema.String) })
    const codec = payloadCodec(schema)
    const decodeJson = Schema.decodeUnknownSync(Schema.toCodecJson(schema))
    const seeds = fc.oneof(
      fc.record({ n: fc.integer(), s: fc.option(plainKey, { nil: undefined }) }, { requiredKeys: ["n"] }),
      fc.record({ n: fc.double() })
    )
    fc.assert(
      fc.property(seeds, fc.array(edit, { maxLength: 3 }), (value, edits) => {
        const text = codec.encodeText(value)
        expect(Buffer.from(codec.encode(value)).toString("utf8")).toBe(text)
        const bytes = mutate(bytesOf(text), edits)
        const expected = attempt(() => decodeJson(JSON.parse(Buffer.from(bytes).toString("utf8"))))
        const actual = attempt(() => codec.decode(bytes))
        if ("error" in expected) {
          // The codec's failure is a throw its callers turn into a MessageDecodeError.
          expect("error" in actual).toBe(true)
          const error = (actual as { readonly error: unknown }).error
          expect(error).toBeInstanceOf(Error)
          expect((error as Error).constructor).toBe((expected.error as Error).constructor)
        } else {
          expect("value" in actual).toBe(true)
          expect(difference((actual as { readonly value: unknown }).value, expected.value)).toBeUndefined()
        }
      }),
      runs(5_000)
    )
  })

  it("leaves no prototype polluted after all of the above", () => {
    expect(({} as Record<string, unknown>)["polluted"]).toBeUndefined()
    expect(Reflect.ownKeys(Object.prototype)).toEqual(prototypeKeys)
    expect(Reflect.ownKeys(Array.prototype)).toEqual(arrayPrototypeKeys)
  })
})

/**
 * JSON text of payloads and replies: `JSON.stringify` / `JSON.parse` with fast paths in
 * front of them.
 *
 * Most payloads and replies are a number, a short string, or a flat object of those
 * (`{"by":1}`), and for these V8's JSON.parse / JSON.stringify cost more in call overhead
 * than in work (with these paths and the rest of that change `remote.ask.pipelined` went
 * +20-35 %, 0.19-0.23x -> 0.23-0.25x of raw sockets). The fast paths give exactly what
 * JSON.parse / JSON.stringify would and decline anything else (whitespace, escapes,
 * fractions, nesting, `__proto__`...), which then goes to JSON.parse / JSON.stringify: a
 * peer's bytes meet the same parser as before whenever they leave the narrow shape, and
 * bytes that are not JSON fail with JSON.parse's own SyntaxError.
 *
 * @internal
 */

/**
 * UTF-8 text of bytes that may be a plain Uint8Array (payloads are: see Envelope's reader).
 * Through a Buffer view: Buffer#toString called on a plain Uint8Array works on Node 24 but
 * throws on earlier versions (`buf.utf8Slice is not a function`), which the engines allow.
 */
const utf8Text = (bytes: Uint8Array): string =>
  (Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)).toString("utf8")

/**
 * What the parse fast path returns when it declines the bytes.
 *
 * @internal
 */
export const declined: unique symbol = Symbol("declined")

// ---------------------------------------------------------------------------------------
// encoding

/** A string JSON writes as `"<s>"` (printable ASCII without `"` or `\`), short. */
const isPlainString = (s: string): boolean => {
  const n = s.length
  if (n > 64) return false
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x20 || c > 0x7e || c === 0x22 || c === 0x5c) return false
  }
  return true
}

/** JSON text of a primitive the fast path handles, else `undefined`. */
const stringifyScalar = (value: unknown): string | undefined => {
  switch (typeof value) {
    case "number":
      // A finite number's JSON text is its string (non-finite ones are JSON.stringify's business).
      return Number.isFinite(value) ? String(value) : undefined
    case "string":
      return isPlainString(value) ? `"${value}"` : undefined
    case "boolean":
      return value ? "true" : "false"
    default:
      return value === null ? "null" : undefined
  }
}

/**
 * The encode fast path: `JSON.stringify(value)` for a scalar or a flat plain object of
 * scalars, else `undefined` (declined).
 *
 * @internal
 */
export const stringifyFast = (value: unknown): string | undefined => {
  if (typeof value !== "object" || value === null) return stringifyScalar(value)
  if (Object.getPrototypeOf(value) !== Object.prototype) return undefined
  const keys = Object.keys(value) // JSON.stringify's order
  if (keys.length > 16) return undefined
  let out = "{"
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]!
    if (!isPlainString(key)) return undefined
    const text = stringifyScalar((value as Record<string, unknown>)[key])
    if (text === undefined) return undefined // undefined, nested, a function (toJSON)...: JSON.stringify decides
    out += i === 0 ? `"${key}":${text}` : `,"${key}":${text}`
  }
  return out + "}"
}

/**
 * `JSON.stringify(value)`, through the fast path when it applies.
 *
 * @internal
 */
export const stringifyJson = (value: unknown): string | undefined => stringifyFast(value) ?? JSON.stringify(value)

// ---------------------------------------------------------------------------------------
// decoding

/** The end of a plain string starting after its `"` at `i` (the closing quote's index), or -1. */
const plainStringEnd = (bytes: Uint8Array, i: number, n: number): number => {
  for (; i < n; i++) {
    const c = bytes[i]!
    if (c === 0x22) return i
    if (c < 0x20 || c > 0x7e || c === 0x5c) return -1
  }
  return -1
}

/** Where the fast path stopped; `parsedEnd` is the index after the last value it read. */
let parsedEnd = 0

/**
 * A scalar at `bytes[i]`: an integer `-?(0|[1-9][0-9]*)` of at most 15 digits (exact in a
 * double), a plain string, `true`, `false` or `null`; `declined` when it is anything else.
 */
const parseScalar = (bytes: Uint8Array, i: number, n: number): unknown => {
  const c = bytes[i]
  if (c === 0x22) {
    const end = plainStringEnd(bytes, i + 1, n)
    if (end < 0) return declined
    parsedEnd = end + 1
    return latin1(bytes, i + 1, end)
  }
  if (c === 0x74 && n - i >= 4 && bytes[i + 1] === 0x72 && bytes[i + 2] === 0x75 && bytes[i + 3] === 0x65) {
    parsedEnd = i + 4
    return true
  }
  if (c === 0x66 && n - i >= 5 && bytes[i + 1] === 0x61 && bytes[i + 2] === 0x6c && bytes[i + 3] === 0x73 && bytes[i + 4] === 0x65) {
    parsedEnd = i + 5
    return false
  }
  if (c === 0x6e && n - i >= 4 && bytes[i + 1] === 0x75 && bytes[i + 2] === 0x6c && bytes[i + 3] === 0x6c) {
    parsedEnd = i + 4
    return null
  }
  const negative = c === 0x2d
  if (negative) i++
  const first = i
  let value = 0
  for (; i < n && i - first < 16; i++) {
    const digit = bytes[i]! - 0x30
    if (digit < 0 || digit > 9) break
    value = value * 10 + digit
  }
  const digits = i - first
  // No digits, a leading zero, more than 15 digits, or a fraction/exponent next: not ours.
  if (digits === 0 || digits > 15 || (bytes[first] === 0x30 && digits > 1)) return declined
  if (i < n && (bytes[i] === 0x2e || bytes[i] === 0x65 || bytes[i] === 0x45)) return declined
  parsedEnd = i
  return negative ? -value : value
}

/** Short ASCII text of `bytes[start, end)`. */
const latin1 = (bytes: Uint8Array, start: number, end: number): string => {
  let s = ""
  for (let i = start; i < end; i++) s += String.fromCharCode(bytes[i]!)
  return s
}

/** A flat object `{"k":scalar,...}` with no whitespace, or `undefined` for anything else. */
const parseFlatObject = (bytes: Uint8Array, n: number): Record<string, unknown> | undefined => {
  const out: Record<string, unknown> = {}
  let i = 1
  if (bytes[i] === 0x7d) return i + 1 === n ? out : undefined
  for (;;) {
    if (bytes[i] !== 0x22) return undefined
    const keyEnd = plainStringEnd(bytes, i + 1, n)
    if (keyEnd < 0 || bytes[keyEnd + 1] !== 0x3a) return undefined
    const key = latin1(bytes, i + 1, keyEnd)
    // JSON.parse makes `__proto__` an own property; an assignment would set the prototype.
    if (key === "__proto__") return undefined
    const value = parseScalar(bytes, keyEnd + 2, n)
    if (value === declined) return undefined
    out[key] = value
    i = parsedEnd
    const c = bytes[i]
    if (c === 0x7d) return i + 1 === n ? out : undefined
    if (c !== 0x2c) return undefined
    i++
  }
}

/**
 * The decode fast path: `JSON.parse` of the UTF-8 text of `bytes` when they are a scalar or
 * a flat object of scalars, short and with no whitespace or escapes; {@link declined} for
 * anything else (including whatever JSON.parse would reject).
 *
 * @internal
 */
export const parseFast = (bytes: Uint8Array): unknown => {
  const n = bytes.length
  if (n === 0 || n > 512) return declined
  if (bytes[0] !== 0x7b) {
    const value = parseScalar(bytes, 0, n)
    return value !== declined && parsedEnd === n ? value : declined
  }
  return parseFlatObject(bytes, n) ?? declined
}

/**
 * `JSON.parse` of the UTF-8 text of `bytes`, through the fast path when it applies. Throws
 * JSON.parse's SyntaxError when they are not JSON.
 *
 * @internal
 */
export const parseJson = (bytes: Uint8Array): unknown => {
  const value = parseFast(bytes)
  return value !== declined ? value : JSON.parse(utf8(bytes))
}

/** UTF-8 text of `bytes`; short ASCII (the usual small payload) without a decoder call. */
const utf8 = (bytes: Uint8Array): string => {
  const n = bytes.length
  if (n <= 64) {
    let s = ""
    for (let i = 0; i < n; i++) {
      const c = bytes[i]!
      if (c >= 0x80) return utf8Text(bytes)
      s += String.fromCharCode(c)
    }
    return s
  }
  return utf8Text(bytes)
}

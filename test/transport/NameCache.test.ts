/**
 * The caches for names read from the wire (src/Transport/internal/NameCache.ts): the
 * string is always the bytes' UTF-8 text whatever the cache holds, the cache never grows
 * past its slots, a collision costs a miss and never a wrong name; and requests decoded
 * through both caches (Envelope's readRequest) carry their own target and tag. The
 * properties run with a fixed seed, so a run is reproducible.
 */
import { describe, expect, it } from "@effect/vitest"
import fc from "fast-check"
import { readRequest, type RequestEnvelope, writeRequest } from "../../src/Transport/Envelope.ts"
import { FrameDecoder, OutputBuffer } from "../../src/Transport/Frame.ts"
import { LastBytes, NameCache } from "../../src/Transport/internal/NameCache.ts"

const seed = 20261202

/** `cache.read` of `text` placed at an offset inside a larger buffer, as names sit in a frame. */
const readAt = (cache: NameCache, bytes: Uint8Array, offset = 3): string => {
  const buf = Buffer.alloc(offset + bytes.length + 5, 0x41)
  buf.set(bytes, offset)
  return cache.read(buf, offset, bytes.length)
}

const ascii = fc.string({ unit: fc.integer({ min: 0, max: 0x7f }).map((c) => String.fromCharCode(c)), minLength: 1, maxLength: 48 })

/** Names of one length that agree on the bytes the slot is chosen by (first, middle, last). */
// (From 4 bytes: up to 3 the chosen bytes are all of them.)
const collidingPair = fc.integer({ min: 4, max: 48 }).chain((n) =>
  fc.tuple(
    fc.uint8Array({ minLength: n, maxLength: n, min: 0x21, max: 0x7e }),
    fc.uint8Array({ minLength: n, maxLength: n, min: 0x21, max: 0x7e })
  ).map(([a, other]) => {
    const b = Uint8Array.from(other)
    for (const i of [0, n >> 1, n - 1]) b[i] = a[i]!
    return [a, b] as const
  })
)

const filled = (cache: NameCache): number => cache.slots.filter((s) => s !== "").length

describe("NameCache", () => {
  it("returns the UTF-8 text of the bytes, the same for the same bytes (cached or not)", () => {
    const cache = new NameCache(64)
    fc.assert(
      fc.property(fc.oneof(fc.uint8Array({ maxLength: 48 }), ascii.map((s) => new Uint8Array(Buffer.from(s)))), (bytes) => {
        const expected = Buffer.from(bytes).toString("utf8")
        const first = readAt(cache, bytes)
        const second = readAt(cache, bytes, 11)
        expect(first).toBe(expected)
        expect(second).toBe(expected)
      }),
      { seed, numRuns: 20_000 }
    )
  })

  it("keeps ASCII names it read, and never non-ASCII ones", () => {
    const cache = new NameCache(1024)
    expect(readAt(cache, Buffer.from("Counter"))).toBe("Counter")
    expect(cache.slots).toContain("Counter")
    expect(readAt(cache, Buffer.from("Zähler"))).toBe("Zähler")
    expect(cache.slots).not.toContain("Zähler")
    expect(filled(cache)).toBe(1)
    expect(readAt(cache, new Uint8Array(0))).toBe("")
    expect(filled(cache)).toBe(1)
  })

  it("never grows past its slots under 100,000 random names", () => {
    const cache = new NameCache(1024)
    expect(cache.slots.length).toBe(1024)
    const names = fc.sample(ascii, { seed, numRuns: 100_000 })
    let misses = 0
    for (const name of names) {
      const got = readAt(cache, Buffer.from(name))
      if (got !== name) misses++
    }
    expect(misses).toBe(0)
    expect(cache.slots.length).toBe(1024)
    // Random names spread over the slots: it fills, but only up to its size.
    expect(filled(cache)).toBeGreaterThan(900)
    expect(filled(cache)).toBeLessThanOrEqual(1024)
    for (const s of cache.slots) expect(s.length).toBeLessThanOrEqual(48)
    expect(new NameCache(1000).slots.length).toBe(1024)
  })

  it("decodes a name that collides with a cached one to its own string", () => {
    const cache = new NameCache(1024)
    expect(readAt(cache, Buffer.from("abcde"))).toBe("abcde")
    const slot = cache.slots.indexOf("abcde")
    expect(slot).toBeGreaterThanOrEqual(0)
    // Same length, same first, middle and last byte: the same slot.
    expect(readAt(cache, Buffer.from("aXcYe"))).toBe("aXcYe")
    expect(cache.slots[slot]).toBe("aXcYe")
    expect(filled(cache)).toBe(1)
    expect(readAt(cache, Buffer.from("abcde"))).toBe("abcde")
    expect(cache.slots[slot]).toBe("abcde")

    fc.assert(
      fc.property(collidingPair, fc.array(fc.boolean(), { minLength: 1, maxLength: 8 }), ([a, b], order) => {
        const c = new NameCache(16)
        for (const pickA of order) {
          const bytes = pickA ? a : b
          expect(readAt(c, bytes)).toBe(Buffer.from(bytes).toString("latin1"))
        }
        expect(filled(c)).toBe(1)
        expect(c.slots.filter((x) => x !== "")[0]).toBe(Buffer.from(order.at(-1)! ? a : b).toString("latin1"))
      }),
      { seed, numRuns: 5_000 }
    )
  })
})

describe("LastBytes", () => {
  it("matches only the remembered bytes, whole and within the bounds", () => {
    const last = new LastBytes<string>("none", 8)
    const buf = Buffer.from("xxabcdefyy")
    expect(last.match(buf, 2, buf.length)).toBe(0)
    last.remember(buf, 2, 6, "abcd")
    expect(last.value).toBe("abcd")
    expect(last.match(Buffer.from("abcd"), 0, 4)).toBe(4)
    expect(last.match(Buffer.from("abcdzz"), 0, 6)).toBe(4)
    expect(last.match(Buffer.from("abcX"), 0, 4)).toBe(0)
    // The bytes are there, but past the end of the frame.
    expect(last.match(Buffer.from("abcd"), 0, 3)).toBe(0)
    // Copied, not a view: reusing the buffer does not change what is remembered.
    buf.fill(0)
    expect(last.match(Buffer.from("abcd"), 0, 4)).toBe(4)
    // Longer than the capacity: not kept, the previous value stays.
    last.remember(Buffer.from("123456789"), 0, 9, "long")
    expect(last.value).toBe("abcd")
    expect(last.match(Buffer.from("123456789"), 0, 9)).toBe(0)
  })
})

describe("Envelope names", () => {
  // A small pool so consecutive requests repeat names (the last-names path) and collide in
  // the name cache, plus arbitrary names.
  const pool = ["Counter", "Cou", "nter", "abcde", "aXcYe", "Bank", "B", "ank", "Zähler", "", "x".repeat(48), "y".repeat(49)]
  const name = fc.oneof(fc.constantFrom(...pool), fc.string({ maxLength: 50 }))
  const requestArb = fc.record({ type: name, id: name, tag: name, correlationId: name })

  it("decodes every request to its own target and tag, however names repeat or collide", () => {
    fc.assert(
      fc.property(fc.array(requestArb, { minLength: 1, maxLength: 20 }), (specs) => {
        const out = new OutputBuffer()
        const sent: Array<RequestEnvelope> = specs.map((s, i) => ({
          requestId: i,
          target: { type: s.type, id: s.id },
          tag: s.tag,
          payload: new Uint8Array([i & 0xff]),
          context: { correlationId: s.correlationId, metadata: {} },
          chain: [],
          timeoutMillis: 1000
        }))
        for (const req of sent) writeRequest(out, req, 1 << 20)
        const frames: Array<Buffer> = []
        new FrameDecoder({ onFrame: (f) => void frames.push(Buffer.from(f)), onOversized: () => {} }).push(out.take()!)
        expect(frames.length).toBe(sent.length)
        frames.forEach((frame, i) => expect(readRequest(frame)).toEqual(sent[i]))
      }),
      { seed, numRuns: 2_000 }
    )
  })
})

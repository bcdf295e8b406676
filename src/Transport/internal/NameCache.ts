/**
 * Caches for the names a receiver reads from the wire (actor types and ids, message tags).
 *
 * They repeat from one frame to the next, so building them afresh for each request is
 * waste: with these caches (and the rest of that change) `remote.ask.pipelined` went
 * +20-35 % (0.19-0.23x -> 0.23-0.25x of raw sockets).
 *
 * - {@link NameCache} hands back the string read last time for the same short ASCII bytes,
 *   which saves building it and gives the Map lookups that follow a string whose hash is
 *   already computed. It is direct-mapped with a fixed number of slots, so hostile input
 *   can neither grow it nor cost more than a miss.
 * - {@link LastBytes} remembers one value with the bytes it was read from: consecutive
 *   requests (a burst of calls to one actor) repeat their target and tag, and one byte
 *   comparison then replaces three string reads and an allocation.
 *
 * @internal
 */

/**
 * A direct-mapped cache of short ASCII strings, keyed by a few of their bytes: a miss
 * replaces the slot, and a full comparison decides a hit, so a collision costs a miss and
 * never a wrong string.
 *
 * @internal
 */
export class NameCache {
  /** The cached strings, one per slot (`""` when empty); its length never changes. */
  readonly slots: Array<string>
  private readonly mask: number

  /** `size` is rounded up to a power of two. */
  constructor(size = 1024) {
    let slots = 1
    while (slots < size) slots *= 2
    this.slots = new Array<string>(slots).fill("")
    this.mask = slots - 1
  }

  /**
   * The UTF-8 text of `buf[start, start + n)`; ASCII goes through the cache. A Buffer, for
   * its decoder (a frame is one).
   */
  read(buf: Buffer, start: number, n: number): string {
    if (n === 0) return ""
    const end = start + n
    const slots = this.slots
    const slot = (n * 31 + buf[start]! * 7 + buf[start + (n >> 1)]! * 131 + buf[end - 1]!) & this.mask
    const cached = slots[slot]!
    if (cached.length === n) {
      // Cached strings are ASCII, so a match also says every byte is.
      let i = 0
      while (i < n && cached.charCodeAt(i) === buf[start + i]) i++
      if (i === n) return cached
    }
    // Measured: building short ASCII strings byte by byte beats Node's decoders (and the
    // strings they return parse slower with JSON.parse).
    let s = ""
    for (let i = start; i < end; i++) {
      const c = buf[i]!
      if (c >= 0x80) return buf.toString("utf8", start, end)
      s += String.fromCharCode(c)
    }
    slots[slot] = s
    return s
  }
}

/**
 * One value remembered with the bytes (at most `capacity`) it was read from.
 *
 * @internal
 */
export class LastBytes<A> {
  /** The value last remembered; valid while {@link match} finds its bytes. */
  value: A
  private readonly bytes: Buffer
  private length = 0

  constructor(initial: A, capacity = 256) {
    this.value = initial
    this.bytes = Buffer.alloc(capacity)
  }

  /** The length of the remembered bytes when `buf[start, end)` starts with them, else 0. */
  match(buf: Uint8Array, start: number, end: number): number {
    const n = this.length
    if (n === 0 || start + n > end) return 0
    const bytes = this.bytes
    let i = 0
    while (i < n && buf[start + i] === bytes[i]) i++
    return i === n ? n : 0
  }

  /** Remembers `value` as read from `buf[start, end)`; bytes longer than the capacity are not kept. */
  remember(buf: Buffer, start: number, end: number, value: A): void {
    const n = end - start
    if (n > this.bytes.length) return
    buf.copy(this.bytes, 0, start, end)
    this.value = value
    this.length = n
  }
}

/**
 * The profiler's rolling window (see `Profiler.ts` for the rules and their numbers): per
 * (type, message) counters and a log-bucket latency histogram per slice, and per slice a
 * bounded table of activations. No clock: the profiler says when to rotate.
 *
 * @internal
 */

// ---------------------------------------------------------------------------------------
// Latency buckets
// ---------------------------------------------------------------------------------------

/** Buckets per octave: the top 4 bits of the mantissa. */
const SUB_BITS = 4
const SUB = 1 << SUB_BITS
/** The lowest bucket starts at 2^-12 ms (0.24 µs); the highest octave ends at 2^18 ms (262 s). */
const LOW_EXPONENT = -12
const HIGH_EXPONENT = 18

/** @internal */
export const BUCKETS = (HIGH_EXPONENT - LOW_EXPONENT) * SUB

/**
 * A float's high word holds its sign, 11 exponent bits and 20 mantissa bits: its top 16
 * bits are an index that grows with the value, 16 steps per octave. Writing the float into a
 * typed array and reading the word back costs about 2 ns; `Math.log` costs about 12.
 */
const scratch = new Float64Array(1)
const words = new Uint32Array(scratch.buffer)
const HIGH_WORD = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1 ? 1 : 0
const BASE = (1023 + LOW_EXPONENT) << SUB_BITS

/**
 * The bucket of a duration in milliseconds. Below 2^-12 ms (and 0, negatives, NaN) is
 * bucket 0; from 2^18 ms up the last bucket.
 *
 * @internal
 */
export const bucketOf = (millis: number): number => {
  scratch[0] = millis
  const index = (words[HIGH_WORD]! >>> 16) - BASE
  return index < 0 ? 0 : index >= BUCKETS ? (millis > 0 ? BUCKETS - 1 : 0) : index
}

/** The lower bound of a bucket, in milliseconds (exact: a power of two times k/16). @internal */
export const bucketLow = (index: number): number =>
  Math.pow(2, LOW_EXPONENT + (index >> SUB_BITS)) * (1 + (index & (SUB - 1)) / SUB)

/**
 * What a bucket reports: 2·lo·hi/(lo+hi), the point whose relative distance to both ends is
 * the same, (hi−lo)/(hi+lo) ≤ (1/16)/(2+1/16) ≈ 3.03 % (widest at an octave's start).
 *
 * @internal
 */
export const bucketEstimate = (index: number): number => {
  const lo = bucketLow(index)
  const hi = bucketLow(index + 1)
  return 2 * lo * hi / (lo + hi)
}

/** @internal */
export const MAX_RELATIVE_ERROR = (1 / SUB) / (2 + 1 / SUB)

// ---------------------------------------------------------------------------------------
// Rows
// ---------------------------------------------------------------------------------------

/** Offsets in a row's `stats`, per slice. */
const COUNT = 0
const FAILURES = 1
const SUM = 2
const MAX = 3
const STATS = 4

/**
 * One (type, message): its counters per slice. Rows are found by message, then by type along
 * `next` (a message name is seldom shared by many types): one map lookup, not two.
 *
 * @internal
 */
export class MessageRow {
  readonly type: string
  readonly message: string
  /** Per slice: count, failures, sum, max; one array, one cache line a turn. */
  readonly stats: Float64Array
  /** `slices × BUCKETS` counts, slice-major. */
  readonly histogram: Uint32Array
  next: MessageRow | undefined = undefined
  constructor(type: string, message: string, slices: number) {
    this.type = type
    this.message = message
    this.stats = new Float64Array(slices * STATS)
    this.histogram = new Uint32Array(slices * BUCKETS)
  }
}

/**
 * One tracked activation in one slice, found by key, then by type along `next` (the same
 * key under another type: rare).
 *
 * @internal
 */
export class Tracked {
  readonly type: string
  readonly key: string
  turns: number
  millis: number
  /** The prune that last kept it. */
  mark = 0
  next: Tracked | undefined = undefined
  constructor(type: string, key: string, millis: number) {
    this.type = type
    this.key = key
    this.turns = 1
    this.millis = millis
  }
}

/** A (type, message) over the window. @internal */
export interface MessageTotals {
  readonly type: string
  readonly message: string
  readonly count: number
  readonly failures: number
  readonly totalMillis: number
  readonly maxMillis: number
  readonly p50Millis: number
  readonly p99Millis: number
}

/** An activation over the window. @internal */
export interface ActivationTotals {
  readonly type: string
  readonly id: string
  readonly turns: number
  readonly millis: number
}

// ---------------------------------------------------------------------------------------
// The window
// ---------------------------------------------------------------------------------------

/** @internal */
export class ProfileWindow {
  readonly slices: number
  readonly maxTracked: number
  /** How many a prune keeps by each ranking (their union stays, at most half the cap). */
  readonly keepPerRanking: number
  current = 0
  private readonly rows = new Map<string, MessageRow>()
  private readonly allRows: Array<MessageRow> = []
  /** Per slice, the tracked activations by key. */
  private readonly activations: Array<Map<string, Tracked>> = []
  /** Per slice, every tracked activation (for pruning). */
  private readonly tracked: Array<Array<Tracked>> = []
  private pruneMark = 0
  /**
   * Per slice, once its table has filled: 8 × the time of the `keepPerRanking`-th
   * activation kept by time at the last prune (a unit of time for admission).
   */
  private readonly timeUnit: Float64Array
  /** Whether the slice's table has filled (new activations are then sampled). */
  private readonly full: Uint8Array
  /** xorshift32 state: admission draws (seeded, so a run is reproducible). */
  private seed = 0x9e3779b9

  constructor(slices: number, maxTracked: number) {
    this.slices = slices
    this.maxTracked = Math.max(4, maxTracked)
    this.keepPerRanking = this.maxTracked >> 2
    this.timeUnit = new Float64Array(slices)
    this.full = new Uint8Array(slices)
    for (let s = 0; s < slices; s++) {
      this.activations.push(new Map())
      this.tracked.push([])
    }
  }

  record(type: string, message: string, key: string, millis: number, failed: boolean): void {
    let m = this.rows.get(message)
    while (m !== undefined && m.type !== type) m = m.next
    if (m === undefined) m = this.addRow(type, message)
    const s = this.current
    const stats = m.stats
    const at = s * STATS
    stats[at + COUNT]++
    stats[at + SUM] += millis
    if (millis > stats[at + MAX]!) stats[at + MAX] = millis
    if (failed) stats[at + FAILURES]++
    m.histogram[s * BUCKETS + bucketOf(millis)]++
    const activations = this.activations[s]!
    const head = activations.get(key)
    let entry = head
    while (entry !== undefined && entry.type !== type) entry = entry.next
    if (entry !== undefined) {
      entry.turns++
      entry.millis += millis
      return
    }
    if (this.full[s] === 1 && !this.admit(s, millis)) return
    const made = new Tracked(type, key, millis)
    made.next = head
    activations.set(key, made)
    const list = this.tracked[s]!
    list.push(made)
    if (list.length >= this.maxTracked) this.prune(s)
  }

  /**
   * Sample and hold: a new activation in a full table is admitted with probability
   * max(1/8, millis / timeUnit): one in 8 turns, or one in 8 of the least time a kept
   * activation had (a turn that long alone always is).
   */
  private admit(s: number, millis: number): boolean {
    let x = this.seed
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    this.seed = x
    // The low 3 bits: 1 in 8; the others, as a fraction in [0, 1), against the time.
    return (x & 7) === 0 || ((x >>> 3) / 536870912) * this.timeUnit[s]! < millis
  }

  private addRow(type: string, message: string): MessageRow {
    const row = new MessageRow(type, message, this.slices)
    row.next = this.rows.get(message)
    this.rows.set(message, row)
    this.allRows.push(row)
    return row
  }

  /** Moves to the next slice and empties it (it held the oldest). */
  rotate(): void {
    const s = (this.current + 1) % this.slices
    this.current = s
    for (const m of this.allRows) {
      m.stats.fill(0, s * STATS, (s + 1) * STATS)
      m.histogram.fill(0, s * BUCKETS, (s + 1) * BUCKETS)
    }
    this.activations[s] = new Map()
    this.tracked[s] = []
    this.full[s] = 0
    this.timeUnit[s] = 0
  }

  /**
   * Keeps the `keepPerRanking` activations with the most turns and those with the most
   * time in slice `s`, and drops the rest: an O(cap) selection every cap/2 new activations
   * at least, so O(1) amortized per new one.
   */
  private prune(s: number): void {
    const list = this.tracked[s]!
    const k = this.keepPerRanking
    const mark = ++this.pruneMark
    selectTop(list, k, false)
    for (let i = 0; i < k; i++) list[i]!.mark = mark
    selectTop(list, k, true)
    this.full[s] = 1
    this.timeUnit[s] = 8 * list[k - 1]!.millis
    for (let i = 0; i < k; i++) list[i]!.mark = mark
    // A new map with the kept ones: cheaper than deleting the others (V8 rehashes a map
    // that has many deleted entries) and than walking the old one.
    const activations = new Map<string, Tracked>()
    let kept = 0
    for (let i = 0; i < list.length; i++) {
      const entry = list[i]!
      if (entry.mark !== mark) continue
      list[kept++] = entry
      entry.next = activations.get(entry.key)
      activations.set(entry.key, entry)
    }
    list.length = kept
    this.activations[s] = activations
  }

  /** Every (type, message) with a turn in the window, with its percentiles. */
  messages(): Array<MessageTotals> {
    const out: Array<MessageTotals> = []
    const merged = new Float64Array(BUCKETS)
    for (const m of this.allRows) {
      let count = 0
      let failures = 0
      let total = 0
      let max = 0
      for (let s = 0; s < this.slices; s++) {
        const at = s * STATS
        count += m.stats[at + COUNT]!
        failures += m.stats[at + FAILURES]!
        total += m.stats[at + SUM]!
        max = Math.max(max, m.stats[at + MAX]!)
      }
      if (count === 0) continue
      merged.fill(0)
      for (let s = 0; s < this.slices; s++) {
        if (m.stats[s * STATS + COUNT] === 0) continue
        const offset = s * BUCKETS
        for (let b = 0; b < BUCKETS; b++) merged[b]! += m.histogram[offset + b]!
      }
      out.push({
        type: m.type,
        message: m.message,
        count,
        failures,
        totalMillis: total,
        maxMillis: max,
        p50Millis: percentile(merged, count, 0.5, max),
        p99Millis: percentile(merged, count, 0.99, max)
      })
    }
    return out
  }

  /** Every tracked activation, its slices summed. */
  activationTotals(): Array<ActivationTotals> {
    const sums = new Map<string, { type: string; id: string; turns: number; millis: number }>()
    for (const list of this.tracked) {
      for (const entry of list) {
        const id = `${entry.type}\u0000${entry.key}`
        const sum = sums.get(id)
        if (sum === undefined) sums.set(id, { type: entry.type, id: entry.key, turns: entry.turns, millis: entry.millis })
        else {
          sum.turns += entry.turns
          sum.millis += entry.millis
        }
      }
    }
    return Array.from(sums.values())
  }
}

/**
 * The nearest-rank percentile (the value at rank ⌈q·n⌉ in sorted order) as its bucket's
 * estimate, never above the exact max.
 *
 * @internal
 */
export const percentile = (histogram: ArrayLike<number>, count: number, q: number, max: number): number => {
  const rank = nearestRank(count, q)
  let seen = 0
  for (let b = 0; b < histogram.length; b++) {
    seen += histogram[b]!
    if (seen >= rank) return Math.min(bucketEstimate(b), max)
  }
  return max
}

/** ⌈q·n⌉, at least 1; the epsilon keeps 0.99 × 300 from rounding up to 298. @internal */
export const nearestRank = (count: number, q: number): number => Math.max(1, Math.ceil(q * count - 1e-9))

/**
 * Reorders `list` so that its first `k` entries are the `k` largest by turns (or by time):
 * Hoare's quickselect, expected O(n); equal values split evenly across both sides.
 */
const selectTop = (list: Array<Tracked>, k: number, byTime: boolean): void => {
  const target = k - 1
  let lo = 0
  let hi = list.length - 1
  while (hi > lo) {
    const pivot = valueOf(list[(lo + hi) >>> 1]!, byTime)
    let i = lo
    let j = hi
    while (i <= j) {
      while (valueOf(list[i]!, byTime) > pivot) i++
      while (valueOf(list[j]!, byTime) < pivot) j--
      if (i <= j) {
        const swap = list[i]!
        list[i] = list[j]!
        list[j] = swap
        i++
        j--
      }
    }
    if (target <= j) hi = j
    else if (target >= i) lo = i
    else return
  }
}

const valueOf = (entry: Tracked, byTime: boolean): number => byTime ? entry.millis : entry.turns

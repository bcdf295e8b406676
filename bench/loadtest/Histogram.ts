/**
 * An HDR-style latency histogram: log-linear buckets over the non-negative integers (the
 * load tester records nanoseconds), fixed memory, O(1) `record`.
 *
 * Layout (HdrHistogram's with 2 significant digits): values below 256 each have a bucket
 * of their own (exact); above, every power-of-two range [2^k, 2^(k+1)) is split into 128
 * equal buckets of width 2^(k-7). A bucket's width is at most 1/128 of any value in it, and
 * a percentile is reported as its bucket's midpoint (clamped to the exact min and max), so
 * it is within `relativeError` (1/256, about 0.4%) of the exact nearest-rank percentile.
 * Every integer up to 2^53 has a bucket: 6,016 counters, about 48 KB, whatever is recorded.
 */

/** log2 of the number of buckets per power of two above the exact range. */
const subBits = 7
/** 128 buckets per power of two. */
const subHalf = 1 << subBits
/** Values below this (256) are recorded exactly. */
const exactBelow = subHalf * 2
/** The largest value recorded as itself; larger ones are clamped to it. */
const maxValue = Number.MAX_SAFE_INTEGER
/** The index of the top bucket's value (msb 52) plus one. */
const bucketCount = subHalf * (52 - subBits) + exactBelow

const two32 = 2 ** 32

/** Index of the highest set bit of a positive integer below 2^53 (Math.clz32 covers 32 bits). */
const msb = (v: number): number => v < two32 ? 31 - Math.clz32(v) : 63 - Math.clz32(Math.floor(v / two32))

/** Index of the bucket holding the integer `v` (0 ≤ v ≤ 2^53 - 1). */
const indexOf = (v: number): number => {
  if (v < exactBelow) return v
  const shift = msb(v) - subBits
  // v / 2^shift lies in [128, 256): the bucket within its power of two, plus 128 per power.
  return subHalf * shift + Math.floor(v / 2 ** shift)
}

/** The lowest value of bucket `index`, and its width. */
const bucketOf = (index: number): { readonly low: number; readonly width: number } => {
  if (index < exactBelow) return { low: index, width: 1 }
  const shift = Math.floor(index / subHalf) - 1
  const sub = index - subHalf * shift
  const width = 2 ** shift
  return { low: sub * width, width }
}

/**
 * The rank (1-based) of the nearest-rank percentile `p` (in percent) of `n` values: the
 * smallest rank whose share of the values is at least `p`%.
 */
export const nearestRank = (p: number, n: number): number => Math.min(n, Math.max(1, Math.ceil((p / 100) * n)))

export class Histogram {
  /** Largest relative distance between a reported percentile and the exact one. */
  static readonly relativeError = 1 / (2 * subHalf)

  private readonly counts = new Float64Array(bucketCount)
  private total = 0
  private sum = 0
  private least = Infinity
  private most = -Infinity

  /** Records one value: a non-negative finite number, rounded to an integer. */
  record(value: number): void {
    if (!(value >= 0) || value === Infinity) throw new RangeError(`Histogram.record: ${value} is not a non-negative finite number`)
    const v = Math.min(maxValue, Math.round(value))
    this.counts[indexOf(v)]!++
    this.total++
    this.sum += v
    if (v < this.least) this.least = v
    if (v > this.most) this.most = v
  }

  /** How many values were recorded. */
  get count(): number {
    return this.total
  }

  /** The smallest value recorded (exact), 0 when empty. */
  get min(): number {
    return this.total === 0 ? 0 : this.least
  }

  /** The largest value recorded (exact), 0 when empty. */
  get max(): number {
    return this.total === 0 ? 0 : this.most
  }

  /** The mean of the values recorded (exact, from their sum), 0 when empty. */
  get mean(): number {
    return this.total === 0 ? 0 : this.sum / this.total
  }

  /**
   * The nearest-rank percentile `p` (0 ≤ p ≤ 100, in percent), within `relativeError` of the
   * exact one; the first rank (`percentile(0)`) is the exact min and the last
   * (`percentile(100)`) the exact max. 0 when empty.
   * O(number of buckets).
   */
  percentile(p: number): number {
    if (!(p >= 0 && p <= 100)) throw new RangeError(`Histogram.percentile: ${p} is not in [0, 100]`)
    if (this.total === 0) return 0
    const rank = nearestRank(p, this.total)
    // The extreme ranks are known exactly.
    if (rank === 1) return this.least
    if (rank === this.total) return this.most
    let seen = 0
    for (let i = 0; i < bucketCount; i++) {
      seen += this.counts[i]!
      if (seen >= rank) {
        const { low, width } = bucketOf(i)
        // The midpoint of the integers low..low+width-1; clamping keeps the bound (the exact
        // value is within [min, max] too).
        return Math.min(this.most, Math.max(this.least, low + (width - 1) / 2))
      }
    }
    return this.most // unreachable: the counts add up to `total`
  }

  /** Adds every value recorded in `other` to this histogram. */
  merge(other: Histogram): void {
    for (let i = 0; i < bucketCount; i++) this.counts[i]! += other.counts[i]!
    this.total += other.total
    this.sum += other.sum
    if (other.least < this.least) this.least = other.least
    if (other.most > this.most) this.most = other.most
  }
}

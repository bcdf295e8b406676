/**
 * A sorted list as sorted chunks, for the in-memory reminder store.
 *
 * @internal
 */

/**
 * A sorted list of values (no two equal under `compare`) as a list of sorted chunks, each
 * holding between `load / 2` and `2 × load` values (the design of Python's
 * `sortedcontainers`): finding a position is two binary searches (over the chunks' last
 * values, then inside one chunk), inserting or deleting is a splice of one chunk, and a chunk
 * that grows past `2 × load` is split, one that shrinks under `load / 2` is merged into a
 * neighbour. Iteration from the smallest value is in order and costs O(1) per value.
 *
 * @internal
 */
export class SortedList<A> {
  private readonly chunks: Array<Array<A>> = []
  /** The last (largest) value of each chunk. */
  private readonly maxes: Array<A> = []
  private count = 0

  private readonly compare: (a: A, b: A) => number
  /** Chunks hold between `load / 2` and `2 × load` values. */
  private readonly load: number

  constructor(compare: (a: A, b: A) => number, load = 512) {
    this.compare = compare
    this.load = load
  }

  get size(): number {
    return this.count
  }

  /** The index of the first element of `values` not less than `value`. */
  private lowerBound(values: ReadonlyArray<A>, value: A): number {
    let low = 0
    let high = values.length
    while (low < high) {
      const mid = (low + high) >>> 1
      if (this.compare(values[mid]!, value) < 0) low = mid + 1
      else high = mid
    }
    return low
  }

  insert(value: A): void {
    const { chunks, maxes } = this
    this.count++
    if (chunks.length === 0) {
      chunks.push([value])
      maxes.push(value)
      return
    }
    let c = this.lowerBound(maxes, value)
    let chunk: Array<A>
    if (c === chunks.length) {
      c--
      chunk = chunks[c]!
      chunk.push(value)
      maxes[c] = value
    } else {
      chunk = chunks[c]!
      insertAt(chunk, this.lowerBound(chunk, value), value)
    }
    if (chunk.length > 2 * this.load) {
      const upper = chunk.splice(this.load)
      chunks.splice(c + 1, 0, upper)
      maxes.splice(c, 1, chunk[chunk.length - 1]!, upper[upper.length - 1]!)
    }
  }

  /** Deletes the value equal to `value` under `compare`; `false` if there is none. */
  delete(value: A): boolean {
    const { chunks, maxes } = this
    const c = this.lowerBound(maxes, value)
    if (c === chunks.length) return false
    const chunk = chunks[c]!
    const i = this.lowerBound(chunk, value)
    if (i === chunk.length || this.compare(chunk[i]!, value) !== 0) return false
    removeAt(chunk, i)
    this.count--
    if (chunk.length === 0) {
      chunks.splice(c, 1)
      maxes.splice(c, 1)
    } else {
      maxes[c] = chunk[chunk.length - 1]!
      if (chunk.length < this.load / 2 && chunks.length > 1) this.merge(c === 0 ? 0 : c - 1)
    }
    return true
  }

  /** Merges chunk `c + 1` into chunk `c`, splitting the result again if it is too large. */
  private merge(c: number): void {
    const { chunks, maxes } = this
    const merged = chunks[c]!.concat(chunks[c + 1]!)
    if (merged.length > 2 * this.load) {
      const half = merged.length >>> 1
      const lower = merged.slice(0, half)
      const upper = merged.slice(half)
      chunks.splice(c, 2, lower, upper)
      maxes.splice(c, 2, lower[lower.length - 1]!, upper[upper.length - 1]!)
    } else {
      chunks.splice(c, 2, merged)
      maxes.splice(c, 2, merged[merged.length - 1]!)
    }
  }

  /** The values from the smallest up, while `keep` holds, at most `limit` of them. */
  takeWhile(limit: number, keep: (value: A) => boolean): Array<A> {
    const out: Array<A> = []
    if (limit <= 0) return out
    for (const chunk of this.chunks) {
      for (const value of chunk) {
        if (!keep(value)) return out
        out.push(value)
        if (out.length >= limit) return out
      }
    }
    return out
  }
}


/** `values.splice(i, 0, value)` without the array `splice` allocates for what it removes. */
const insertAt = <A>(values: Array<A>, i: number, value: A): void => {
  values.push(value)
  for (let j = values.length - 1; j > i; j--) values[j] = values[j - 1]!
  values[i] = value
}

/** `values.splice(i, 1)`, likewise. */
const removeAt = <A>(values: Array<A>, i: number): void => {
  for (let j = i + 1; j < values.length; j++) values[j - 1] = values[j]!
  values.length--
}

/**
 * A binary min-heap by time (`at`). The reminder timer uses it with lazy deletion: an entry
 * carries the generation of its reminder when it was pushed, and an entry whose generation
 * is no longer the reminder's is dropped when it reaches the top. So re-scheduling or
 * cancelling is O(1) plus one push, and the heap never needs a search.
 *
 * @internal
 */

export class DueHeap<HeapEntry extends { readonly at: number }> {
  private readonly items: Array<HeapEntry> = []

  get size(): number {
    return this.items.length
  }

  push(entry: HeapEntry): void {
    const items = this.items
    items.push(entry)
    let i = items.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (items[parent]!.at <= entry.at) break
      items[i] = items[parent]!
      i = parent
    }
    items[i] = entry
  }

  peek(): HeapEntry | undefined {
    return this.items[0]
  }

  pop(): HeapEntry | undefined {
    const items = this.items
    const top = items[0]
    const last = items.pop()
    if (top === undefined || last === undefined || items.length === 0) return top
    let i = 0
    const n = items.length
    for (;;) {
      const left = 2 * i + 1
      if (left >= n) break
      const right = left + 1
      const child = right < n && items[right]!.at < items[left]!.at ? right : left
      if (items[child]!.at >= last.at) break
      items[i] = items[child]!
      i = child
    }
    items[i] = last
    return top
  }

  /** Keeps only the entries `keep` accepts, rebuilding the heap: O(n log n). */
  retain(keep: (entry: HeapEntry) => boolean): void {
    const kept = this.items.filter(keep)
    this.items.length = 0
    for (const entry of kept) this.push(entry)
  }
}

/**
 * What every reminder store agrees on: how keys and text are ordered (by Unicode code point,
 * which is UTF-8 byte order, as Redis and PostgreSQL's "C" collation order text), and the
 * checks each makes before it stores anything.
 *
 * @internal
 */
import type { DeadLetter, ReminderKey, ReminderWrite } from "../ReminderStore.ts"

/**
 * Compares two strings by Unicode code point. JavaScript's `<` compares UTF-16 code units,
 * which differs only when a surrogate (half of a character above U+FFFF) meets a unit in
 * U+E000..U+FFFF; those are remapped so that the surrogates sort last, as their code points do.
 *
 * @internal
 */
export const compareCodePoints = (a: string, b: string): number => {
  if (a === b) return 0
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i)
    const y = b.charCodeAt(i)
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800) return codePointRank(x) - codePointRank(y)
      return x - y
    }
  }
  return a.length - b.length
}

const codePointRank = (unit: number): number => (unit >= 0xe000 ? unit - 0x800 : unit + 0x2000)

/**
 * The order of keys: type, then id, then name, each by code point.
 *
 * @internal
 */
export const compareKeys = (a: ReminderKey, b: ReminderKey): number =>
  compareCodePoints(a.type, b.type) || compareCodePoints(a.id, b.id) || compareCodePoints(a.name, b.name)

/**
 * The check every provider makes on a write before storing it: a `nextDue` that is not a
 * finite number or a bucket that is not a non-negative safe integer cannot be ordered or
 * stored alike everywhere, so it fails the put (with `StoreError`) and stores nothing.
 *
 * @internal
 */
export const invalidWrite = (reminder: ReminderWrite): string | undefined =>
  !Number.isFinite(reminder.nextDue)
    ? `nextDue must be a finite number, got ${reminder.nextDue}`
    : !Number.isSafeInteger(reminder.bucket) || reminder.bucket < 0
    ? `bucket must be a non-negative integer, got ${reminder.bucket}`
    : undefined

/**
 * The check every provider makes on a dead letter before storing it: its `at` must be a
 * finite number (it orders the queue).
 *
 * @internal
 */
export const invalidDeadLetter = (entry: DeadLetter): string | undefined =>
  Number.isFinite(entry.at) ? undefined : `at must be a finite number, got ${entry.at}`

/**
 * How many entries a `limit` asks for: its integer part, at least 0 (NaN is 0).
 *
 * @internal
 */
export const countOf = (limit: number): number => (limit >= 1 ? Math.floor(limit) : 0)


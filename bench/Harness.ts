/**
 * Measurement utilities shared by all benchmarks: interleaved rounds,
 * percentiles and result printing. Plain async code on purpose, so the harness
 * itself adds no Effect runtime overhead to what it measures.
 */

/** What one round of a variant reports: ops completed, wall time, and optional per-op latencies (µs). */
export interface RoundResult {
  readonly ops: number
  readonly elapsedNs: number
  readonly latenciesUs?: ReadonlyArray<number>
}

/**
 * A benchmark variant: `round` runs one timed round; `extra` adds fields (e.g. memory) to the
 * result. `rounds` and `warmup`, when set, cap the group's counts for this variant (a long
 * single-round benchmark sets `rounds: 1, warmup: 0` and takes part in the first round only).
 */
export interface Variant {
  readonly id: string
  readonly round: () => Promise<RoundResult>
  readonly extra?: () => Record<string, number | string>
  readonly rounds?: number
  readonly warmup?: number
}

/** Aggregated result of one variant over all measured rounds, plus any `extra` fields. */
export interface BenchResult {
  readonly id: string
  readonly opsPerSec: number
  readonly p50Us: number
  readonly p99Us: number
  readonly p999Us: number
  readonly minOpsPerSec: number
  readonly maxOpsPerSec: number
  readonly rounds: number
  readonly [extra: string]: number | string
}

/** helper: now in ns as number, via process.hrtime.bigint (monotonic; exact below 2^53 ns ≈ 104 days). */
export const nowNs = (): number => Number(process.hrtime.bigint())

/**
 * Nearest-rank percentile of an ascending-sorted sample; `p` is in percent
 * (50, 99, 99.9). Returns 0 for an empty sample.
 */
export const percentile = (sorted: ArrayLike<number>, p: number): number => {
  const n = sorted.length
  if (n === 0) return 0
  const rank = Math.ceil((p / 100) * n) - 1
  return sorted[Math.min(n - 1, Math.max(0, rank))]!
}

// Collect garbage between rounds when run with --expose-gc, so one variant's
// garbage is not collected (and billed) during another variant's round.
const gc = (globalThis as { gc?: () => void }).gc

const STANDARD_KEYS = new Set(["id", "opsPerSec", "p50Us", "p99Us", "p999Us", "minOpsPerSec", "maxOpsPerSec", "rounds"])

/**
 * Runs `warmup` rounds of each, then `rounds` rounds interleaved (A B C A B C ...);
 * opsPerSec is the median over rounds (min/max kept); percentiles are over all
 * latency samples pooled (0 when a variant gives none). Merges variant.extra()
 * into the result.
 */
export const runInterleaved = async (
  variants: ReadonlyArray<Variant>,
  options: { readonly rounds: number; readonly warmup: number }
): Promise<Array<BenchResult>> => {
  // Warmup is interleaved too, so every variant gets JIT-compiled before any is measured.
  for (let i = 0; i < options.warmup; i++) {
    for (const v of variants) {
      if (i >= Math.min(options.warmup, v.warmup ?? Infinity)) continue
      gc?.()
      await v.round()
    }
  }
  const rates = variants.map((): Array<number> => [])
  const samples = variants.map((): Array<ReadonlyArray<number>> => [])
  // Interleaving spreads machine noise (thermal, other processes) evenly across variants.
  for (let r = 0; r < options.rounds; r++) {
    for (let i = 0; i < variants.length; i++) {
      if (r >= Math.min(options.rounds, variants[i]!.rounds ?? Infinity)) continue
      gc?.()
      const res = await variants[i]!.round()
      rates[i]!.push(res.ops / (res.elapsedNs / 1e9))
      if (res.latenciesUs !== undefined) samples[i]!.push(res.latenciesUs)
    }
  }
  return variants.map((v, i): BenchResult => {
    const sortedRates = rates[i]!.sort((a, b) => a - b)
    const pooled = Float64Array.from(samples[i]!.flat()).sort() // typed-array sort is numeric
    return {
      ...v.extra?.(),
      id: v.id,
      opsPerSec: median(sortedRates),
      p50Us: percentile(pooled, 50),
      p99Us: percentile(pooled, 99),
      p999Us: percentile(pooled, 99.9),
      minOpsPerSec: sortedRates[0] ?? 0,
      maxOpsPerSec: sortedRates[sortedRates.length - 1] ?? 0,
      rounds: sortedRates.length
    }
  })
}

const median = (sorted: ReadonlyArray<number>): number => {
  const n = sorted.length
  if (n === 0) return 0
  const mid = n >> 1
  return n % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

const extrasOf = (r: BenchResult): Record<string, number | string> =>
  Object.fromEntries(Object.entries(r).filter(([k]) => !STANDARD_KEYS.has(k)))

const ratiosOf = (results: ReadonlyArray<BenchResult>, ratios: ReadonlyArray<readonly [string, string]>) =>
  ratios.map(([id, base]) => {
    const a = results.find((r) => r.id === id)
    const b = results.find((r) => r.id === base)
    return { id, base, value: a && b && b.opsPerSec > 0 ? a.opsPerSec / b.opsPerSec : undefined }
  })

const fmtOps = (n: number): string => Math.round(n).toLocaleString("en-US")
const fmtUs = (n: number): string => (n < 10 ? n.toFixed(2) : n < 1000 ? n.toFixed(1) : n.toFixed(0))
const fmtRatio = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2))

/**
 * Prints either a human table (id, ops/s, min–max, p50/p99/p99.9 µs, extra
 * fields, and a "ratios" section: for each [id, baselineId] pair prints
 * "id / baselineId = 12.3x") or, when json is true, one JSON object per line per
 * result with fields {id, opsPerSec, p50Us, p99Us, p999Us, ...extra} and then
 * one line per ratio {"ratio": "id/baselineId", "value": n}.
 * Ratios are opsPerSec(id) / opsPerSec(baselineId); a pair naming a missing id
 * prints "n/a" in the table and is skipped (with a stderr warning) in JSON.
 */
export const printResults = (
  results: ReadonlyArray<BenchResult>,
  options: { readonly json: boolean; readonly ratios: ReadonlyArray<readonly [string, string]> }
): void => {
  const ratios = ratiosOf(results, options.ratios)
  if (options.json) {
    for (const r of results) {
      const { id, opsPerSec, p50Us, p99Us, p999Us } = r
      console.log(JSON.stringify({ id, opsPerSec, p50Us, p99Us, p999Us, ...extrasOf(r) }))
    }
    for (const { id, base, value } of ratios) {
      if (value === undefined) console.error(`ratio ${id}/${base}: missing result`)
      else console.log(JSON.stringify({ ratio: `${id}/${base}`, value }))
    }
    return
  }
  const header = ["id", "ops/s", "min–max ops/s", "p50 µs", "p99 µs", "p99.9 µs", "extra"]
  const rows = results.map((r) => [
    r.id,
    fmtOps(r.opsPerSec),
    `${fmtOps(r.minOpsPerSec)}–${fmtOps(r.maxOpsPerSec)}`,
    fmtUs(r.p50Us),
    fmtUs(r.p99Us),
    fmtUs(r.p999Us),
    Object.entries(extrasOf(r)).map(([k, v]) => `${k}=${v}`).join(" ")
  ])
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)))
  // Left-align text columns (id, extra), right-align numbers.
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, c) => (c === 0 || c === 6 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join("  ")
  console.log(line(header).trimEnd())
  for (const row of rows) console.log(line(row).trimEnd())
  if (ratios.length > 0) {
    console.log("\nratios")
    for (const { id, base, value } of ratios) {
      console.log(`  ${id} / ${base} = ${value === undefined ? "n/a (missing result)" : `${fmtRatio(value)}x`}`)
    }
  }
}

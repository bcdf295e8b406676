/**
 * Human output: aligned tables (a header row in capitals, columns padded to their widest
 * cell) and short durations and times. `--json` bypasses all of this.
 *
 * @since 0.2.0
 */

/** Rows of cells under `headers`, left-aligned, two spaces between columns. @since 0.2.0 */
export const table = (headers: ReadonlyArray<string>, rows: ReadonlyArray<ReadonlyArray<string>>): string => {
  const widths = headers.map((header, i) => Math.max(header.length, ...rows.map((row) => (row[i] ?? "").length)))
  const line = (cells: ReadonlyArray<string>) =>
    cells.map((cell, i) => i === cells.length - 1 ? cell : cell.padEnd(widths[i]!)).join("  ").trimEnd()
  return [line(headers.map((h) => h.toUpperCase())), ...rows.map(line)].join("\n")
}

/** `label  value` lines, the labels padded to the longest. @since 0.2.0 */
export const fields = (pairs: ReadonlyArray<readonly [string, string]>): string => {
  const width = Math.max(...pairs.map(([label]) => label.length))
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join("\n")
}

/** `850ms`, `12.3s`, `4m 05s`, `3h 12m`, `2d 04h`. @since 0.2.0 */
export const duration = (millis: number): string => {
  if (millis < 1_000) return `${Math.round(millis)}ms`
  const seconds = millis / 1_000
  if (seconds < 60) return `${seconds.toFixed(1)}s`
  const pad = (n: number) => String(Math.floor(n)).padStart(2, "0")
  if (seconds < 3_600) return `${Math.floor(seconds / 60)}m ${pad(seconds % 60)}s`
  if (seconds < 86_400) return `${Math.floor(seconds / 3_600)}h ${pad((seconds % 3_600) / 60)}m`
  return `${Math.floor(seconds / 86_400)}d ${pad((seconds % 86_400) / 3_600)}h`
}

/** An epoch-milliseconds time as ISO 8601 (UTC, to the second). @since 0.2.0 */
export const time = (millis: number): string => new Date(millis).toISOString().replace(/\.\d{3}Z$/, "Z")

/** JSON for scripts: one document, indented. @since 0.2.0 */
export const json = (value: unknown): string => JSON.stringify(value, null, 2)

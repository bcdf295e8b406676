/**
 * Prints spans as indented trees, one per trace: each span under its parent, siblings in
 * the order they started. For the examples that show where a call went (which silo, which
 * actor, which kind of span); not part of Quark's API.
 *
 * ```
 * trace 5b8aa5a2d2c872e8321cf37308d69df2
 * └─ Front/Forward  client  [client]  2.4 ms
 *    └─ Front/Forward  server  [silo-a]  1.9 ms  quark.actor.id=x-1
 *       └─ Back/Work  client  [silo-a]  1.1 ms
 *          └─ Back/Work  server  [silo-b]  0.3 ms  quark.actor.id=y-7
 * ```
 *
 * A span whose parent is not among the spans given (it was not exported, or not yet) is
 * printed as a root with `(parent <id>)`, so nothing is silently dropped.
 */

/** What the tree needs of a span: the shape OTLP spans decode into (see the tests' receiver). */
export interface TraceTreeSpan {
  readonly traceId: string
  readonly spanId: string
  readonly parentSpanId?: string | undefined
  readonly name: string
  /** The OTLP span kind: 0 unspecified, 1 internal, 2 server, 3 client, 4 producer, 5 consumer. */
  readonly kind: number
  /** The `service.name` of the resource that exported it. */
  readonly service?: string | undefined
  readonly attributes?: Readonly<Record<string, unknown>> | undefined
  /** The OTLP status code: 0 unset, 1 ok, 2 error. */
  readonly status?: { readonly code: number; readonly message?: string | undefined } | undefined
  readonly startTimeUnixNano?: bigint | undefined
  readonly endTimeUnixNano?: bigint | undefined
}

export interface TraceTreeOptions {
  /** The attributes printed after each span, when it has them. Default: the actor id and the error type. */
  readonly attributes?: ReadonlyArray<string> | undefined
  /** Print durations (default true). */
  readonly durations?: boolean | undefined
}

const kindNames = ["unspecified", "internal", "server", "client", "producer", "consumer"] as const

/** The OTLP span kind's name (`server`, `client`...). */
export const kindName = (kind: number): string => kindNames[kind] ?? `kind-${kind}`

const defaultAttributes = ["quark.actor.id", "error.type"]

/** The spans as one indented tree per trace (traces in the order their first span started). */
export const formatTraceTree = (spans: ReadonlyArray<TraceTreeSpan>, options: TraceTreeOptions = {}): string => {
  const shown = options.attributes ?? defaultAttributes
  const durations = options.durations ?? true
  const byTrace = new Map<string, Array<TraceTreeSpan>>()
  for (const span of [...spans].sort(byStart)) {
    const trace = byTrace.get(span.traceId) ?? []
    trace.push(span)
    byTrace.set(span.traceId, trace)
  }
  const lines: Array<string> = []
  for (const [traceId, trace] of byTrace) {
    const ids = new Set(trace.map((span) => span.spanId))
    const children = new Map<string, Array<TraceTreeSpan>>()
    const roots: Array<TraceTreeSpan> = []
    for (const span of trace) {
      const parent = span.parentSpanId
      if (parent === undefined || parent === "" || !ids.has(parent) || parent === span.spanId) {
        roots.push(span)
      } else {
        const siblings = children.get(parent) ?? []
        siblings.push(span)
        children.set(parent, siblings)
      }
    }
    lines.push(`trace ${traceId}`)
    const visited = new Set<string>()
    const walk = (span: TraceTreeSpan, prefix: string, last: boolean): void => {
      if (visited.has(span.spanId)) return
      visited.add(span.spanId)
      lines.push(`${prefix}${last ? "└─ " : "├─ "}${describe(span, ids, shown, durations)}`)
      const below = children.get(span.spanId) ?? []
      below.forEach((child, i) => walk(child, prefix + (last ? "   " : "│  "), i === below.length - 1))
    }
    roots.forEach((root, i) => walk(root, "", i === roots.length - 1))
  }
  return lines.join("\n")
}

const byStart = (a: TraceTreeSpan, b: TraceTreeSpan): number => {
  const x = a.startTimeUnixNano ?? 0n
  const y = b.startTimeUnixNano ?? 0n
  return x < y ? -1 : x > y ? 1 : 0
}

const describe = (
  span: TraceTreeSpan,
  ids: ReadonlySet<string>,
  shown: ReadonlyArray<string>,
  durations: boolean
): string => {
  const parts = [span.name, kindName(span.kind)]
  if (span.service !== undefined) parts.push(`[${span.service}]`)
  if (durations && span.startTimeUnixNano !== undefined && span.endTimeUnixNano !== undefined) {
    parts.push(`${(Number(span.endTimeUnixNano - span.startTimeUnixNano) / 1e6).toFixed(1)} ms`)
  }
  if (span.status?.code === 2) {
    const message = span.status.message === undefined ? "" : firstLine(span.status.message).trim()
    parts.push(message === "" ? "ERROR" : `ERROR: ${message}`)
  }
  for (const key of shown) {
    const value = span.attributes?.[key]
    if (value !== undefined) parts.push(`${key}=${String(value)}`)
  }
  const parent = span.parentSpanId
  if (parent !== undefined && parent !== "" && !ids.has(parent)) parts.push(`(parent ${parent})`)
  return parts.join("  ")
}

const firstLine = (text: string): string => {
  const end = text.indexOf("\n")
  return end < 0 ? text : text.slice(0, end)
}

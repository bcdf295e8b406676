/**
 * The chaos test's checks as pure functions of what the run recorded, so that they can be
 * tested on their own (`Analysis.test.ts`) with records made up to break each rule.
 */
import type { TurnRecord } from "./ChaosAccount.ts"

// ---------------------------------------------------------------------------------------
// 1. Single activation
// ---------------------------------------------------------------------------------------

/** An activation as its turns show it: from its first turn's start to its last turn's end. */
export interface ServingSpan {
  readonly address: string
  readonly activation: string
  readonly silo: string
  readonly pid: number
  readonly start: number
  readonly end: number
  readonly turns: number
}

export interface Overlap {
  readonly address: string
  /** The earlier-starting activation. */
  readonly first: ServingSpan
  /** The other, whose first turn started inside `first`'s span. */
  readonly second: ServingSpan
  /** `second`'s first turn, and the first turn of `first` that ended after it started. */
  readonly witness: { readonly second: TurnRecord; readonly first: TurnRecord }
  /**
   * - `concurrent turns`: the witness turns ran at the same time;
   * - `stale activation served again`: `first` started a turn after `second` had served one;
   * - `turn frozen across a pause`: `first`'s only turns after `second` began serving were
   *   in flight when `first`'s process was stopped (SIGSTOP) and ended after it was
   *   continued: `first` started no turn meanwhile (see {@link findOverlaps}).
   */
  readonly kind: "concurrent turns" | "stale activation served again" | "turn frozen across a pause"
}

/** A process stopped (SIGSTOP) and continued (SIGCONT). */
export interface Pause {
  readonly pid: number
  /** A time at which the process was seen stopped (so it ran nothing from then on). */
  readonly stopped: number
  /** When SIGCONT was sent (it ran nothing before). */
  readonly continued: number
  /** When the registry declared its silo dead (its tombstone's time), if known. */
  readonly declaredDead: number | undefined
}

/** Extends the serving span of `turn`'s activation by it. */
export const addToSpans = (spans: Map<string, ServingSpan>, turn: TurnRecord): void => {
  const span = spans.get(turn.activation)
  spans.set(
    turn.activation,
    span === undefined ?
      {
        address: turn.address,
        activation: turn.activation,
        silo: turn.silo,
        pid: turn.pid,
        start: turn.start,
        end: turn.end,
        turns: 1
      } :
      { ...span, start: Math.min(span.start, turn.start), end: Math.max(span.end, turn.end), turns: span.turns + 1 }
  )
}

/** The serving span of every activation, by activation. */
export const servingSpans = (turns: Iterable<TurnRecord>): Map<string, ServingSpan> => {
  const spans = new Map<string, ServingSpan>()
  for (const turn of turns) addToSpans(spans, turn)
  return spans
}

/**
 * The activations whose span overlaps another's of the same address: only their turns can
 * take part in an overlap, so a long run's analysis needs only theirs ({@link findOverlaps}).
 */
export const overlapCandidates = (spans: Iterable<ServingSpan>): Set<string> => {
  const byAddress = new Map<string, Array<ServingSpan>>()
  for (const span of spans) {
    const list = byAddress.get(span.address) ?? []
    list.push(span)
    byAddress.set(span.address, list)
  }
  const candidates = new Set<string>()
  for (const list of byAddress.values()) {
    list.sort((a, b) => a.start - b.start)
    let reach = -Infinity
    let reacher: string | undefined
    for (const span of list) {
      if (span.start < reach) {
        candidates.add(span.activation)
        candidates.add(reacher!)
      }
      if (span.end > reach) {
        reach = span.end
        reacher = span.activation
      }
    }
  }
  return candidates
}

/**
 * Every pair of activations of one address whose serving spans overlap. An activation
 * existed, and served, from its first turn to its last, so a turn of another activation of
 * the same address inside that span means two activations of the address at once: either
 * their turns ran together, or the first served again after the second had served (it
 * answered from state the second may have changed). Logged turn intervals lie inside the
 * real ones (they are taken inside the handler), so every overlap found is real; one shorter
 * than the logging's precision can be missed.
 *
 * One kind is told apart: a turn in flight when its process was stopped (SIGSTOP) lasts
 * until the process is continued, while the cluster, rightly, has declared the silo dead
 * and moved the address. If every turn of the first activation that overlaps the second's
 * is such a frozen turn (started before the process was seen stopped, ended after SIGCONT),
 * and the second activation served only once the registry had declared the paused silo
 * dead, then both rules held: "a silo that cannot show it is still a member does not start
 * a turn" and "a new owner activates only after the old one has deactivated or been
 * declared dead". What the frozen turn does after SIGCONT is a late write (version-checked,
 * so it conflicts) or a late reply (which the stale-read check judges). Such overlaps are
 * kind `turn frozen across a pause`; any other is a violation.
 */
export const findOverlaps = (
  turns: ReadonlyArray<TurnRecord>,
  pauses: ReadonlyArray<Pause> = [],
  /** When an activation started (its record), if known: the second must not have started before the death either. */
  activatedAt: (activation: string) => number | undefined = () => undefined
): Array<Overlap> => {
  /** The pause `t` was frozen across, if any. */
  const frozenIn = (t: TurnRecord) => pauses.find((p) => p.pid === t.pid && t.start < p.stopped && t.end > p.continued)
  const spans = servingSpans(turns)
  const turnsOf = new Map<string, Array<TurnRecord>>()
  for (const turn of turns) {
    const list = turnsOf.get(turn.activation) ?? []
    list.push(turn)
    turnsOf.set(turn.activation, list)
  }
  const byAddress = new Map<string, Array<{ span: ServingSpan; turns: Array<TurnRecord> }>>()
  for (const span of spans.values()) {
    const list = byAddress.get(span.address) ?? []
    list.push({ span, turns: turnsOf.get(span.activation)! })
    byAddress.set(span.address, list)
  }
  const overlaps: Array<Overlap> = []
  for (const [address, list] of byAddress) {
    list.sort((a, b) => a.span.start - b.span.start)
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!
      for (let j = i + 1; j < list.length && list[j]!.span.start < a.span.end; j++) {
        const b = list[j]!
        const bFirst = b.turns.reduce((x, y) => (y.start < x.start ? y : x))
        const aLater = a.turns.filter((t) => t.end > bFirst.start)
        const aAfter = aLater.reduce((x, y) => (y.start < x.start ? y : x))
        overlaps.push({
          address,
          first: a.span,
          second: b.span,
          witness: { second: bFirst, first: aAfter },
          kind: aLater.every((t) => {
              const pause = frozenIn(t)
              const since = Math.min(bFirst.start, activatedAt(b.span.activation) ?? Infinity)
              return pause?.declaredDead !== undefined && since >= pause.declaredDead
            }) ?
            "turn frozen across a pause" :
            aAfter.start < bFirst.end ?
            "concurrent turns" :
            "stale activation served again"
        })
      }
    }
  }
  return overlaps.sort((x, y) => x.witness.second.start - y.witness.second.start)
}

/**
 * What the activation records say against the turns: every turn's activation was recorded
 * (for its address and silo), and no turn lies outside its activation's recorded life.
 */
export const checkActivationRecords = (
  spans: Iterable<ServingSpan>,
  starts: ReadonlyMap<string, { readonly address: string; readonly silo: string; readonly start: number }>,
  ends: ReadonlyMap<string, number>
): Array<string> => {
  const problems: Array<string> = []
  for (const span of spans) {
    const started = starts.get(span.activation)
    if (started === undefined) {
      problems.push(`${span.activation}: turns, but no activation record`)
      continue
    }
    if (started.address !== span.address || started.silo !== span.silo) {
      problems.push(`${span.activation}: recorded as ${started.address} on ${started.silo}, its turns say ${span.address} on ${span.silo}`)
    }
    if (span.start < started.start) problems.push(`${span.activation}: a turn at ${span.start} before its activation at ${started.start}`)
    const ended = ends.get(span.activation)
    if (ended !== undefined && span.end > ended) {
      problems.push(`${span.activation}: a turn ended at ${span.end}, after its deactivation at ${ended}`)
    }
  }
  return problems
}

// ---------------------------------------------------------------------------------------
// 2. Writes
// ---------------------------------------------------------------------------------------

export interface IssuedDeposit {
  readonly id: string
  readonly account: string
  readonly amount: number
  readonly acknowledged: boolean
}

export interface WriteProblem {
  readonly account: string
  readonly depositId: string
  readonly problem: "lost" | "duplicated" | "foreign" | "balance"
  readonly detail: string
}

/**
 * Against the stored state of every account (`undefined`: nothing stored): every
 * acknowledged deposit is applied exactly once; no deposit is applied twice; nothing is
 * applied that was not issued for that account; the balance is the sum of what is applied.
 * An unacknowledged deposit may be applied (once) or not.
 */
export const checkWrites = (
  issued: Iterable<IssuedDeposit>,
  stored: ReadonlyMap<string, { readonly balance: number; readonly applied: ReadonlyArray<string> } | undefined>
): Array<WriteProblem> => {
  const byAccount = new Map<string, Map<string, IssuedDeposit>>()
  for (const d of issued) {
    const map = byAccount.get(d.account) ?? new Map<string, IssuedDeposit>()
    map.set(d.id, d)
    byAccount.set(d.account, map)
  }
  const problems: Array<WriteProblem> = []
  const accounts = new Set([...byAccount.keys(), ...stored.keys()])
  for (const account of accounts) {
    const state = stored.get(account) ?? { balance: 0, applied: [] }
    const mine = byAccount.get(account) ?? new Map<string, IssuedDeposit>()
    const seen = new Map<string, number>()
    for (const id of state.applied) seen.set(id, (seen.get(id) ?? 0) + 1)
    let sum = 0
    for (const [id, count] of seen) {
      const d = mine.get(id)
      if (d === undefined) {
        problems.push({ account, depositId: id, problem: "foreign", detail: `${account} holds ${id}, never issued for it` })
        continue
      }
      sum += d.amount * count
      if (count > 1) problems.push({ account, depositId: id, problem: "duplicated", detail: `${id} applied ${count} times to ${account}` })
    }
    for (const d of mine.values()) {
      if (d.acknowledged && !seen.has(d.id)) {
        problems.push({ account, depositId: d.id, problem: "lost", detail: `${d.id} (${d.amount}) acknowledged, missing from ${account}` })
      }
    }
    if (sum !== state.balance) {
      problems.push({
        account,
        depositId: "",
        problem: "balance",
        detail: `${account}: balance ${state.balance}, but its applied deposits sum to ${sum}`
      })
    }
  }
  return problems
}

// ---------------------------------------------------------------------------------------
// 4. Recovery
// ---------------------------------------------------------------------------------------

export interface CallRecord {
  readonly account: string
  readonly kind: "deposit" | "read"
  readonly start: number
  readonly end: number
  /** `ok`, or the error's tag (`Hung` if the harness had to interrupt it). */
  readonly outcome: string
}

/**
 * When every account had answered again after `from`: per account, the end of its first
 * success that ended after its last failure ending in [from, until) (without a failure
 * there, its first success started at or after `from`); the latest of those, or `undefined`
 * if some account has no such success before `until`.
 */
export const allAnsweredAt = (
  calls: ReadonlyArray<CallRecord>,
  accounts: ReadonlyArray<string>,
  from: number,
  until: number
): number | undefined => {
  const lastFailure = new Map<string, number>()
  for (const c of calls) {
    if (c.outcome !== "ok" && c.end >= from && c.end < until) {
      lastFailure.set(c.account, Math.max(lastFailure.get(c.account) ?? -Infinity, c.end))
    }
  }
  const firstSuccess = new Map<string, number>()
  for (const c of calls) {
    if (c.outcome !== "ok" || c.end >= until) continue
    const after = lastFailure.get(c.account)
    if (after === undefined ? c.start >= from : c.end > after) {
      firstSuccess.set(c.account, Math.min(firstSuccess.get(c.account) ?? Infinity, c.end))
    }
  }
  let latest = from
  for (const account of accounts) {
    const at = firstSuccess.get(account)
    if (at === undefined) return undefined
    latest = Math.max(latest, at)
  }
  return latest
}

/** The failed calls ending in [from, until), by outcome, and the end of the last one. */
export const failures = (calls: ReadonlyArray<CallRecord>, from: number, until: number) => {
  const byTag: Record<string, number> = {}
  let last: number | undefined
  for (const c of calls) {
    if (c.outcome === "ok" || c.end < from || c.end >= until) continue
    byTag[c.outcome] = (byTag[c.outcome] ?? 0) + 1
    last = Math.max(last ?? -Infinity, c.end)
  }
  return { byTag, last }
}

export const median = (values: ReadonlyArray<number>): number | undefined => {
  if (values.length === 0) return undefined
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** The `q` quantile (nearest rank) of `values`, rounded to 0.1; `null` when there are none. */
export const percentile = (values: ReadonlyArray<number>, q: number): number | null => {
  if (values.length === 0) return null
  const sorted = [...values].sort((a, b) => a - b)
  return Math.round(sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]! * 10) / 10
}

// ---------------------------------------------------------------------------------------
// 1c. Activation lifecycle
// ---------------------------------------------------------------------------------------

/** An activation as it recorded itself: from the start of its activation effect to its last finalizer (if it ran). */
export interface ActivationLife {
  readonly activation: string
  readonly address: string
  readonly silo: string
  readonly start: number
  readonly end: number | undefined
}

export interface EarlyActivation {
  readonly address: string
  readonly first: ActivationLife
  readonly second: ActivationLife
  /** When `first`'s silo was declared dead, if it was. */
  readonly firstDeclaredDead: number | undefined
}

/**
 * "A new owner activates only after the old one has deactivated or been declared dead":
 * every activation of an address that started before an earlier one of the same address
 * had ended (its finalizers done) and before that one's silo was declared dead. An
 * activation without an end (its process was killed, or still ran at the end) lasts until
 * its silo's death, or for ever. The recorded start is taken before the activation loads
 * anything and the end after its last finalizer, so an overlap found is real.
 */
export const findEarlyActivations = (
  lives: Iterable<ActivationLife>,
  declaredDead: (silo: string) => number | undefined
): Array<EarlyActivation> => {
  const byAddress = new Map<string, Array<ActivationLife>>()
  for (const life of lives) {
    const list = byAddress.get(life.address) ?? []
    list.push(life)
    byAddress.set(life.address, list)
  }
  const early: Array<EarlyActivation> = []
  for (const [address, list] of byAddress) {
    list.sort((a, b) => a.start - b.start)
    for (let i = 0; i < list.length; i++) {
      const a = list[i]!
      const dead = declaredDead(a.silo)
      const over = Math.min(a.end ?? Infinity, dead ?? Infinity)
      for (let j = i + 1; j < list.length && list[j]!.start < over; j++) {
        early.push({ address, first: a, second: list[j]!, firstDeclaredDead: dead })
      }
    }
  }
  return early.sort((x, y) => x.second.start - y.second.start)
}

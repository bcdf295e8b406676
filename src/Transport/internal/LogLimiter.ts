/**
 * Rate limiting of the transport's warnings, per peer host: what a peer sends (garbage
 * frames, connections opened and reset by the thousand) must not be able to flood the
 * logs. Random bytes against a silo's port for 30 s once produced 158,000 warning lines,
 * one per dropped connection.
 *
 * The rule, per key (the peer's host, without the port: a flood opens many connections
 * from one host, each from its own port):
 *
 * - the first {@link defaultMaxPerWindow} (5) warnings of a window of
 *   {@link defaultWindowMillis} (10 s) are logged as they are;
 * - the rest of that window are only counted, with the message they had;
 * - when the window ends, ONE summary line is logged, if anything was suppressed:
 *   `transport: N more warnings from <host> in the last 10 s (suppressed), most often "<message>"`
 *   (annotated with `peer`, `suppressed` and `message`), and the next warning from that
 *   host starts a new window.
 *
 * A window's end is noticed at the next warning from any host, or by a timer (one per
 * limiter, armed only while some count waits to be reported, `unref`'d so that it never
 * keeps the process alive), or when the limiter is closed (its server or connection
 * closes): a count is never lost, only delayed by at most one window. So a host that
 * floods continuously gets at most 5 + 1 lines per 10 s.
 *
 * Memory is bounded: at most {@link defaultMaxKeys} (1,024) hosts are tracked; a host whose
 * window ended is forgotten (after its summary). When every tracked host is inside its
 * window, a new host shares one global bucket (`other hosts`) with the same rule, so a
 * flood from many hosts costs at most 1,024 × 5 + 5 lines and 1,025 summaries per window,
 * and a fixed amount of memory. The distinct messages counted per host are capped too (16;
 * the transport has fewer).
 *
 * Time comes from an injected `now` (monotonic milliseconds: the Effect `Clock` of the
 * server or connection, so a `TestClock` drives it, or a plain function in tests).
 *
 * @internal
 */

/** Warnings logged per host per window: 5. */
export const defaultMaxPerWindow = 5

/** The window: 10 seconds. */
export const defaultWindowMillis = 10_000

/** Hosts tracked at once: 1,024; beyond, the global bucket. */
export const defaultMaxKeys = 1_024

/** Distinct messages counted per host (for the summary's "most often"). */
const maxMessages = 16

/** The key of the global bucket (never a host: hosts have no spaces). */
const globalKey = "other hosts"

/** Logs one line (a warning). */
export type Emit = (message: string, annotations: Record<string, unknown>) => void

/** Runs `run` after `millis`; returns the canceller. */
export type Schedule = (run: () => void, millis: number) => () => void

export interface LogLimiterOptions {
  /** Monotonic milliseconds. */
  readonly now: () => number
  readonly maxPerWindow?: number | undefined
  readonly windowMillis?: number | undefined
  readonly maxKeys?: number | undefined
  /** Default: an `unref`'d `setTimeout`. */
  readonly schedule?: Schedule | undefined
}

const unrefTimeout: Schedule = (run, millis) => {
  const timer = setTimeout(run, millis)
  timer.unref?.()
  return () => clearTimeout(timer)
}

class Window {
  readonly key: string
  readonly start: number
  logged = 0
  suppressed = 0
  readonly messages = new Map<string, number>()
  constructor(key: string, start: number) {
    this.key = key
    this.start = start
  }
}

/**
 * See the module's documentation.
 *
 * @since 0.1.0
 */
export class LogLimiter {
  readonly emit: Emit
  readonly now: () => number
  readonly maxPerWindow: number
  readonly windowMillis: number
  readonly maxKeys: number
  readonly schedule: Schedule
  /** Tracked hosts, in the order their windows started (the oldest first). */
  readonly windows = new Map<string, Window>()
  global: Window | undefined = undefined
  cancelTimer: (() => void) | undefined = undefined
  closed = false

  constructor(emit: Emit, options: LogLimiterOptions) {
    this.emit = emit
    this.now = options.now
    this.maxPerWindow = options.maxPerWindow ?? defaultMaxPerWindow
    this.windowMillis = options.windowMillis ?? defaultWindowMillis
    this.maxKeys = options.maxKeys ?? defaultMaxKeys
    this.schedule = options.schedule ?? unrefTimeout
  }

  /** Logs `message` now, or counts it for `key`'s summary. */
  warn(key: string, message: string, annotations: Record<string, unknown>): void {
    const now = this.now()
    this.sweep(now)
    let window = this.windows.get(key)
    if (window === undefined) {
      if (this.windows.size < this.maxKeys) {
        window = new Window(key, now)
        this.windows.set(key, window)
      } else {
        window = this.global ??= new Window(globalKey, now)
      }
    }
    if (window.logged < this.maxPerWindow) {
      window.logged++
      this.emit(message, annotations)
      return
    }
    window.suppressed++
    const count = window.messages.get(message)
    if (count !== undefined) window.messages.set(message, count + 1)
    else if (window.messages.size < maxMessages) window.messages.set(message, 1)
    this.arm(now)
  }

  /** Reports and forgets every window that has ended. */
  sweep(now: number): void {
    for (const window of this.windows.values()) {
      // In start order: the first one still open ends the sweep.
      if (now - window.start < this.windowMillis) break
      this.windows.delete(window.key)
      this.report(window, now)
    }
    const global = this.global
    if (global !== undefined && now - global.start >= this.windowMillis) {
      this.global = undefined
      this.report(global, now)
    }
  }

  /** Reports every count still waiting (the owner is closing) and stops the timer. */
  close(): void {
    this.closed = true
    this.cancelTimer?.()
    this.cancelTimer = undefined
    const now = this.now()
    for (const window of this.windows.values()) this.report(window, now)
    this.windows.clear()
    if (this.global !== undefined) this.report(this.global, now)
    this.global = undefined
  }

  /** Suppressed warnings not reported yet (for tests and metrics). */
  get pending(): number {
    let total = this.global?.suppressed ?? 0
    for (const window of this.windows.values()) total += window.suppressed
    return total
  }

  private report(window: Window, now: number): void {
    if (window.suppressed === 0) return
    let top = ""
    let topCount = 0
    for (const [message, count] of window.messages) {
      if (count > topCount) {
        top = message
        topCount = count
      }
    }
    const seconds = Math.max(1, Math.ceil(Math.min(now - window.start, this.windowMillis) / 1000))
    this.emit(
      `transport: ${window.suppressed} more warnings from ${window.key} in the last ${seconds} s (suppressed), most often ${
        JSON.stringify(top)
      }`,
      { peer: window.key, suppressed: window.suppressed, message: top }
    )
  }

  /** Makes sure a timer will report the windows with counts once they end. */
  private arm(now: number): void {
    if (this.cancelTimer !== undefined || this.closed) return
    let earliest = Infinity
    for (const window of this.windows.values()) {
      if (window.suppressed > 0) {
        earliest = window.start
        break
      }
    }
    if (this.global !== undefined && this.global.suppressed > 0) earliest = Math.min(earliest, this.global.start)
    if (earliest === Infinity) return
    const delay = Math.max(0, earliest + this.windowMillis - now)
    this.cancelTimer = this.schedule(() => {
      this.cancelTimer = undefined
      if (this.closed) return
      const at = this.now()
      this.sweep(at)
      this.arm(at)
    }, delay)
  }
}

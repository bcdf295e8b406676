/**
 * A lane: the buffer of one subscription of one stream, on the silo whose partition agent
 * delivers that stream, and the fiber that empties it one delivery at a time (so a
 * subscriber sees a stream's events in order, one turn each).
 *
 * The buffer applies the subscription's `Backpressure` when an event is offered. A lane's
 * fiber runs only while its buffer has something in it: a million idle streams cost a
 * million small objects, not a million fibers.
 *
 * @internal
 */
import { Effect } from "effect"
import type { InvalidActorId } from "../../Actor/ActorError.ts"
import type { Turn } from "../../Actor/internal/Turn.ts"
import type { DispatchError } from "../../Actor/ActorError.ts"
import type { Backpressure } from "../Backpressure.ts"
import type { SubscriptionLag } from "../Streams.ts"
import * as ProcessMetrics from "../../Telemetry/internal/ProcessMetrics.ts"
import { millisOf } from "../StreamToken.ts"

/** An entry that several lanes deliver: acknowledged once the last of them is done with it. */
export interface Settlement {
  readonly token: string
  remaining: number
}

/** One event in a lane. `settlement` is undefined for a replayed (already acknowledged) event. */
export interface LaneItem {
  readonly token: string
  readonly value: unknown
  readonly settlement: Settlement | undefined
}

/** How a lane's events reach its subscriber's message: one turn per call. */
export interface DeliveryTarget {
  readonly send: (id: string, value: unknown) => Effect.Effect<unknown, DispatchError>
}

/** How a lane reaches the rest of its agent. */
export interface LaneHost {
  /** Delivers one event as a turn of the subscriber, retrying as the agent's rules say; never fails. */
  readonly deliver: (lane: Lane, item: LaneItem) => Effect.Effect<"delivered" | "failed">
  /** Called once per item the lane is done with (delivered, failed or dropped). */
  readonly settle: (settlement: Settlement) => void
  /** Starts the lane's fiber (`effect`) in the agent's scope. */
  readonly start: (lane: Lane, effect: Effect.Effect<void>) => void
  readonly now: () => number
}

/** The identity of a lane, as `Streams.lag` reports it. */
export interface LaneIdentity {
  readonly namespace: string
  readonly key: string
  readonly subscription: string
  readonly subscriber: { readonly type: string; readonly id: string }
  readonly message: string
}

export class Lane {
  private buffer: Array<LaneItem> = []
  private head = 0
  private running = false
  private roomWaiters: Array<() => void> = []
  /** Time of the last delivery's start, for `sample`. */
  private lastDeliveryAt = Number.NEGATIVE_INFINITY
  delivered = 0
  dropped = 0
  failed = 0
  lastToken: string | undefined = undefined
  /** The agent's: how it sends (found on the first delivery). */
  target: DeliveryTarget | undefined = undefined
  /** The agent's: the request-context frame of this lane's deliveries. */
  frame: Turn | undefined = undefined
  /**
   * Set when a subscription replayed history up to this token: live events up to it were
   * in the replay, so the agent settles them without offering them here.
   */
  skipUpTo: string | undefined = undefined
  /** Set while a subscription's history is offered: live events wait in `held`. */
  private replaying = false
  private held: Array<LaneItem> = []
  /** Set when the subscriber's id is refused (an implicit mapping gave a bad one): every delivery fails with it. */
  refusal: InvalidActorId | undefined = undefined
  /** Set when the subscription is removed: buffered events are dropped, offers refused. */
  closed = false

  readonly identity: LaneIdentity
  /** Changed in place when the subscription is made again with another strategy. */
  strategy: Backpressure
  private readonly host: LaneHost
  /** Empties the buffer, one delivery at a time; ends when it is empty. */
  private readonly run: Effect.Effect<void>

  constructor(identity: LaneIdentity, strategy: Backpressure, host: LaneHost) {
    this.identity = identity
    this.strategy = strategy
    this.host = host
    this.run = Effect.ensuring(Effect.suspend(() => this.loop()), Effect.sync(() => {
      this.running = false
    }))
  }

  get size(): number {
    return this.buffer.length - this.head
  }

  /** Whether a delivery is under way or waiting its turn. */
  get busy(): boolean {
    return this.running
  }

  /** What `Streams.lag` reports of this lane. */
  lagOf(now: number): SubscriptionLag {
    const { key, message, namespace, subscriber, subscription } = this.identity
    return {
      stream: { namespace, key },
      subscription,
      subscriber,
      message,
      strategy: this.strategy._tag,
      buffered: this.size,
      lagMillis: this.lagMillis(now),
      delivered: this.delivered,
      dropped: this.dropped,
      failed: this.failed,
      lastToken: this.lastToken
    }
  }

  /** The age of the oldest buffered event, by its token (0 if none). */
  lagMillis(now: number): number {
    if (this.size === 0) return 0
    return Math.max(0, now - millisOf(this.buffer[this.head]!.token))
  }

  /**
   * Offers a live event: `true` if it was taken (or dropped by the strategy), `false` if
   * there is no room under `suspend`, or while a replay holds a full buffer of live events
   * back (wait with {@link awaitRoom}, then offer again).
   */
  offer(item: LaneItem): boolean {
    if (this.closed) {
      this.drop(item)
      return true
    }
    if (this.replaying) {
      if (this.held.length >= this.capacity) return false
      this.held.push(item)
      return true
    }
    return this.accept(item, false)
  }

  /** Offers an event of a replay: as a live one, but never held back. */
  offerHistory(item: LaneItem): boolean {
    if (this.closed) return true
    return this.accept(item, false)
  }

  /**
   * Starts a replay: live events are held back (up to a buffer's worth; then `offer` says
   * wait) until {@link endReplay}, so that the history goes first.
   */
  startReplay(upTo: string): void {
    this.replaying = true
    this.skipUpTo = upTo
  }

  /** Ends a replay: the live events held back follow the history, in order (a full `suspend` buffer takes them anyway). */
  endReplay(): void {
    this.replaying = false
    const held = this.held
    this.held = []
    for (const item of held) {
      if (this.closed) this.drop(item)
      else this.accept(item, true)
    }
    this.wakeWaiters()
  }

  private accept(item: LaneItem, force: boolean): boolean {
    const strategy = this.strategy
    if (strategy._tag === "Sample") {
      if (this.size > 0) this.drop(this.takeHead())
    } else if (this.size >= strategy.capacity) {
      if (strategy._tag === "Suspend") {
        if (!force) return false
      } else if (strategy._tag === "DropNewest") {
        this.drop(item)
        return true
      } else this.drop(this.takeHead())
    }
    this.buffer.push(item)
    if (!this.running) {
      this.running = true
      this.host.start(this, this.run)
    }
    return true
  }

  /**
   * Waits until an offer may succeed: the lane closed, its replay ended, or its buffer is
   * half empty (`history`: the buffer, even during a replay). The caller offers again.
   */
  awaitRoom(history = false): Effect.Effect<void> {
    return Effect.callback<void>((resume) => {
      if (this.closed) return resume(Effect.void)
      if (this.replaying && !history) {
        if (this.held.length < this.capacity) return resume(Effect.void)
      } else if (this.size <= this.capacity >> 1) return resume(Effect.void)
      const wake = () => resume(Effect.void)
      this.roomWaiters.push(wake)
      return Effect.sync(() => {
        const at = this.roomWaiters.indexOf(wake)
        if (at >= 0) this.roomWaiters.splice(at, 1)
      })
    })
  }

  /** Drops what is buffered or held back and refuses what comes (the subscription was removed). */
  close(): void {
    this.closed = true
    while (this.size > 0) this.drop(this.takeHead())
    const held = this.held
    this.held = []
    for (const item of held) this.drop(item)
    this.wakeWaiters()
  }

  private get capacity(): number {
    return this.strategy._tag === "Sample" ? 1 : this.strategy.capacity
  }

  private takeHead(): LaneItem {
    const item = this.buffer[this.head]!
    this.buffer[this.head] = undefined as unknown as LaneItem
    this.head++
    if (this.head === this.buffer.length) {
      this.buffer = []
      this.head = 0
    } else if (this.head >= 1_024 && this.head * 2 >= this.buffer.length) {
      this.buffer = this.buffer.slice(this.head)
      this.head = 0
    }
    // Half empty before the waiting dispatcher resumes: one resume per half buffer, not per event.
    if (this.roomWaiters.length > 0 && this.size <= this.capacity >> 1) this.wakeWaiters()
    return item
  }

  private wakeWaiters(): void {
    const waiters = this.roomWaiters
    this.roomWaiters = []
    for (const wake of waiters) wake()
  }

  private drop(item: LaneItem): void {
    this.dropped++
    ProcessMetrics.streamEventsDropped.value++
    this.finish(item)
  }

  private finish(item: LaneItem): void {
    if (item.settlement !== undefined) this.host.settle(item.settlement)
  }

  /** One step: the next delivery (or wait, or drop), then the rest; no generator on this path. */
  private loop(): Effect.Effect<void> {
    while (this.size > 0) {
      const strategy = this.strategy
      if (strategy._tag === "Sample") {
        const wait = this.lastDeliveryAt + strategy.everyMillis - this.host.now()
        // A newer event may replace the buffered one meanwhile.
        if (wait > 0) return Effect.flatMap(Effect.sleep(wait), () => this.loop())
      }
      const item = this.takeHead()
      if (strategy._tag === "SlidingWindow" && this.host.now() - millisOf(item.token) > strategy.windowMillis) {
        this.drop(item)
        continue
      }
      if (strategy._tag === "Sample") this.lastDeliveryAt = this.host.now()
      return Effect.flatMap(this.host.deliver(this, item), (outcome) => {
        if (outcome === "delivered") this.delivered++
        else this.failed++
        this.lastToken = item.token
        this.finish(item)
        return this.loop()
      })
    }
    return Effect.void
  }
}

/**
 * Durable reminders: named schedules, stored, that deliver a declared message of an actor
 * (activating it if needed) until they end or are cancelled, even after every silo
 * restarted.
 *
 * ```ts
 * // From a handler, the activation effect, a client or a script:
 * yield* Reminders.register(Billing, "acct-7", "renew", {
 *   message: "Renew", payload: { plan: "gold" }, every: "30 days", missed: "once"
 * })
 * ```
 *
 * The rules, with their numbers:
 * - **Kinds.** One shot (`at` a time, or `after` a delay), a fixed period (`every`, at
 *   least {@link minimumPeriodMillis} ms, first at `startAt` or one period from now), or a
 *   `cron` expression in a `timeZone` (effect's `Cron`; default "UTC"). Optional `jitter`
 *   (each tick fires up to that much after its due time, the same offset on every silo),
 *   `endAt` and `maxTicks`.
 * - **A tick is a turn.** It is the message the options name, with its payload, delivered
 *   like any call: it activates the actor, never overlaps another turn, and carries a request
 *   context that {@link currentTick} reads (reminder name, due time, attempt).
 * - **Missed ticks** (all silos down, or the owner behind): a tick is missed when the next
 *   one's due time has passed too. `missed: "skip"` fires only the latest due tick,
 *   `"once"` (the default) one catch-up tick before it, `{ each: n }` the latest n.
 * - **Retries.** A tick whose actor is unavailable (`ActorUnavailable`, `MailboxFull`: it
 *   did not run; its silo died, or it is being handed over) is tried again every 250 ms for
 *   up to 30 s first. A tick whose turn fails (a declared error, a defect, a timeout) is
 *   tried again on the layer's `retry` schedule (default: 100 ms doubling, 5 attempts in all);
 *   when that gives up, or at once for errors a retry cannot fix (unknown type or message,
 *   a payload that no longer decodes), the tick goes to the dead-letter queue
 *   ({@link deadLetters}, {@link replay}) and the reminder goes on with its next tick.
 * - **At least once.** A tick is delivered, then recorded. If the silo firing it dies in
 *   between, the next owner fires it again. Exactly one silo fires a reminder at a time: a
 *   reminder belongs to one of `bucketCount` buckets, and a bucket is a system actor with
 *   the cluster's single-activation guarantee (see `internal/ReminderBucket.ts`).
 * - **History.** The last `historySize` (default 20) fired ticks of each reminder, with
 *   their outcome ({@link history}).
 *
 * @since 0.1.0
 */
import { Clock, Context, Duration, Effect, Layer, Schedule, Schema, type Scope } from "effect"
import type { Rpc } from "effect/rpc"
import type { Actor } from "../Actor/Actor.ts"
import { type ActorAddress, invalidIdReason } from "../Actor/ActorAddress.ts"
import { type CallError, type DispatchError, InvalidActorId } from "../Actor/ActorError.ts"
import * as RequestContext from "../Actor/RequestContext.ts"
import { Silo } from "../Actor/Silo.ts"
import type { StoreError } from "../Persistence/PersistenceError.ts"
import { firstDue, validate } from "./internal/DueTimes.ts"
import { DueTimer } from "./internal/DueTimer.ts"
import { deadLetterTells } from "./internal/TellDeadLetters.ts"
import { Bucket, BucketLive, keepBuckets } from "./internal/ReminderBucket.ts"
import {
  bucketOf,
  decodeDetails,
  decodeOutcome,
  decodeRecord,
  encodeRecord,
  type TickOutcome
} from "./internal/ReminderRecord.ts"
import { ReminderRuntime, tickKeys } from "./internal/ReminderRuntime.ts"
import * as MemoryReminderStore from "./MemoryReminderStore.ts"
import type { ReminderKey, ReminderStore } from "./ReminderStore.ts"
import { minimumPeriodMillis, type MissedTicks, type TimingOptions } from "./ReminderTiming.ts"

export { minimumPeriodMillis }

/**
 * A registration's options was refused: the reason says which and why. Nothing was stored.
 *
 * @since 0.1.0
 */
export class InvalidReminder extends Schema.TaggedError<InvalidReminder>()("InvalidReminder", {
  address: Schema.Struct({ type: Schema.String, id: Schema.String }),
  name: Schema.String,
  reason: Schema.String
}) {
  override get message(): string {
    return `reminder ${this.address.type}/${this.address.id}/${this.name}: ${this.reason}`
  }
}

/** A time: a `Date`, or epoch milliseconds. */
type Instant = Date | number

/**
 * When a reminder fires: exactly one of `at`, `after`, `every` and `cron`.
 *
 * @since 0.1.0
 */
export interface TimingInput {
  /** One tick at this time (in the past: at once). */
  readonly at?: Instant | undefined
  /** One tick this long from now. */
  readonly after?: Duration.Input | undefined
  /** A tick every period, the first at `startAt` (default: one period from now). */
  readonly every?: Duration.Input | undefined
  readonly startAt?: Instant | undefined
  /** A tick at each match of a cron expression in `timeZone` (default "UTC"). */
  readonly cron?: string | undefined
  readonly timeZone?: string | undefined
  /** Missed ticks: `"skip"`, `"once"` (default) or `{ each: n }` (see the module doc). */
  readonly missed?: "skip" | "once" | { readonly each: number } | undefined
  /** Each tick fires up to this long after its due time. */
  readonly jitter?: Duration.Input | undefined
  /** No tick after this time. */
  readonly endAt?: Instant | undefined
  /** The reminder ends after this many ticks. */
  readonly maxTicks?: number | undefined
}

type PayloadOf<R extends Rpc.Any> = [Rpc.Payload<R>] extends [void] ? { readonly payload?: undefined }
  : { readonly payload: Rpc.Payload<R> }

/**
 * A registration: the message a tick delivers (one of the contract's, with its payload),
 * and when.
 *
 * @since 0.1.0
 */
export type RegisterOptions<Rpcs extends Rpc.Any, Tag extends Rpcs["_tag"]> =
  & { readonly message: Tag }
  & PayloadOf<Extract<Rpcs, { readonly _tag: Tag }>>
  & TimingInput

/**
 * A reminder as listed.
 *
 * @since 0.1.0
 */
export interface ReminderInfo {
  readonly address: ActorAddress
  readonly name: string
  readonly message: string
  readonly timing: TimingOptions
  /** When it fires next (epoch milliseconds, before jitter). */
  readonly nextDue: number
  /** Ticks fired so far. */
  readonly ticks: number
  readonly registeredAt: number
}

/**
 * One fired tick, from a reminder's history.
 *
 * @since 0.1.0
 */
export type Tick = TickOutcome

/**
 * A tick (or message) that could not be delivered after its retries.
 *
 * @since 0.1.0
 */
export interface DeadLetterInfo {
  readonly id: string
  readonly kind: string
  /** When it was given up on (epoch milliseconds). */
  readonly at: number
  readonly address: ActorAddress
  readonly message: string
  readonly reminder: string | undefined
  readonly due: number | undefined
  readonly attempts: number
  readonly error: string
}

/**
 * What the handler of a tick can read of it.
 *
 * @since 0.1.0
 */
export interface TickContext {
  readonly reminder: string
  /** The tick's due time (epoch milliseconds). */
  readonly due: number
  /** 1 for the first delivery, more on retries. */
  readonly attempt: number
}

/**
 * The reminders of this program's silo (or client).
 *
 * @since 0.1.0
 */
export interface RemindersShape {
  readonly store: ReminderStore
  readonly bucketCount: number
}

/**
 * @since 0.1.0
 */
export class Reminders extends Context.Service<Reminders, RemindersShape>()("quark/Reminders") {}

/**
 * The reminders attached to each silo by its layer. The functions below find them through
 * the `Silo` (which every handler and activation effect has), not through a service of
 * their own: an actor implementation that registers reminders would otherwise need the
 * reminders layer, which needs the silo, which is built with that implementation.
 */
const attached = new WeakMap<object, RemindersShape>()

const current: Effect.Effect<RemindersShape, never, Silo> = Effect.flatMap(Silo, (silo) => {
  const reminders = attached.get(silo.router)
  return reminders === undefined
    ? Effect.die(new Error("reminders are not set up in this program: provide Reminders.layer (or Reminders.layerClient)"))
    : Effect.succeed(reminders)
})

const instant = (value: Instant): number => typeof value === "number" ? value : value.getTime()

const missedOf = (missed: TimingInput["missed"]): MissedTicks =>
  missed === undefined || missed === "once" ? { _tag: "FireOnce" }
  : missed === "skip" ? { _tag: "Skip" }
  : { _tag: "FireEach", max: missed.each }

const timingOf = (input: TimingInput, now: number): TimingOptions | string => {
  const kinds = (["at", "after", "every", "cron"] as const).filter((kind) => input[kind] !== undefined)
  if (kinds.length !== 1) return `give exactly one of at, after, every and cron (got ${kinds.length === 0 ? "none" : kinds.join(", ")})`
  if (input.startAt !== undefined && input.every === undefined) return "startAt goes with every"
  if (input.timeZone !== undefined && input.cron === undefined) return "timeZone goes with cron"
  const millis = (value: Duration.Input, what: string): number | string => {
    const duration = Duration.fromInput(value)
    return duration._tag === "Some" ? Duration.toMillis(duration.value) : `${what} is not a duration`
  }
  let timing: TimingOptions["timing"]
  if (input.at !== undefined) timing = { _tag: "At", at: instant(input.at) }
  else if (input.after !== undefined) {
    const after = millis(input.after, "after")
    if (typeof after === "string") return after
    timing = { _tag: "At", at: now + after }
  } else if (input.every !== undefined) {
    const period = millis(input.every, "every")
    if (typeof period === "string") return period
    timing = { _tag: "Every", periodMillis: period, startAt: input.startAt === undefined ? now + period : instant(input.startAt) }
  } else timing = { _tag: "Cron", expression: input.cron!, timeZone: input.timeZone ?? "UTC" }
  const jitter = input.jitter === undefined ? 0 : millis(input.jitter, "jitter")
  if (typeof jitter === "string") return jitter
  return {
    timing,
    missed: missedOf(input.missed),
    jitterMillis: jitter,
    ...(input.endAt === undefined ? {} : { endAt: instant(input.endAt) }),
    ...(input.maxTicks === undefined ? {} : { maxTicks: input.maxTicks })
  }
}

/** Names are stored and listed: printable, and bounded like actor ids. */
const invalidNameReason = (name: string): string | undefined =>
  typeof name !== "string" || name.length === 0 ? "a reminder name must be a non-empty string"
  : name.length > 256 ? "a reminder name must be at most 256 characters"
  : undefined

const bucketRef = (key: ReminderKey) =>
  Effect.flatMap(current, (reminders) => Bucket.refOrDie(String(bucketOf(key, reminders.bucketCount))))

/**
 * Registers (or replaces) the reminder `name` of the actor `contract`/`id`. Replacing starts
 * it over: its tick count and next due time are the new registration's.
 *
 * @since 0.1.0
 */
export const register = <Type extends string, Rpcs extends Rpc.Any, const Tag extends Rpcs["_tag"]>(
  contract: Actor<Type, Rpcs>,
  id: string,
  name: string,
  options: RegisterOptions<Rpcs, Tag>
): Effect.Effect<ReminderInfo, InvalidReminder | InvalidActorId | StoreError | CallError, Silo> =>
  Effect.gen(function*() {
    const address = { type: contract.type, id }
    const idReason = invalidIdReason(id)
    if (idReason !== undefined) return yield* new InvalidActorId({ type: contract.type, id, reason: idReason })
    const refuse = (reason: string) => new InvalidReminder({ address, name, reason })
    const nameReason = invalidNameReason(name)
    if (nameReason !== undefined) return yield* refuse(nameReason)
    const tag = options.message as string
    const entry = Object.hasOwn(contract.messages, tag) ? contract.messages[tag] : undefined
    if (entry === undefined) return yield* refuse(`${contract.type} has no message ${tag}`)
    const now = yield* Clock.currentTimeMillis
    const timing = timingOf(options, now)
    if (typeof timing === "string") return yield* refuse(timing)
    const invalid = validate(timing)
    if (invalid !== undefined) return yield* refuse(invalid.reason)
    const nextDue = firstDue(timing, now)
    if (nextDue === undefined) return yield* refuse("it would never fire (its end comes before its first tick)")
    const payload = yield* Schema.encodeUnknownEffect(entry.payloadSchema)(options.payload).pipe(
      Effect.mapError((error) => refuse(`the payload does not encode: ${error.message}`))
    ) as Effect.Effect<unknown, InvalidReminder>
    const record = { message: tag, payload: entry.hasPayload ? payload : undefined, timing, ticks: 0, registeredAt: now }
    const key = { type: contract.type, id, name }
    const bucket = yield* bucketRef(key)
    yield* bucket.Put({ ...key, data: encodeRecord(record), nextDue })
    return { address, name, message: tag, timing, nextDue, ticks: 0, registeredAt: now }
  })

/**
 * Cancels a reminder; `false` if there was none. A tick already being delivered completes.
 *
 * @since 0.1.0
 */
export const cancel = (
  address: ActorAddress,
  name: string
): Effect.Effect<boolean, StoreError | CallError, Silo> =>
  Effect.gen(function*() {
    const key = { type: address.type, id: address.id, name }
    const bucket = yield* bucketRef(key)
    return yield* bucket.Cancel(key)
  })

/**
 * The reminders of an actor, by name, as stored.
 *
 * @since 0.1.0
 */
export const list = (address: ActorAddress): Effect.Effect<ReadonlyArray<ReminderInfo>, StoreError, Silo> =>
  Effect.gen(function*() {
    const { store } = yield* current
    const stored = yield* store.list(address.type, address.id)
    const infos: Array<ReminderInfo> = []
    for (const reminder of stored) {
      let record
      try {
        record = decodeRecord(reminder.data)
      } catch {
        continue // an undecodable record is logged where it is fired
      }
      infos.push({
        address: { type: reminder.key.type, id: reminder.key.id },
        name: reminder.key.name,
        message: record.message,
        timing: record.timing,
        nextDue: reminder.nextDue,
        ticks: record.ticks,
        registeredAt: record.registeredAt
      })
    }
    return infos
  })

/**
 * A reminder's last fired ticks, newest first.
 *
 * @since 0.1.0
 */
export const history = (address: ActorAddress, name: string): Effect.Effect<ReadonlyArray<Tick>, StoreError, Silo> =>
  Effect.flatMap(current, ({ store }) =>
    Effect.map(store.history({ type: address.type, id: address.id, name }), (entries) => entries.map((entry) => decodeOutcome(entry))))

/**
 * The dead-letter queue, oldest first.
 *
 * @since 0.1.0
 */
export const deadLetters = (options?: {
  readonly limit?: number | undefined
  readonly kind?: string | undefined
}): Effect.Effect<ReadonlyArray<DeadLetterInfo>, StoreError, Silo> =>
  Effect.flatMap(current, ({ store }) =>
    Effect.map(store.deadLetters({ limit: options?.limit ?? 1_000, kind: options?.kind }), (letters) =>
      letters.map((letter) => {
        const details = decodeDetails(letter.data)
        return {
          id: letter.id,
          kind: letter.kind,
          at: letter.at,
          address: { type: details.type, id: details.id },
          message: details.message,
          reminder: details.reminder,
          due: details.due,
          attempts: details.attempts,
          error: details.error
        }
      })))

/**
 * Delivers a dead letter's message again, once; on success it leaves the queue. `false` if
 * there is no dead letter with that id.
 *
 * @since 0.1.0
 */
export const replay = (id: string): Effect.Effect<boolean, StoreError | DispatchError, Silo> =>
  Effect.gen(function*() {
    const { store } = yield* current
    const found = (yield* store.deadLetters({ limit: Number.MAX_SAFE_INTEGER })).find((letter) => letter.id === id)
    if (found === undefined) return false
    const details = decodeDetails(found.data)
    const silo = yield* Silo
    yield* silo.dispatch({ type: details.type, id: details.id, tag: details.message, payload: details.payload })
    yield* store.removeDeadLetter(id)
    return true
  })

/**
 * Removes a dead letter without delivering it; `false` if there was none.
 *
 * @since 0.1.0
 */
export const discard = (id: string): Effect.Effect<boolean, StoreError, Silo> =>
  Effect.flatMap(current, ({ store }) => store.removeDeadLetter(id))

/**
 * Inside the turn of a tick: which reminder, due when, which attempt; `undefined` in any
 * other turn.
 *
 * @since 0.1.0
 */
export const currentTick: Effect.Effect<TickContext | undefined> = Effect.map(RequestContext.current, ({ metadata }) => {
  const reminder = metadata[tickKeys.name]
  if (reminder === undefined) return undefined
  return { reminder, due: Number(metadata[tickKeys.due]), attempt: Number(metadata[tickKeys.attempt]) }
})

/**
 * @since 0.1.0
 */
export interface RemindersConfig {
  /** Where reminders live (default: in this process's memory). */
  readonly store?: ReminderStore | Effect.Effect<ReminderStore, StoreError, Scope.Scope> | undefined
  /** Partitions: fixed for the life of a store (default 64). */
  readonly bucketCount?: number | undefined
  /** Fired ticks kept per reminder (default 20). */
  readonly historySize?: number | undefined
  /** How a failing tick is retried (default: 100 ms doubling, 5 attempts in all). */
  readonly retry?: Schedule.Schedule<unknown, DispatchError> | undefined
  /** How often each bucket is made sure to be active on its owner (default 1 s). */
  readonly keepInterval?: Duration.Input | undefined
  /**
   * Ticks started on this silo whose first attempt has not ended (default 1,024). More due
   * at once wait their turn, so a burst (every silo was down for an hour) cannot keep the
   * event loop busy for seconds.
   */
  readonly maxTicksInFlight?: number | undefined
  /**
   * Also dead-letter this silo's failed one-way messages (kind `"tell"`): a tell whose turn
   * failed, one dropped because its activation failed, one lost moving to another silo.
   * They can be listed, replayed and discarded as a tick's can (default: off; they are
   * only logged).
   */
  readonly deadLetterTells?: boolean | undefined
}

const defaultBucketCount = 64
/** Ticks the timer starts before it yields to the event loop. */
const timerBatch = 256

const storeOf = (config: RemindersConfig | undefined): Effect.Effect<ReminderStore, StoreError, Scope.Scope> =>
  config?.store === undefined ? Effect.succeed(MemoryReminderStore.make("reminders"))
  : Effect.isEffect(config.store) ? config.store
  : Effect.succeed(config.store)

const defaultRetry: Schedule.Schedule<unknown, DispatchError> = Schedule.max([
  Schedule.exponential("100 millis"),
  Schedule.recurs(4)
])

/**
 * Reminders on this silo: it fires the buckets it owns (all of them on a single silo) and
 * serves registrations. Every silo of a cluster needs the same `store` and `bucketCount`.
 *
 * @since 0.1.0
 */
export const layer = (config?: RemindersConfig): Layer.Layer<Reminders, StoreError, Silo> =>
  Layer.effectContext(Effect.gen(function*() {
    const maxTicksInFlight = config?.maxTicksInFlight ?? 1_024
    if (!Number.isSafeInteger(maxTicksInFlight) || maxTicksInFlight < 1) {
      return yield* Effect.die(new RangeError(`Reminders.layer: maxTicksInFlight must be a positive integer, not ${maxTicksInFlight}`))
    }
    const store = yield* storeOf(config)
    const bucketCount = config?.bucketCount ?? defaultBucketCount
    const runtime = ReminderRuntime.of({
      store,
      bucketCount,
      historySize: config?.historySize ?? 20,
      retry: config?.retry ?? defaultRetry,
      storeRetryMillis: 1_000,
      timer: new DueTimer(maxTicksInFlight, timerBatch),
      buckets: new Set(),
      drainMillis: 5_000
    })
    // Before the store closes (finalizers run in reverse): every bucket on this silo stops
    // and lets its ticks in flight end and be recorded.
    yield* Effect.addFinalizer(() =>
      Effect.forEach([...runtime.buckets], (stop) => stop, { concurrency: "unbounded", discard: true })
    )
    const reminders = Reminders.of({ store, bucketCount })
    const silo = yield* Silo
    attached.set(silo.router, reminders)
    if (config?.deadLetterTells === true) yield* deadLetterTells(store, silo.router)
    yield* Layer.build(BucketLive.pipe(Layer.provide(Layer.succeed(ReminderRuntime, runtime))))
    yield* Effect.forkScoped(runtime.timer.run)
    yield* Effect.forkScoped(keepBuckets(bucketCount, Duration.fromInputUnsafe(config?.keepInterval ?? "1 second")))
    return Context.make(Reminders, reminders)
  }))

/**
 * Reminders from a program that hosts no actors (a `ClusterClient`, a script): register,
 * cancel, list, read history and dead letters; the silos fire. Same `store` and
 * `bucketCount` as the silos.
 *
 * @since 0.1.0
 */
export const layerClient = (
  config?: Pick<RemindersConfig, "store" | "bucketCount">
): Layer.Layer<Reminders, StoreError, Silo> =>
  Layer.effect(
    Reminders,
    Effect.gen(function*() {
      const reminders = Reminders.of({ store: yield* storeOf(config), bucketCount: config?.bucketCount ?? defaultBucketCount })
      attached.set((yield* Silo).router, reminders)
      return reminders
    })
  )

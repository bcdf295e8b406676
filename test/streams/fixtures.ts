/**
 * Fixtures of the Streams tests: stream contracts, two subscriber actors that record every
 * delivery (with `Streams.currentEvent`) in a probe the test owns, hooks the test controls
 * (block a delivery on a gate, fail it), and a one-silo layer on the memory provider.
 *
 * - `Device` receives `readings` implicitly as `Record` (its id is the stream key), and
 *   `alerts` implicitly as `Alert` with `options.id` mapping key `k` to `dev-k`.
 * - `Watcher` receives whatever it is explicitly subscribed to, as `Seen`; `Follow`
 *   subscribes it to a `feed` stream from inside its own handler.
 */
import { Clock, Deferred, Effect, Layer, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { TestClock } from "effect/testing"
import { Actor, ActorContext, type ActorTypeOptions, Backpressure, Silo, StreamContract, Streams } from "../../src/index.ts"
import type { StreamsConfig } from "../../src/Streams/Streams.ts"

export class Refused extends Schema.TaggedError<Refused>()("Refused", { n: Schema.Number }) {}

export const Reading = Schema.Struct({ n: Schema.Number })
/** Implicitly delivered to `Device/<key>` as `Record`. */
export const Readings = StreamContract.make("readings", Reading)
/** Implicitly delivered to `Device/dev-<key>` as `Alert`. */
export const Alerts = StreamContract.make("alerts", Reading)
/** No implicit subscription: explicit subscribers and pull consumers only. */
export const Feed = StreamContract.make("feed", Reading)
/** Retained, never delivered (nothing subscribes to it). */
export const Quiet = StreamContract.make("quiet", Reading)

const Record = Rpc.make("Record", { payload: Reading, error: Refused })
const Alert = Rpc.make("Alert", { payload: Reading, error: Refused })
const Seen = Rpc.make("Seen", { payload: Reading, error: Refused })
/** Subscribes this watcher to `feed/<key>` from inside its turn (from the earliest event, with a `suspend(capacity)` buffer, if given). */
const Follow = Rpc.make("Follow", {
  payload: { key: Schema.String, earliest: Schema.optional(Schema.Boolean), capacity: Schema.optional(Schema.Int) }
})

export const Device = Actor.make("Device", [Record, Alert])
export const Watcher = Actor.make("Watcher", [Seen, Follow])
/** Never hosted: an implicit subscription to it cannot deliver. */
export const Ghost = Actor.make("Ghost", [Record])

export interface Delivery {
  readonly type: string
  readonly id: string
  readonly message: string
  readonly n: number
  readonly event: Streams.EventContext | undefined
  /** Clock time when the turn started. */
  readonly at: number
}

/** What the subscribers saw, and the hooks the test installs. Plain mutable state. */
export class StreamProbe {
  /** Every turn that started, failed ones included, in order. */
  readonly attempts: Array<Delivery> = []
  /** Turns that succeeded, in order. */
  readonly deliveries: Array<Delivery> = []
  readonly activations = new Map<string, number>()
  readonly deactivations = new Map<string, number>()
  /**
   * Completed when the test body ends (see `withProbe`): every hook gives up waiting, so a
   * failed assertion never leaves a delivery blocked and the silo's shutdown hanging.
   */
  readonly abort = Deferred.makeUnsafe<void>()
  /** Runs inside each event turn, after it is recorded as an attempt; default: nothing. */
  hook: (delivery: Delivery) => Effect.Effect<void, Refused, Silo.Silo> = () => Effect.void

  /** The `n`s delivered (successfully) to `type/id`, in order. */
  ns(type: string, id: string, message?: string): Array<number> {
    return this.deliveries.filter((d) => d.type === type && d.id === id && (message === undefined || d.message === message)).map((d) => d.n)
  }

  /** Every attempt's `n` to `type/id`, in order. */
  attemptNs(type: string, id: string): Array<number> {
    return this.attempts.filter((d) => d.type === type && d.id === id).map((d) => d.n)
  }

  activationsOf(type: string, id: string): number {
    return this.activations.get(`${type}/${id}`) ?? 0
  }

  deactivationsOf(type: string, id: string): number {
    return this.deactivations.get(`${type}/${id}`) ?? 0
  }
}

/** A gate a hook waits on; opened by the test (or by the probe's `abort`). */
export class Gate {
  readonly entered = Deferred.makeUnsafe<void>()
  readonly opened = Deferred.makeUnsafe<void>()
  /** Marks the gate entered and waits until it is opened. */
  pass(probe: StreamProbe): Effect.Effect<void> {
    return Effect.andThen(
      Deferred.succeed(this.entered, undefined),
      Effect.raceFirst(Deferred.await(this.opened), Deferred.await(probe.abort))
    )
  }
  readonly open: Effect.Effect<void> = Effect.asVoid(Deferred.succeed(this.opened, undefined))
  /** Bounded (yields, not time): a delivery that never comes fails the test instead of hanging it. */
  get awaitEntered(): Effect.Effect<void> {
    return waitFor("the blocked turn to start", Deferred.isDone(this.entered))
  }
}

const eventTurn = (probe: StreamProbe, type: string, id: string, message: string, n: number): Effect.Effect<void, Refused, Silo.Silo> =>
  Effect.gen(function*() {
    const event = yield* Streams.currentEvent
    const at = yield* Clock.currentTimeMillis
    const delivery: Delivery = { type, id, message, n, event, at }
    probe.attempts.push(delivery)
    yield* probe.hook(delivery)
    probe.deliveries.push(delivery)
  })

const track = (probe: StreamProbe, type: string) =>
  Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    const key = `${type}/${id}`
    probe.activations.set(key, (probe.activations.get(key) ?? 0) + 1)
    yield* Effect.addFinalizer(() => Effect.sync(() => probe.deactivations.set(key, (probe.deactivations.get(key) ?? 0) + 1)))
    return id
  })

export const deviceLayer = (probe: StreamProbe, options?: ActorTypeOptions) =>
  Device.toLayer(Effect.gen(function*() {
    const id = yield* track(probe, "Device")
    return Device.of({
      Record: ({ n }) => eventTurn(probe, "Device", id, "Record", n),
      Alert: ({ n }) => eventTurn(probe, "Device", id, "Alert", n)
    })
  }), options)

export const watcherLayer = (probe: StreamProbe, options?: ActorTypeOptions) =>
  Watcher.toLayer(Effect.gen(function*() {
    const id = yield* track(probe, "Watcher")
    return Watcher.of({
      Seen: ({ n }) => eventTurn(probe, "Watcher", id, "Seen", n),
      Follow: ({ capacity, earliest, key }) =>
        Effect.orDie(Streams.subscribe(Feed, key, {
          actor: Watcher,
          id,
          message: "Seen",
          ...(earliest === true ? { from: "earliest" as const } : {}),
          ...(capacity === undefined ? {} : { backpressure: Backpressure.suspend(capacity) })
        })).pipe(Effect.asVoid, (subscribing) => Effect.raceFirst(subscribing, Deferred.await(probe.abort)))
    })
  }), options)

export const defaultImplicit = [
  Streams.implicit(Readings, Device, "Record"),
  Streams.implicit(Alerts, Device, "Alert", { id: (key) => `dev-${key}` })
]

export interface SiloOptions {
  readonly streams?: StreamsConfig
  readonly device?: ActorTypeOptions
  readonly watcher?: ActorTypeOptions
}

/** One test silo hosting `Device` and `Watcher`, with streams (memory provider unless given). */
export const siloWith = (probe: StreamProbe, options: SiloOptions = {}) =>
  Streams.layer({ implicit: defaultImplicit, ...options.streams }).pipe(
    Layer.provideMerge(Silo.layerTest(deviceLayer(probe, options.device), watcherLayer(probe, options.watcher)))
  )

/**
 * Runs `body` on a silo; when it ends, whatever the outcome, every hook is released and the
 * deliveries under way get to finish before the silo closes (a stopping partition agent
 * waits for them on the TestClock, which no longer moves: the silo would close only after
 * its second of real time).
 */
export const withProbe = <A, E>(
  probe: StreamProbe,
  body: Effect.Effect<A, E, Silo.Silo | Streams.Streams>,
  options?: SiloOptions
) =>
  Effect.scoped(Effect.gen(function*() {
    yield* Effect.addFinalizer(() => Effect.andThen(Deferred.succeed(probe.abort, undefined), settle()))
    return yield* body
  })).pipe(Effect.provide(siloWith(probe, options)))

/** Yields until `check` holds; dies past the bound (no time passes: not a sleep). */
export function waitFor(label: string, check: () => boolean, maxYields?: number): Effect.Effect<void>
export function waitFor<E, R>(label: string, check: Effect.Effect<boolean, E, R>, maxYields?: number): Effect.Effect<void, E, R>
export function waitFor<E, R>(label: string, check: (() => boolean) | Effect.Effect<boolean, E, R>, maxYields = 5_000): Effect.Effect<void, E, R> {
  return Effect.gen(function*() {
    for (let i = 0; i < maxYields; i++) {
      if (typeof check === "function" ? check() : yield* check) return
      yield* Effect.yieldNow
    }
    return yield* Effect.die(new Error(`gave up waiting for: ${label}`))
  })
}

/** Lets scheduled work run without moving the clock (to show that something does NOT happen). */
export const settle = (yields = 500) =>
  Effect.gen(function*() {
    for (let i = 0; i < yields; i++) yield* Effect.yieldNow
  })

/** Moves the TestClock in steps, letting fibers run after each. */
export const advance = (millis: number, step = 100) =>
  Effect.gen(function*() {
    for (let t = 0; t < millis; t += step) {
      yield* TestClock.adjust(`${Math.min(step, millis - t)} millis`)
      yield* settle(50)
    }
  })

/** The lag row of one subscription of one stream, if this silo has its lane. */
export const lagOf = (namespace: string, key: string, subscription: string) =>
  Effect.map(Streams.lag, (rows) => rows.find((r) => r.stream.namespace === namespace && r.stream.key === key && r.subscription === subscription))

/** Publishes `n`s to one stream, one publish each; returns their tokens. */
export const publishEach = (contract: StreamContract.StreamContract<{ readonly n: number }, { readonly n: number }>, key: string, ns: ReadonlyArray<number>) =>
  Effect.forEach(ns, (n) => Streams.publish(contract, key, { n }))

export const range = (from: number, to: number): Array<number> => Array.from({ length: to - from }, (_, i) => from + i)

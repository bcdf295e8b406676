/**
 * A partition agent: the system actor (`$streams/<partition>`) that consumes one partition
 * of the stream provider and delivers each event to the stream's subscribers, implicit and
 * durable, as turns of theirs.
 *
 * Why an actor: as for reminder buckets, the cluster already guarantees one activation per
 * address, moves it when the ring changes and re-activates it on a survivor when its silo
 * dies. So exactly one silo reads a partition at a time, and when that silo dies the next
 * activation first claims every entry the dead one read and did not acknowledge
 * (`claim(0)`) and delivers those again, in order, before reading on: at least once. An
 * agent reads and delivers only inside its silo's lease (see `leaseHeld`).
 *
 * Each subscription of each stream has a `Lane` (a bounded buffer with the subscription's
 * backpressure strategy, and a fiber that delivers one event at a time), so events reach a
 * subscriber in stream order and a slow subscriber holds up only its own lane. An entry is
 * acknowledged once every lane is done with it: delivered, given up on, or dropped by a
 * strategy. A delivery goes through ordinary actor routing: it activates the subscriber
 * wherever the ring puts it and follows it when it moves.
 *
 * A delivery that fails is tried again: while the subscriber is unavailable (its silo died,
 * it is being handed over) every 250 ms for up to `unavailableWaitMillis` (30 s); after a
 * failed turn up to `retryAttempts` times in all, 100 ms doubling between; at once never
 * for an error a retry cannot fix (unknown type or message, an event that does not decode).
 * Then it is logged, counted as failed, and the lane goes on.
 *
 * An agent that stops (its silo drains, the ring moves it) stops reading, lets the
 * deliveries under way finish for up to `drainMillis`, and acknowledges what they
 * finished; the rest stays pending for the next owner.
 *
 * Rejected:
 * - One provider stream per stream id, each with its reader: a million device streams would
 *   be a million keys to poll. A fixed number of partitions gives a fixed number of readers,
 *   at the price of a rewind reading the partition's other streams too.
 * - A reader per silo over the partitions it owns (Orleans' pulling agents): the ownership,
 *   hand-over and failover it needs are what the actor gives already.
 * - Acknowledging on read: at most once; a silo's death would lose what it had read.
 * - Several events per turn (`OnNextBatchAsync`): a second way to receive a message. The
 *   cost is a turn per event (see docs/benchmarks.md, Streams).
 *
 * @internal
 */
import { Clock, Deferred, Effect, Fiber, FiberSet, Schema, Scope, Semaphore } from "effect"
import { Rpc } from "effect/rpc"
import * as Actor from "../../Actor/Actor.ts"
import { ActorContext } from "../../Actor/ActorContext.ts"
import { InvalidActorId } from "../../Actor/ActorError.ts"
import { invalidIdReason } from "../../Actor/ActorAddress.ts"
import { systemContract } from "../../Actor/internal/SystemContract.ts"
import { CurrentTurn } from "../../Actor/internal/Turn.ts"
import { Silo } from "../../Actor/Silo.ts"
import { ConsumerFenced, type Position, type StreamEntry, StreamProviderError } from "../StreamProvider.ts"
import { compare } from "../StreamToken.ts"
import { makeDelivery } from "./Delivery.ts"
import { Lane, type LaneHost, type LaneItem, type Settlement } from "./Lane.ts"
import { decodeRecord, encodeRecord, SubscriptionRecord } from "./SubscriptionRecord.ts"
import { type StreamState, StreamTable, type Subscriber } from "./StreamTable.ts"
import { StreamsRuntime } from "./StreamsRuntime.ts"

/** The type name of the agents; ids are partition numbers. */
export const agentType = "$streams"

export const PositionSchema = Schema.Union([
  Schema.TaggedStruct("Earliest", {}),
  Schema.TaggedStruct("After", { token: Schema.String }),
  Schema.TaggedStruct("Time", { millis: Schema.Number })
])

const StreamFields = { namespace: Schema.String, key: Schema.String, id: Schema.String }

/** Stores a durable subscription (created or replaced); with `from`, its lane first gets the history since then. */
export const Subscribe = Rpc.make("Subscribe", {
  payload: { ...StreamFields, record: SubscriptionRecord, from: Schema.optional(PositionSchema) },
  error: StreamProviderError
})
/** Removes a durable subscription; `false` if there was none. Its buffered events are dropped. */
export const Unsubscribe = Rpc.make("Unsubscribe", { payload: StreamFields, success: Schema.Boolean, error: StreamProviderError })
/** Activates the agent (the keeper sends it to every partition, and the ring takes it to the owner). */
export const Touch = Rpc.make("Touch")

export const Agent = Actor.make(agentType, [Subscribe, Unsubscribe, Touch], { [systemContract]: true } as Actor.ContractOptions)

/** How often an agent outside its lease looks again. */
const leaseCheckMillis = 100
/** A stream unseen this long, with idle lanes, is forgotten (its subscriptions are read again when it is seen). */
const forgetAfterMillis = 60_000

export const AgentLive = Agent.toLayer(Effect.gen(function*() {
  const runtime = yield* StreamsRuntime
  const provider = runtime.provider
  const silo = yield* Silo
  const ctx = yield* ActorContext
  const clock = yield* Clock.Clock
  const scope = yield* Scope.Scope
  const partition = Number(ctx.address.id)
  const now = () => clock.currentTimeMillisUnsafe()
  yield* ctx.keepAlive(true)

  const consumer = yield* provider.consume(partition, silo.router.siloId ?? "local")
  const table = new StreamTable()
  /** One dispatch of read entries, or one subscription change, at a time. */
  const mutex = Semaphore.makeUnsafe(1)
  const laneFibers = yield* FiberSet.make<void, never>()
  const runLane = yield* FiberSet.runtime(laneFibers)<never>()

  // --- Acknowledgements ----------------------------------------------------------------

  let acks: Array<string> = []
  let ackWake: (() => void) | undefined
  const settle = (settlement: Settlement): void => {
    if (--settlement.remaining > 0) return
    acks.push(settlement.token)
    const wake = ackWake
    if (wake !== undefined) {
      ackWake = undefined
      // Not inline: a resumed fiber runs on the caller's stack, and would acknowledge each
      // event alone. After the current run of deliveries, it takes them all at once.
      queueMicrotask(wake)
    }
  }
  const ackWaiting = Effect.callback<void>((resume) => {
    if (acks.length > 0) return resume(Effect.void)
    ackWake = () => resume(Effect.void)
  })
  /**
   * Acknowledges what is settled; a provider failure keeps the tokens for the next round.
   * One flush at a time: the last one, when the agent stops, waits for one under way.
   */
  const ackLock = Semaphore.makeUnsafe(1)
  const flushAcks = ackLock.withPermits(1)(Effect.suspend(() => {
    if (acks.length === 0) return Effect.void
    const batch = acks
    acks = []
    return Effect.catch(consumer.ack(batch), (error) => {
      acks = batch.concat(acks)
      return Effect.andThen(
        Effect.logWarning(`stream partition ${partition}: acknowledging failed (${error.message}); trying again`),
        Effect.sleep(1_000)
      )
    })
  }))
  const acker = Effect.forever(Effect.andThen(ackWaiting, flushAcks))

  // --- Delivery --------------------------------------------------------------------------

  const { deliver, frameOf, leaseHeld } = makeDelivery({ router: silo.router, provider, runtime, now })

  const host: LaneHost = {
    deliver,
    settle: (settlement) => {
      settle(settlement)
    },
    // After a yield: a batch being dispatched fills the lanes first, and each lane's fiber
    // then delivers what it holds in one run instead of one fiber per event.
    start: (lane, effect) => {
      runLane(Effect.andThen(Effect.yieldNow, Effect.provideService(effect, CurrentTurn, frameOf(lane))))
    },
    now
  }

  const laneFor = (
    state: StreamState,
    subscription: string,
    type: string,
    id: () => string,
    message: string,
    backpressure: SubscriptionRecord["backpressure"]
  ): Lane => {
    let lane = state.lanes.get(subscription)
    if (lane === undefined) {
      const { key, namespace } = state
      let actorId: string
      let reason: string | undefined
      try {
        actorId = id()
        reason = invalidIdReason(actorId)
      } catch (defect) {
        actorId = ""
        reason = `the subscription's id mapping threw: ${String(defect)}`
      }
      lane = new Lane({ namespace, key, subscription, subscriber: { type, id: String(actorId) }, message }, backpressure, host)
      // Every delivery fails with it, as one that cannot be fixed by a retry (logged there).
      if (reason !== undefined) lane.refusal = new InvalidActorId({ type, id: String(actorId), reason })
      state.lanes.set(subscription, lane)
    }
    return lane
  }

  /** Offers a live event, waiting for room as long as it takes (no lock is held meanwhile). */
  const offerWaiting = (lane: Lane, item: LaneItem): Effect.Effect<void> =>
    Effect.flatMap(lane.awaitRoom(), () => lane.offer(item) ? Effect.void : offerWaiting(lane, item))

  // --- Subscriptions ---------------------------------------------------------------------

  const decodeSubscribers = (namespace: string, key: string, stored: ReadonlyArray<{ readonly id: string; readonly data: string }>) =>
    Effect.gen(function*() {
      const subscribers: Array<Subscriber> = []
      for (const { data, id } of stored) {
        try {
          subscribers.push({ id, record: decodeRecord(data) })
        } catch (cause) {
          yield* Effect.logWarning(`stream ${namespace}/${key}: subscription ${id} does not decode; left in the store as it is`, cause)
        }
      }
      return subscribers
    })

  /** A provider call, tried again every second while the provider fails (the agent has nothing else to do). */
  const persistently = <A>(operation: Effect.Effect<A, StreamProviderError>): Effect.Effect<A> =>
    Effect.catch(operation, (error) =>
      Effect.andThen(
        Effect.andThen(Effect.logWarning(`stream partition ${partition}: ${error.message}; trying again in 1 s`), Effect.sleep(1_000)),
        persistently(operation)
      ))

  /**
   * Reads a stream's durable subscriptions, under the mutex: a subscription change made
   * meanwhile (they go through this agent, under the same mutex) is either in what is read
   * or applied after it, never lost between the two.
   */
  const subscribersOf = (state: StreamState): Effect.Effect<ReadonlyArray<Subscriber>> =>
    mutex.withPermits(1)(Effect.suspend(() => {
      if (state.explicit !== undefined) return Effect.succeed(state.explicit)
      return Effect.flatMap(persistently(provider.subscriptions.list(state.namespace, state.key)), (stored) =>
        Effect.map(decodeSubscribers(state.namespace, state.key, stored), (subscribers) => {
          state.explicit = subscribers
          return subscribers
        }))
    }))

  // --- Reading ---------------------------------------------------------------------------

  const dispatch = (entries: ReadonlyArray<StreamEntry>): Effect.Effect<void> =>
    Effect.gen(function*() {
      const seenAt = now()
      for (const entry of entries) {
        const { key, namespace, token } = entry
        const state = table.get(namespace, key, seenAt)
        state.lastSeenAt = seenAt
        const routes = runtime.implicit.get(namespace)
        const subscribers = state.explicit ?? (yield* subscribersOf(state))
        const count = (routes === undefined ? 0 : routes.length) + subscribers.length
        if (count === 0) {
          settle({ token, remaining: 1 })
          continue
        }
        const item: LaneItem = { token, value: entry.payload, settlement: { token, remaining: count } }
        if (routes !== undefined) {
          for (const route of routes) {
            const lane = laneFor(state, route.subscription, route.type, () => route.idOf(key), route.message, route.backpressure)
            if (!lane.offer(item)) yield* offerWaiting(lane, item)
          }
        }
        for (const { id, record } of subscribers) {
          // Removed while this dispatch waited for room in a lane: no new lane for it.
          const current = state.explicit
          if (current !== subscribers && (current === undefined || !current.some((s) => s.id === id))) {
            settle(item.settlement!)
            continue
          }
          const lane = laneFor(state, id, record.type, () => record.id, record.message, record.backpressure)
          if (lane.skipUpTo !== undefined) {
            if (compare(token, lane.skipUpTo) <= 0) {
              settle(item.settlement!)
              continue
            }
            lane.skipUpTo = undefined
          }
          if (!lane.offer(item)) yield* offerWaiting(lane, item)
        }
      }
    })

  /** As `persistently`, but `ConsumerFenced` ends the reading (see below). */
  const whileOwner = <A>(operation: Effect.Effect<A, StreamProviderError | ConsumerFenced>) =>
    Effect.flatMap(
      persistently(Effect.catchTag(operation, "ConsumerFenced", (fenced) => Effect.succeed(fenced))),
      (result) => result instanceof ConsumerFenced ? Effect.fail(result) : Effect.succeed(result)
    )

  const reading = Effect.gen(function*() {
    const claimed = yield* whileOwner(consumer.claim(0))
    if (claimed.length > 0) {
      yield* Effect.logDebug(`stream partition ${partition}: delivering ${claimed.length} pending entries again`)
      yield* dispatch(claimed)
    }
    while (true) {
      if (!leaseHeld()) {
        yield* Effect.sleep(leaseCheckMillis)
        continue
      }
      const entries = yield* whileOwner(consumer.next(runtime.batchSize, runtime.pollMillis))
      if (entries.length > 0) yield* dispatch(entries)
    }
  }).pipe(
    // A newer agent reads the partition (this silo lost it during a pause): deliver nothing
    // more; what was dispatched settles, and this activation is on its way out.
    Effect.catchTag("ConsumerFenced", (fenced) =>
      Effect.andThen(Effect.logInfo(`${fenced.message}: this agent stops reading`), Effect.never))
  )

  /**
   * Offers the stream's history from `from` up to `until` to a lane that holds its live
   * events back meanwhile (`Lane.startReplay`), then lets them follow. Runs on a fiber of its
   * own: the `Subscribe` call has returned by then, so a subscriber that rewinds from its own
   * handler is not waiting on its own deliveries.
   */
  const replay = (lane: Lane, from: Position, until: string) =>
    Effect.scoped(Effect.gen(function*() {
      const { key, namespace } = lane.identity
      const reader = yield* provider.reader(partition)
      let position: Position = from
      while (!lane.closed) {
        const batch = yield* reader.read(position, 1_000, 0)
        if (batch.length === 0) break
        for (const entry of batch) {
          if (compare(entry.token, until) > 0) break
          if (entry.namespace !== namespace || entry.key !== key) continue
          const item: LaneItem = { token: entry.token, value: entry.payload, settlement: undefined }
          while (!lane.offerHistory(item)) yield* lane.awaitRoom(true)
        }
        const last = batch[batch.length - 1]!.token
        if (compare(last, until) >= 0) break
        position = { _tag: "After", token: last }
      }
    })).pipe(
      Effect.catch((error) =>
        Effect.logWarning(`stream ${lane.identity.namespace}/${lane.identity.key}: the replay for ${lane.identity.subscription} stopped (${error.message}); live events follow`)
      ),
      Effect.ensuring(Effect.sync(() => lane.endReplay()))
    )

  /**
   * Stores a subscription and makes it current here. With `from`, its lane replays the
   * history up to the partition's newest entry now and skips live entries up to that one;
   * the replay runs after this returns (see `replay`).
   */
  const subscribe = (namespace: string, key: string, id: string, record: SubscriptionRecord, from: Position | undefined) =>
    mutex.withPermits(1)(Effect.gen(function*() {
      yield* provider.subscriptions.put(namespace, key, { id, data: encodeRecord(record) })
      const state = table.get(namespace, key, now())
      if (state.explicit !== undefined) state.explicit = [...state.explicit.filter((s) => s.id !== id), { id, record }]
      const existing = state.lanes.get(id)
      if (existing !== undefined) existing.strategy = record.backpressure // a re-subscription may change it
      if (from === undefined) return
      const until = yield* provider.lastToken(partition)
      if (until === undefined) return
      const lane = laneFor(state, id, record.type, () => record.id, record.message, record.backpressure)
      lane.startReplay(until)
      runLane(replay(lane, from, until))
    }))

  const unsubscribe = (namespace: string, key: string, id: string) =>
    mutex.withPermits(1)(Effect.gen(function*() {
      const removed = yield* provider.subscriptions.remove(namespace, key, id)
      const state = table.find(namespace, key)
      if (state !== undefined) {
        if (state.explicit !== undefined) state.explicit = state.explicit.filter((s) => s.id !== id)
        const lane = state.lanes.get(id)
        if (lane !== undefined) {
          state.lanes.delete(id)
          lane.close()
        }
      }
      return removed
    }))

  // --- Life --------------------------------------------------------------------------------

  const sweep = Effect.sync(() => table.sweep(now() - forgetAfterMillis))

  runtime.lanes.set(partition, table)
  const stopped = Deferred.makeUnsafe<void>()
  yield* Effect.forkIn(acker, scope)
  yield* Effect.forkIn(Effect.forever(Effect.andThen(Effect.sleep(forgetAfterMillis / 2), sweep)), scope)
  const reader = yield* Effect.forkIn(Effect.raceFirst(reading, Deferred.await(stopped)), scope)
  /**
   * Stops reading, lets deliveries under way finish (up to `drainMillis`), acknowledges
   * them. Once: `Streams.layer` runs it before its provider closes (the silo deactivates
   * this agent only after that), and the activation's close runs it again.
   */
  let stopping: Deferred.Deferred<void> | undefined
  const stop = Effect.suspend(() => {
    if (stopping !== undefined) return Deferred.await(stopping)
    const done = stopping = Deferred.makeUnsafe<void>()
    return Effect.ensuring(drain, Deferred.succeed(done, undefined))
  })
  const drain = Effect.gen(function*() {
    yield* Deferred.succeed(stopped, undefined)
    yield* Fiber.await(reader)
    // On the real clock: a silo on the TestClock must not wait for a delivery that waits for it.
    yield* FiberSet.awaitEmpty(laneFibers).pipe(
      Effect.timeout(runtime.drainMillis),
      Effect.ignore,
      Effect.provideService(Clock.Clock, Clock.Clock.defaultValue())
    )
    yield* flushAcks
    if (runtime.lanes.get(partition) === table) runtime.lanes.delete(partition)
  })
  runtime.agents.add(stop)
  // Runs before the lanes' fibers and the consumer close (finalizers run in reverse order).
  yield* Effect.addFinalizer(() => Effect.ensuring(stop, Effect.sync(() => runtime.agents.delete(stop))))

  return Agent.of({
    Subscribe: ({ from, id, key, namespace, record }) => subscribe(namespace, key, id, record, from),
    Unsubscribe: ({ id, key, namespace }) => unsubscribe(namespace, key, id),
    Touch: () => Effect.void
  })
}), { idleTimeout: "never", whenFull: "suspend" })

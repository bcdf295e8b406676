/**
 * The actor of the multi-process reminders test: `Beat`, whose one message `Tick` is what
 * its reminders deliver. Each delivery appends a record to a Redis list of the run (RPUSH,
 * acknowledged before the turn ends), so the test reads every delivery of every silo, a
 * killed one's included: a tick whose turn completed is in the list.
 */
import { Clock, Context, Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, Reminders } from "../../../src/index.ts"
import { Cluster } from "../../../src/Cluster/index.ts"

export const Tick = Rpc.make("Tick")

export const Beat = Actor.make("RemBeat", [Tick])

/** One delivered tick. */
export const TickRecord = Schema.Struct({
  /** The Beat actor's id. */
  actor: Schema.String,
  /** The reminder's name. */
  name: Schema.String,
  /** The tick's due time (epoch ms). */
  due: Schema.Number,
  attempt: Schema.Number,
  /** The silo that ran the turn. */
  silo: Schema.String,
  /** When the turn started (epoch ms; one system clock for every process of the machine). */
  at: Schema.Number
})
export type TickRecord = typeof TickRecord.Type

export const encodeTick = (record: TickRecord): string => JSON.stringify(record)
export const decodeTick = Schema.decodeUnknownSync(Schema.fromJsonString(TickRecord))

/** The Redis list of the run's deliveries. */
export const ticksKey = (keyPrefix: string): string => `${keyPrefix}:ticks`

/** Where a silo appends its deliveries. */
export class TickLog extends Context.Service<TickLog, {
  readonly append: (record: TickRecord) => Effect.Effect<void>
}>()("test/TickLog") {}

export const BeatLive = Beat.toLayer(
  Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    const silo = (yield* Cluster).self!.id
    const log = yield* TickLog
    return Beat.of({
      Tick: () =>
        Effect.gen(function*() {
          const at = yield* Clock.currentTimeMillis
          const tick = yield* Reminders.currentTick
          if (tick === undefined) return yield* Effect.die(new Error("Tick outside a reminder's turn"))
          yield* log.append({ actor: id, name: tick.reminder, due: tick.due, attempt: tick.attempt, silo, at })
        })
    })
  }),
  { idleTimeout: "never" }
)

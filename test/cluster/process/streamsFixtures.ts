/**
 * What the multi-process streams test (`StreamsMultiProcess.test.ts`) and its silo
 * processes (`streamsSiloMain.ts`) share: the stream contract, the subscriber actor and the
 * format of the delivery log.
 *
 * Every event of stream ("readings", `dev-<i>`) carries its sequence number in that stream.
 * The implicit subscription makes each event a `Record` turn of `Device/dev-<i>`, which
 * appends `<token>:<seq>:<at>:<silo id>` to the Redis list `<keyPrefix>:log:dev-<i>` (RPUSH,
 * answered before the turn returns): a delivery that returned is in the log, whichever
 * process ran it and whatever became of that process afterwards.
 */
import { Clock, Context, Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, StreamContract, Streams } from "../../../src/index.ts"
import { Cluster } from "../../../src/Cluster/index.ts"

export const Reading = Schema.Struct({ seq: Schema.Int })
export const Readings = StreamContract.make("readings", Reading)
export const Record = Rpc.make("Record", { payload: Reading })
export const Device = Actor.make("StrDevice", [Record])

/** Every silo passes the same implicit subscriptions to `Streams.layer`. */
export const DeviceReadings = Streams.implicit(Readings, Device, "Record")

/** The key prefix of the stream provider's keys (partitions, subscriptions), under the run's. */
export const streamsPrefix = (keyPrefix: string): string => `${keyPrefix}:streams`

/** The Redis list of the deliveries of stream `key`. */
export const logKey = (keyPrefix: string, key: string): string => `${keyPrefix}:log:${key}`

/** One delivery, as logged. */
export interface Delivery {
  readonly token: string
  readonly seq: number
  /** When the turn started (epoch ms; one system clock for every process of the machine). */
  readonly at: number
  /** The silo that ran the turn. */
  readonly silo: string
}

export const encodeDelivery = (d: Delivery): string => `${d.token}:${d.seq}:${d.at}:${d.silo}`

export const decodeDelivery = (line: string): Delivery => {
  const first = line.indexOf(":")
  const second = line.indexOf(":", first + 1)
  const third = line.indexOf(":", second + 1)
  if (first < 0 || second < 0 || third < 0) throw new Error(`not a delivery record: ${line}`)
  return {
    token: line.slice(0, first),
    seq: Number(line.slice(first + 1, second)),
    at: Number(line.slice(second + 1, third)),
    silo: line.slice(third + 1)
  }
}

/** Where a silo appends its deliveries. */
export class DeliveryLog extends Context.Service<DeliveryLog, {
  readonly append: (key: string, record: string) => Effect.Effect<void>
}>()("test/StreamsDeliveryLog") {}

export const DeviceLive = Device.toLayer(
  Effect.gen(function*() {
    const silo = (yield* Cluster).self!.id
    const log = yield* DeliveryLog
    return Device.of({
      Record: ({ seq }) =>
        Effect.gen(function*() {
          const at = yield* Clock.currentTimeMillis
          const event = yield* Streams.currentEvent
          if (event === undefined) return yield* Effect.die(new Error("Record outside a stream delivery"))
          yield* log.append(event.stream.key, encodeDelivery({ token: event.token, seq, at, silo }))
        })
    })
  }),
  { idleTimeout: "never" }
)

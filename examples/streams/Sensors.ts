/**
 * The contracts of the streams example, shared by the silos (`silo.ts`, which implement the
 * actors) and the client (`../streams.ts`, which publishes the readings, subscribes the
 * fleet and reads the results back from Redis).
 *
 * - `Readings`: the stream contract; stream ("readings", `<sensor id>`) carries one
 *   sensor's readings, in the order it published them.
 * - `Device`: one per sensor. Its implicit subscription (`DeviceReadings`) makes every event
 *   of ("readings", k) a `Record` turn of `Device/k`, activating it: nobody subscribes it.
 *   It keeps running statistics in a state record in Redis.
 * - `Fleet`: one actor (`Fleet/fleet`), subscribed durably to every sensor's stream by the
 *   client; every event is a `Tally` turn of it. It keeps fleet-wide totals in Redis.
 *
 * Delivery is at least once: an event that a silo delivered but did not acknowledge before
 * it died is delivered again by the partition's next owner. Both actors keep the token of
 * the last event they handled (per stream) in the same record as what it counted, written
 * in the same turn, so a redelivery is recognised (`StreamToken.isAfter`) and skipped.
 */
import { Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, StateConflict, StoreError, StreamContract, Streams } from "quark"

/** One reading of one sensor. */
export const Reading = Schema.Struct({
  sensor: Schema.String,
  /** 1, 2, 3... per sensor: the order the sensor published them in. */
  seq: Schema.Int,
  celsius: Schema.Number,
  /** When the sensor took it (epoch ms). */
  at: Schema.Number
})
export type Reading = typeof Reading.Type

export const Readings = StreamContract.make("readings", Reading)

/** What a device keeps (state record "stats", in Redis). */
export const DeviceStats = Schema.Struct({
  /** Readings counted: each event once, however often it was delivered. */
  count: Schema.Number,
  min: Schema.NullOr(Schema.Number),
  max: Schema.NullOr(Schema.Number),
  last: Schema.NullOr(Schema.Number),
  lastSeq: Schema.Number,
  /** Readings whose sequence was not the one after the last counted (should stay 0). */
  outOfOrder: Schema.Number,
  /** The token of the last event counted: a delivery not after it is a redelivery. */
  lastToken: Schema.NullOr(Schema.String)
})
export type DeviceStats = typeof DeviceStats.Type

/** Per sensor, what the fleet counted of its stream. */
export const SensorTally = Schema.Struct({
  count: Schema.Number,
  lastSeq: Schema.Number,
  outOfOrder: Schema.Number,
  lastToken: Schema.String
})

/** What the fleet keeps (state record "totals", in Redis). */
export const FleetTotals = Schema.Struct({
  readings: Schema.Number,
  min: Schema.NullOr(Schema.Number),
  max: Schema.NullOr(Schema.Number),
  bySensor: Schema.Record(Schema.String, SensorTally)
})
export type FleetTotals = typeof FleetTotals.Type

const StateErrors = Schema.Union([StateConflict, StoreError])

export const Record = Rpc.make("Record", { payload: Reading, error: StateErrors })
export const Device = Actor.make("Device", [Record])

export const Tally = Rpc.make("Tally", { payload: Reading, error: StateErrors })
export const Fleet = Actor.make("Fleet", [Tally])
export const fleetId = "fleet"

/** Every silo passes the same implicit subscriptions to `Streams.layer`. */
export const DeviceReadings = Streams.implicit(Readings, Device, "Record")

/** Fixed for the life of the streams' data: the silos and the client must agree. */
export const partitions = 8

/** The key prefix of one run's Redis keys: the actors' state and, under it, the streams. */
export const storePrefix = (cluster: string): string => `quark:${cluster}`
export const streamsPrefix = (cluster: string): string => `${storePrefix(cluster)}:streams`

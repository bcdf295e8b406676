/**
 * Plain counters and histograms that the hot path updates with an add, registered in
 * effect's `MetricRegistry` as pull-based metrics: an exporter (Prometheus, OTLP) reads
 * them through the registry like any effect `Metric`. Updating an effect metric looks its
 * series up in the registry by key on every update; a turn cannot afford that, a scrape
 * can afford reading a field.
 *
 * @internal
 */
import { type Context, Metric } from "effect"
import type { MetricDefinition } from "../MetricCatalog.ts"

/** @internal */
export class CounterCell {
  value = 0
}

/**
 * A histogram with fixed bucket bounds, in the unit it is observed in (milliseconds), read
 * out in the catalog's unit (seconds) through `scale`. `zeros` counts observations of 0
 * without a bucket search (most turns never wait in a mailbox).
 *
 * @internal
 */
export class HistogramCell {
  readonly bounds: Float64Array
  readonly counts: Float64Array
  count = 0
  sum = 0
  min = Number.MAX_VALUE
  max = -Number.MAX_VALUE
  zeros = 0

  constructor(bounds: ReadonlyArray<number>) {
    this.bounds = Float64Array.from(bounds)
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(value: number): void {
    const bounds = this.bounds
    // Most observations are small: a scan from the low end is shorter than a binary search.
    let i = 0
    while (i < bounds.length && value > bounds[i]!) i++
    this.counts[i]!++
    this.count++
    this.sum += value
    if (value < this.min) this.min = value
    if (value > this.max) this.max = value
  }

  /** The state effect's exporters read: cumulative buckets, as `Metric.histogram` keeps them. */
  state(scale: number): Metric.HistogramState {
    const buckets: Array<[number, number]> = []
    let cumulated = this.zeros
    for (let i = 0; i < this.bounds.length; i++) {
      cumulated += this.counts[i]!
      buckets.push([this.bounds[i]! * scale, cumulated])
    }
    const count = this.count + this.zeros
    return {
      buckets,
      count,
      min: this.zeros > 0 ? 0 : this.count === 0 ? 0 : this.min * scale,
      max: this.count === 0 ? 0 : this.max * scale,
      sum: this.sum * scale
    }
  }
}

/** Registrations to remove when their silo closes. @internal */
export class Registrations {
  private readonly removers: Array<{ remove(): void }> = []
  private readonly context: Context.Context<never>
  constructor(context: Context.Context<never>) {
    this.context = context
  }

  counter(definition: MetricDefinition, attributes: Readonly<Record<string, string>>, read: () => number): void {
    const metric = Metric.counter(definition.name, { description: definition.description, attributes, incremental: true })
    this.removers.push(Metric.registerUnsafe(metric, this.context, {
      get: () => ({ count: read(), incremental: true }),
      update: noop,
      modify: noop
    }))
  }

  gauge(definition: MetricDefinition, attributes: Readonly<Record<string, string>>, read: () => number): void {
    const metric = Metric.gauge(definition.name, { description: definition.description, attributes })
    this.removers.push(Metric.registerUnsafe(metric, this.context, {
      get: () => ({ value: read() }),
      update: noop,
      modify: noop
    }))
  }

  histogram(definition: MetricDefinition, attributes: Readonly<Record<string, string>>, cell: HistogramCell): void {
    const metric = Metric.histogram(definition.name, {
      description: definition.description,
      attributes,
      boundaries: Array.from(cell.bounds, (bound) => bound * definition.scale)
    })
    this.removers.push(Metric.registerUnsafe(metric, this.context, {
      get: () => cell.state(definition.scale),
      update: noop,
      modify: noop
    }))
  }

  removeAll(): void {
    for (const registration of this.removers.splice(0)) registration.remove()
  }
}

const noop = (): void => {}

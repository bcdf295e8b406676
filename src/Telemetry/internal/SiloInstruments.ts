/**
 * The silo's `TurnObserver`: per-type and per-message cells for the metric catalog, spans
 * for sampled turns, activations and supervision decisions, and the profiler's feed.
 *
 * Cells are made the first time a type or message is seen and registered in effect's
 * metric registry at once; the hot path then costs a field read, two clock reads and a few
 * adds per turn. Spans cost only for sampled turns: an unsampled root turn runs under a
 * shared unsampled parent, so the calls it makes are not sampled either and allocate no span.
 *
 * @internal
 */
import { Effect, type Exit, type Scope, Tracer } from "effect"
import { formatAddress } from "../../Actor/ActorAddress.ts"
import type { Activation } from "../../Actor/internal/Activation.ts"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import { RemoteFrame, type MessageInfo, type Turn, TurnKind } from "../../Actor/internal/Turn.ts"
import type { TurnObserver } from "../../Actor/internal/TurnObserver.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import * as Attributes from "../Attributes.ts"
import * as Catalog from "../MetricCatalog.ts"
import { CounterCell, HistogramCell, Registrations } from "./Cells.ts"

/** What a silo's telemetry records; `Telemetry.layer` resolves it from the user's config. @internal */
export interface InstrumentOptions {
  readonly metrics: boolean
  /** Fraction of root turns traced (0 to 1); undefined: tracing off. */
  readonly sampleRatio: number | undefined
  /** Told of every turn that ends, with its activation's key (the profiler). */
  readonly onTurn: ((type: string, message: string, key: string, millis: number, failed: boolean) => void) | undefined
  /** The random source of the sampler (tests fix it). */
  readonly random: () => number
}

/** Per message: outcome counters and run-time histogram. */
class MessageCells {
  readonly ok = new CounterCell()
  readonly error = new CounterCell()
  readonly defect = new CounterCell()
  readonly interrupted = new CounterCell()
  readonly duration = new HistogramCell(Catalog.durationBoundsMillis)
  readonly errorsByTag = new Map<string, CounterCell>()
}

/** Per type. */
class TypeCells {
  readonly messages = new Map<MessageInfo, MessageCells>()
  readonly activations = new CounterCell()
  readonly activationFailures = new CounterCell()
  readonly activationDuration = new HistogramCell(Catalog.durationBoundsMillis)
  readonly deactivations = new CounterCell()
  readonly mailboxWait = new HistogramCell(Catalog.durationBoundsMillis)
  readonly directives = new Map<string, CounterCell>()
  readonly slot: TypeSlot
  constructor(slot: TypeSlot) {
    this.slot = slot
  }
}

const turnKinds = ["ask", "tell", "tick", "frame"] as const

/** The shared parent of unsampled turns (see the module doc). */
const unsampledParent = Tracer.externalSpan({
  traceId: "00000000000000000000000000000000",
  spanId: "0000000000000000",
  sampled: false
})

/** Builds a silo's observer in the silo's scope; its metrics leave the registry with it. @internal */
export const make = (
  router: LocalRouter,
  options: InstrumentOptions
): Effect.Effect<TurnObserver, never, Scope.Scope> =>
  Effect.gen(function*() {
    const context = yield* Effect.context<never>()
    const registrations = new Registrations(context)
    yield* Effect.addFinalizer(() => Effect.sync(() => registrations.removeAll()))
    const observer = new SiloInstruments(router, options, registrations)
    return observer
  })

class SiloInstruments implements TurnObserver {
  readonly traceTurn: TurnObserver["traceTurn"]
  readonly unsampled: Tracer.AnySpan | undefined
  private readonly types = new Map<TypeSlot, TypeCells>()
  private readonly router: LocalRouter
  private readonly options: InstrumentOptions
  private readonly registrations: Registrations

  constructor(router: LocalRouter, options: InstrumentOptions, registrations: Registrations) {
    this.router = router
    this.options = options
    this.registrations = registrations
    const ratio = options.sampleRatio
    this.unsampled = ratio === undefined ? undefined : unsampledParent
    this.traceTurn = ratio === undefined ? undefined : (turn, handled, parent) => {
      if (parent === undefined || parent === unsampledParent) {
        if (ratio <= 0 || options.random() >= ratio) return handled
        return this.turnSpan(turn, handled, true)
      }
      return parent.sampled ? this.turnSpan(turn, handled, false) : handled
    }
  }

  now(): number {
    return performance.now()
  }

  // ---------------------------------------------------------------------------
  // Turns

  turnStarted(turn: Turn): number {
    const now = performance.now()
    if (this.options.metrics) {
      const cells = this.typeCells(turn.activation!.slot)
      if (turn.queuedAt === 0) cells.mailboxWait.zeros++
      else cells.mailboxWait.observe(now - turn.queuedAt)
    }
    return now
  }

  turnEnded(turn: Turn, startedAt: number, exit: Exit.Exit<unknown, unknown>): void {
    const millis = performance.now() - startedAt
    const act = turn.activation!
    const info = turn.info!
    let failed = false
    if (this.options.metrics) {
      const cells = this.messageCells(this.typeCells(act.slot), info)
      cells.duration.observe(millis)
      if (exit._tag === "Success") {
        cells.ok.value++
      } else {
        failed = true
        this.countFailure(act.slot, info, cells, exit.cause)
      }
    } else {
      failed = exit._tag === "Failure"
    }
    this.options.onTurn?.(act.slot.name, info.tag, act.key, millis, failed)
  }

  private countFailure(slot: TypeSlot, info: MessageInfo, cells: MessageCells, cause: Exit.Failure<unknown, unknown>["cause"]): void {
    let tag: string
    const reasons = cause.reasons
    const fail = reasons.find((reason) => reason._tag === "Fail")
    if (fail !== undefined && fail._tag === "Fail") {
      const error = fail.error as { readonly _tag?: unknown } | null
      tag = typeof error?._tag === "string" ? error._tag : "UnknownError"
      // A defect in an ask reaches the caller as ActorDefect: counted as a defect.
      if (tag === "ActorDefect") cells.defect.value++
      else cells.error.value++
    } else if (reasons.some((reason) => reason._tag === "Die")) {
      tag = "ActorDefect"
      cells.defect.value++
    } else {
      cells.interrupted.value++
      return
    }
    let counter = cells.errorsByTag.get(tag)
    if (counter === undefined) {
      // Error tags are a contract's declared errors and Quark's own: a bounded set.
      counter = new CounterCell()
      cells.errorsByTag.set(tag, counter)
      const read = counter
      this.registrations.counter(Catalog.callErrorsTotal, { type: slot.name, message: info.tag, error: tag }, () => read.value)
    }
    counter.value++
  }

  private turnSpan(turn: Turn, handled: Effect.Effect<any, any>, root: boolean): Effect.Effect<any, any> {
    const act = turn.activation!
    const type = act.slot.name
    const tag = turn.info!.tag
    const remote = turn.caller instanceof RemoteFrame || turn.span?._tag === "ExternalSpan"
    const attributes: Record<string, unknown> = {
      [Attributes.rpcSystem]: Attributes.rpcSystemValue,
      [Attributes.rpcService]: type,
      [Attributes.rpcMethod]: tag,
      [Attributes.actorType]: type,
      [Attributes.actorId]: act.id,
      [Attributes.message]: tag,
      [Attributes.turnKind]: turnKinds[turn.kind],
      [Attributes.correlationId]: String(turn.correlation)
    }
    if (this.router.siloId !== undefined) attributes[Attributes.silo] = this.router.siloId
    const traced = Effect.tapError(handled, (error) =>
      Effect.annotateCurrentSpan(Attributes.errorType, errorTag(error)))
    return Effect.withSpan(traced, `${type}/${tag}`, {
      kind: remote ? "server" : turn.kind === TurnKind.Ask ? "internal" : "consumer",
      attributes,
      ...(root ? { root: true } : turn.span !== undefined ? { parent: turn.span } : {})
    })
  }

  // ---------------------------------------------------------------------------
  // Lifecycle

  activationEnded(act: Activation, startedAt: number, failure: string | undefined): void {
    if (!this.options.metrics) return
    const cells = this.typeCells(act.slot)
    cells.activationDuration.observe(performance.now() - startedAt)
    if (failure === undefined) cells.activations.value++
    else cells.activationFailures.value++
  }

  traceActivation<A, E, R>(act: Activation, build: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    const ratio = this.options.sampleRatio
    if (ratio === undefined || ratio <= 0 || this.options.random() >= ratio) return build
    return Effect.withSpan(build, `quark.activate ${act.slot.name}`, {
      root: true,
      attributes: this.lifecycleAttributes(act)
    })
  }

  stopped(act: Activation): void {
    if (this.options.metrics) this.typeCells(act.slot).deactivations.value++
  }

  supervised(act: Activation, directive: string, _failureTag: string): void {
    if (!this.options.metrics) return
    const cells = this.typeCells(act.slot)
    let counter = cells.directives.get(directive)
    if (counter === undefined) {
      counter = new CounterCell()
      cells.directives.set(directive, counter)
      const read = counter
      this.registrations.counter(Catalog.supervisionDecisionsTotal, { type: act.slot.name, directive }, () => read.value)
    }
    counter.value++
  }

  traceSupervision<A, E, R>(act: Activation, decision: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    if (this.options.sampleRatio === undefined) return decision
    return Effect.withSpan(decision, `quark.supervise ${act.slot.name}`, {
      root: true,
      attributes: this.lifecycleAttributes(act)
    })
  }

  private lifecycleAttributes(act: Activation): Record<string, unknown> {
    const attributes: Record<string, unknown> = {
      [Attributes.actorType]: act.slot.name,
      [Attributes.actorId]: act.id,
      [Attributes.actorAddress]: formatAddress(act.address)
    }
    if (this.router.siloId !== undefined) attributes[Attributes.silo] = this.router.siloId
    return attributes
  }

  // ---------------------------------------------------------------------------
  // Cells

  private typeCells(slot: TypeSlot): TypeCells {
    let cells = this.types.get(slot)
    if (cells === undefined) {
      cells = new TypeCells(slot)
      this.types.set(slot, cells)
      this.registerType(cells)
    }
    return cells
  }

  private messageCells(type: TypeCells, info: MessageInfo): MessageCells {
    let cells = type.messages.get(info)
    if (cells === undefined) {
      cells = new MessageCells()
      type.messages.set(info, cells)
      const made = cells
      const attributes = { type: type.slot.name, message: info.tag }
      const r = this.registrations
      r.counter(Catalog.turnsTotal, { ...attributes, outcome: "ok" }, () => made.ok.value)
      r.counter(Catalog.turnsTotal, { ...attributes, outcome: "error" }, () => made.error.value)
      r.counter(Catalog.turnsTotal, { ...attributes, outcome: "defect" }, () => made.defect.value)
      r.counter(Catalog.turnsTotal, { ...attributes, outcome: "interrupted" }, () => made.interrupted.value)
      r.histogram(Catalog.turnDuration, attributes, made.duration)
    }
    return cells
  }

  private registerType(cells: TypeCells): void {
    const slot = cells.slot
    const attributes = { type: slot.name }
    const r = this.registrations
    r.gauge(Catalog.activationsActive, attributes, () => slot.activations.size)
    r.gauge(Catalog.mailboxDepth, attributes, () => {
      let depth = 0
      for (const act of slot.activations.values()) depth += act.mailboxDepth
      return depth
    })
    r.counter(Catalog.activationsTotal, attributes, () => cells.activations.value)
    r.counter(Catalog.activationFailuresTotal, attributes, () => cells.activationFailures.value)
    r.histogram(Catalog.activationDuration, attributes, cells.activationDuration)
    r.counter(Catalog.deactivationsTotal, attributes, () => cells.deactivations.value)
    r.histogram(Catalog.mailboxWait, attributes, cells.mailboxWait)
  }
}

const errorTag = (error: unknown): string => {
  const tag = (error as { readonly _tag?: unknown } | null)?._tag
  return typeof tag === "string" ? tag : "UnknownError"
}

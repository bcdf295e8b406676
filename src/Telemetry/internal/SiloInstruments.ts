/**
 * The silo's `TurnObserver`: per-type and per-message cells for the metric catalog, spans
 * for sampled turns, activations and supervision decisions, and the profiler's feed.
 *
 * Cells are made the first time a type or message is seen and registered in effect's
 * metric registry at once; the hot path then costs a few field reads and adds per turn, and
 * two clock reads on one turn in `timeOneTurnIn` (every turn with `onTurn`). Spans cost
 * only for sampled turns: an unsampled root turn runs under a shared unsampled parent, so
 * the calls it makes are not sampled either and allocate no span.
 *
 * @internal
 */
import { Clock, Context, Effect, type Exit, Option, type Scope, Tracer } from "effect"
import { type ActorAddress, formatAddress } from "../../Actor/ActorAddress.ts"
import type { Activation } from "../../Actor/internal/Activation.ts"
import type { LocalRouter } from "../../Actor/internal/LocalRouter.ts"
import { RemoteFrame, type MessageInfo, type Turn, TurnKind } from "../../Actor/internal/Turn.ts"
import type { TurnObserver } from "../../Actor/internal/TurnObserver.ts"
import type { TypeSlot } from "../../Actor/internal/TypeSlot.ts"
import * as Attributes from "../Attributes.ts"
import * as Catalog from "../MetricCatalog.ts"
import { CounterCell, HistogramCell, Registrations } from "./Cells.ts"
import type { OnTurn } from "./TurnListeners.ts"

/** What a silo's telemetry records; `Telemetry.layer` resolves it from the user's config. @internal */
export interface InstrumentOptions {
  readonly metrics: boolean
  /** Fraction of root turns traced (0 to 1); undefined: tracing off. */
  readonly sampleRatio: number | undefined
  /** Told of every turn that ends, with its activation's key (the profiler). */
  readonly onTurn: OnTurn | undefined
  /** Turns timed: one in this many (every turn when `onTurn` is set). */
  readonly timeOneTurnIn: number
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
  lastInfo: MessageInfo | undefined = undefined
  lastCells: MessageCells | undefined = undefined
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
    return new SiloInstruments(router, options, registrations)
  })

class SiloInstruments implements TurnObserver {
  readonly startSpan: TurnObserver["startSpan"]
  readonly traceCall: TurnObserver["traceCall"]
  readonly traceRoot: TurnObserver["traceRoot"]
  readonly timesTurns: boolean
  private readonly timeEvery: number
  private untilTimed = 1
  readonly unsampled: Tracer.AnySpan | undefined
  private readonly router: LocalRouter
  private readonly options: InstrumentOptions
  private readonly registrations: Registrations

  constructor(router: LocalRouter, options: InstrumentOptions, registrations: Registrations) {
    this.router = router
    this.options = options
    this.registrations = registrations
    const ratio = options.sampleRatio
    this.unsampled = ratio === undefined ? undefined : unsampledParent
    this.traceCall = ratio === undefined ? undefined : this.clientSpan.bind(this)
    this.traceRoot = ratio === undefined ? undefined : (name, attributes, effect) => {
      if (ratio <= 0 || options.random() >= ratio) return effect
      const all: Record<string, unknown> = { ...attributes }
      if (router.siloId !== undefined) all[Attributes.silo] = router.siloId
      return Effect.withSpan(effect, name, { captureStackTrace: false, root: true, attributes: all })
    }
    this.timesTurns = options.metrics || options.onTurn !== undefined
    this.timeEvery = options.onTurn !== undefined ? 1 : Math.max(1, Math.floor(options.timeOneTurnIn))
    // A turn with no parent span is a root: it draws. One under a parent follows it: the
    // shared unsampled parent of an untraced turn says "not sampled" like any other.
    this.startSpan = ratio === undefined ? undefined : (turn, parent) => {
      if (parent === undefined) {
        return ratio <= 0 || options.random() >= ratio ? undefined : this.turnSpan(turn, undefined)
      }
      return parent.sampled ? this.turnSpan(turn, parent) : undefined
    }
  }

  private clientSpan<A, E>(
    parent: Tracer.AnySpan | undefined,
    address: ActorAddress,
    tag: string,
    oneWay: boolean,
    call: Effect.Effect<A, E>
  ): Effect.Effect<A, E> {
    const ratio = this.options.sampleRatio!
    const root = parent === undefined
    if (root ? ratio <= 0 || this.options.random() >= ratio : !parent.sampled) {
      return root ? Effect.withParentSpan(call, unsampledParent) : call
    }
    const attributes: Record<string, unknown> = {
      [Attributes.rpcSystem]: Attributes.rpcSystemValue,
      [Attributes.rpcService]: address.type,
      [Attributes.rpcMethod]: tag,
      [Attributes.actorType]: address.type,
      [Attributes.actorId]: address.id,
      [Attributes.message]: tag,
      [Attributes.turnKind]: oneWay ? "tell" : "ask"
    }
    if (this.router.siloId !== undefined) attributes[Attributes.silo] = this.router.siloId
    const traced = Effect.tapError(call, (error) => Effect.annotateCurrentSpan(Attributes.errorType, errorTag(error)))
    return Effect.withSpan(traced, `${address.type}/${tag}`, {
      captureStackTrace: false,
      kind: oneWay ? "producer" : "client",
      attributes
    })
  }

  now(): number {
    return performance.now()
  }

  // ---------------------------------------------------------------------------
  // Turns

  turnStarted(turn: Turn): number {
    // A clock read costs ~60 ns, a tenth of a no-op turn: one turn in `timeEvery` is timed.
    if (--this.untilTimed > 0) return -1
    this.untilTimed = this.timeEvery
    const now = performance.now()
    if (this.options.metrics) {
      const cells = this.typeCells(turn.activation!.slot)
      if (turn.queuedAt === 0) cells.mailboxWait.zeros++
      else cells.mailboxWait.observe(now - turn.queuedAt)
    }
    return now
  }

  turnEnded(turn: Turn, startedAt: number, exit: Exit.Exit<unknown, unknown>): void {
    const millis = startedAt < 0 ? -1 : performance.now() - startedAt
    const act = turn.activation!
    const info = turn.info!
    let failed = false
    if (this.options.metrics) {
      const cells = this.messageCells(this.typeCells(act.slot), info)
      if (millis >= 0) cells.duration.observe(millis)
      if (exit._tag === "Success") {
        cells.ok.value++
      } else {
        failed = true
        this.countFailure(act.slot, info, cells, exit.cause)
      }
    } else {
      failed = exit._tag === "Failure"
    }
    // With `onTurn` every turn is timed (see the constructor).
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

  /**
   * The span of a sampled turn, made with the tracer of the actor's context (not through
   * `Effect.withSpan`: that captures a stack trace and copies the context twice per span;
   * the router puts the span into the context it builds for the turn anyway).
   */
  private turnSpan(turn: Turn, parent: Tracer.AnySpan | undefined): Tracer.Span {
    const act = turn.activation!
    const type = act.slot.name
    const tag = turn.info!.tag
    const context = act.slot.turnContext
    // An ask from another silo has a remote frame at the root of its chain; a tell's origin
    // is not kept, so a tell is a consumer wherever it came from.
    const remote = turn.caller instanceof RemoteFrame
    const span = Context.get(context, Tracer.Tracer).span({
      name: `${type}/${tag}`,
      parent: parent === undefined ? Option.none() : Option.some(parent),
      annotations: Context.empty(),
      links: [],
      startTime: Context.get(context, Clock.Clock).currentTimeNanosUnsafe(),
      kind: remote ? "server" : turn.kind === TurnKind.Ask ? "internal" : "consumer",
      // Not `root` without a parent: a tracer bridged to OpenTelemetry then takes the span
      // active in OpenTelemetry's context (an instrumented HTTP server's) as the parent.
      root: false,
      sampled: true
    })
    span.attribute(Attributes.rpcSystem, Attributes.rpcSystemValue)
    span.attribute(Attributes.rpcService, type)
    span.attribute(Attributes.rpcMethod, tag)
    span.attribute(Attributes.actorType, type)
    span.attribute(Attributes.actorId, act.id)
    span.attribute(Attributes.message, tag)
    span.attribute(Attributes.turnKind, turnKinds[turn.kind])
    span.attribute(Attributes.correlationId, String(turn.correlation))
    if (this.router.siloId !== undefined) span.attribute(Attributes.silo, this.router.siloId)
    return span
  }

  endSpan(span: Tracer.Span, turn: Turn, exit: Exit.Exit<unknown, unknown>): void {
    if (exit._tag === "Failure") {
      const fail = exit.cause.reasons.find((reason) => reason._tag === "Fail")
      span.attribute(Attributes.errorType, fail !== undefined && fail._tag === "Fail" ? errorTag(fail.error) : "ActorDefect")
    }
    span.end(Context.get(turn.activation!.slot.turnContext, Clock.Clock).currentTimeNanosUnsafe(), exit)
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

  traceActivation<A, E, R>(act: Activation, build: Effect.Effect<A, E, R>, parent: Tracer.AnySpan | undefined): Effect.Effect<A, E, R> {
    const ratio = this.options.sampleRatio
    if (ratio === undefined) return build
    // Part of the trace of the call that caused it, or a root that draws like a root turn.
    if (parent !== undefined ? !parent.sampled : ratio <= 0 || this.options.random() >= ratio) return build
    return Effect.withSpan(build, `quark.activate ${act.slot.name}`, {
      captureStackTrace: false,
      attributes: this.lifecycleAttributes(act),
      ...(parent === undefined ? {} : { parent })
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
      captureStackTrace: false,
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
    const cached = slot.observed as TypeCells | undefined
    if (cached !== undefined) return cached
    const cells = new TypeCells(slot)
    slot.observed = cells
    this.registerType(cells)
    return cells
  }

  private messageCells(type: TypeCells, info: MessageInfo): MessageCells {
    // A type's turns come in runs of one message: the last one found saves the map lookup.
    if (type.lastInfo === info) return type.lastCells!
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
    type.lastInfo = info
    type.lastCells = cells
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

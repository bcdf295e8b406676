/**
 * A turn: one message on its way through an activation. The same object is the mailbox
 * entry while the message waits, the frame of the call chain while it runs (deadlock
 * detection walks `caller` links), and the carrier of the request context.
 *
 * @since 0.1.0
 */
import { Context, Effect, type Scheduler, type Tracer } from "effect"
import type { ActorAddress } from "../ActorAddress.ts"
import type { Activation } from "./Activation.ts"

/**
 * How a message waits for its reply, if at all. `Frame` is not a message: a frame set by
 * `withRequestContext`.
 *
 * @internal
 */
export const TurnKind = { Ask: 0, Tell: 1, Tick: 2, Frame: 3 } as const
/** @internal */
export type TurnKind = typeof TurnKind[keyof typeof TurnKind]

/** @internal */
export const TurnState = { Queued: 0, Running: 1, Ended: 2, Cancelled: 3 } as const
/** @internal */
export type TurnState = typeof TurnState[keyof typeof TurnState]

/** Scheduling facts about one message tag of one actor type, computed at registration. @internal */
export interface MessageInfo {
  readonly tag: string
  readonly readOnly: boolean
  readonly interleave: boolean
  /** Whether the turn counts as activity for idle passivation (false only for some timer ticks). */
  readonly keepAlive: boolean
}

/** @internal */
export const emptyMetadata: Readonly<Record<string, string>> = Object.freeze({})

let nextSeq = 1

/** Synchronous resumes in progress on the stack, and the most allowed (see `deliver`). */
let resumeDepth = 0
const maxResumeDepth = 8

/** @internal */
export class Turn {
  /** The activation this turn runs in (undefined for a context frame). */
  activation: Activation | undefined
  /** The turn that is waiting on this one: the call chain. Undefined for tells. */
  readonly caller: Turn | undefined
  readonly seq: number
  readonly correlation: string | number
  readonly metadata: Readonly<Record<string, string>>
  readonly kind: TurnKind
  readonly info: MessageInfo | undefined
  readonly payload: unknown
  state: TurnState = TurnState.Queued as TurnState
  /** How a parked asker learns its fate: `granted` to run, or a failure. */
  outcome: Effect.Effect<unknown, any> | undefined = undefined
  /** Resumes the parked asker's fiber, once it has parked. */
  resume: ((outcome: Effect.Effect<unknown, any>) => void) | undefined = undefined
  /** The parked asker's dispatcher: resuming goes through it, never on the granting stack. */
  dispatcher: Scheduler.SchedulerDispatcher | undefined = undefined
  /** For ticks: called once the tick's turn ends, so the timer can schedule the next. */
  onEnd: (() => void) | undefined = undefined
  /** Its neighbours in the mailbox while it waits there (the mailbox is a list of turns). */
  prev: Turn | undefined = undefined
  next: Turn | undefined = undefined
  /** With telemetry: when it entered the mailbox (0: it never waited there). */
  queuedAt = 0
  /** With tracing: the sender's span of a one-way message (an ask runs in its caller's fiber). */
  span: Tracer.AnySpan | undefined = undefined

  constructor(
    kind: TurnKind,
    activation: Activation | undefined,
    caller: Turn | undefined,
    correlation: string | number | undefined,
    metadata: Readonly<Record<string, string>>,
    info: MessageInfo | undefined,
    payload: unknown
  ) {
    this.kind = kind
    this.activation = activation
    this.caller = caller
    this.seq = nextSeq++
    this.correlation = correlation ?? this.seq
    this.metadata = metadata
    this.info = info
    this.payload = payload
  }

  /**
   * A message turn sent from within `outer` (the sender's current turn or frame). Only an
   * ask extends the chain: a one-way message does not wait, so it starts a new chain but
   * keeps the request context.
   */
  static message(
    kind: TurnKind,
    activation: Activation | undefined,
    outer: Turn | undefined,
    info: MessageInfo,
    payload: unknown
  ): Turn {
    return outer === undefined ?
      new Turn(kind, activation, undefined, undefined, emptyMetadata, info, payload) :
      new Turn(
        kind,
        activation,
        kind === TurnKind.Ask ? outer : undefined,
        outer.correlation,
        outer.metadata,
        info,
        payload
      )
  }

  /**
   * Grants a parked asker its turn. It resumes synchronously, so the turn runs at once
   * instead of waiting a whole scheduling round while it holds the activation; past a
   * small nesting depth it resumes through its dispatcher instead, so that a long line of
   * handoffs does not become a deep stack. Call it only once every state change it
   * depends on is done: the asker may run its whole turn before this returns.
   */
  grant(outcome: Effect.Effect<void>): void {
    this.outcome = outcome
    const resume = this.resume
    if (resume === undefined) return
    if (resumeDepth < maxResumeDepth) {
      resumeDepth++
      try {
        resume(outcome)
      } finally {
        resumeDepth--
      }
    } else {
      this.dispatcher!.scheduleTask(() => resume(outcome), 0)
    }
  }

  /**
   * Sends a parked asker elsewhere: it runs `effect` (which routes the call again) instead
   * of its turn, under a frame with this call's request context and chain. The asker's
   * fiber does not carry them when the call came from another silo (they travel in
   * `caller`, not in the fiber), and the effect reads them from the fiber.
   */
  redirect(effect: Effect.Effect<unknown, unknown>): void {
    this.outcome = Effect.succeed(
      Effect.provideService(effect, CurrentTurn, Turn.contextFrame(this.caller, this.correlation, this.metadata))
    )
    const resume = this.resume
    if (resume !== undefined) this.dispatcher!.scheduleTask(() => resume(this.outcome!), 0)
  }

  /** Fails a parked asker; it resumes through its dispatcher, after the caller's work. */
  reject(failure: Effect.Effect<never, any>): void {
    this.outcome = failure
    const resume = this.resume
    if (resume !== undefined) this.dispatcher!.scheduleTask(() => resume(failure), 0)
  }

  /**
   * The frame an activation effect runs in: it belongs to the activation and stays
   * "running" until the effect ends, so a call from the effect back into its own chain is
   * seen as a cycle.
   */
  static activationFrame(activation: Activation, outer: Turn | undefined): Turn {
    const frame = new Turn(
      TurnKind.Frame,
      activation,
      outer,
      outer?.correlation,
      outer?.metadata ?? emptyMetadata,
      undefined,
      undefined
    )
    frame.state = TurnState.Running
    return frame
  }

  /** A frame that only changes the request context, keeping the chain of `outer`. */
  static contextFrame(
    outer: Turn | undefined,
    correlation: string | number | undefined,
    metadata: Readonly<Record<string, string>>
  ): Turn {
    const frame = new Turn(TurnKind.Frame, undefined, outer, correlation, metadata, undefined, undefined)
    frame.state = TurnState.Ended
    return frame
  }
}

/**
 * The root of a call that arrived from another silo: it carries the caller's request
 * context and the addresses of the running turns that wait on it there (outermost first),
 * so that deadlock detection and chain reentrancy see across silos.
 *
 * @internal
 */
export class RemoteFrame extends Turn {
  readonly chain: ReadonlyArray<ActorAddress>
  /**
   * How long the remote caller waits for its reply (0: no bound). An ask made under this
   * frame that is still queued after that leaves the mailbox instead of running for nobody.
   */
  readonly waitMillis: number
  constructor(
    correlation: string,
    metadata: Readonly<Record<string, string>>,
    chain: ReadonlyArray<ActorAddress>,
    waitMillis = 0
  ) {
    super(TurnKind.Frame, undefined, undefined, correlation, metadata, undefined, undefined)
    this.state = TurnState.Ended
    this.chain = chain
    this.waitMillis = waitMillis
  }
}

/** The position of `address` in the remote part of `outer`'s chain, or -1. @internal */
export const remoteIndexOf = (outer: Turn | undefined, address: ActorAddress): number => {
  let root = outer
  while (root?.caller !== undefined) root = root.caller
  if (!(root instanceof RemoteFrame)) return -1
  const chain = root.chain
  for (let i = 0; i < chain.length; i++) {
    if (chain[i]!.id === address.id && chain[i]!.type === address.type) return i
  }
  return -1
}

/**
 * The addresses of the running turns that wait on a call made from `outer`, outermost
 * first, across silos: what an envelope carries so the receiver can detect a cycle.
 *
 * @internal
 */
export const chainOf = (outer: Turn | undefined): Array<ActorAddress> => {
  const local: Array<ActorAddress> = []
  let root: Turn | undefined = undefined
  for (let t = outer; t !== undefined; t = t.caller) {
    if (t.activation !== undefined && t.state === TurnState.Running) local.push(t.activation.address)
    root = t
  }
  local.reverse()
  return root instanceof RemoteFrame ? [...root.chain, ...local] : local
}

/**
 * The innermost turn (or request-context frame) of the running fiber.
 *
 * @internal
 */
export const CurrentTurn = Context.Reference<Turn | undefined>("quark/Turn/CurrentTurn", {
  defaultValue: () => undefined
})

/**
 * The running turn in `outer`'s chain that belongs to `target`, if any: the start of a
 * cycle should `outer` now wait on `target`.
 *
 * @internal
 */
export const runningTurnOf = (outer: Turn | undefined, target: Activation): Turn | undefined => {
  for (let t = outer; t !== undefined; t = t.caller) {
    if (t.activation === target && t.state === TurnState.Running) return t
  }
  return undefined
}

/**
 * The actor of the chaos test: an account whose balance is a version-checked state record
 * in Redis, written before a deposit is acknowledged. A deposit carries an id, and the ids
 * applied are part of the state, so a deposit retried after an unknown outcome is applied
 * once; the test reads them back to check that every acknowledged deposit is there exactly
 * once.
 *
 * Everything an activation does is recorded where the test can read it afterwards:
 * - every turn appends `<address> <silo id> <pid> <startMs> <endMs> <activation> <tag>
 *   <outcome>` to the process's turn log (a file; a line is written when the turn ends, so
 *   a process killed mid-turn leaves no line for that turn);
 * - every activation records `{ address, silo, pid, start }` when it starts and its `end`
 *   when it is deactivated (a killed process leaves no end), in Redis.
 *
 * Times are {@link nowMillis}: `CLOCK_MONOTONIC` in milliseconds, one clock shared by every
 * process of this machine and never stepped by wall-clock adjustments, so intervals logged
 * by different processes compare directly.
 */
import { type Cause, Context, Effect, Predicate, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorSchema, ActorState, StateConflict, StoreError } from "../../src/index.ts"
import { Cluster } from "../../src/Cluster/index.ts"

/**
 * Milliseconds on `CLOCK_MONOTONIC` (`process.hrtime`): the same clock in every process of
 * this machine. `performance.timeOrigin + performance.now()` would be the wall clock
 * sampled once per process at its start, so two processes started at different times
 * disagree by whatever the wall clock was slewed or stepped in between.
 */
export const nowMillis = (): number => Number(process.hrtime.bigint()) / 1e6

/** The name of the state store the account binds to (the silo provides it on Redis). */
export const storeName = "chaos"

/** What a turn answers: the balance, and which activation on which silo served it. */
export const Served = Schema.Struct({ balance: Schema.Int, silo: Schema.String, activation: Schema.String })

export const Deposit = Rpc.make("Deposit", {
  payload: { depositId: Schema.String, amount: Schema.Int },
  success: Served,
  error: Schema.Union([StateConflict, StoreError])
})
export const Balance = Rpc.make("Balance", { success: Served }).annotate(ActorSchema.ReadOnly, true)

export const ChaosAccount = Actor.make("ChaosAccount", [Deposit, Balance])

/** The stored state: the balance and the ids of the deposits it includes, in order. */
export const AccountState = Schema.Struct({ balance: Schema.Int, applied: Schema.Array(Schema.String) })

/** Where activations and turns are recorded (see the module doc). */
export class Recorder extends Context.Service<Recorder, {
  readonly activated: (activation: string, address: string, silo: string, start: number) => Effect.Effect<void>
  readonly deactivated: (activation: string, end: number) => Effect.Effect<void>
  /** Synchronous: called when a turn ends, whatever its outcome. */
  readonly turn: (line: TurnRecord) => void
}>()("test/chaos/Recorder") {}

export interface TurnRecord {
  readonly address: string
  readonly silo: string
  readonly pid: number
  readonly start: number
  readonly end: number
  readonly activation: string
  readonly tag: string
  /** `ok`, the error's tag, `defect` or `interrupted`. */
  readonly outcome: string
}

export const formatTurn = (t: TurnRecord): string =>
  `${t.address} ${t.silo} ${t.pid} ${t.start.toFixed(3)} ${t.end.toFixed(3)} ${t.activation} ${t.tag} ${t.outcome}`

export const parseTurn = (line: string): TurnRecord | undefined => {
  const p = line.split(" ")
  if (p.length !== 8) return undefined
  const record = {
    address: p[0]!,
    silo: p[1]!,
    pid: Number(p[2]),
    start: Number(p[3]),
    end: Number(p[4]),
    activation: p[5]!,
    tag: p[6]!,
    outcome: p[7]!
  }
  return Number.isFinite(record.start) && Number.isFinite(record.end) ? record : undefined
}

/** The Redis hashes holding activation starts (activation → JSON) and ends (activation → ms). */
export const activationKeys = (keyPrefix: string) => ({
  starts: `${keyPrefix}:activations:start`,
  ends: `${keyPrefix}:activations:end`
})

export interface ActivationStart {
  readonly address: string
  readonly silo: string
  readonly pid: number
  readonly start: number
}

/** What a failed call or turn ended in: its error's tag, `defect` or `interrupted`. */
export const outcomeOf = (cause: Cause.Cause<unknown>): string => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Fail") {
      const error = reason.error
      return Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : "error"
    }
  }
  return cause.reasons.some((reason) => reason._tag === "Die") ? "defect" : "interrupted"
}

let activations = 0

export const ChaosAccountLive = ChaosAccount.toLayer(
  Effect.gen(function*() {
    const start = nowMillis()
    const ctx = yield* ActorContext
    const cluster = yield* Cluster
    const recorder = yield* Recorder
    // Read per activation: a silo that rejoins after being declared dead has a new id.
    const silo = cluster.self?.id ?? "unknown"
    const address = `${ctx.address.type}/${ctx.address.id}`
    const activation = `${process.pid}.${++activations}`
    yield* Effect.acquireRelease(
      recorder.activated(activation, address, silo, start),
      () => Effect.suspend(() => recorder.deactivated(activation, nowMillis()))
    )
    const state = yield* ActorState.make("account", {
      schema: AccountState,
      initial: () => ({ balance: 0, applied: [] }),
      store: storeName
    })
    const served = (balance: number) => ({ balance, silo, activation })

    /** Runs a turn's effect and records it, whatever its outcome. */
    const recorded = <A, E, R>(tag: string, effect: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.suspend(() => {
        const turnStart = nowMillis()
        return Effect.onExit(effect, (exit) =>
          Effect.sync(() => {
            const outcome = exit._tag === "Success" ? "ok" : outcomeOf(exit.cause)
            recorder.turn({ address, silo, pid: process.pid, start: turnStart, end: nowMillis(), activation, tag, outcome })
          }))
      })

    return ChaosAccount.of({
      Deposit: ({ amount, depositId }) =>
        recorded(
          "Deposit",
          Effect.gen(function*() {
            const current = yield* state.get
            if (current.applied.includes(depositId)) return served(current.balance)
            const next = { balance: current.balance + amount, applied: [...current.applied, depositId] }
            yield* state.set(next)
            // A failed write may or may not have landed: start over from what is stored.
            yield* Effect.tapError(state.write, () => Effect.andThen(state.set(current), ctx.deactivateOnIdle))
            return served(next.balance)
          })
        ),
      Balance: () => recorded("Balance", Effect.map(state.get, (s) => served(s.balance)))
    })
  }),
  // Each cycle of the long run uses fresh accounts: the previous cycle's are passivated.
  { idleTimeout: "30 seconds" }
)

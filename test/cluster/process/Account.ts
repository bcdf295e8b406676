/**
 * The actor of the multi-process cluster test: an account whose balance is a
 * version-checked state record in Redis, written before every deposit is acknowledged.
 * Deposits carry an id and the ids already applied are part of the state, so a deposit
 * retried after an unknown outcome (a lost connection, a timeout, a killed silo) is
 * applied exactly once.
 *
 * Every activation records itself in an activation registry in Redis (a set of
 * `<address>|<silo id>|<activation nonce>|<Redis time>` members) when it starts, and removes
 * itself when it ends, so the test can see which silos hold an activation of which address,
 * and since when.
 */
import { Context, Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorSchema, ActorState, StateConflict, StoreError } from "../../../src/index.ts"
import { Cluster } from "../../../src/Cluster/index.ts"

/** The membership timings every process of the test uses (heartbeat < suspect < dead). */
export const timings = {
  heartbeatInterval: "200 millis",
  suspectAfter: "600 millis",
  deadAfter: "1200 millis",
  refreshInterval: "200 millis"
} as const

/** The same timings in milliseconds, for the test's bounds. */
export const timingMillis = { heartbeat: 200, suspect: 600, dead: 1200, refresh: 200 } as const

/** The name of the state store the account binds to (the silo provides it on Redis). */
export const storeName = "redis"

/** The Redis set holding one member per live activation. */
export const registryKey = (keyPrefix: string): string => `${keyPrefix}:activations`

/**
 * One entry of the activation registry: `<address>|<silo id>|<nonce>|<at>`, where `at` is
 * the Redis server's time (ms) when the activation recorded itself, the clock the
 * membership's tombstones use.
 */
export interface RegistryEntry {
  readonly address: string
  readonly silo: string
  readonly nonce: string
  readonly at: number
}

export const parseEntry = (member: string): RegistryEntry | undefined => {
  const parts = member.split("|")
  return parts.length === 4 ? { address: parts[0]!, silo: parts[1]!, nonce: parts[2]!, at: Number(parts[3]) } : undefined
}

export const Deposit = Rpc.make("Deposit", {
  payload: { depositId: Schema.String, amount: Schema.Int },
  success: Schema.Int,
  error: Schema.Union([StateConflict, StoreError])
})
export const Balance = Rpc.make("Balance", { success: Schema.Int }).annotate(ActorSchema.ReadOnly, true)
export const WhereAmI = Rpc.make("WhereAmI", { success: Schema.String }).annotate(ActorSchema.ReadOnly, true)

export const Account = Actor.make("MpAccount", [Deposit, Balance, WhereAmI])

/** The stored state: the balance and the ids of the deposits it includes. */
export const AccountState = Schema.Struct({ balance: Schema.Int, applied: Schema.Array(Schema.String) })

/** Adds and removes activation registry entries. */
export class ActivationRegistry extends Context.Service<ActivationRegistry, {
  /** Records `<address>|<silo>|<nonce>` stamped with the server's time; answers the member stored. */
  readonly add: (entry: string) => Effect.Effect<string>
  /** Removes a member `add` answered. */
  readonly remove: (member: string) => Effect.Effect<void>
}>()("test/ActivationRegistry") {}

let nonces = 0

export const AccountLive = Account.toLayer(
  Effect.gen(function*() {
    const ctx = yield* ActorContext
    const cluster = yield* Cluster
    const registry = yield* ActivationRegistry
    const silo = cluster.self!.id
    yield* Effect.acquireRelease(
      registry.add(`${ctx.address.type}/${ctx.address.id}|${silo}|${process.pid}-${++nonces}`),
      registry.remove
    )
    const state = yield* ActorState.make("account", {
      schema: AccountState,
      initial: () => ({ balance: 0, applied: [] }),
      store: storeName
    })
    return Account.of({
      Deposit: ({ amount, depositId }) =>
        Effect.gen(function*() {
          const current = yield* state.get
          if (current.applied.includes(depositId)) return current.balance
          const next = { balance: current.balance + amount, applied: [...current.applied, depositId] }
          yield* state.set(next)
          // A failed write may or may not have landed: start over from what is stored.
          yield* Effect.tapError(state.write, () => Effect.andThen(state.set(current), ctx.deactivateOnIdle))
          return next.balance
        }),
      Balance: () => Effect.map(state.get, (s) => s.balance),
      WhereAmI: () => Effect.succeed(silo)
    })
  }),
  { idleTimeout: "never" }
)

/**
 * `quark/no-reentrancy-cycle`: handlers of one contract asking each other in a cycle through
 * refs of that contract are reported once per cycle, with the cycle; a reentrant type, a
 * re-entered `AlwaysInterleave` message, tells, a message asking itself and asks that do not
 * close a cycle (examples/bank.ts's Account) are not.
 */
import { noReentrancyCycle } from "../../src/Eslint/rules/NoReentrancyCycle.ts"
import { ruleTester } from "./support.ts"

const imports = `
import { Effect, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorSchema } from "quark"
`

/** A `Peer` contract with messages `A`, `B`, `C` (`annotateB` is appended to B's Rpc). */
const peer = (handlers: string, options = "", annotateB = ""): string => `${imports}
const Peer = Actor.make("Peer", [
  Rpc.make("A", { payload: { other: Schema.String }, success: Schema.String }),
  Rpc.make("B", { payload: { other: Schema.String }, success: Schema.String })${annotateB},
  Rpc.make("C", { payload: { other: Schema.String }, success: Schema.String })
])
export const PeerLive = Peer.toLayer(Effect.gen(function*() {
  const { address } = yield* ActorContext
  return Peer.of({
    ${handlers}
  })
})${options})
`

const aAsksB = `A: ({ other }) => Effect.gen(function*() {
      const target = yield* Peer.ref(other).pipe(Effect.orDie)
      return yield* target.B({ other: address.id })
    })`
const bAsksA = `B: ({ other }) => Effect.flatMap(Peer.refOrDie(other), (back) => back.A({ other: address.id }))`
const cIdle = `C: () => Effect.succeed("c")`

ruleTester.run("no-reentrancy-cycle", noReentrancyCycle, {
  valid: [
    // examples/bank.ts: Transfer asks Deposit, Reconcile asks Confirm, Confirm asks Balance: no cycle.
    `${imports}
const Account = Actor.make("Account", [
  Rpc.make("Deposit", { payload: { amount: Schema.Number }, success: Schema.Number }),
  Rpc.make("Balance", { success: Schema.Number }).annotate(ActorSchema.ReadOnly, true),
  Rpc.make("Transfer", { payload: { to: Schema.String, amount: Schema.Number }, success: Schema.Number }),
  Rpc.make("Reconcile", { payload: { other: Schema.String }, success: Schema.String }),
  Rpc.make("Confirm", { payload: { from: Schema.String }, success: Schema.String })
])
export const AccountLive = Account.toLayer(Effect.gen(function*() {
  const { address } = yield* ActorContext
  return Account.of({
    Deposit: ({ amount }) => Effect.succeed(amount),
    Balance: () => Effect.succeed(0),
    Transfer: ({ to, amount }) => Effect.gen(function*() {
      const target = yield* Account.ref(to).pipe(Effect.orDie)
      yield* target.Deposit({ amount }).pipe(Effect.orDie)
      return amount
    }),
    Reconcile: ({ other }) => Effect.flatMap(Account.ref(other), (peer) => peer.Confirm({ from: address.id })).pipe(Effect.orDie),
    Confirm: ({ from }) => Effect.flatMap(Account.ref(from), (origin) => origin.Balance()).pipe(Effect.map(String), Effect.orDie)
  })
}), { idleTimeout: "300 millis" })`,
    // Reentrant: the re-entry is served.
    peer(`${aAsksB},\n${bAsksA},\n${cIdle}`, `, { reentrant: true }`),
    // B is AlwaysInterleave: asking it never waits behind A's turn.
    peer(`${aAsksB},\n${bAsksA},\n${cIdle}`, "", ".annotate(ActorSchema.AlwaysInterleave, true)"),
    // A tell does not wait for the turn.
    peer(`${aAsksB},\nB: ({ other }) => Effect.flatMap(Peer.refOrDie(other), (back) => back.tell.A({ other })).pipe(Effect.as("b")),\n${cIdle}`),
    // A message asking itself on other ids (a tree) is not reported.
    peer(`A: ({ other }) => Effect.flatMap(Peer.refOrDie(other), (child) => child.A({ other: "" })),
    B: () => Effect.succeed("b"),\n${cIdle}`),
    // Options the rule cannot read: it stays silent rather than guess.
    `declare const options: { readonly reentrant: boolean }\n${peer(`${aAsksB},\n${bAsksA},\n${cIdle}`, ", options")}`,
    // Asks of another contract's refs are not edges of this one.
    `${peer(`A: ({ other }) => Effect.flatMap(Other.refOrDie(other), (o) => o.B({ other })),
    B: ({ other }) => Effect.flatMap(Other.refOrDie(other), (o) => o.A({ other })),\n${cIdle}`)}
const Other = Actor.make("Other", [Rpc.make("A", { payload: { other: Schema.String }, success: Schema.String }), Rpc.make("B", { payload: { other: Schema.String }, success: Schema.String })])`
  ],
  invalid: [
    {
      code: peer(`${aAsksB},\n${bAsksA},\n${cIdle}`),
      errors: [{ messageId: "cycle", data: { contract: "Peer", cycle: "A → B → A" }, line: 16 }]
    },
    {
      // Three messages, through the pipe form and a ref kept in the build.
      code: peer(`${aAsksB},
    B: ({ other }) => Peer.refOrDie(other).pipe(Effect.flatMap((next) => next.C({ other }))),
    C: () => Effect.gen(function*() { const self = yield* Peer.refOrDie(address.id); return yield* self.A({ other: "x" }) })`),
      errors: [{ messageId: "cycle", data: { contract: "Peer", cycle: "A → B → C → A" } }]
    },
    {
      // B annotated something else than AlwaysInterleave: still a cycle.
      code: peer(`${aAsksB},\n${bAsksA},\n${cIdle}`, `, { reentrant: false, callTimeout: "1 minute" }`, ".annotate(ActorSchema.ReadOnly, true)"),
      errors: [{ messageId: "cycle", data: { contract: "Peer", cycle: "A → B → A" } }]
    },
    {
      // An imported contract (its messages are not visible; every ask of its refs is an edge).
      code: `${imports.replace("import { Actor, ", "import { Peer } from \"./Peer.ts\"\nimport { ")}
export const PeerLive = Peer.toLayer(Effect.gen(function*() {
  const { address } = yield* ActorContext
  return Peer.of({
    ${aAsksB},
    ${bAsksA}
  })
}))`,
      errors: [{ messageId: "cycle", data: { contract: "Peer", cycle: "A → B → A" } }]
    }
  ]
})

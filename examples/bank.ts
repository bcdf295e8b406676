/**
 * `npm start`: bank accounts as virtual actors on the embedded in-memory silo.
 *
 * - accounts activate on first use and transfer money by asking each other;
 * - an overdraft comes back as a typed error, not an exception;
 * - a call cycle (A asks B, which asks A back) is detected at once as a `Deadlock`;
 * - idle accounts are passivated: their finalizers run and the listing empties.
 */
import { Console, Effect, Layer, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorSchema, formatAddress, Silo } from "quark"

// --- The contract: what callers import -------------------------------------------------

class InsufficientFunds extends Schema.TaggedError<InsufficientFunds>()("InsufficientFunds", {
  account: Schema.String,
  balance: Schema.Number,
  requested: Schema.Number
}) {}

const Deposit = Rpc.make("Deposit", { payload: { amount: Schema.Number }, success: Schema.Number })
const Withdraw = Rpc.make("Withdraw", {
  payload: { amount: Schema.Number },
  success: Schema.Number,
  error: InsufficientFunds
})
const Balance = Rpc.make("Balance", { success: Schema.Number }).annotate(ActorSchema.ReadOnly, true)
const Transfer = Rpc.make("Transfer", {
  payload: { to: Schema.String, amount: Schema.Number },
  success: Schema.Number,
  error: InsufficientFunds
})
/** Asks `other` to confirm our balance, and `other` asks us back: a deliberate cycle. */
const Reconcile = Rpc.make("Reconcile", { payload: { other: Schema.String }, success: Schema.String })
const Confirm = Rpc.make("Confirm", { payload: { from: Schema.String }, success: Schema.String })

const Account = Actor.make("Account", [Deposit, Withdraw, Balance, Transfer, Reconcile, Confirm])

// --- The implementation ----------------------------------------------------------------

const AccountLive = Account.toLayer(
  Effect.gen(function*() {
    const { address } = yield* ActorContext
    const balance = yield* Ref.make(0)
    yield* Console.log(`  [activate]   ${formatAddress(address)}`)
    yield* Effect.addFinalizer(() =>
      Effect.flatMap(Ref.get(balance), (b) => Console.log(`  [deactivate] ${formatAddress(address)} (balance ${b})`))
    )

    const withdraw = (amount: number) =>
      Effect.flatMap(Ref.get(balance), (current) =>
        current < amount ?
          Effect.fail(new InsufficientFunds({ account: address.id, balance: current, requested: amount })) :
          Ref.updateAndGet(balance, (b) => b - amount))

    return Account.of({
      Deposit: ({ amount }) => Ref.updateAndGet(balance, (b) => b + amount),
      Withdraw: ({ amount }) => withdraw(amount),
      Balance: () => Ref.get(balance),
      Transfer: ({ to, amount }) =>
        Effect.gen(function*() {
          const left = yield* withdraw(amount)
          const target = yield* Account.ref(to).pipe(Effect.orDie)
          // Crediting the other account is a call to another actor; its failure is a defect here.
          yield* target.Deposit({ amount }).pipe(Effect.orDie)
          return left
        }),
      Reconcile: ({ other }) =>
        Effect.flatMap(Account.ref(other), (peer) => peer.Confirm({ from: address.id })).pipe(Effect.orDie),
      // Asking the caller back while the caller waits on us: Quark refuses at once.
      Confirm: ({ from }) =>
        Effect.flatMap(Account.ref(from), (origin) => origin.Balance()).pipe(
          Effect.map((balance) => `${from} has ${balance}`),
          Effect.catchTag("Deadlock", (deadlock) => Effect.succeed(`refused: ${deadlock.message}`)),
          Effect.orDie
        )
    })
  }),
  { idleTimeout: "300 millis" }
)

// --- The program -----------------------------------------------------------------------

const program = Effect.gen(function*() {
  const silo = yield* Silo.Silo
  const alice = yield* Account.ref("alice")
  const bob = yield* Account.ref("bob")

  yield* Console.log("1. Deposits activate the accounts on first use")
  yield* alice.Deposit({ amount: 100 })
  yield* bob.Deposit({ amount: 20 })

  yield* Console.log("2. Transfers are calls between actors")
  yield* alice.Transfer({ to: "bob", amount: 30 })
  yield* Console.log(`   alice ${yield* alice.Balance()}, bob ${yield* bob.Balance()}`)

  yield* Console.log("3. An overdraft is a typed error")
  yield* bob.Transfer({ to: "alice", amount: 500 }).pipe(
    Effect.catchTag("InsufficientFunds", (e) =>
      Console.log(`   InsufficientFunds: ${e.account} has ${e.balance}, asked for ${e.requested}`))
  )

  yield* Console.log("4. A call cycle is refused at once, not after a timeout")
  yield* Console.log(`   alice.Reconcile(bob) -> ${yield* alice.Reconcile({ other: "bob" })}`)

  yield* Console.log("5. Idle accounts are passivated (idle timeout 300 ms here)")
  const listed = yield* silo.activations("Account")
  yield* Console.log(`   active now: ${listed.map((a) => a.address.id).join(", ")}`)
  yield* Effect.sleep("700 millis")
  yield* Console.log(`   active after 700 ms idle: ${(yield* silo.activations("Account")).length}`)

  yield* Console.log("6. The next call activates alice again (in-memory state starts over)")
  yield* Console.log(`   alice ${yield* alice.Balance()}`)
})

const SiloLive = AccountLive.pipe(Layer.provideMerge(Silo.layer({ passivationInterval: "100 millis" })))

Effect.runPromise(Effect.provide(program, SiloLive)).then(
  () => console.log("done"),
  (error) => {
    console.error(error)
    process.exitCode = 1
  }
)

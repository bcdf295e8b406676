/**
 * The silo: the process-local host of activations. Provide `Silo.layer()` (or, in tests,
 * `Silo.layerTest(...implementations)`) and every contract's `ref` routes through it.
 *
 * @since 0.1.0
 */
import { Clock, Deferred, Duration, Effect, Exit, FiberSet, Layer, Schema, Scope } from "effect"
import { type ActorAddress, invalidIdReason } from "./ActorAddress.ts"
import { ActorUnavailable, InvalidActorId } from "./ActorError.ts"
import type { Activation } from "./internal/Activation.ts"
import { ActivationState } from "./internal/ActivationState.ts"
import { type ActivationInfo, Silo, type UntypedRequest, type RefContract } from "./internal/SiloTag.ts"
import { LocalRouter } from "./internal/LocalRouter.ts"
import { runSweeper } from "./internal/Passivation.ts"
import { type ActorDefaults, defaultActorDefaults } from "./ActorOptions.ts"
import { SiloObserver } from "./internal/TurnObserver.ts"
import { prepare } from "./internal/UntypedDispatch.ts"
import { findActivation } from "./internal/FindActivation.ts"
import * as Gate from "../Security/internal/Gate.ts"

/**
 * Silo configuration; every field has a documented default.
 *
 * @since 0.1.0
 */
export interface SiloConfig {
  /**
   * Defaults for actor types that do not set their own options (see `defaultActorDefaults`),
   * among them `activationTimeout` and `deactivationTimeout` (30 seconds each).
   */
  readonly defaults?: Partial<ActorDefaults> | undefined
  /**
   * The slack of idle passivation: an activation is passivated between its `idleTimeout`
   * and `idleTimeout + passivationInterval` after its last turn (a sweep runs every half
   * interval). Default 10 seconds.
   */
  readonly passivationInterval?: Duration.Input | undefined
  /**
   * How long shutdown waits for running turns and finalizers. Default 10 seconds. Then
   * the remaining activations' scopes are closed, each waited for at most its type's
   * `deactivationTimeout`.
   */
  readonly shutdownTimeout?: Duration.Input | undefined
}

export { type ActivationInfo, type RefContract, Silo, type SiloShape, type UntypedRequest } from "./internal/SiloTag.ts"

const awaitStopped = (act: Activation): Effect.Effect<void> =>
  Effect.callback<void>((resume) => act.onStopped(() => resume(Effect.void)))

/** @internal */
export interface MakeOptions {
  /**
   * Time the shutdown timeout on the real clock, not the fiber's: a test's `TestClock` no
   * longer moves once the test body has ended, so a turn still running then would hold the
   * teardown for good.
   */
  readonly shutdownOnRealTime?: boolean | undefined
}

/**
 * Builds a silo in the current scope (closing it shuts the silo down). For layers that
 * assemble a silo with more around it, such as a cluster member.
 *
 * @internal
 */
export const make = Effect.fnUntraced(function*(config: SiloConfig, options?: MakeOptions) {
  const context = yield* Effect.context<never>()
  // Created before the shutdown finalizer, so closed after it: what shutdown left running is interrupted.
  const fibers = yield* FiberSet.make()
  const router = new LocalRouter(context, fibers, { ...defaultActorDefaults, ...config.defaults })
  const observe = yield* SiloObserver
  if (observe !== undefined) router.observer = yield* observe(router)
  // Authentication, Authorization and Audit, if provided to the silo's layer (see `Security`).
  router.gate = yield* Gate.make
  const shutdownTimeout = config.shutdownTimeout ?? Duration.seconds(10)

  yield* Effect.forkScoped(runSweeper(router, config.passivationInterval ?? Duration.seconds(10)))
  // The watchdogs outlive the shutdown, which relies on them; then they end with the silo.
  const shutdownOn = options?.shutdownOnRealTime === true ?
    Effect.provideService(Clock.Clock, Clock.Clock.defaultValue()) :
    <A>(effect: Effect.Effect<A>) => effect
  yield* Effect.addFinalizer(() =>
    Effect.ensuring(shutdownOn(shutdown(router, shutdownTimeout)), Scope.close(router.timers, Exit.void))
  )

  const ref = (contract: RefContract, id: string) => {
    const reason = invalidIdReason(id)
    if (reason !== undefined) return Effect.fail(new InvalidActorId({ type: contract.type, id, reason }))
    const slot = router.slot(contract.type)
    slot.placement ??= contract.placement
    return Effect.succeed(new contract.refClass(router, slot, id))
  }

  // The entry points an operator or an admin API calls get named spans; the ref path does not.
  const activations = Effect.fn("Quark.Silo.activations")(function*(type?: string) {
    const now = yield* Clock.currentTimeMillis
    const rows: Array<ActivationInfo> = []
    // Child actors are listed too, after their parent, with it: they live in no type's table.
    const add = (act: Activation, parent: Activation | undefined): void => {
      if (type === undefined || act.slot.name === type) {
        rows.push({
          address: act.address,
          state: act.stateName,
          mailboxDepth: act.mailboxDepth,
          runningTurns: act.running,
          ageMillis: act.phase === ActivationState.Activating ? 0 : now - router.startedAtMillis - act.createdAt,
          ...(parent === undefined ? {} : { parent: parent.address })
        })
      }
      for (const child of act.extras?.children ?? []) add(child, act)
    }
    for (const slot of router.slots.values()) for (const act of slot.activations.values()) add(act, undefined)
    return rows
  })

  const deactivate = Effect.fn("Quark.Silo.deactivate")(function*(address: ActorAddress) {
    const act = router.slots.get(address.type)?.activations.get(address.id)
    if (act === undefined) return false
    act.deactivate()
    yield* awaitStopped(act)
    return true
  })

  const describe = Effect.fn("Quark.Silo.describe")(function*(address: ActorAddress) {
    const summary = findActivation(router.slots, address.type, address.id)?.extras?.describe
    if (summary === undefined) return undefined
    // An operator's read must not take the silo down with it.
    return yield* Effect.sync(() => {
      try {
        return summary()
      } catch (error) {
        return { summaryFailed: error instanceof Error ? error.message : String(error) }
      }
    })
  })

  const dispatch = Effect.fn("Quark.Silo.dispatch")(function*(request: UntypedRequest) {
    const { id, tag, type } = request as { readonly [K in keyof UntypedRequest]: unknown }
    const prepared = yield* prepare(router, type, tag)
    const success = yield* prepared.send(id, request.payload)
    return yield* Effect.orDie(Schema.encodeEffect(prepared.entry.successSchema)(success)) as Effect.Effect<unknown>
  })

  return Silo.of({ router, ref, activations, deactivate, describe, dispatch })
})

/**
 * Deactivates everything, waiting up to `timeout` for running turns and finalizers; then
 * closes what is left and fails what still waits with `ActorUnavailable`.
 */
const shutdown = (router: LocalRouter, timeout: Duration.Input): Effect.Effect<void> =>
  Effect.suspend(() => {
    router.shuttingDown = true
    const all = [...router.slots.values()].flatMap((slot) => [...slot.activations.values()])
    // Counted down as they stop, rather than a callback per activation (there may be millions).
    let remaining = 0
    for (const act of all) if (act.phase !== ActivationState.Stopped) remaining++
    const allStopped = Deferred.makeUnsafe<void>()
    if (remaining === 0) Deferred.doneUnsafe(allStopped, Exit.void)
    router.stopListener = (act) => {
      if (!act.slot.virtual || --remaining > 0) return
      router.stopListener = undefined
      Deferred.doneUnsafe(allStopped, Exit.void)
    }
    for (const act of all) act.deactivate()
    return Deferred.await(allStopped).pipe(
      // The listener holds the shutdown (and with it every activation) until it is gone.
      Effect.ensuring(Effect.sync(() => {
        router.stopListener = undefined
      })),
      Effect.timeoutOrElse({
        duration: timeout,
        orElse: () =>
          Effect.logWarning("silo shutdown timed out; closing the remaining activations").pipe(
            // Side by side: each waits up to its deactivation timeout for hung finalizers.
            Effect.andThen(Effect.forEach(all.filter((act) => act.phase !== ActivationState.Stopped), forceStop, {
              concurrency: "unbounded",
              discard: true
            }))
          )
      })
    )
  })

/**
 * Closes an activation without waiting for its turns: its children first, each the same way
 * (a child already stopping would wait for its running turns, unbounded, were it stopped
 * the ordinary way), then its scope (at most its `deactivationTimeout`).
 */
const forceStop = (act: Activation): Effect.Effect<void> =>
  Effect.forEach(
    [...(act.extras?.children ?? [])].reverse().filter((child) => child.phase !== ActivationState.Stopped),
    forceStop,
    { concurrency: "unbounded", discard: true } // side by side, so the bound does not grow with the children
  ).pipe(
    Effect.andThen(act.host.closeScope(act, Exit.void)),
    Effect.andThen(Effect.sync(() => {
      if (act.phase === ActivationState.Stopped) return
      act.host.retire(
        act,
        new ActorUnavailable({ address: act.address, reason: "the silo shut down before the turn could run" })
      )
      act.stopped()
    }))
  )

/**
 * The silo layer.
 *
 * @since 0.1.0
 */
export const layer = (config: SiloConfig = {}): Layer.Layer<Silo> => Layer.effect(Silo, make(config))

/**
 * A silo hosting the given implementations, for tests: `it.layer(Silo.layerTest(CounterLive))`.
 * Built inside a test, its timers and passivation run on the `TestClock`. Its teardown does
 * not wait on the `TestClock` (which no longer moves then): turns still running when the
 * test ends get one second of real time, after which the silo closes what is left, fails
 * what still waits with `ActorUnavailable`, and interrupts the fibers it owns (one-way
 * turns; an ask's turn runs in its caller's fiber, which the test's own scope ends).
 *
 * @since 0.1.0
 */
export const layerTest = <const Layers extends ReadonlyArray<Layer.Layer<never, any, any>>>(
  ...implementations: Layers
): Layer.Layer<Silo, Layer.Error<Layers[number]>, Exclude<Layer.Services<Layers[number]>, Silo>> =>
  Layer.mergeAll(...(implementations as unknown as [Layer.Layer<never>])).pipe(
    Layer.provideMerge(Layer.effect(Silo, make({ shutdownTimeout: testShutdownTimeout }, { shutdownOnRealTime: true })))
  ) as any

/** How long a test silo's teardown waits, in real time, for turns still running. */
const testShutdownTimeout = Duration.seconds(1)

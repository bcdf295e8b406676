/**
 * The scope of an incarnation of an activation, without an object of its own. Effect's
 * scope is an object literal whose type-id keys and four fields overflow into a separate
 * property array (~96 B with it); here the type ids, the strategy and the absent parent
 * live on a prototype and only `state` is an own field. The activation itself is the
 * scope of its first incarnation (its class gets this prototype's properties), so an idle
 * activation carries one field for its scope instead of a ~96 B object; a restart gets an
 * `ActivationScope`. Effect's scope functions read and write exactly these properties
 * (`Scope.close`, `addFinalizer`, `fork`), which the lifecycle tests exercise; the shape
 * is effect 4.1's, the version this package pins.
 *
 * @internal
 */
import { Exit, Scope } from "effect"

const reference = Scope.makeUnsafe()

/** A scope's state before anything was added to it. @internal */
export const emptyScopeState: Scope.Closeable["state"] = reference.state

/** Gives instances of `target` what a scope has besides its `state` (set by the class). @internal */
export const scopePrototype = (target: { readonly prototype: object }): void => {
  for (const key of Object.keys(reference) as Array<keyof Scope.Closeable>) {
    if (key === "state") continue
    if (key in target.prototype) throw new Error(`a scope's "${key}" would shadow a member of ${String(target)}`)
    Object.defineProperty(target.prototype, key, { value: reference[key], writable: false })
  }
}

/** @internal */
export class ActivationScope {
  state: Scope.Closeable["state"] = emptyScopeState
}
scopePrototype(ActivationScope)

/**
 * Closes `scope` at once if nothing was added to it (no finalizer, no child scope): the
 * common case, which then needs no fiber. `false` if it holds something to run.
 *
 * @internal
 */
export const closeIfEmpty = (scope: Scope.Closeable): boolean => {
  if (scope.state._tag !== "Empty" || scope.parent !== undefined) return false
  scope.state = { _tag: "Closed", exit: Exit.void }
  return true
}

/** A new, empty scope for an activation's incarnation. @internal */
export const makeActivationScope = (): Scope.Closeable => new ActivationScope() as unknown as Scope.Closeable

/**
 * The scope of one incarnation of an activation: an effect `Scope.Closeable` in one small
 * object. Effect's own scope is an object literal whose type-id keys and four fields
 * overflow into a separate property array (~96 B with it); here the type ids, the
 * strategy and the absent parent live on the prototype and only `state` is the object's,
 * so a million idle activations carry ~70 MB less. Effect's scope functions read and
 * write exactly these properties (`Scope.close`, `addFinalizer`, `fork`), which the
 * lifecycle tests exercise; the shape is effect 4.1's, the version this package pins.
 *
 * @internal
 */
import { Exit, Scope } from "effect"

const reference = Scope.makeUnsafe()

/** @internal */
export class ActivationScope {
  state: Scope.Closeable["state"] = reference.state
}

for (const key of Object.keys(reference) as Array<keyof Scope.Closeable>) {
  if (key !== "state") Object.defineProperty(ActivationScope.prototype, key, { value: reference[key], writable: false })
}

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

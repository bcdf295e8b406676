/**
 * The named stores a silo's actors can bind their state and journals to. A state record
 * or journal names its store ("default", "redis", "pg", ...); the application provides the
 * stores as a Layer to its actor implementations.
 *
 * @since 0.1.0
 */
import { Context, Effect, Layer, type Scope } from "effect"
import type { Journal } from "./Journal.ts"
import { makeMemoryJournal, makeMemoryStateStore } from "./MemoryStore.ts"
import { UnknownStore } from "./PersistenceError.ts"
import type { StateStore } from "./StateStore.ts"

/**
 * A named pair of a state store and a journal.
 *
 * @since 0.1.0
 */
export interface Store {
  readonly name: string
  readonly state: StateStore
  readonly journal: Journal
}

/**
 * @since 0.1.0
 */
export interface StoresShape {
  readonly get: (name: string) => Effect.Effect<Store, UnknownStore>
}

/**
 * The stores actors bind their state to. Unless a layer provides others, it is one
 * in-memory store named "default", shared by the whole process, test silos included: a
 * test that wants a clean slate provides `layer(memory("default"))` itself (see
 * docs/testing.md).
 *
 * @since 0.1.0
 */
export const Stores: Context.Reference<StoresShape> = Context.Reference<StoresShape>("quark/Persistence/Stores", {
  defaultValue: () => make([memory("default")])
})

/**
 * Stores from a list; the first of a name wins.
 *
 * @since 0.1.0
 */
export const make = (stores: ReadonlyArray<Store>): StoresShape => {
  const byName = new Map<string, Store>()
  for (const store of stores) if (!byName.has(store.name)) byName.set(store.name, store)
  return {
    get: (name) => {
      const store = byName.get(name)
      return store === undefined ? Effect.fail(new UnknownStore({ store: name })) : Effect.succeed(store)
    }
  }
}

/**
 * A store kept in this process's memory (lost when it exits).
 *
 * @since 0.1.0
 */
export const memory = (name: string): Store => ({
  name,
  state: makeMemoryStateStore(name),
  journal: makeMemoryJournal(name)
})

/**
 * The stores, each a value or an effect that builds one (a connection, in the scope of
 * the layer): `Stores.layer(Stores.memory("default"), RedisStore.make("redis"))`.
 *
 * @since 0.1.0
 */
export const layer = <const Args extends ReadonlyArray<Store | Effect.Effect<Store, any, any>>>(
  ...stores: Args
): Layer.Layer<
  never,
  Effect.Error<Extract<Args[number], Effect.Effect<any, any, any>>>,
  Exclude<Effect.Services<Extract<Args[number], Effect.Effect<any, any, any>>>, Scope.Scope>
> =>
  Layer.effect(
    Stores,
    Effect.map(
      Effect.forEach(stores as ReadonlyArray<Store | Effect.Effect<Store>>, (store) =>
        Effect.isEffect(store) ? store : Effect.succeed(store)),
      make
    )
  ) as any

/**
 * Only the in-memory "default" store.
 *
 * @since 0.1.0
 */
export const layerMemory: Layer.Layer<never> = Layer.sync(Stores, () => make([memory("default")]))

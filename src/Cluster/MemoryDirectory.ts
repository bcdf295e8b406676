/**
 * The in-memory activation directory: one map in this process, for tests and single-process
 * use. Every silo sharing one instance sees the same entries. Leases are measured on Effect's
 * `Clock` (read at each call), so under `TestClock` they run out only when the test adjusts
 * the clock; see the lease rule in `Directory.ts`.
 *
 * Each operation reads the clock, then checks and changes the map in one synchronous step,
 * so concurrent registrations of one address cannot interleave: exactly one wins.
 *
 * @since 0.1.0
 */
import { Clock, Effect, Layer } from "effect"
import {
  checkArguments,
  Directory,
  type DirectoryAddress,
  type DirectoryShape,
  Registered,
  Taken
} from "./Directory.ts"

interface Entry {
  readonly owner: string
  expiresAt: number
}

const keyOf = (address: DirectoryAddress): string =>
  `${encodeURIComponent(address.type)}:${encodeURIComponent(address.id)}`

/**
 * A new, empty in-memory directory.
 *
 * @since 0.1.0
 */
export const make: Effect.Effect<DirectoryShape> = Effect.sync(() => {
  const entries = new Map<string, Entry>()
  // Per owner, the keys it registered (possibly since expired or taken over: checked on use).
  const bySilo = new Map<string, Set<string>>()

  /** The live entry of `key` at `now`, dropping it if its lease ran out. */
  const live = (key: string, now: number): Entry | undefined => {
    const entry = entries.get(key)
    if (entry === undefined) return undefined
    if (now < entry.expiresAt) return entry
    entries.delete(key)
    bySilo.get(entry.owner)?.delete(key)
    return undefined
  }

  const register: DirectoryShape["register"] = (address, owner, leaseMillis) =>
    Effect.flatMap(checkArguments("register", owner, leaseMillis), (lease) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const key = keyOf(address)
        const current = live(key, now)
        if (current !== undefined && current.owner !== owner) return Taken(current.owner)
        entries.set(key, { owner, expiresAt: now + lease })
        let keys = bySilo.get(owner)
        if (keys === undefined) bySilo.set(owner, keys = new Set())
        keys.add(key)
        return Registered
      }))

  const lookup: DirectoryShape["lookup"] = (address) =>
    Effect.map(Clock.currentTimeMillis, (now) => live(keyOf(address), now)?.owner)

  const renew: DirectoryShape["renew"] = (address, owner, leaseMillis) =>
    Effect.flatMap(checkArguments("renew", owner, leaseMillis), (lease) =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const current = live(keyOf(address), now)
        if (current === undefined || current.owner !== owner) return false
        current.expiresAt = now + lease
        return true
      }))

  const unregister: DirectoryShape["unregister"] = (address, owner) =>
    Effect.flatMap(checkArguments("unregister", owner), () =>
      Effect.sync(() => {
        const key = keyOf(address)
        if (entries.get(key)?.owner !== owner) return
        entries.delete(key)
        bySilo.get(owner)?.delete(key)
      }))

  const removeSilo: DirectoryShape["removeSilo"] = (owner) =>
    Effect.flatMap(checkArguments("removeSilo", owner), () =>
      Effect.map(Clock.currentTimeMillis, (now) => {
        const keys = bySilo.get(owner)
        bySilo.delete(owner)
        let removed = 0
        for (const key of keys ?? []) {
          const entry = entries.get(key)
          if (entry?.owner !== owner) continue
          entries.delete(key)
          if (now < entry.expiresAt) removed++
        }
        return removed
      }))

  const transfer: DirectoryShape["transfer"] = (address, from, to, leaseMillis) =>
    Effect.flatMap(
      Effect.andThen(checkArguments("transfer", from), checkArguments("transfer", to, leaseMillis)),
      (lease) =>
        Effect.map(Clock.currentTimeMillis, (now) => {
          const key = keyOf(address)
          const current = live(key, now)
          if (current === undefined || current.owner !== from) return false
          entries.set(key, { owner: to, expiresAt: now + lease })
          bySilo.get(from)?.delete(key)
          let keys = bySilo.get(to)
          if (keys === undefined) bySilo.set(to, keys = new Set())
          keys.add(key)
          return true
        })
    )

  return Directory.of({ register, lookup, renew, unregister, removeSilo, transfer })
})

/**
 * A fresh in-memory `Directory`.
 *
 * @since 0.1.0
 */
export const layer: Layer.Layer<Directory> = Layer.effect(Directory, make)

/**
 * What a partition agent knows of each stream it has seen: its durable subscriptions (read
 * from the provider once, then kept current by the subscribe and unsubscribe calls, which
 * go through the agent) and its lanes. Two levels of `Map` (namespace, then key): no string
 * is built per event, and no name from the wire reaches an object's prototype.
 *
 * @internal
 */
import type { Lane } from "./Lane.ts"
import type { SubscriptionRecord } from "./SubscriptionRecord.ts"

export interface Subscriber {
  readonly id: string
  readonly record: SubscriptionRecord
}

export interface StreamState {
  readonly namespace: string
  readonly key: string
  /** `undefined` until read from the provider. */
  explicit: ReadonlyArray<Subscriber> | undefined
  /** By subscription id. */
  readonly lanes: Map<string, Lane>
  lastSeenAt: number
}

export class StreamTable {
  private readonly byNamespace = new Map<string, Map<string, StreamState>>()

  /** The stream's state, created if absent. */
  get(namespace: string, key: string, now: number): StreamState {
    let byKey = this.byNamespace.get(namespace)
    if (byKey === undefined) {
      byKey = new Map()
      this.byNamespace.set(namespace, byKey)
    }
    let state = byKey.get(key)
    if (state === undefined) {
      state = { namespace, key, explicit: undefined, lanes: new Map(), lastSeenAt: now }
      byKey.set(key, state)
    }
    return state
  }

  find(namespace: string, key: string): StreamState | undefined {
    return this.byNamespace.get(namespace)?.get(key)
  }

  *lanes(): Iterable<Lane> {
    for (const byKey of this.byNamespace.values()) {
      for (const state of byKey.values()) yield* state.lanes.values()
    }
  }

  /** Forgets streams not seen since `cutoff` whose lanes are idle (read again when seen). */
  sweep(cutoff: number): void {
    for (const [namespace, byKey] of this.byNamespace) {
      for (const [key, state] of byKey) {
        if (state.lastSeenAt >= cutoff) continue
        let idle = true
        for (const lane of state.lanes.values()) {
          if (lane.size > 0 || lane.busy || lane.skipUpTo !== undefined) idle = false
        }
        if (idle) byKey.delete(key)
      }
      if (byKey.size === 0) this.byNamespace.delete(namespace)
    }
  }
}

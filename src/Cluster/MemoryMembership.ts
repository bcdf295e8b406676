/**
 * In-memory membership: one {@link MemoryRegistry} object plays the part of the shared
 * registry, and every silo of the process builds its own `Membership` on it (its own view,
 * heartbeats and full reads), exactly as with Redis. Time is Effect's `Clock`, so under
 * `TestClock` the heartbeats, suspicion and death move only when the test adjusts the clock.
 *
 * For tests the registry can simulate faults: `freeze(id)` (the silo stops heartbeating and
 * will not leave: a crash or a long pause), `partition(id)` (its heartbeats fail: it cannot
 * reach the registry), `remove(id)` (its entry vanishes without an announcement: a
 * missed event), and `outage()`/`restore({ empty })` (the registry is unreachable for
 * everyone, then comes back with its data or, as a Redis restarted without persistence,
 * empty).
 *
 * ```ts
 * const registry = MemoryMembership.makeRegistry()
 * const a = yield* MemoryMembership.make(registry)
 * const b = yield* MemoryMembership.make(registry)
 * yield* a.join(yield* SiloIdentity.generate("10.0.0.1", 4000))
 * ```
 *
 * @since 0.1.0
 */
import { Clock, Effect, type Layer, Queue, type Scope, Stream } from "effect"
import {
  DuplicateSilo,
  type Membership,
  MembershipError,
  type MembershipShape,
  type MembershipTimings,
  resolveTimings,
  type ResolvedTimings
} from "./Membership.ts"
import {
  type Backend,
  type GoneReason,
  layerFrom,
  makeWithBackend,
  type MemberRecord,
  type Notice,
  type UpdateResult
} from "./internal/MembershipView.ts"

interface Entry {
  /** Replaced by a metadata update. */
  record: MemberRecord
  lastHeartbeat: number
}

/**
 * The shared registry of one in-process cluster. Every operation is one synchronous step,
 * so each is atomic, as a Lua script is in Redis.
 *
 * @since 0.1.0
 */
export class MemoryRegistry {
  readonly #members = new Map<string, Entry>()
  readonly #tombstones = new Map<string, { readonly reason: GoneReason; readonly at: number }>()
  readonly #frozen = new Set<string>()
  readonly #partitioned = new Set<string>()
  readonly #listeners = new Set<(notice: Notice) => void>()
  #version = 0
  /** The registry's incarnation (see `Snapshot.epoch`); -1 until the first operation. */
  #epoch = -1
  /** When a silo last registered or heartbeated (see the silence rule in `Membership`). */
  #touched: number | undefined = undefined
  #down = false

  /** Testing: the silo stops heartbeating and will not leave (a crash, or a pause until `unfreeze`). */
  freeze(id: string): Effect.Effect<void> {
    return Effect.sync(() => void this.#frozen.add(id))
  }

  /** Testing: the silo's heartbeats count again (if it is still a member). */
  unfreeze(id: string): Effect.Effect<void> {
    return Effect.sync(() => void this.#frozen.delete(id))
  }

  /** Testing: the silo's heartbeats, metadata updates and leave fail with `MembershipError` (it cannot reach the registry). */
  partition(id: string): Effect.Effect<void> {
    return Effect.sync(() => void this.#partitioned.add(id))
  }

  /** Testing: ends a `partition`. */
  heal(id: string): Effect.Effect<void> {
    return Effect.sync(() => void this.#partitioned.delete(id))
  }

  /** Testing: deletes the entry without a tombstone or an announcement; `false` if absent. */
  remove(id: string): Effect.Effect<boolean> {
    return Effect.sync(() => this.#members.delete(id))
  }

  /** Testing: the registry is unreachable for everyone until `restore`; announcements stop. */
  outage(): Effect.Effect<void> {
    return Effect.sync(() => void (this.#down = true))
  }

  /** Testing: ends an `outage`; with `empty`, the registry comes back with nothing in it (a new epoch). */
  restore(options?: { readonly empty?: boolean }): Effect.Effect<void> {
    return Effect.sync(() => {
      this.#down = false
      if (options?.empty !== true) return
      this.#members.clear()
      this.#tombstones.clear()
      this.#version = 0
      this.#epoch = -1
      this.#touched = undefined
    })
  }

  /** The ids in the registry, in registration order. */
  get ids(): Effect.Effect<ReadonlyArray<string>> {
    return Effect.sync(() => [...this.#members.keys()])
  }

  #announce(notice: Notice): void {
    for (const listener of this.#listeners) listener(notice)
  }

  /** The epoch, started now if the registry is empty and new; and the silence rule. */
  #open(now: number, timings: ResolvedTimings): number {
    if (this.#epoch === -1) {
      this.#epoch = now
      this.#touched = now
    }
    if (this.#touched !== undefined && now - this.#touched > timings.silenceMillis) {
      for (const entry of this.#members.values()) {
        entry.lastHeartbeat = Math.max(entry.lastHeartbeat, now + timings.outageGraceMillis)
      }
    }
    return this.#epoch
  }

  #removeEntry(id: string, reason: GoneReason, now: number): number | undefined {
    const entry = this.#members.get(id)
    if (entry === undefined) return undefined
    this.#members.delete(id)
    this.#tombstones.set(id, { reason, at: now })
    const version = ++this.#version
    this.#announce(
      reason === "left" ?
        { kind: "Left", member: entry.record, version, at: now, epoch: this.#epoch } :
        { kind: "Dead", reason, member: entry.record, version, at: now, epoch: this.#epoch }
    )
    return version
  }

  #trim(now: number, retentionMillis: number): void {
    for (const [id, tombstone] of this.#tombstones) {
      if (tombstone.at <= now - retentionMillis) this.#tombstones.delete(id)
    }
  }

  /** @internal */
  backend(timings: ResolvedTimings): Backend {
    const unreachable = (operation: string) =>
      Effect.fail(new MembershipError({ operation, reason: "partitioned from the registry (simulated)" }))
    const down = (operation: string) =>
      Effect.fail(new MembershipError({ operation, reason: "the registry is unreachable (simulated outage)" }))
    return {
      register: (record) =>
        this.#down ? down("register") : Effect.flatMap(Clock.currentTimeMillis, (now) => {
          const epoch = this.#open(now, timings)
          const self = record.identity
          if (this.#members.has(self.id)) {
            return Effect.fail(new DuplicateSilo({ id: self.id, detail: "it is already a member" }))
          }
          if (this.#tombstones.has(self.id)) {
            return Effect.fail(
              new DuplicateSilo({ id: self.id, detail: "it left or was declared dead; restart with a new generation" })
            )
          }
          this.#touched = now
          for (const [id, entry] of [...this.#members]) {
            const other = entry.record.identity
            if (other.address === self.address && other.generation < self.generation) {
              this.#removeEntry(id, "superseded", now)
            }
          }
          this.#members.set(self.id, { record, lastHeartbeat: now })
          const version = ++this.#version
          this.#announce({ kind: "Joined", member: record, version, at: now, epoch })
          this.#trim(now, timings.retentionMillis)
          return Effect.succeed({ version, at: now, epoch })
        }),
      heartbeat: (id, epoch) =>
        this.#down ? down("heartbeat") : this.#partitioned.has(id) ? unreachable("heartbeat") : Effect.flatMap(Clock.currentTimeMillis, (now) => {
          if (this.#frozen.has(id)) return Effect.succeed("ok" as const)
          if (this.#open(now, timings) !== epoch) return Effect.succeed("reset" as const)
          const entry = this.#members.get(id)
          if (entry === undefined) return Effect.succeed("gone" as const)
          this.#touched = now
          entry.lastHeartbeat = now
          return Effect.succeed("ok" as const)
        }),
      update: (record, epoch) => {
        const id = record.identity.id
        return this.#down ? down("update metadata") : this.#partitioned.has(id) ? unreachable("update metadata") : Effect.map(Clock.currentTimeMillis, (now): UpdateResult => {
          if (this.#open(now, timings) !== epoch) return "reset"
          const entry = this.#members.get(id)
          if (entry === undefined) return "gone"
          entry.record = { identity: entry.record.identity, metadata: record.metadata }
          const version = ++this.#version
          this.#announce({ kind: "Updated", member: entry.record, version, at: now, epoch })
          return { version, at: now, epoch }
        })
      },
      leave: (id) =>
        this.#down ? down("leave") : this.#partitioned.has(id) ? unreachable("leave") : Effect.flatMap(
          Clock.currentTimeMillis,
          (now) => Effect.succeed(this.#frozen.has(id) ? undefined : this.#removeEntry(id, "left", now))
        ),
      snapshot: Effect.suspend(() => this.#down ? down("read the membership") : Effect.map(Clock.currentTimeMillis, (now) => {
        const epoch = this.#open(now, timings)
        for (const [id, entry] of [...this.#members]) {
          if (now - entry.lastHeartbeat >= timings.deadMillis) this.#removeEntry(id, "timeout", now)
        }
        this.#trim(now, timings.retentionMillis)
        return {
          epoch,
          version: this.#version,
          now,
          members: [...this.#members.values()].map((entry) => ({ record: entry.record, lastHeartbeat: entry.lastHeartbeat })),
          gone: new Map([...this.#tombstones].map(([id, tombstone]) => [id, tombstone.reason]))
        }
      })),
      subscribe: Effect.gen({ self: this }, function*() {
        const queue = yield* Queue.unbounded<Notice>()
        const listener = (notice: Notice) => void (this.#down || Queue.offerUnsafe(queue, notice))
        yield* Effect.acquireRelease(
          Effect.sync(() => void this.#listeners.add(listener)),
          () => Effect.andThen(Effect.sync(() => void this.#listeners.delete(listener)), Queue.shutdown(queue))
        )
        return Stream.fromQueue(queue)
      })
    }
  }
}

/**
 * A new, empty registry: one per simulated cluster.
 *
 * @since 0.1.0
 */
export const makeRegistry = (): MemoryRegistry => new MemoryRegistry()

/**
 * One silo's membership on `registry`; background fibers stop when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (
  registry: MemoryRegistry,
  timings?: MembershipTimings
): Effect.Effect<MembershipShape, MembershipError, Scope.Scope> =>
  Effect.flatMap(resolveTimings(timings), (resolved) => makeWithBackend(registry.backend(resolved), resolved))

/**
 * The `Membership` service of one silo on `registry`.
 *
 * @since 0.1.0
 */
export const layer = (registry: MemoryRegistry, timings?: MembershipTimings): Layer.Layer<Membership, MembershipError> =>
  layerFrom(make(registry, timings))

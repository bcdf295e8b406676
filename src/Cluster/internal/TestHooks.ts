/**
 * Hooks that only tests provide. Production constructors look them up with
 * `Effect.serviceOption`, find nothing and run as they are; so no production service
 * carries a test method. They let a test simulate, in one process, what a crash (kill -9)
 * does to a silo:
 *
 * - `HaltHook` (read by `ClusterSilo.layer`): receives the effect that stops the silo being
 *   built serving at once and cuts its every connection, without leaving the membership or
 *   waiting for anything (`TestCluster`'s `crash` runs it);
 * - `MembershipBackendHook` (read by every membership built on `MembershipView`, i.e.
 *   `RedisMembership` and `MemoryMembership`): wraps the registry backend, e.g. so that a
 *   registration stops heartbeating and does not leave (test/fixtures/FreezableMembership.ts).
 *
 * @internal
 */
import { Context, type Effect } from "effect"
import type { Backend } from "./MembershipView.ts"

/** @internal */
export class HaltHook extends Context.Service<HaltHook, {
  /** Called once, while the silo is built, with the effect that halts it. */
  readonly register: (halt: Effect.Effect<void>) => void
}>()("quark/internal/HaltHook") {}

/** @internal */
export class MembershipBackendHook extends Context.Service<MembershipBackendHook, {
  readonly wrap: (backend: Backend) => Backend
}>()("quark/internal/MembershipBackendHook") {}

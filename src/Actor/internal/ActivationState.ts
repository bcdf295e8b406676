/**
 * The states an activation goes through, as plain data every runtime module may read
 * without loading the runtime.
 *
 * ```text
 * Activating ─built─▶ Active ─deactivate─▶ Deactivating ─finalizers─▶ Stopped
 *   ▲    │             │  ▲
 *   │    └─failed──┐   │  └──resume──┐
 *   │              ▼   ▼             │
 *   └──restart── Suspended (a failure, or a supervisor's decision pending) ──stop──▶ Stopped
 * ```
 *
 * @internal
 */
import { Effect } from "effect"

/** @internal */
export const ActivationState = { Activating: 0, Active: 1, Deactivating: 2, Stopped: 3, Suspended: 4 } as const
/** @internal */
export type ActivationState = typeof ActivationState[keyof typeof ActivationState]

/** @internal */
export const stateNames = ["activating", "active", "deactivating", "stopped", "suspended"] as const

/** The outcome that lets a parked asker start its turn. @internal */
export const granted: Effect.Effect<void> = Effect.void

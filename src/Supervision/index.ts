/**
 * Supervision policy: failures, directives, strategies, restart windows and backoff. The
 * silo applies it to activations (see `src/Actor/internal/Supervising.ts`).
 *
 * @since 0.1.0
 */
export * as Failure from "./Failure.ts"
export { RestartHistory, type Verdict } from "./RestartHistory.ts"
export * as Supervisor from "./Strategy.ts"

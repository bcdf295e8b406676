/**
 * Per-call options, the optional last argument of every ref method.
 *
 * @since 0.1.0
 */
import type { Duration } from "effect"
import type { WhenFull } from "./ActorOptions.ts"

/**
 * @since 0.1.0
 */
export interface CallOptions {
  /** Fail an ask with `CallTimeout` after this long; overrides the type's `callTimeout`. */
  readonly timeout?: Duration.Input | undefined
  /** What to do if the mailbox is full; overrides the type's `whenFull`. */
  readonly whenFull?: WhenFull | undefined
}

/**
 * What a supervisor decides about: why an actor failed.
 *
 * @since 0.1.0
 */
import type { ActorAddress } from "../Actor/ActorAddress.ts"

/**
 * A failure: a defect in a turn, a typed error the actor type declares fatal, a failed
 * activation effect (on restart, or of a child), or a child's failure escalated to this
 * actor.
 *
 * @since 0.1.0
 */
export type Failure =
  | { readonly _tag: "Defect"; readonly defect: unknown }
  | { readonly _tag: "FatalError"; readonly error: unknown }
  | { readonly _tag: "ActivationFailed"; readonly reason: string }
  | { readonly _tag: "ChildEscalated"; readonly child: ActorAddress; readonly failure: Failure }

/**
 * @since 0.1.0
 */
export const defect = (defect: unknown): Failure => ({ _tag: "Defect", defect })

/**
 * @since 0.1.0
 */
export const fatalError = (error: unknown): Failure => ({ _tag: "FatalError", error })

/**
 * @since 0.1.0
 */
export const activationFailed = (reason: string): Failure => ({ _tag: "ActivationFailed", reason })

/**
 * @since 0.1.0
 */
export const childEscalated = (child: ActorAddress, failure: Failure): Failure => ({
  _tag: "ChildEscalated",
  child,
  failure
})

/**
 * A one-line description, for logs and errors.
 *
 * @since 0.1.0
 */
export const describe = (failure: Failure): string => {
  switch (failure._tag) {
    case "Defect":
      return `defect: ${failure.defect instanceof Error ? failure.defect.message : String(failure.defect)}`
    case "FatalError":
      return `fatal error: ${
        typeof failure.error === "object" && failure.error !== null && "_tag" in failure.error ?
          String((failure.error as { _tag: unknown })._tag) :
          String(failure.error)
      }`
    case "ActivationFailed":
      return `activation failed: ${failure.reason}`
    case "ChildEscalated":
      return `child ${failure.child.type}/${failure.child.id} escalated (${describe(failure.failure)})`
  }
}

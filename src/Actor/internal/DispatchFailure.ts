/**
 * Reading the failure of a message sent by name (a reminder's tick, a stream delivery):
 * the typed error, if there is one, and a line for the log.
 *
 * @internal
 */
import type { Cause } from "effect"
import type { DispatchError } from "../ActorError.ts"

/** The error of a failed attempt; `undefined` for a defect or an interruption. */
export const failureOf = (cause: Cause.Cause<DispatchError>): DispatchError | undefined => {
  for (const reason of cause.reasons) if (reason._tag === "Fail") return reason.error
  return undefined
}

export const describeCause = (cause: Cause.Cause<DispatchError>): string => {
  for (const reason of cause.reasons) {
    if (reason._tag === "Fail") return describe(reason.error)
    if (reason._tag === "Die") return `defect: ${String(reason.defect)}`
  }
  return "interrupted"
}

export const describe = (error: DispatchError): string => {
  if (error._tag === "DeclaredError") {
    const declared = error.error as { readonly _tag?: unknown }
    return `declared error ${typeof declared?._tag === "string" ? declared._tag : JSON.stringify(declared)}`
  }
  return `${error._tag}: ${error.message}`
}

/**
 * Finding an activation by address for operator tools (the dashboard, `Silo.describe`):
 * its type's table first, then the children of every activation (children live in no
 * table). The search of children is linear: an operator's lookup, never a call's.
 *
 * @internal
 */
import type { Activation } from "./Activation.ts"

/** @internal */
export const findActivation = (
  slots: ReadonlyMap<string, { readonly activations: ReadonlyMap<string, Activation> }>,
  type: string,
  id: string
): Activation | undefined => {
  const direct = slots.get(type)?.activations.get(id)
  if (direct !== undefined) return direct
  const search = (act: Activation): Activation | undefined => {
    for (const child of act.extras?.children ?? []) {
      if (child.slot.name === type && child.id === id) return child
      const found = search(child)
      if (found !== undefined) return found
    }
    return undefined
  }
  for (const slot of slots.values()) {
    for (const act of slot.activations.values()) {
      if (act.extras?.children === undefined) continue
      const found = search(act)
      if (found !== undefined) return found
    }
  }
  return undefined
}


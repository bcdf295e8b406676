/**
 * Who else hears of every turn that ends, beside the metrics: a profiler built beneath
 * `Telemetry.layer` adds itself here, and the layer's silos call each. A reference, so the
 * main entry (which `Telemetry.ts` is part of) needs nothing the profiler loads.
 *
 * @internal
 */
import { Context } from "effect"

/** `millis` is the turn's run time; `key` its activation's key (the actor id). @internal */
export type OnTurn = (type: string, message: string, key: string, millis: number, failed: boolean) => void

/** @internal */
export const TurnListeners = Context.Reference<ReadonlyArray<OnTurn>>("quark/TurnListeners", {
  defaultValue: () => []
})

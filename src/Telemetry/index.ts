/**
 * Telemetry: metrics, spans and turn-annotated logs (see `Telemetry.ts`); the Node.js half
 * (endpoints, profiler) is `quark/telemetry/node`.
 *
 * Layering: the base (`Attributes`, `MetricCatalog`, `internal/Cells.ts`,
 * `internal/ProcessMetrics.ts`) imports nothing of Quark's, so every module may report
 * through it (transport, stores, membership, reminders). The silo-facing parts
 * (`Telemetry.ts`, `internal/SiloInstruments.ts`, `TurnLogs.ts`) import Actor; Actor sees
 * them only through the `TurnObserver` interface and the `SiloObserver` reference in
 * `Actor/internal/TurnObserver.ts`, so no run-time import goes both ways.
 *
 * @since 0.2.0
 */
export * as Attributes from "./Attributes.ts"
export * as MetricCatalog from "./MetricCatalog.ts"
export * as Telemetry from "./Telemetry.ts"
export * as TurnLogs from "./TurnLogs.ts"

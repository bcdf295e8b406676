/**
 * Telemetry: metrics, spans and turn-annotated logs (see `Telemetry.ts`).
 *
 * @since 0.2.0
 */
export * as Attributes from "./Attributes.ts"
export * as MetricCatalog from "./MetricCatalog.ts"
export * as Telemetry from "./Telemetry.ts"
export * as TurnLogs from "./TurnLogs.ts"

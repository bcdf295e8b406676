/**
 * The Node.js half of telemetry (`quark/telemetry/node`): `Endpoints` (the diagnostics HTTP
 * server, which loads `@effect/platform-node`, an optional peer dependency), `Profiler`
 * (which reads the event loop's delay through `node:perf_hooks`), `Diagnostics` (the
 * schemas of the endpoints' responses, which a dashboard or a CLI decodes with),
 * `Operations` (those of the operator endpoints: one actor, reminders, dead letters), and
 * `Dashboard` (the live cluster dashboard in the browser, served the same way). Apart from
 * `quark` so that a program without them never loads an HTTP server.
 *
 * @since 0.2.0
 */
export * as Dashboard from "./Dashboard.ts"
export * as Diagnostics from "./Diagnostics.ts"
export * as Endpoints from "./Endpoints.ts"
export * as Operations from "./Operations.ts"
export * as Profiler from "./Profiler.ts"

/**
 * The diagnostics endpoints over HTTP (`quark/telemetry/http`): `Endpoints` (the server,
 * which loads `@effect/platform-node`, an optional peer dependency) and `Diagnostics` (the
 * schemas of its responses, which a dashboard or a CLI decodes with). Apart from `quark`
 * so that a program without the endpoints never loads an HTTP server.
 *
 * @since 0.2.0
 */
export * as Diagnostics from "./Diagnostics.ts"
export * as Endpoints from "./Endpoints.ts"

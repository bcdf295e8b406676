/**
 * Authorization and audit: the caller's principal (from its client certificate or a token
 * in the request context) as handlers see it, a rule per actor type and message that runs
 * before the turn, and a record of who called what. Each service is optional; a silo given
 * none of them checks nothing and pays nothing for it.
 *
 * Provide them to the silo's layer:
 *
 * ```ts
 * Silo.layer().pipe(Layer.provide(Layer.mergeAll(Authentication.layer({ token: verify }), Authorization.layer({ ... }), Audit.layer())))
 * ```
 *
 * @since 0.2.0
 */
export * as Audit from "./Audit.ts"
export * as Authentication from "./Authentication.ts"
export * as Authorization from "./Authorization.ts"
export * as Principal from "./Principal.ts"

/**
 * Turns a caller's credentials into a principal. Optional: provide
 * `Authentication.layer(...)` to the silo's layer (beside `Silo.layer`, `ClusterSilo.layer`).
 *
 * The rules:
 * - **Where.** A client's call is authenticated once, at the first silo it reaches (its
 *   transport connection names it a client); in a silo's own process, a call carrying a
 *   token ({@link Principal.withToken}) is authenticated where it is admitted. Silos trust
 *   the principal another silo sends: they never authenticate it again.
 * - **Which credential.** A token in the request context first (it is per call), else the
 *   connection's verified client certificate, else none: the caller is `anonymous`, or
 *   fails with `Unauthenticated` when `required`.
 * - **Defaults.** A certificate without a `certificate` function is the principal named by
 *   its common name (kind `"certificate"`, its SHA-256 fingerprint as the `fingerprint256`
 *   attribute): the TLS handshake already verified it. A token without a `token` function
 *   establishes nothing (`Unauthenticated`): there is nothing to check it against.
 * - **Failures.** A function that fails refuses the call with `Unauthenticated` (its reason
 *   travels to the caller; keep secrets out of it). One that dies refuses it too, with a
 *   generic reason, and the defect is logged.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer, Schema } from "effect"
import type { PeerCertificate } from "../Transport/PeerInfo.ts"
import type { Principal } from "./Principal.ts"

/**
 * Why credentials established no principal. The silo turns it into the call's
 * `Unauthenticated` error, with its `reason`.
 *
 * @since 0.2.0
 */
export class AuthenticationFailed extends Schema.TaggedError<AuthenticationFailed>()("AuthenticationFailed", {
  reason: Schema.String
}) {}

/**
 * What a caller presented.
 *
 * @since 0.2.0
 */
export interface Credentials {
  /** The token of the request context ({@link Principal.tokenKey}), if any. */
  readonly token?: string | undefined
  /** The verified client certificate of the caller's connection, if any. */
  readonly certificate?: PeerCertificate | undefined
}

/**
 * @since 0.2.0
 */
export interface AuthenticationShape {
  /** The principal `credentials` establish (they hold at least one of token and certificate). */
  readonly authenticate: (credentials: Credentials) => Effect.Effect<Principal, AuthenticationFailed>
  /** Whether a caller without credentials is refused (`Unauthenticated`) rather than `anonymous`. */
  readonly required: boolean
}

/**
 * @since 0.2.0
 */
export class Authentication extends Context.Service<Authentication, AuthenticationShape>()("quark/Security/Authentication") {}

/**
 * @since 0.2.0
 */
export interface AuthenticationOptions<R> {
  /** Verifies a bearer token (a JWT, an API key...). Without it, a token is refused. */
  readonly token?: ((token: string) => Effect.Effect<Principal, AuthenticationFailed, R>) | undefined
  /** Maps a verified client certificate to a principal. Default: {@link certificatePrincipal}. */
  readonly certificate?: ((certificate: PeerCertificate) => Effect.Effect<Principal, AuthenticationFailed, R>) | undefined
  /** Refuse callers that present nothing. Default false: they are `anonymous`. */
  readonly required?: boolean | undefined
}

/**
 * The default principal of a verified client certificate: its common name.
 *
 * @since 0.2.0
 */
export const certificatePrincipal = (certificate: PeerCertificate): Principal => ({
  id: certificate.commonName,
  kind: "certificate",
  attributes: { fingerprint256: certificate.fingerprint256 }
})

const noVerifier = new AuthenticationFailed({ reason: "this silo has no way to verify a token" })

/**
 * The authentication service from functions that verify each kind of credential; their
 * services are captured when the layer is built.
 *
 * @since 0.2.0
 */
export const layer = <R = never>(options: AuthenticationOptions<R>): Layer.Layer<Authentication, never, R> =>
  Layer.effect(
    Authentication,
    Effect.map(Effect.context<R>(), (context) => {
      const token = options.token
      const certificate = options.certificate
      const authenticate = (credentials: Credentials): Effect.Effect<Principal, AuthenticationFailed> => {
        if (credentials.token !== undefined) {
          return token === undefined ? Effect.fail(noVerifier) : Effect.provideContext(token(credentials.token), context)
        }
        if (credentials.certificate !== undefined) {
          return certificate === undefined ?
            Effect.succeed(certificatePrincipal(credentials.certificate)) :
            Effect.provideContext(certificate(credentials.certificate), context)
        }
        return Effect.fail(new AuthenticationFailed({ reason: "no credentials" }))
      }
      return Authentication.of({ authenticate, required: options.required === true })
    })
  )

/**
 * TLS and mutual TLS for the silo transport (`node:tls`): the configuration a server and a
 * connection take, and {@link Credentials}, the loaded material they share, which can be
 * reloaded without a restart.
 *
 * - Material comes as PEM text or files, as in the Redis and PostgreSQL settings: `cert` /
 *   `certFile`, `key` / `keyFile` (the key may be a `Redacted`), `ca` / `caFile` (text
 *   wins over a file). A silo needs `cert` and `key`; a client needs only `ca` unless the
 *   silos ask for a certificate.
 * - Mutual TLS is on by default when a CA is given: a server asks every peer for a
 *   certificate and refuses a peer without one the CA signed (`requestClientCertificate`,
 *   default `true` with a CA). `rejectUnauthorized` (default `true`) makes an unverified
 *   certificate fail the connection on both sides; `false` is for tests only.
 * - A connection checks the server's certificate against the host it dials (Node's
 *   `checkServerIdentity`: DNS or IP subject alternative names), or against `servername`
 *   when given; `checkServerIdentity` replaces that check.
 * - {@link Credentials.reload} reads the files again and builds a new secure context:
 *   servers apply it with `setSecureContext` (new connections get the new certificate, open
 *   ones keep theirs) and connections use it for their next connection. A reload that
 *   fails (an unreadable file, a key that does not match) keeps the previous material and
 *   fails with {@link TlsError}. `reloadInterval` does it periodically, for the life of
 *   the scope, and only when a file changed; a failure is logged and retried next time.
 * - Nothing here logs or puts in an error the key's text.
 *
 * @since 0.2.0
 */
import * as Fs from "node:fs"
import type * as Net from "node:net"
import * as Tls from "node:tls"
import { Duration, Effect, Redacted, Schedule, Schema, Scope } from "effect"

/**
 * @since 0.2.0
 */
export interface TlsConfig {
  /** This side's certificate chain (PEM). A server needs one; a connection sends it when the server asks. */
  readonly cert?: string | undefined
  readonly certFile?: string | undefined
  /** Its private key (PEM). */
  readonly key?: Redacted.Redacted<string> | string | undefined
  readonly keyFile?: string | undefined
  /** The certificate authorities trusted for the peer's certificate instead of Node's list (PEM). */
  readonly ca?: string | ReadonlyArray<string> | undefined
  readonly caFile?: string | undefined
  /**
   * Server side: ask every peer for a certificate and refuse one without a certificate the
   * CA signed (mutual TLS). Default `true` when a CA is given, else `false`.
   */
  readonly requestClientCertificate?: boolean | undefined
  /** An unverified peer certificate fails the connection. Default `true`; `false` is for tests. */
  readonly rejectUnauthorized?: boolean | undefined
  /** The name the server's certificate must hold (and the SNI sent). Default: the host dialled. */
  readonly servername?: string | undefined
  /** Replaces Node's check of the server's name against its certificate (`undefined`: accepted). */
  readonly checkServerIdentity?: ((host: string, cert: Tls.PeerCertificate) => Error | undefined) | undefined
  /** Re-read the files this often and apply them when they changed. Default: never (call `reload`). */
  readonly reloadInterval?: Duration.Input | undefined
}

/**
 * Reading or applying TLS material failed.
 *
 * @since 0.2.0
 */
export class TlsError extends Schema.TaggedError<TlsError>()("TlsError", {
  reason: Schema.String
}) {}

/**
 * Loaded TLS material, shared by servers and connections.
 *
 * @since 0.2.0
 */
export interface Credentials {
  readonly config: TlsConfig
  /** The options of `tls.createServer` (and of `setSecureContext`) as of the last load. */
  readonly serverOptions: () => Tls.TlsOptions
  /** The options of `tls.connect` to `host:port`, with the secure context of the last load. */
  readonly connectOptions: (host: string, port: number) => Tls.ConnectionOptions
  /** Reads the files again and applies them to servers (`setSecureContext`) and to new connections. */
  readonly reload: Effect.Effect<void, TlsError>
  /** Calls `apply` with the new server options after each reload; returns the canceller. */
  readonly onReload: (apply: (options: Tls.TlsOptions) => void) => () => void
  /** How many loads succeeded (1 after `make`). */
  readonly loads: number
}

const readFile = (field: string, path: string): string => {
  try {
    return Fs.readFileSync(path, "utf8")
  } catch (cause) {
    // The path is configuration, not a secret; the content never shows.
    throw new TlsError({ reason: `cannot read tls.${field} ${path}: ${(cause as { readonly code?: string }).code ?? String(cause)}` })
  }
}

interface Material {
  readonly cert: string | undefined
  readonly key: string | undefined
  readonly ca: Array<string> | undefined
}

const readMaterial = (config: TlsConfig): Material => {
  const key = Redacted.isRedacted(config.key) ? Redacted.value(config.key) : config.key
  return {
    cert: config.cert ?? (config.certFile === undefined ? undefined : readFile("certFile", config.certFile)),
    key: key ?? (config.keyFile === undefined ? undefined : readFile("keyFile", config.keyFile)),
    ca: config.ca !== undefined
      ? (typeof config.ca === "string" ? [config.ca] : [...config.ca])
      : config.caFile === undefined
      ? undefined
      : [readFile("caFile", config.caFile)]
  }
}

const same = (a: Material, b: Material): boolean =>
  a.cert === b.cert && a.key === b.key && (a.ca ?? []).join("\n") === (b.ca ?? []).join("\n")

/** Node's messages may quote the key's file name, never its text; keep to the first line. */
const why = (error: unknown): string => {
  if (error instanceof TlsError) return error.reason
  const message = error instanceof Error ? error.message : String(error)
  const code = (error as { readonly code?: unknown } | null)?.code
  return `invalid TLS material${typeof code === "string" ? ` (${code})` : ""}: ${message.split("\n")[0]}`
}

/**
 * Loads `config` (reading its files now) and, with `reloadInterval`, watches them for the
 * life of the scope.
 *
 * @since 0.2.0
 */
export const make = (config: TlsConfig): Effect.Effect<Credentials, TlsError, Scope.Scope> =>
  Effect.gen(function*() {
    const credentials = load(config)
    if (credentials instanceof TlsError) return yield* credentials
    if (config.reloadInterval !== undefined) {
      yield* Effect.forkScoped(
        Effect.schedule(
          credentials.reload.pipe(
            Effect.catch((error) => Effect.logWarning("tls: reloading the certificates failed; the previous ones stay", { reason: error.reason }))
          ),
          Schedule.spaced(Duration.fromInputUnsafe(config.reloadInterval))
        )
      )
    }
    return credentials
  })

/**
 * The material of `config` as `Credentials`, read now (no watching), or why it cannot be.
 *
 * @since 0.2.0
 */
export const load = (config: TlsConfig): Credentials | TlsError => {
  const mutual = config.requestClientCertificate ?? (config.ca !== undefined || config.caFile !== undefined)
  const rejectUnauthorized = config.rejectUnauthorized ?? true
  let material: Material
  let context: Tls.SecureContext
  let server: Tls.TlsOptions
  const listeners = new Set<(options: Tls.TlsOptions) => void>()
  const build = (next: Material): void => {
    // Throws on a key that does not match its certificate, or text that is not PEM.
    const nextContext = Tls.createSecureContext({ cert: next.cert, key: next.key, ca: next.ca })
    material = next
    context = nextContext
    server = {
      cert: next.cert,
      key: next.key,
      ca: next.ca,
      requestCert: mutual,
      rejectUnauthorized: mutual && rejectUnauthorized
    }
  }
  try {
    build(readMaterial(config))
  } catch (error) {
    return new TlsError({ reason: why(error) })
  }
  let loads = 1
  const credentials: Credentials = {
    config,
    get loads() {
      return loads
    },
    serverOptions: () => server,
    connectOptions: (host, port) => ({
      host,
      port,
      secureContext: context,
      rejectUnauthorized,
      // SNI carries names, not addresses; the identity check still uses the host.
      ...(config.servername !== undefined ? { servername: config.servername } : isAddress(host) ? {} : { servername: host }),
      ...(config.checkServerIdentity !== undefined ?
        { checkServerIdentity: config.checkServerIdentity } :
        config.servername !== undefined ?
        { checkServerIdentity: (_host: string, cert: Tls.PeerCertificate) => Tls.checkServerIdentity(config.servername!, cert) } :
        {})
    }),
    reload: Effect.try({
      try: () => {
        const next = readMaterial(config)
        if (same(next, material)) return
        build(next)
        loads++
        for (const apply of listeners) apply(server)
      },
      catch: (error) => new TlsError({ reason: why(error) })
    }),
    onReload: (apply) => {
      listeners.add(apply)
      return () => void listeners.delete(apply)
    }
  }
  return credentials
}

/** Whether `host` is an IP address (no SNI for those). */
const isAddress = (host: string): boolean => /^[\d.]+$/.test(host) || host.includes(":")

/**
 * The credentials of a server or connection option: loaded already, or a config to load now.
 *
 * @since 0.2.0
 */
export const resolve = (tls: TlsConfig | Credentials): Effect.Effect<Credentials, TlsError, Scope.Scope> =>
  isCredentials(tls) ? Effect.succeed(tls) : make(tls)

/**
 * Whether `tls` is loaded `Credentials` (and not a `TlsConfig`).
 *
 * @since 0.2.0
 */
export const isCredentials = (tls: TlsConfig | Credentials): tls is Credentials =>
  typeof (tls as Credentials).connectOptions === "function"

/**
 * The verified certificate of a TLS peer, for `PeerInfo.certificate`; `undefined` on a
 * plain socket, or when the peer sent none or it was not verified.
 *
 * @since 0.2.0
 */
export const peerCertificate = (socket: Net.Socket): { commonName: string; subjectAltName: string; fingerprint256: string } | undefined => {
  if (!(socket instanceof Tls.TLSSocket) || !socket.authorized) return undefined
  const cert = socket.getPeerCertificate()
  if (cert === null || cert === undefined || Object.keys(cert).length === 0) return undefined
  const cn = cert.subject?.CN
  return {
    commonName: Array.isArray(cn) ? cn.join(",") : cn ?? "",
    subjectAltName: cert.subjectaltname ?? "",
    fingerprint256: cert.fingerprint256
  }
}

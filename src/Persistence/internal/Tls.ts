/**
 * What the Redis and PostgreSQL connection settings share: TLS material (PEM text or files,
 * read when the layer is built), and the reason a failed connection gives, which says what
 * failed (authentication, TLS) and never carries a secret the settings hold.
 *
 * @internal
 */
import type { ConnectionOptions } from "node:tls"
import { Effect, Redacted } from "effect"
import { redact } from "../../Telemetry/Diagnostics.ts"

/**
 * Certificates and a client key, each as PEM text or a file (the file is read when the
 * layer is built; both given: the text wins).
 */
export interface TlsMaterial {
  /** The certificate authorities trusted instead of Node's default list (PEM). */
  readonly ca?: string | ReadonlyArray<string> | undefined
  readonly caFile?: string | undefined
  /** The client certificate (PEM), for servers that ask for one (with `key`). */
  readonly cert?: string | undefined
  readonly certFile?: string | undefined
  /** The client certificate's private key (PEM). */
  readonly key?: Redacted.Redacted<string> | string | undefined
  readonly keyFile?: string | undefined
  /** The name the server's certificate must hold. Default: the host, unless it is an IP address. */
  readonly servername?: string | undefined
}

// `node:fs` loads only when a file is named: the subpaths load no more than their driver.
const readFile = (field: string, path: string): Effect.Effect<string, string> =>
  Effect.tryPromise({
    try: () => import("node:fs/promises").then((fs) => fs.readFile(path, "utf8")),
    // The path is configuration, not a secret; the content never shows.
    catch: (cause) => `cannot read tls.${field} ${path}: ${(cause as { readonly code?: string }).code ?? String(cause)}`
  })

const pick = (field: string, text: string | undefined, file: string | undefined): Effect.Effect<string | undefined, string> =>
  text !== undefined ? Effect.succeed(text) : file !== undefined ? readFile(field, file) : Effect.succeed(undefined)

/** The `tls.connect` options of `material` (files read now); a failure is the reason. */
export const tlsOptions = (material: TlsMaterial): Effect.Effect<ConnectionOptions, string> =>
  Effect.gen(function*() {
    const ca = material.ca !== undefined
      ? (typeof material.ca === "string" ? [material.ca] : [...material.ca])
      : material.caFile !== undefined
      ? [yield* readFile("caFile", material.caFile)]
      : undefined
    const cert = yield* pick("certFile", material.cert, material.certFile)
    const key = yield* pick(
      "keyFile",
      Redacted.isRedacted(material.key) ? Redacted.value(material.key) : material.key,
      material.keyFile
    )
    return {
      ...(ca === undefined ? {} : { ca }),
      ...(cert === undefined ? {} : { cert }),
      ...(key === undefined ? {} : { key }),
      ...(material.servername === undefined ? {} : { servername: material.servername })
    }
  })

/** The password of a URL (in its userinfo or a `password` parameter), as written and decoded. */
export const urlSecrets = (url: string): ReadonlyArray<string> => {
  try {
    const parsed = new URL(url)
    const password = parsed.password !== "" ? parsed.password : parsed.searchParams.get("password") ?? ""
    return password === "" ? [] : [password, decodeURIComponent(password)]
  } catch {
    return []
  }
}

/** The secret texts of `material` to keep out of messages. */
export const tlsSecrets = (material: TlsMaterial | undefined): ReadonlyArray<string> => {
  const key = material?.key
  return key === undefined ? [] : [Redacted.isRedacted(key) ? Redacted.value(key) : key]
}

// Node's and OpenSSL's codes of a certificate that was not verified (or a handshake that failed).
const tlsCodes = /^(ERR_TLS_|ERR_SSL_|CERT_|UNABLE_TO_|DEPTH_ZERO|SELF_SIGNED|HOSTNAME_MISMATCH|ERR_OSSL)/
const tlsWords = /certificate|self[- ]signed|\bssl\b|\btls\b|handshake|wrong version number/i
const authWords = /^(WRONGPASS|NOAUTH|NOPERM)|invalid (username-)?password|password authentication failed|authentication failed|no password|SASL|AUTH /i

/**
 * The reason of a failed connection attempt, saying what failed: `"TLS failed (<code>):
 * …"`, `"authentication failed: …"`, or the driver's message; with every secret in
 * `secrets` (and any URL credentials or private key) replaced by `[redacted]`.
 */
export const connectFailure = (cause: unknown, secrets: ReadonlyArray<string>): string => {
  const message = cause instanceof Error ? cause.message : String(cause)
  const code = (cause as { readonly code?: unknown } | null)?.code
  // PostgreSQL's 28P01 (wrong password) and 28000 (no pg_hba.conf line admits the client).
  const text = typeof code === "string" && tlsCodes.test(code) ?
    `TLS failed (${code}): ${message}` :
    authWords.test(message) || code === "28P01" || code === "28000" ?
    `authentication failed: ${message}` :
    tlsWords.test(message) ?
    `TLS failed: ${message}` :
    message
  return scrub(text, secrets)
}

/** `text` with every secret in `secrets`, URL credentials and private keys replaced by `[redacted]`. */
export const scrub = (text: string, secrets: ReadonlyArray<string>): string => {
  let out = text
  for (const secret of secrets) {
    if (secret !== "") out = out.split(secret).join("[redacted]")
  }
  return redact(out) as string
}

/**
 * Throw-away X.509 material for the TLS tests: one certificate authority and leaf
 * certificates it signs, made with the `openssl` command line (Debian's `openssl`, which
 * `.ci/run` installs when missing) in a temporary directory, once per name and process.
 */
import { execFileSync } from "node:child_process"
import * as Fs from "node:fs"
import * as Os from "node:os"
import * as Path from "node:path"

export interface Certificate {
  /** PEM text. */
  readonly cert: string
  readonly key: string
  readonly certFile: string
  readonly keyFile: string
}

export interface Authority extends Certificate {
  /** Signs a leaf certificate for `commonName` (also its DNS name), valid for 127.0.0.1 and localhost. */
  readonly issue: (commonName: string, options?: { readonly days?: number }) => Certificate
}

const openssl = (dir: string, args: ReadonlyArray<string>): void => {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] })
}

const read = (dir: string, name: string): Certificate => ({
  cert: Fs.readFileSync(Path.join(dir, `${name}.crt`), "utf8"),
  key: Fs.readFileSync(Path.join(dir, `${name}.key`), "utf8"),
  certFile: Path.join(dir, `${name}.crt`),
  keyFile: Path.join(dir, `${name}.key`)
})

const authorities = new Map<string, Authority>()

/** A certificate authority named `name` (a fresh key and self-signed certificate), cached per process. */
export const authority = (name = "quark-test-ca"): Authority => {
  const cached = authorities.get(name)
  if (cached !== undefined) return cached
  const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-pki-"))
  openssl(dir, [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", `/CN=${name}`,
    "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"
  ])
  const issued = new Map<string, Certificate>()
  const issue = (commonName: string, options?: { readonly days?: number }): Certificate => {
    const days = options?.days ?? 2
    const id = `${commonName}-${days}`
    const done = issued.get(id)
    if (done !== undefined) return done
    const file = `leaf-${issued.size}`
    Fs.writeFileSync(
      Path.join(dir, `${file}.ext`),
      `subjectAltName=DNS:${commonName},DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n`
    )
    openssl(dir, [
      "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", `${file}.key`, "-out", `${file}.csr`, "-subj", `/CN=${commonName}`
    ])
    openssl(dir, [
      "x509", "-req", "-in", `${file}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${file}.crt`, "-days", String(days), "-extfile", `${file}.ext`
    ])
    const certificate = read(dir, file)
    issued.set(id, certificate)
    return certificate
  }
  const made: Authority = { ...read(dir, "ca"), issue }
  authorities.set(name, made)
  return made
}

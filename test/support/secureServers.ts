/**
 * A redis-server and a PostgreSQL server of a test's own, on free ports of 127.0.0.1, set up
 * the way a production one is locked down: a password (and ACL users) and TLS. Each lives
 * for the scope (killed, its files removed, after) and is watched by a watchdog, so a killed
 * test leaves none behind. A server that cannot start fails the test (never skips it): the
 * binaries come with Debian's `redis-server` and `postgresql` packages (see `.ci/run`).
 *
 * PostgreSQL refuses to run as root: as root, `initdb` and `postgres` run as the `postgres`
 * user (`setpriv`), which owns the data directory and its copy of the server's key.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process"
import * as Fs from "node:fs"
import * as Net from "node:net"
import * as Os from "node:os"
import * as Path from "node:path"
import * as Tls from "node:tls"
import { Effect, type Scope } from "effect"
import type { Certificate } from "./certificates.ts"
import { freePort, pollUntil, startWatchdog } from "./processes.ts"

export interface ServerTls {
  /** The server's certificate and key. */
  readonly server: Certificate
  /** The CA (PEM file) whose client certificates the server accepts (clients need none). */
  readonly caFile: string
}

export interface RedisOptions {
  readonly requirepass?: string | undefined
  /** ACL rules, one user each: `["alice", "on", ">secret", "~*", "&*", "+@all"]`. */
  readonly users?: ReadonlyArray<ReadonlyArray<string>> | undefined
  /** TLS only (`--port 0 --tls-port <port>`). */
  readonly tls?: ServerTls | undefined
}

const exited = (child: ChildProcess): Promise<string> =>
  new Promise((resolve) => {
    child.once("error", (error) => resolve(String(error)))
    child.once("exit", (code, signal) => resolve(`exited (${signal ?? code})`))
  })

/** Whether something answers on the port, over TLS when `tls`: a first line of any kind. */
const answers = (port: number, tls: boolean): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = tls ?
      Tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false }) :
      Net.connect({ host: "127.0.0.1", port })
    const done = (ok: boolean) => {
      socket.destroy()
      resolve(ok)
    }
    socket.setTimeout(500, () => done(false))
    socket.once("error", () => done(false))
    socket.once(tls ? "secureConnect" : "connect", () => socket.write("PING\r\n"))
    socket.once("data", () => done(true))
  })

const kill = (child: ChildProcess, signal: NodeJS.Signals) =>
  Effect.promise(() =>
    child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise<void>((resolve) => {
      child.once("exit", () => resolve())
      child.kill(signal)
    })
  )

/** Waits until `ready` holds (at most 15 s), dying with `what` and the child's stderr otherwise. */
const awaitReady = (what: string, child: ChildProcess, stderr: () => string, ready: () => Promise<boolean>) =>
  Effect.gen(function*() {
    const failed = exited(child)
    const answered = yield* pollUntil(15_000, Effect.promise(() => Promise.race([ready(), failed.then(() => true)])), { every: 20 })
    const early = yield* Effect.promise(() => Promise.race([failed, Promise.resolve(undefined)]))
    if (answered === null || early !== undefined) {
      return yield* Effect.die(new Error(`${what} did not start: ${early ?? "no answer within 15 s"}\n${stderr()}`))
    }
  })

const spawnLogged = (command: string, args: ReadonlyArray<string>) => {
  const child = spawn(command, args, { stdio: ["ignore", "ignore", "pipe"] })
  let stderr = ""
  child.stderr!.on("data", (data) => {
    stderr = (stderr + String(data)).slice(-4_000)
  })
  return { child, stderr: () => stderr }
}

/** A redis-server of the test's own; its port (the TLS port when `tls`). */
export const startRedis = (options: RedisOptions): Effect.Effect<number, never, Scope.Scope> =>
  Effect.gen(function*() {
    const watchdog = yield* startWatchdog
    const port = yield* freePort()
    const args = ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--loglevel", "warning"]
    args.push(...(options.tls === undefined ? ["--port", String(port)] : [
      "--port", "0", "--tls-port", String(port),
      "--tls-cert-file", options.tls.server.certFile, "--tls-key-file", options.tls.server.keyFile,
      "--tls-ca-cert-file", options.tls.caFile, "--tls-auth-clients", "optional"
    ]))
    if (options.requirepass !== undefined) args.push("--requirepass", options.requirepass)
    for (const user of options.users ?? []) args.push("--user", ...user)
    const { child, stderr } = spawnLogged("redis-server", args)
    watchdog.watch(child.pid)
    yield* Effect.addFinalizer(() => Effect.andThen(kill(child, "SIGKILL"), Effect.sync(() => watchdog.forget(child.pid))))
    yield* awaitReady(`redis-server on port ${port} (apt-get install redis-server)`, child, stderr, () =>
      answers(port, options.tls !== undefined))
    return port
  })

export interface PostgresServer {
  readonly port: number
  /** A superuser that logs in with `password` (SCRAM), over TLS only. */
  readonly user: string
  readonly password: string
  readonly database: string
}

const pgBin = (name: string): string => {
  const root = "/usr/lib/postgresql"
  const versions = Fs.existsSync(root) ? Fs.readdirSync(root).sort((a, b) => Number(b) - Number(a)) : []
  for (const version of versions) {
    const file = Path.join(root, version, "bin", name)
    if (Fs.existsSync(file)) return file
  }
  return name
}

/**
 * A PostgreSQL server of the test's own with `ssl=on`: `hostssl` admits `user` with its
 * password; `hostnossl` rejects every plain TCP connection.
 */
export const startPostgres = (tls: ServerTls, password: string): Effect.Effect<PostgresServer, never, Scope.Scope> =>
  Effect.gen(function*() {
    const watchdog = yield* startWatchdog
    const port = yield* freePort()
    const dir = Fs.mkdtempSync(Path.join(Os.tmpdir(), "quark-pg-tls-"))
    yield* Effect.addFinalizer(() => Effect.sync(() => Fs.rmSync(dir, { recursive: true, force: true })))
    const data = Path.join(dir, "data")
    const user = "quark"
    Fs.writeFileSync(Path.join(dir, "pw"), password)
    Fs.copyFileSync(tls.server.certFile, Path.join(dir, "server.crt"))
    Fs.copyFileSync(tls.server.keyFile, Path.join(dir, "server.key"))
    Fs.copyFileSync(tls.caFile, Path.join(dir, "ca.crt"))
    Fs.chmodSync(Path.join(dir, "server.key"), 0o600)
    // As root: everything belongs to `postgres`, which runs the server.
    const asRoot = process.getuid?.() === 0
    const runAs = (command: string, args: ReadonlyArray<string>): [string, Array<string>] =>
      asRoot ? ["setpriv", ["--reuid=postgres", "--regid=postgres", "--init-groups", "--", command, ...args]] : [command, [...args]]
    if (asRoot) execFileSync("chown", ["-R", "postgres:postgres", dir])
    const [initdb, initArgs] = runAs(pgBin("initdb"), [
      "-D", data, "-U", user, `--pwfile=${Path.join(dir, "pw")}`, "--auth-local=trust", "--auth-host=scram-sha-256",
      "-E", "UTF8", "--no-sync", "--no-instructions"
    ])
    try {
      execFileSync(initdb, initArgs, { stdio: ["ignore", "ignore", "pipe"] })
    } catch (cause) {
      return yield* Effect.die(new Error(`initdb failed (apt-get install postgresql): ${String((cause as { stderr?: unknown }).stderr ?? cause)}`))
    }
    Fs.writeFileSync(
      Path.join(data, "pg_hba.conf"),
      "local all all trust\nhostssl all all 127.0.0.1/32 scram-sha-256\nhostnossl all all 127.0.0.1/32 reject\n"
    )
    const [postgres, args] = runAs(pgBin("postgres"), [
      "-D", data, "-c", `port=${port}`, "-c", "listen_addresses=127.0.0.1", "-c", `unix_socket_directories=${dir}`,
      "-c", "ssl=on", "-c", `ssl_cert_file=${Path.join(dir, "server.crt")}`, "-c", `ssl_key_file=${Path.join(dir, "server.key")}`,
      "-c", `ssl_ca_file=${Path.join(dir, "ca.crt")}`, "-c", "fsync=off", "-c", "synchronous_commit=off",
      "-c", "full_page_writes=off", "-c", "max_connections=20", "-c", "shared_buffers=16MB"
    ])
    const { child, stderr } = spawnLogged(postgres, args)
    watchdog.watch(child.pid)
    // SIGQUIT: immediate shutdown (nothing here needs to survive).
    yield* Effect.addFinalizer(() => Effect.andThen(kill(child, "SIGQUIT"), Effect.sync(() => watchdog.forget(child.pid))))
    const isReady = pgBin("pg_isready")
    yield* awaitReady(`postgres on port ${port}`, child, stderr, () =>
      new Promise((resolve) => {
        const probe = spawn(isReady, ["-q", "-h", "127.0.0.1", "-p", String(port)], { stdio: "ignore" })
        probe.once("error", () => resolve(false))
        probe.once("exit", (code) => resolve(code === 0))
      }))
    return { port, user, password, database: "postgres" }
  })

/**
 * The CLI's side of a silo's endpoints: which silo to ask (`--url`, else `QUARK_URL`, else
 * the dev cluster's state file in the working directory), and one request, its JSON body
 * decoded with the schema the silo encoded it with. A silo that does not answer is
 * `Unreachable` (exit 4); a 404 (an unknown dead letter, a silo that is not clustered) is
 * `NotFound` (exit 3); any other error status is `CommandFailed` (exit 1), with the reason
 * the silo gave.
 *
 * @since 0.2.0
 */
import { Effect, Option, Schema } from "effect"
import { CommandFailed, NotFound, type QuarkCliError, Unreachable } from "./Errors.ts"
import * as State from "./State.ts"

/** A silo's endpoints, and its label in the dev cluster when it is one of it. @since 0.2.0 */
export interface Target {
  readonly url: string
  readonly label?: string | undefined
}

const trim = (url: string) => url.replace(/\/+$/, "")

const noCluster = new Unreachable({
  message: "no cluster to talk to: give --url http://host:port (a silo's endpoints), set QUARK_URL, " +
    "or start one here with `quark cluster start`"
})

/**
 * The silos a command asks: the one of `--url` (or `QUARK_URL`), else every silo of the dev
 * cluster started in `cwd`.
 *
 * @since 0.2.0
 */
export const targets = (url: Option.Option<string>, cwd: string): Effect.Effect<ReadonlyArray<Target>, Unreachable> =>
  Effect.gen(function*() {
    const given = Option.getOrUndefined(url) ?? process.env["QUARK_URL"]
    if (given !== undefined && given !== "") return [{ url: trim(given) }]
    const state = yield* State.read(cwd)
    const alive = state?.silos.filter((silo) => State.isAlive(silo.pid)) ?? []
    if (alive.length === 0) return yield* noCluster
    return alive.map((silo) => ({ url: trim(silo.url), label: silo.label }))
  })

/** The one silo a command asks (the first of `targets`). @since 0.2.0 */
export const target = (url: Option.Option<string>, cwd: string): Effect.Effect<Target, Unreachable> =>
  Effect.map(targets(url, cwd), (all) => all[0]!)

const reasonOf = (body: unknown): string => {
  if (typeof body !== "object" || body === null) return String(body)
  const { _tag, id, parameter, reason } = body as Record<string, unknown>
  const detail = typeof reason === "string" ? reason
    : typeof id === "string" ? `no dead letter with id ${id}`
    : JSON.stringify(body)
  return [typeof _tag === "string" ? _tag : undefined, typeof parameter === "string" ? parameter : undefined, detail]
    .filter((part) => part !== undefined).join(": ")
}

/**
 * One request to `base + path`; the body of a 2xx decoded with `schema`.
 *
 * @since 0.2.0
 */
export const call = <A, I>(
  method: "GET" | "POST",
  base: string,
  path: string,
  schema: Schema.Codec<A, I>
): Effect.Effect<A, QuarkCliError> =>
  Effect.gen(function*() {
    const url = trim(base) + path
    const response = yield* Effect.tryPromise({
      try: async () => {
        const reply = await fetch(url, { method, signal: AbortSignal.timeout(10_000) })
        return { status: reply.status, text: await reply.text() }
      },
      catch: (cause) => {
        const inner = (cause as { readonly cause?: { readonly code?: string; readonly message?: string } }).cause
        return new Unreachable({ message: `no silo answers at ${base} (${inner?.code ?? inner?.message ?? String(cause)})` })
      }
    })
    let body: unknown
    try {
      body = JSON.parse(response.text)
    } catch {
      return yield* new CommandFailed({ message: `${method} ${url}: ${response.status}, not JSON: ${response.text.slice(0, 200)}` })
    }
    if (response.status === 404) return yield* new NotFound({ message: reasonOf(body) })
    if (response.status >= 300) return yield* new CommandFailed({ message: `${method} ${path}: ${response.status} ${reasonOf(body)}` })
    return yield* Schema.decodeUnknownEffect(schema)(body).pipe(
      Effect.mapError((error) => new CommandFailed({ message: `${method} ${path}: unexpected answer (${error.message})` }))
    )
  })

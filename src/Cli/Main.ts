/**
 * The `quark` command line (effect/cli): project scaffolding, a dev cluster, and the
 * operations of a running cluster through its silos' endpoints (`Endpoints.layer`).
 *
 * ```text
 * quark new <dir> [--quark SPEC]
 * quark add actor <Name>
 * quark cluster start [--silos N] [--redis URL] [--name NAME] [--script FILE]
 * quark cluster stop
 * quark status | actors [--type T] [--limit N] | actor <type>/<id>
 * quark drain <silo>
 * quark dlq list [--limit N] [--kind K] | dlq replay <id> | dlq discard <id>
 * quark reminders list <type>/<id>
 * ```
 *
 * The cluster commands take `--url` (a silo's endpoints; default `QUARK_URL`, else the dev
 * cluster started in this directory) and `--json` (the silo's answer as JSON, for scripts;
 * human tables otherwise). `run` answers the process's exit code (see `Errors`).
 *
 * @since 0.2.0
 */
import { Console, Effect, Option, Schema } from "effect"
import { Argument, CliError, Command, Flag } from "effect/cli"
import * as Diagnostics from "../Telemetry/Diagnostics.ts"
import * as Operations from "../Telemetry/Operations.ts"
import * as Client from "./Client.ts"
import * as DevCluster from "./DevCluster.ts"
import { CommandFailed, exitCodeOf, exitCodes, NotFound, type QuarkCliError } from "./Errors.ts"
import * as Format from "./Format.ts"
import * as Scaffold from "./Scaffold.ts"
import * as State from "./State.ts"

// ---------------------------------------------------------------------------------------
// Shared flags
// ---------------------------------------------------------------------------------------

const url = Flag.String("url").pipe(
  Flag.withDescription("A silo's endpoints, http://host:port (default: QUARK_URL, else the dev cluster started here)"),
  Flag.optional
)
const json = Flag.Boolean("json").pipe(Flag.withDescription("Print the answer as JSON, for scripts"), Flag.withDefault(false))
const limit = (fallback: number) =>
  Flag.Int("limit").pipe(Flag.withDescription(`At most this many rows (default ${fallback})`), Flag.withDefault(fallback))

const ActorAddress = Schema.String.check(Schema.isPattern(/^[^/]+\/.+$/, { message: "expected <type>/<id>" }))
const address = Argument.String("address").pipe(
  Argument.withDescription("<type>/<id>: the id is everything after the first /"),
  Argument.withSchema(ActorAddress)
)
const splitAddress = (raw: string) => ({ type: raw.slice(0, raw.indexOf("/")), id: raw.slice(raw.indexOf("/") + 1) })

const cwd = () => process.cwd()
const yesNo = (flag: boolean) => (flag ? "yes" : "no")
const query = (params: Record<string, string | number | undefined>) => {
  const search = new URLSearchParams()
  for (const [name, value] of Object.entries(params)) if (value !== undefined) search.set(name, String(value))
  const text = search.toString()
  return text === "" ? "" : `?${text}`
}

// ---------------------------------------------------------------------------------------
// Project
// ---------------------------------------------------------------------------------------

const newCommand = Command.make(
  "new",
  {
    dir: Argument.String("dir").pipe(Argument.withDescription("Where to make the project (created; empty if it exists)")),
    quark: Flag.String("quark").pipe(
      Flag.withDescription("The quark dependency's spec in package.json (default: this version; a path or tarball works)"),
      Flag.optional
    )
  },
  Effect.fnUntraced(function*({ dir, quark }) {
    const files = yield* Scaffold.newProject(dir, { quark: Option.getOrUndefined(quark) })
    yield* Console.log(`created ${dir}:\n${files.map((file) => `  ${file}`).join("\n")}\n\nnext:\n  cd ${dir}\n  npm install\n  npm test\n  npm start`)
  })
).pipe(Command.withDescription("Make a new Quark project: an actor, its test, a local silo and a cluster silo"))

const ActorName = Schema.String.check(
  Schema.isPattern(/^[A-Z][A-Za-z0-9]{0,63}$/, { message: "expected a name in PascalCase (letters and digits, a capital first)" })
)

const addActor = Command.make(
  "actor",
  { name: Argument.String("name").pipe(Argument.withDescription("The actor's type name, e.g. Cart"), Argument.withSchema(ActorName)) },
  Effect.fnUntraced(function*({ name }) {
    const files = yield* Scaffold.addActor(cwd(), name)
    yield* Console.log(`added ${name}:\n${files.map((file) => `  ${file}`).join("\n")}`)
  })
).pipe(Command.withDescription("Add an actor to this project: a contract, an implementation and a test, wired into src/actors/index.ts"))

const add = Command.make("add").pipe(
  Command.withDescription("Add to this project"),
  Command.withSubcommands([addActor])
)

// ---------------------------------------------------------------------------------------
// Dev cluster
// ---------------------------------------------------------------------------------------

const clusterStart = Command.make(
  "start",
  {
    silos: Flag.Int("silos").pipe(Flag.withDescription("How many silo processes (default 3)"), Flag.withDefault(3)),
    redis: Flag.String("redis").pipe(
      Flag.withDescription("Redis for membership, directory, state and reminders (default: QUARK_REDIS_URL, else redis://127.0.0.1:6379)"),
      Flag.optional
    ),
    name: Flag.String("name").pipe(Flag.withDescription("The cluster's name (default: dev)"), Flag.withDefault("dev")),
    script: Flag.String("script").pipe(Flag.withDescription("The silo program (default: src/silo.ts)"), Flag.withDefault("src/silo.ts"))
  },
  Effect.fnUntraced(function*({ name, redis, script, silos }) {
    if (silos < 1 || silos > 32) return yield* new CommandFailed({ message: `--silos must be between 1 and 32, not ${silos}` })
    const code = yield* DevCluster.start({
      cwd: cwd(),
      silos,
      cluster: name,
      script,
      redis: Option.getOrUndefined(redis) ?? process.env["QUARK_REDIS_URL"] ?? "redis://127.0.0.1:6379"
    })
    if (code !== 0) return yield* new CommandFailed({ message: "a silo ended with an error" })
  })
).pipe(Command.withDescription("Run a local cluster of this project's silos (src/silo.ts) in the foreground, logs prefixed by silo"))

const clusterStop = Command.make(
  "stop",
  {},
  Effect.fnUntraced(function*() {
    const state = yield* DevCluster.stop(cwd())
    yield* Console.log(`stopped cluster ${state.cluster} (${state.silos.map((silo) => silo.label).join(", ") || "no silo left"})`)
  })
).pipe(Command.withDescription("Stop the dev cluster started from this directory"))

const cluster = Command.make("cluster").pipe(
  Command.withDescription("A cluster for development on this machine"),
  Command.withSubcommands([clusterStart, clusterStop])
)

// ---------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------

const status = Command.make(
  "status",
  { url, json },
  Effect.fnUntraced(function*(input) {
    const target = yield* Client.target(input.url, cwd())
    const silo = yield* Client.call("GET", target.url, "/quark/status", Diagnostics.StatusResponse)
    const members = silo.clustered ? yield* Client.call("GET", target.url, "/quark/cluster", Diagnostics.ClusterResponse) : undefined
    if (input.json) return yield* Console.log(Format.json({ status: silo, ...(members === undefined ? {} : { cluster: members }) }))
    const state = yield* State.read(cwd())
    yield* Console.log(Format.fields([
      ["silo", silo.silo],
      ["version", silo.version],
      ["uptime", Format.duration(silo.uptimeMillis)],
      ["draining", yesNo(silo.draining)],
      ["activations", `${silo.activations}${silo.types.length === 0 ? "" : ` (${silo.types.map((t) => `${t.type} ${t.activations}`).join(", ")})`}`]
    ]))
    if (members !== undefined) {
      const labelOf = (id: string) => state?.silos.find((entry) => entry.id === id)
      yield* Console.log("\n" + Format.table(
        ["member", "status", "share", "label", "endpoints"],
        members.members.map((member) => [
          member.id + (member.id === members.self ? " *" : ""),
          member.status,
          `${(member.share * 100).toFixed(1)}%`,
          labelOf(member.id)?.label ?? "",
          labelOf(member.id)?.url ?? ""
        ])
      ))
    }
  })
).pipe(Command.withDescription("The silo's status and, clustered, the members as it sees them"))

const actors = Command.make(
  "actors",
  { url, json, type: Flag.String("type").pipe(Flag.withDescription("Only actors of this type"), Flag.optional), limit: limit(100) },
  Effect.fnUntraced(function*(input) {
    const targets = yield* Client.targets(input.url, cwd())
    const rows: Array<{ readonly silo: string } & Diagnostics.ActorItem> = []
    let total = 0
    for (const target of targets) {
      const silo = (yield* Client.call("GET", target.url, "/quark/status", Diagnostics.StatusResponse)).silo
      const page = yield* Client.call(
        "GET",
        target.url,
        `/quark/actors${query({ type: Option.getOrUndefined(input.type), limit: Math.max(1, input.limit - rows.length) })}`,
        Diagnostics.ActorsResponse
      )
      total += page.page.total
      if (rows.length < input.limit) rows.push(...page.items.slice(0, input.limit - rows.length).map((item) => ({ silo, ...item })))
    }
    if (input.json) return yield* Console.log(Format.json({ items: rows, total }))
    yield* Console.log(Format.table(
      ["type", "id", "silo", "state", "mailbox", "running", "age"],
      rows.map((row) => [
        row.address.type,
        row.address.id,
        row.silo,
        row.state,
        String(row.mailboxDepth),
        String(row.runningTurns),
        Format.duration(row.ageMillis)
      ])
    ))
    yield* Console.log(`${rows.length} of ${total} activation${total === 1 ? "" : "s"}`)
  })
).pipe(Command.withDescription("The activations of the silo (--url) or of every silo of the dev cluster"))

const reminderRows = (items: ReadonlyArray<Operations.ReminderItem>) =>
  Format.table(
    ["name", "message", "next due", "ticks", "timing"],
    items.map((item) => [item.name, item.message, Format.time(item.nextDue), String(item.ticks), JSON.stringify(item.timing)])
  )

const actor = Command.make(
  "actor",
  { url, json, address },
  Effect.fnUntraced(function*(input) {
    const target = yield* Client.target(input.url, cwd())
    const path = `/quark/actor${query({ address: input.address })}`
    let answer = yield* Client.call("GET", target.url, path, Operations.ActorResponse)
    // Asked of another silo: where it is active is the owner's to say, when its endpoints are known.
    const owner = (yield* State.read(cwd()))?.silos.find((silo) => silo.id === answer.owner)
    if (owner !== undefined && answer.owner !== answer.silo) answer = yield* Client.call("GET", owner.url, path, Operations.ActorResponse)
    if (input.json) return yield* Console.log(Format.json(answer))
    yield* Console.log(Format.fields([
      ["address", `${answer.address.type}/${answer.address.id}`],
      ["owner", answer.owner ?? "(no member can take it)"],
      ["active", answer.activeHere ? `yes, on ${answer.silo}` : `not on ${answer.silo}`],
      ...(answer.activation === undefined ? [] : [
        ["state", answer.activation.state] as const,
        ["mailbox", String(answer.activation.mailboxDepth)] as const,
        ["age", Format.duration(answer.activation.ageMillis)] as const
      ]),
      ["reminders", answer.reminders === undefined ? "(no reminders on this silo)" : String(answer.reminders.length)]
    ]))
    if (answer.summary !== undefined) yield* Console.log(`\nstate summary:\n${answer.summary}`)
    if (answer.reminders !== undefined && answer.reminders.length > 0) yield* Console.log("\n" + reminderRows(answer.reminders))
  })
).pipe(Command.withDescription("Where an actor lives, whether it is active there, and its reminders"))

const drain = Command.make(
  "drain",
  {
    url,
    json,
    silo: Argument.String("silo").pipe(Argument.withDescription("A silo of the dev cluster (silo-2, or its id), or its endpoints URL"))
  },
  Effect.fnUntraced(function*(input) {
    const state = yield* State.read(cwd())
    const entry = state?.silos.find((silo) => silo.label === input.silo || silo.id === input.silo)
    const target = /^https?:\/\//.test(input.silo) ? input.silo : entry?.url
    if (target === undefined) {
      return yield* new NotFound({
        message: `no silo ${input.silo} in this directory's dev cluster` +
          (state === undefined ? " (none runs from here)" : ` (it has ${state.silos.map((s) => s.label).join(", ")})`) +
          ": name a silo of `quark cluster start`, or give its endpoints URL"
      })
    }
    const answer = yield* Client.call("POST", target, "/quark/drain", Diagnostics.DrainResponse)
    if (input.json) return yield* Console.log(Format.json(answer))
    yield* Console.log(`${entry?.label ?? target}: ${answer.silo} is draining (its activations move to the other silos; it exits when done)`)
  })
).pipe(Command.withDescription("Drain a silo: it leaves the cluster, handing its activations over"))

const dlqList = Command.make(
  "list",
  { url, json, limit: limit(100), kind: Flag.String("kind").pipe(Flag.withDescription("Only this kind (reminder, tell)"), Flag.optional) },
  Effect.fnUntraced(function*(input) {
    const target = yield* Client.target(input.url, cwd())
    const answer = yield* Client.call(
      "GET",
      target.url,
      `/quark/dlq${query({ limit: input.limit, kind: Option.getOrUndefined(input.kind) })}`,
      Operations.DeadLettersResponse
    )
    if (input.json) return yield* Console.log(Format.json(answer))
    yield* Console.log(Format.table(
      ["id", "kind", "at", "actor", "message", "reminder", "attempts", "error"],
      answer.items.map((item) => [
        item.id,
        item.kind,
        Format.time(item.at),
        `${item.address.type}/${item.address.id}`,
        item.message,
        item.reminder ?? "",
        String(item.attempts),
        item.error.replace(/\s+/g, " ").slice(0, 80)
      ])
    ))
    yield* Console.log(`${answer.items.length} dead letter${answer.items.length === 1 ? "" : "s"}`)
  })
).pipe(Command.withDescription("The dead letters (ticks given up on), oldest first"))

const dlqAction = (name: "replay" | "discard", description: string) =>
  Command.make(
    name,
    { url, json, id: Argument.String("id").pipe(Argument.withDescription("The dead letter's id (from `quark dlq list`)")) },
    Effect.fnUntraced(function*(input) {
      const target = yield* Client.target(input.url, cwd())
      const answer = yield* Client.call("POST", target.url, `/quark/dlq/${name}${query({ id: input.id })}`, Operations.DeadLetterActionResponse)
      yield* Console.log(input.json ? Format.json(answer) : `${answer.id}: ${answer.status}`)
    })
  ).pipe(Command.withDescription(description))

const dlq = Command.make("dlq").pipe(
  Command.withDescription("The dead-letter queue of the cluster's reminders"),
  Command.withSubcommands([
    dlqList,
    dlqAction("replay", "Deliver a dead letter's message again; on success it leaves the queue"),
    dlqAction("discard", "Drop a dead letter without delivering it")
  ])
)

const remindersList = Command.make(
  "list",
  { url, json, address },
  Effect.fnUntraced(function*(input) {
    const target = yield* Client.target(input.url, cwd())
    const answer = yield* Client.call("GET", target.url, `/quark/reminders${query(splitAddress(input.address))}`, Operations.RemindersResponse)
    if (input.json) return yield* Console.log(Format.json(answer))
    yield* Console.log(answer.items.length === 0 ? `${input.address} has no reminders` : reminderRows(answer.items))
  })
).pipe(Command.withDescription("An actor's reminders (the store lists them per actor)"))

const reminders = Command.make("reminders").pipe(
  Command.withDescription("The reminders of the cluster"),
  Command.withSubcommands([remindersList])
)

// ---------------------------------------------------------------------------------------
// Root
// ---------------------------------------------------------------------------------------

/** @since 0.2.0 */
export const quark = Command.make("quark").pipe(
  Command.withDescription("Quark: make a project, run a dev cluster, operate a running cluster"),
  Command.withSubcommands([newCommand, add, cluster, status, actors, actor, drain, dlq, reminders])
)

const isQuarkError = (error: unknown): error is QuarkCliError =>
  typeof error === "object" && error !== null && "_tag" in error &&
  (error._tag === "CommandFailed" || error._tag === "NotFound" || error._tag === "Unreachable")

/**
 * Runs `quark` with `args` (without the node and script paths); the exit code. A failure is
 * said on stderr, `quark: <message>`.
 *
 * @since 0.2.0
 */
export const run = (args: ReadonlyArray<string>, version: string) =>
  Command.runWith(quark, { version })(args).pipe(
    Effect.as(exitCodes.ok as number),
    Effect.catch((error: unknown) => {
      if (isQuarkError(error)) return Effect.as(Console.error(`quark: ${error.message}`), exitCodeOf(error))
      // The help was printed, with what is wrong with the command line.
      if (CliError.isCliError(error)) return Effect.succeed(error._tag === "ShowHelp" && error.errors.length === 0 ? exitCodes.ok : exitCodes.usage)
      return Effect.as(Console.error(`quark: ${String(error)}`), exitCodes.failed)
    })
  )

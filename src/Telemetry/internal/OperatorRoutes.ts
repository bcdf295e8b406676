/**
 * The operator routes of `Endpoints.layer` (what the `quark` CLI calls besides the
 * diagnostics): an actor's whereabouts, an actor's reminders, and the dead-letter queue
 * (list, replay, discard). Bodies are encoded with their schemas from `Operations`.
 *
 * Apart from `Endpoints.ts` to keep that file small; registered there with one line. Like
 * `POST /quark/drain`, replay and discard change something: the endpoints are for a trusted
 * network only (they bind to 127.0.0.1 by default).
 *
 * @internal
 */
import { Effect, Option, Schema } from "effect"
import type { HttpRouter, HttpServerRequest } from "effect/http"
import { HttpServerResponse } from "effect/http"
import type { ActorAddress } from "../../Actor/ActorAddress.ts"
import { Silo, type SiloShape } from "../../Actor/Silo.ts"
import { Cluster } from "../../Cluster/Cluster.ts"
import * as RemindersApi from "../../Reminders/Reminders.ts"
import * as Diagnostics from "../Diagnostics.ts"
import * as Operations from "../Operations.ts"
import { letterRow, summaryText } from "./DashboardData.ts"

const defaultLimit = 100
const maxLimit = 1000

const respond = <A>(
  schema: Schema.ConstraintCodec<A, unknown, never, never>,
  body: A,
  status = 200
): Effect.Effect<HttpServerResponse.HttpServerResponse> => Effect.orDie(HttpServerResponse.schemaJson(schema)(body, { status }))

/** The query's parameters; an unknown or repeated one, or a missing required one, is refused. */
const query = (
  request: HttpServerRequest.HttpServerRequest,
  known: ReadonlyArray<string>,
  required: ReadonlyArray<string>
): Effect.Effect<Map<string, string>, Diagnostics.InvalidQuery> =>
  Effect.gen(function*() {
    const values = new Map<string, string>()
    for (const [name, value] of new URL(request.url, "http://operator.invalid").searchParams) {
      if (!known.includes(name)) {
        return yield* new Diagnostics.InvalidQuery({ parameter: name, reason: `unknown parameter (expected ${known.join(", ")})` })
      }
      if (values.has(name)) return yield* new Diagnostics.InvalidQuery({ parameter: name, reason: "given more than once" })
      if (value === "") return yield* new Diagnostics.InvalidQuery({ parameter: name, reason: "empty" })
      values.set(name, value)
    }
    for (const name of required) {
      if (!values.has(name)) return yield* new Diagnostics.InvalidQuery({ parameter: name, reason: "required" })
    }
    return values
  })

const limitOf = (raw: string | undefined): Effect.Effect<number, Diagnostics.InvalidQuery> =>
  raw === undefined ? Effect.succeed(defaultLimit)
  : /^\d{1,9}$/.test(raw) && Number(raw) >= 1 ? Effect.succeed(Math.min(maxLimit, Number(raw)))
  : Effect.fail(new Diagnostics.InvalidQuery({ parameter: "limit", reason: "expected a whole number, at least 1" }))

/** `type/id`: the id is everything after the first slash (ids may hold slashes, type names do not). */
const addressOf = (raw: string): Effect.Effect<ActorAddress, Diagnostics.InvalidQuery> => {
  const slash = raw.indexOf("/")
  return slash <= 0 || slash === raw.length - 1
    ? Effect.fail(new Diagnostics.InvalidQuery({ parameter: "address", reason: "expected <type>/<id>" }))
    : Effect.succeed({ type: raw.slice(0, slash), id: raw.slice(slash + 1) })
}

const reminderItems = (silo: SiloShape, address: ActorAddress) =>
  Effect.map(
    Effect.provideService(RemindersApi.list(address), Silo, silo),
    (infos): Array<Operations.ReminderItem> =>
      infos.map((info) => ({
        address: { type: info.address.type, id: info.address.id },
        name: info.name,
        message: info.message,
        timing: Diagnostics.redact(info.timing),
        nextDue: info.nextDue,
        ticks: info.ticks,
        registeredAt: info.registeredAt
      }))
  )

const failed = (error: { readonly _tag: string; readonly message?: string }) =>
  respond(Operations.OperationFailed, new Operations.OperationFailed({ reason: error.message ? `${error._tag}: ${error.message}` : error._tag }), 503)

const invalid = (error: Diagnostics.InvalidQuery) => respond(Diagnostics.InvalidQuery, error, 400)

/**
 * Adds the operator routes to the router of `Endpoints.layer`.
 *
 * @internal
 */
export const add = Effect.fnUntraced(function*(router: HttpRouter.HttpRouter) {
  const silo = yield* Silo
  const cluster = Option.getOrUndefined(yield* Effect.serviceOption(Cluster))
  const hasReminders = Option.isSome(yield* Effect.serviceOption(RemindersApi.Reminders))
  const selfId = () => cluster?.self?.id ?? silo.router.siloId ?? "local"
  const noReminders = respond(
    Operations.NoReminders,
    new Operations.NoReminders({ reason: "this silo has no reminders: provide Reminders.layer" }),
    404
  )

  yield* router.add("GET", "/quark/actor", (request) =>
    Effect.gen(function*() {
      const address = yield* Effect.flatMap(query(request, ["address"], ["address"]), (values) => addressOf(values.get("address")!))
      const owner = cluster === undefined ? selfId() : yield* cluster.ownerOf(address)
      const row = (yield* silo.activations(address.type)).find((r) => r.address.id === address.id)
      const reminders = hasReminders ? yield* reminderItems(silo, address) : undefined
      const summary = row === undefined ? undefined : summaryText(yield* silo.describe(address))
      return yield* respond(Operations.ActorResponse, {
        address: { type: address.type, id: address.id },
        silo: selfId(),
        ...(owner === undefined ? {} : { owner }),
        activeHere: row !== undefined,
        ...(row === undefined ? {} : {
          activation: {
            address: { type: row.address.type, id: row.address.id },
            state: row.state,
            mailboxDepth: row.mailboxDepth,
            runningTurns: row.runningTurns,
            ageMillis: row.ageMillis,
            ...(row.parent === undefined ? {} : { parent: { type: row.parent.type, id: row.parent.id } })
          }
        }),
        ...(summary === undefined ? {} : { summary }),
        ...(reminders === undefined ? {} : { reminders })
      })
    }).pipe(Effect.catchTags({ InvalidQuery: invalid, StoreError: failed })))

  yield* router.add("GET", "/quark/reminders", (request) =>
    Effect.gen(function*() {
      const values = yield* query(request, ["type", "id"], ["type", "id"])
      if (!hasReminders) return yield* noReminders
      const address = { type: values.get("type")!, id: values.get("id")! }
      return yield* respond(Operations.RemindersResponse, { address, items: yield* reminderItems(silo, address) })
    }).pipe(Effect.catchTags({ InvalidQuery: invalid, StoreError: failed })))

  yield* router.add("GET", "/quark/dlq", (request) =>
    Effect.gen(function*() {
      const values = yield* query(request, ["limit", "kind"], [])
      const limit = yield* limitOf(values.get("limit"))
      if (!hasReminders) return yield* noReminders
      const letters = yield* Effect.provideService(RemindersApi.deadLetters({ limit, kind: values.get("kind") }), Silo, silo)
      return yield* respond(Operations.DeadLettersResponse, { items: letters.map(letterRow) })
    }).pipe(Effect.catchTags({ InvalidQuery: invalid, StoreError: failed })))

  const action = (status: "replayed" | "discarded", run: (id: string) => Effect.Effect<boolean, { readonly _tag: string }, Silo>) =>
    (request: HttpServerRequest.HttpServerRequest) =>
      Effect.gen(function*() {
        const id = (yield* query(request, ["id"], ["id"])).get("id")!
        if (!hasReminders) return yield* noReminders
        const done = yield* Effect.provideService(run(id), Silo, silo).pipe(Effect.mapError((error) => ({ failure: error })))
        return yield* done ?
          respond(Operations.DeadLetterActionResponse, { id, status }) :
          respond(Operations.UnknownDeadLetter, new Operations.UnknownDeadLetter({ id }), 404)
      }).pipe(Effect.catch((error) => "failure" in error ? failed(error.failure) : invalid(error)))

  yield* router.add("POST", "/quark/dlq/replay", action("replayed", RemindersApi.replay))
  yield* router.add("POST", "/quark/dlq/discard", action("discarded", RemindersApi.discard))
})

/**
 * What a silo's diagnostics endpoints (`Endpoints.layer`) answer: one Schema per JSON
 * response, so a dashboard or a CLI decodes exactly what the silo encoded, and `redact`,
 * which every configuration shown goes through.
 *
 * This module loads only `effect` (no HTTP server), so a client can import the schemas
 * without the server side: `quark/telemetry/node` re-exports it beside `Endpoints`.
 *
 * **Redaction.** `redact` turns any value into JSON and hides, at any depth:
 * - the value of every key named like a secret (`password`, `passwd`, `passphrase`, `pwd`,
 *   `secret`, `token`, `credential(s)`, `auth…`, and anything ending in `key`: `apiKey`,
 *   `private_key`), compared case-insensitively with `_`, `-` and `.` ignored, whatever
 *   the value (a nested object too);
 * - the credentials in URLs inside strings (`redis://user:pass@host` →
 *   `redis://user:[redacted]@host`; a user alone, `https://token@host`, may be a token and
 *   is hidden too; also postgres, amqp, http… URLs), and `name=value` pairs whose name is a secret's (`?password=…`,
 *   libpq's `password=… host=…`);
 * - private keys in PEM anywhere in a string (`-----BEGIN … PRIVATE KEY-----` to its `END`
 *   line, or to the end of the string when cut off), whatever the key they are under;
 * - effect `Redacted` values (a `password` of `RedisSettings`/`PgSettings`), and bytes
 *   (`Uint8Array`, `Buffer`: a key read from a file), shown as their length only.
 * It errs on the side of hiding (`keyPrefix` stays, `tokenBucket` does not): a diagnostics
 * page that shows too little costs a question, one that shows a password costs a rotation.
 * It is idempotent, and JSON without anything secret-looking comes out unchanged.
 *
 * @since 0.2.0
 */
import { Duration, Redacted, Schema } from "effect"

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/**
 * `GET /health`: the process is up and its HTTP server answers (liveness).
 *
 * @since 0.2.0
 */
export const HealthResponse = Schema.Struct({ status: Schema.Literal("ok") })

/** @since 0.2.0 */
export type HealthResponse = typeof HealthResponse.Type

/**
 * One readiness check: `name` says what was checked (`membership`, `draining`,
 * `store:<name>`, `directory`, `reminders`, or a check given to `Endpoints.layer`).
 *
 * @since 0.2.0
 */
export const ReadinessCheckResult = Schema.Struct({
  name: Schema.String,
  ok: Schema.Boolean,
  detail: Schema.optionalKey(Schema.String)
})

/** @since 0.2.0 */
export type ReadinessCheckResult = typeof ReadinessCheckResult.Type

/**
 * `GET /ready`: 200 when every check passed, 503 otherwise, with the same body.
 *
 * @since 0.2.0
 */
export const ReadyResponse = Schema.Struct({
  ready: Schema.Boolean,
  checks: Schema.Array(ReadinessCheckResult)
})

/** @since 0.2.0 */
export type ReadyResponse = typeof ReadyResponse.Type

/** @since 0.2.0 */
export const TypeCount = Schema.Struct({ type: Schema.String, activations: Schema.Int })

/**
 * `GET /quark/status`. `silo` is the cluster id (`host:port@generation`) or `"local"`;
 * `draining`: the silo is shutting down (or stopped serving after being declared dead).
 *
 * @since 0.2.0
 */
export const StatusResponse = Schema.Struct({
  silo: Schema.String,
  version: Schema.String,
  uptimeMillis: Schema.Number,
  activations: Schema.Int,
  types: Schema.Array(TypeCount),
  clustered: Schema.Boolean,
  draining: Schema.Boolean
})

/** @since 0.2.0 */
export type StatusResponse = typeof StatusResponse.Type

/** @since 0.2.0 */
export const Address = Schema.Struct({ type: Schema.String, id: Schema.String })

/**
 * One activation, as `Silo.activations` lists it; `parent` for a child actor.
 *
 * @since 0.2.0
 */
export const ActorItem = Schema.Struct({
  address: Address,
  state: Schema.String,
  mailboxDepth: Schema.Int,
  runningTurns: Schema.Int,
  ageMillis: Schema.Number,
  parent: Schema.optionalKey(Address)
})

/** @since 0.2.0 */
export type ActorItem = typeof ActorItem.Type

/**
 * The page returned: `total` rows match the filter; `nextOffset` is there when more follow.
 *
 * @since 0.2.0
 */
export const PageInfo = Schema.Struct({
  type: Schema.optionalKey(Schema.String),
  offset: Schema.Int,
  limit: Schema.Int,
  total: Schema.Int,
  nextOffset: Schema.optionalKey(Schema.Int)
})

/**
 * `GET /quark/actors?type=T&offset=0&limit=100` (limit at most 1000).
 *
 * @since 0.2.0
 */
export const ActorsResponse = Schema.Struct({ items: Schema.Array(ActorItem), page: PageInfo })

/** @since 0.2.0 */
export type ActorsResponse = typeof ActorsResponse.Type

/**
 * A member of the cluster as this silo sees it: `share` is the fraction of the hash ring
 * (of hashed addresses) it owns, 0 to 1; the shares of the ring's members sum to 1.
 *
 * @since 0.2.0
 */
export const ClusterMember = Schema.Struct({
  id: Schema.String,
  host: Schema.String,
  port: Schema.Int,
  generation: Schema.optionalKey(Schema.Int),
  status: Schema.String,
  share: Schema.Number
})

/** @since 0.2.0 */
export type ClusterMember = typeof ClusterMember.Type

/**
 * `GET /quark/cluster` (404 `NotClustered` on a local silo).
 *
 * @since 0.2.0
 */
export const ClusterResponse = Schema.Struct({ self: Schema.String, members: Schema.Array(ClusterMember) })

/**
 * One subscription's lane on this silo, as `/quark/streams` lists it (`Streams.lag`).
 *
 * @since 0.2.0
 */
export const StreamLane = Schema.Struct({
  stream: Schema.Struct({ namespace: Schema.String, key: Schema.String }),
  subscription: Schema.String,
  subscriber: Schema.Struct({ type: Schema.String, id: Schema.String }),
  message: Schema.String,
  strategy: Schema.String,
  buffered: Schema.Int,
  lagMillis: Schema.Number,
  delivered: Schema.Int,
  dropped: Schema.Int,
  failed: Schema.Int,
  lastToken: Schema.optionalKey(Schema.String)
})

/** @since 0.2.0 */
export type StreamLane = typeof StreamLane.Type

/**
 * `GET /quark/streams?limit=`: the lanes of the stream partitions this silo delivers, the
 * most behind first (by lag, then by events buffered), at most `limit` (default 100, at most
 * 1,000), with totals over all of them (404 `NoStreams` on a silo without `Streams.layer`).
 *
 * @since 0.2.0
 */
export const StreamsResponse = Schema.Struct({
  lanes: Schema.Array(StreamLane),
  totals: Schema.Struct({
    lanes: Schema.Int,
    buffered: Schema.Int,
    delivered: Schema.Int,
    dropped: Schema.Int,
    failed: Schema.Int,
    maxLagMillis: Schema.Number
  })
})

/** @since 0.2.0 */
export type StreamsResponse = typeof StreamsResponse.Type

/**
 * `POST /quark/drain` (202): the silo began to drain (or already was draining); poll
 * `/ready` (503 from now on) or watch the process exit.
 *
 * @since 0.2.0
 */
export const DrainResponse = Schema.Struct({ silo: Schema.String, status: Schema.Literal("draining") })

/** @since 0.2.0 */
export type ClusterResponse = typeof ClusterResponse.Type

/**
 * `GET /quark/config`: the silo's effective actor defaults, and the configuration the
 * program gave `Endpoints.layer`; both redacted.
 *
 * @since 0.2.0
 */
export const ConfigResponse = Schema.Struct({ actorDefaults: Schema.Json, config: Schema.Json })

/** @since 0.2.0 */
export type ConfigResponse = typeof ConfigResponse.Type

// ---------------------------------------------------------------------------------------
// Errors (the JSON body of a 4xx)
// ---------------------------------------------------------------------------------------

// ---------------------------------------------------------------------------------------
// /quark/profile: the profiler's snapshot
// ---------------------------------------------------------------------------------------

/**
 * One (type, message) over the window. Latencies in milliseconds; percentiles within 3.03 %
 * of the exact nearest-rank value.
 *
 * @since 0.2.0
 */
export const MessageProfile = Schema.Struct({
  type: Schema.String,
  message: Schema.String,
  count: Schema.Number,
  failures: Schema.Number,
  p50Millis: Schema.Number,
  p99Millis: Schema.Number,
  maxMillis: Schema.Number,
  meanMillis: Schema.Number,
  totalMillis: Schema.Number,
  turnsPerSecond: Schema.Number
})

/** @since 0.2.0 */
export type MessageProfile = typeof MessageProfile.Type

/**
 * An activation: `id` is its key (the actor id); `turns` and `millis` are lower bounds (see
 * the module doc).
 *
 * @since 0.2.0
 */
export const HotActivation = Schema.Struct({
  type: Schema.String,
  id: Schema.String,
  turns: Schema.Number,
  millis: Schema.Number
})

/** @since 0.2.0 */
export type HotActivation = typeof HotActivation.Type

/**
 * What `Profiler.snapshot` answers (and `/quark/profile`). `messages` are ordered by total turn time, most first.
 * `windowSeconds` is the window's length, `coveredSeconds` the span the figures cover (less
 * while the profiler is younger than the window).
 *
 * @since 0.2.0
 */
export const ProfileSnapshot = Schema.Struct({
  windowSeconds: Schema.Number,
  coveredSeconds: Schema.Number,
  messages: Schema.Array(MessageProfile),
  hottestByTurns: Schema.Array(HotActivation),
  hottestByTime: Schema.Array(HotActivation),
  eventLoop: Schema.Struct({ p50Millis: Schema.Number, p99Millis: Schema.Number, maxMillis: Schema.Number }),
  heap: Schema.Struct({ usedBytes: Schema.Number, totalBytes: Schema.Number, rssBytes: Schema.Number })
})

/** @since 0.2.0 */
export type ProfileSnapshot = typeof ProfileSnapshot.Type

/** @since 0.2.0 */
export type EventLoopLag = ProfileSnapshot["eventLoop"]

/**
 * A query parameter that is unknown, repeated, or not a valid value (400).
 *
 * @since 0.2.0
 */
export class InvalidQuery extends Schema.TaggedError<InvalidQuery>()("InvalidQuery", {
  parameter: Schema.String,
  reason: Schema.String
}) {}

/**
 * A cluster endpoint asked of a silo that is not a cluster member (404).
 *
 * @since 0.2.0
 */
export class NotClustered extends Schema.TaggedError<NotClustered>()("NotClustered", {
  reason: Schema.String
}) {}

/**
 * `/quark/profile` on a silo without a profiler (404): provide `Profiler.layer()`.
 *
 * @since 0.2.0
 */
export class NotProfiled extends Schema.TaggedError<NotProfiled>()("NotProfiled", {
  reason: Schema.String
}) {}

/**
 * `/quark/streams` on a silo without streams (404): provide `Streams.layer`.
 *
 * @since 0.2.0
 */
export class NoStreams extends Schema.TaggedError<NoStreams>()("NoStreams", {
  reason: Schema.String
}) {}

/**
 * Any error body the endpoints send.
 *
 * @since 0.2.0
 */
export const ErrorResponse = Schema.Union([InvalidQuery, NotClustered, NotProfiled, NoStreams])

// ---------------------------------------------------------------------------------------
// Redaction
// ---------------------------------------------------------------------------------------

/**
 * What replaces a hidden value.
 *
 * @since 0.2.0
 */
export const redacted = "[redacted]"

const secretWords = /password|passwd|passphrase|pwd|secret|token|credential|auth|key$/

/**
 * Whether a key (an object key, a query parameter's name) names a secret.
 *
 * @since 0.2.0
 */
export const isSecretKey = (key: string): boolean => secretWords.test(key.toLowerCase().replace(/[-_.\s]/g, ""))

// `scheme://userinfo@`. The userinfo runs to the last `@` before whitespace, not to the end
// of the authority: a password with an unescaped `/`, `?` or `#` (invalid, but written) is
// still hidden, at the cost of hiding a path too when a query holds an `@`.
const urlCredentials = /([a-z][a-z0-9+.-]*:\/\/)(\S*)@/gi
// `name=value` at the start, after a query separator or after whitespace (libpq's form).
const pairs = /(^|[?&;\s])([\w.-]+)=([^&;\s#]*)/g

// A PEM private key (PKCS#8, RSA, EC, encrypted, OpenSSH): its body, up to the END line or
// the end of the text. The markers stay, so a reader sees a key was there.
const privateKey = /(-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----)[\s\S]*?(?:-----END \2PRIVATE KEY-----|$)/g

const redactString = (text: string): string =>
  text
    .replace(privateKey, (_, begin: string, kind: string) => `${begin}${redacted}-----END ${kind}PRIVATE KEY-----`)
    .replace(urlCredentials, (_, scheme: string, userinfo: string) => {
      const colon = userinfo.indexOf(":")
      return colon < 0 ? `${scheme}${redacted}@` : `${scheme}${userinfo.slice(0, colon)}:${redacted}@`
    })
    .replace(pairs, (whole, before: string, name: string) => isSecretKey(name) ? `${before}${name}=${redacted}` : whole)

/** Past this depth a value is cut (a configuration is never this deep; a cycle through a getter could be). */
const maxDepth = 32

/**
 * The value as JSON, with secrets hidden (see the module doc). Functions, symbols and
 * `undefined` in arrays show as strings or `null`; `Map`s as objects, `Set`s as arrays,
 * `Date`s and `Duration`s as strings, `bigint`s as strings; a cycle as `"[circular]"`.
 *
 * @since 0.2.0
 */
export const redact = (value: unknown): Schema.Json => toJson(value, new Set(), 0)

const toJson = (value: unknown, seen: Set<object>, depth: number): Schema.Json => {
  switch (typeof value) {
    case "string":
      return redactString(value)
    case "number":
      return Number.isFinite(value) ? value : String(value)
    case "boolean":
      return value
    case "bigint":
      return value.toString()
    case "undefined":
      return null
    case "function":
      return "[function]"
    case "symbol":
      return value.toString()
  }
  if (value === null) return null
  const object = value as object
  if (Redacted.isRedacted(object)) return redacted
  if (ArrayBuffer.isView(object)) return `[${object.byteLength} bytes]`
  if (Duration.isDuration(object)) return Duration.format(object)
  if (object instanceof Date) return Number.isNaN(object.getTime()) ? "Invalid Date" : object.toISOString()
  if (seen.has(object)) return "[circular]"
  if (depth >= maxDepth) return "[too deep]"
  seen.add(object)
  try {
    if (Array.isArray(object)) return object.map((item) => toJson(item, seen, depth + 1))
    if (object instanceof Set) return [...object].map((item) => toJson(item, seen, depth + 1))
    const entries: Iterable<readonly [unknown, unknown]> = object instanceof Map ? object : Object.entries(object)
    // A null-prototype record: a key named `__proto__` from the input stays a plain key.
    const out: Record<string, Schema.Json> = Object.create(null)
    for (const [key, item] of entries) {
      const name = String(key)
      if (isSecretKey(name)) out[name] = redacted
      else if (item !== undefined) out[name] = toJson(item, seen, depth + 1)
    }
    return { ...out }
  } finally {
    // Only the path from the root counts: the same object twice side by side is no cycle.
    seen.delete(object)
  }
}

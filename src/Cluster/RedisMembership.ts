/**
 * Redis membership: the registry is a Redis hash and sorted set, announcements go over
 * pub/sub, and every silo's full read (a Lua script) both repairs its view and declares
 * timed-out members dead. The rule and the timings are in `Membership`'s module doc.
 *
 * **Key layout** (prefix default `"quark"`, cluster default `"default"`, the cluster name
 * `encodeURIComponent`-encoded; `{membership:<cluster>}` is a Redis Cluster hash tag, so the
 * scripts' keys share a slot):
 *
 * | key / channel                                | type    | content                                            |
 * | -------------------------------------------- | ------- | -------------------------------------------------- |
 * | `quark:{membership:default}:members`         | hash    | id → `{"identity":{host,port,generation},"metadata":{…}}` (metadata replaced by an update) |
 * | `quark:{membership:default}:heartbeats`      | zset    | id, score = server time (ms) of its last heartbeat  |
 * | `quark:{membership:default}:gone`            | zset    | `<reason>:<id>` tombstones (`left`, `timeout`, `superseded`), score = when |
 * | `quark:{membership:default}:version`         | string  | bumped by every join, leave, death and metadata update |
 * | `quark:{membership:default}:meta`            | hash    | `epoch` (server time the registry started, see below), `touched` (last heartbeat or join) |
 * | `quark:{membership:default}:events`          | channel | `{"kind":"Joined"/"Left"/"Dead"/"Updated",…,"version":n,"at":ms,"member":…}` |
 *
 * **One sorted set of heartbeats, not a key per member with a TTL.** Two thresholds
 * (suspected, dead) are two comparisons on one score, all members with their ages come
 * back from one script, and death is an explicit, atomic step (remove, tombstone, announce,
 * once, by whichever silo notices first) at a known time. Per-member TTL keys would give one
 * threshold only, need a separate index to list members, and vanish when Redis gets round
 * to expiring them, silently: key-space notifications are not reliable (fire-and-forget,
 * not sent while disconnected), so a death could go unannounced. The TTL is still there, for
 * the registry as a whole: every heartbeat sets `PEXPIRE max(10 × deadAfter, 1 min)` on the
 * four keys, so a cluster nobody heartbeats any more (e.g. a test run's) disappears.
 *
 * **Clock skew.** Every timestamp is the Redis server's `TIME`, read inside the scripts:
 * heartbeats are stamped by the server and ages are computed by the server, so silos' wall
 * clocks are never compared with each other or with the server. (A silo's own time only
 * measures, monotonically, how long ago its last acknowledged heartbeat was sent, for
 * self-fencing.) Scripts that read `TIME` and then write are fine in Redis ≥ 5 (effects
 * replication; the only mode since 7).
 *
 * **Connections.** One command connection (scripts, auto-pipelined) and one subscriber
 * connection (subscriber mode cannot run commands); both fail `make` at once if the server
 * cannot be reached, and reconnect with backoff afterwards (ioredis resubscribes; the full
 * read repairs what was missed meanwhile).
 *
 * @since 0.1.0
 */
import { Effect, type Layer, Queue, Schema, type Scope, Stream } from "effect"
import type { Redis } from "ioredis"
import * as RedisConnection from "../Persistence/RedisConnection.ts"
import * as RedisSettings from "../Persistence/RedisSettings.ts"
import {
  DuplicateSilo,
  type Membership,
  MembershipError,
  type MembershipShape,
  type MembershipTimings,
  Metadata,
  resolveTimings,
  type ResolvedTimings
} from "./Membership.ts"
import {
  type Backend,
  errorReason,
  type GoneReason,
  layerFrom,
  makeWithBackend,
  type MemberRecord,
  type Notice,
  type Snapshot
} from "./internal/MembershipView.ts"
import { SiloIdentity } from "./SiloIdentity.ts"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface RedisMembershipOptions extends MembershipTimings {
  /** Default: `process.env.QUARK_REDIS_URL`, else `"redis://127.0.0.1:6379"`. */
  readonly url?: string | undefined
  /** Where to connect and how to authenticate (TLS, a password): see `RedisSettings`. Default: `url`. */
  readonly connection?: RedisSettings.Input | undefined
  /** The first segment of every key. Default `"quark"`. */
  readonly keyPrefix?: string | undefined
  /** The cluster's name: silos with the same prefix and name form one cluster. Default `"default"`. */
  readonly cluster?: string | undefined
}

/**
 * The keys and channel of a cluster (see the layout in the module doc).
 *
 * @since 0.1.0
 */
export const keys = (keyPrefix = "quark", cluster = "default") => {
  const base = `${keyPrefix}:{membership:${encodeURIComponent(cluster)}}`
  return {
    members: `${base}:members`,
    heartbeats: `${base}:heartbeats`,
    gone: `${base}:gone`,
    version: `${base}:version`,
    meta: `${base}:meta`,
    channel: `${base}:events`
  } as const
}

// KEYS (every script): members, heartbeats, gone, version, meta.
const prelude = `
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function touch(ttl)
  for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
end
-- The registry's epoch, started now if it is empty and new (a restart without its data);
-- and the silence rule: after no heartbeat or join for 'silence' ms, nobody's heartbeat age
-- means anything, so every member is re-stamped 'grace' ms into the future.
local function open(t, silence, grace)
  local epoch = redis.call('HGET', KEYS[5], 'epoch')
  if not epoch then
    epoch = tostring(t)
    redis.call('HSET', KEYS[5], 'epoch', epoch, 'touched', t)
  end
  local touched = tonumber(redis.call('HGET', KEYS[5], 'touched') or t)
  if t - touched > tonumber(silence) then
    for _, id in ipairs(redis.call('HKEYS', KEYS[1])) do redis.call('ZADD', KEYS[2], 'GT', t + tonumber(grace), id) end
  end
  return tonumber(epoch)
end
local function remove(channel, id, reason, t, epoch)
  local info = redis.call('HGET', KEYS[1], id)
  redis.call('HDEL', KEYS[1], id)
  redis.call('ZREM', KEYS[2], id)
  if not info then return 0 end
  redis.call('ZADD', KEYS[3], t, reason .. ':' .. id)
  local v = redis.call('INCR', KEYS[4])
  local kind = 'Dead'
  if reason == 'left' then kind = 'Left' end
  redis.call('PUBLISH', channel, '{"kind":"' .. kind .. '","reason":"' .. reason .. '","version":' .. v ..
    ',"at":' .. t .. ',"epoch":' .. epoch .. ',"member":' .. info .. '}')
  return v
end
`

const scripts = {
  // ARGV: id, info, channel, address, generation, retention, silence, grace
  // Returns {version, time, epoch}, or {-1, 0, epoch} (a member), {-2, 0, epoch} (tombstoned).
  quarkMembershipRegister: {
    numberOfKeys: 5,
    lua: `${prelude}
local t = now()
local epoch = open(t, ARGV[7], ARGV[8])
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 1 then return {-1, 0, epoch} end
for _, reason in ipairs({'left', 'timeout', 'superseded'}) do
  if redis.call('ZSCORE', KEYS[3], reason .. ':' .. ARGV[1]) then return {-2, 0, epoch} end
end
redis.call('HSET', KEYS[5], 'touched', t)
local generation = tonumber(ARGV[5])
for _, other in ipairs(redis.call('HKEYS', KEYS[1])) do
  local address, g = string.match(other, '^(.*)@(%d+)$')
  if address == ARGV[4] and tonumber(g) < generation then remove(ARGV[3], other, 'superseded', t, epoch) end
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZADD', KEYS[2], t, ARGV[1])
local v = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[3], '{"kind":"Joined","version":' .. v .. ',"at":' .. t .. ',"epoch":' .. epoch ..
  ',"member":' .. ARGV[2] .. '}')
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', t - tonumber(ARGV[6]))
touch(ARGV[6])
return {v, t, epoch}`
  },
  // ARGV: id, retention, epoch, silence, grace. Returns 1; 0 if not a member (never
  // re-creates an entry); -1 if the registry's epoch is another (register again).
  quarkMembershipHeartbeat: {
    numberOfKeys: 5,
    lua: `${prelude}
local t = now()
if open(t, ARGV[4], ARGV[5]) ~= tonumber(ARGV[3]) then return -1 end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HSET', KEYS[5], 'touched', t)
redis.call('ZADD', KEYS[2], t, ARGV[1])
touch(ARGV[2])
return 1`
  },
  // ARGV: id, info, channel, epoch, retention, silence, grace. Replaces a member's entry
  // (its metadata; never creates one) and announces Updated. Returns {version, time, epoch},
  // {0, 0, epoch} if not a member, {-1, 0, epoch} if the registry's epoch is another.
  // Not a heartbeat: it leaves the heartbeat and 'touched' alone.
  quarkMembershipUpdate: {
    numberOfKeys: 5,
    lua: `${prelude}
local t = now()
local epoch = open(t, ARGV[6], ARGV[7])
if epoch ~= tonumber(ARGV[4]) then return {-1, 0, epoch} end
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return {0, 0, epoch} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
local v = redis.call('INCR', KEYS[4])
redis.call('PUBLISH', ARGV[3], '{"kind":"Updated","version":' .. v .. ',"at":' .. t .. ',"epoch":' .. epoch ..
  ',"member":' .. ARGV[2] .. '}')
touch(ARGV[5])
return {v, t, epoch}`
  },
  // ARGV: id, channel. Returns the new version, or 0 if not a member.
  quarkMembershipLeave: {
    numberOfKeys: 5,
    lua: `${prelude}
return remove(ARGV[2], ARGV[1], 'left', now(), tonumber(redis.call('HGET', KEYS[5], 'epoch') or '0'))`
  },
  // ARGV: channel, deadAfter, retention, silence, grace.
  // Declares members without a heartbeat for deadAfter dead, then returns
  // {version, time, {info1, beat1, info2, beat2, ...}, {tombstone, ...}, epoch}.
  quarkMembershipSnapshot: {
    numberOfKeys: 5,
    lua: `${prelude}
local t = now()
local epoch = open(t, ARGV[4], ARGV[5])
local deadline = t - tonumber(ARGV[2])
local members = redis.call('HGETALL', KEYS[1])
local out = {}
for i = 1, #members, 2 do
  local beat = redis.call('ZSCORE', KEYS[2], members[i])
  if (not beat) or tonumber(beat) <= deadline then
    remove(ARGV[1], members[i], 'timeout', t, epoch)
  else
    out[#out + 1] = members[i + 1]
    out[#out + 1] = beat
  end
end
for _, id in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('HEXISTS', KEYS[1], id) == 0 then redis.call('ZREM', KEYS[2], id) end
end
redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', t - tonumber(ARGV[3]))
return {tonumber(redis.call('GET', KEYS[4]) or '0'), t, out, redis.call('ZRANGE', KEYS[3], 0, -1), epoch}`
  }
}

type Keys5 = [string, string, string, string, string]

interface Scripts {
  quarkMembershipRegister(
    ...args: [
      ...Keys5,
      id: string,
      info: string,
      channel: string,
      address: string,
      generation: number,
      retention: number,
      silence: number,
      grace: number
    ]
  ): Promise<[number, number, number]>
  quarkMembershipHeartbeat(...args: [...Keys5, id: string, retention: number, epoch: number, silence: number, grace: number]): Promise<number>
  quarkMembershipUpdate(
    ...args: [
      ...Keys5,
      id: string,
      info: string,
      channel: string,
      epoch: number,
      retention: number,
      silence: number,
      grace: number
    ]
  ): Promise<[number, number, number]>
  quarkMembershipLeave(...args: [...Keys5, id: string, channel: string]): Promise<number>
  quarkMembershipSnapshot(
    ...args: [...Keys5, channel: string, deadAfter: number, retention: number, silence: number, grace: number]
  ): Promise<[number, number, Array<string>, Array<string>, number]>
}

type Client = Redis & Scripts

const connect = (settings: RedisSettings.Input | undefined, connectionName: string) =>
  RedisConnection.connect<Client, MembershipError>(
    settings,
    { scripts, connectionName, retry: { stepMillis: 50, capMillis: 1_000 } },
    (reason) => new MembershipError({ operation: "connect", reason })
  )

const StoredMember = Schema.Struct({ identity: SiloIdentity, metadata: Metadata })
const decodeMember = Schema.decodeUnknownExit(Schema.fromJsonString(StoredMember))
const encodeMember = (record: MemberRecord): string =>
  JSON.stringify({
    identity: { host: record.identity.host, port: record.identity.port, generation: record.identity.generation },
    metadata: record.metadata
  })

const NoticeJson = Schema.fromJsonString(Schema.Struct({
  kind: Schema.Literals(["Joined", "Left", "Dead", "Updated"]),
  reason: Schema.optional(Schema.Literals(["left", "timeout", "superseded"])),
  version: Schema.Number,
  at: Schema.Number,
  epoch: Schema.Number,
  member: StoredMember
}))
const decodeNotice = Schema.decodeUnknownExit(NoticeJson)

const toNotice = (message: string): Notice | undefined => {
  const exit = decodeNotice(message)
  if (exit._tag === "Failure") return undefined
  const { at, epoch, kind, member, reason, version } = exit.value
  if (kind === "Dead") {
    return { kind, reason: reason === "superseded" ? "superseded" : "timeout", member, version, at, epoch }
  }
  return { kind, member, version, at, epoch }
}

const goneReasons: ReadonlySet<string> = new Set(["left", "timeout", "superseded"])

const backendFor = (
  command: Client,
  subscriber: Redis,
  options: RedisMembershipOptions,
  timings: ResolvedTimings
): Backend => {
  const k = keys(options.keyPrefix, options.cluster)
  const k5: Keys5 = [k.members, k.heartbeats, k.gone, k.version, k.meta]
  const silence = timings.silenceMillis
  const grace = timings.outageGraceMillis
  const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, MembershipError> =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new MembershipError({ operation, reason: errorReason(cause) })
    })

  return {
    register: (record) =>
      Effect.flatMap(
        call("register", () =>
          command.quarkMembershipRegister(
            ...k5,
            record.identity.id,
            encodeMember(record),
            k.channel,
            record.identity.address,
            record.identity.generation,
            timings.retentionMillis,
            silence,
            grace
          )),
        ([version, at, epoch]) =>
          version === -1 ?
            Effect.fail(new DuplicateSilo({ id: record.identity.id, detail: "it is already a member" })) :
            version === -2 ?
            Effect.fail(
              new DuplicateSilo({
                id: record.identity.id,
                detail: "it left or was declared dead; restart with a new generation"
              })
            ) :
            Effect.succeed({ version, at, epoch })
      ),
    heartbeat: (id, epoch) =>
      Effect.map(
        call("heartbeat", () => command.quarkMembershipHeartbeat(...k5, id, timings.retentionMillis, epoch, silence, grace)),
        (result) => result === 1 ? "ok" : result === -1 ? "reset" : "gone"
      ),
    update: (record, epoch) =>
      Effect.map(
        call("update metadata", () =>
          command.quarkMembershipUpdate(
            ...k5,
            record.identity.id,
            encodeMember(record),
            k.channel,
            epoch,
            timings.retentionMillis,
            silence,
            grace
          )),
        ([version, at, registryEpoch]) =>
          version === -1 ? "reset" as const : version === 0 ? "gone" as const : { version, at, epoch: registryEpoch }
      ),
    leave: (id) =>
      Effect.map(
        call("leave", () => command.quarkMembershipLeave(...k5, id, k.channel)),
        (version) => (version > 0 ? version : undefined)
      ),
    snapshot: Effect.flatMap(
      call("read the membership", () =>
        command.quarkMembershipSnapshot(...k5, k.channel, timings.deadMillis, timings.retentionMillis, silence, grace)),
      ([version, now, flat, tombstones, epoch]) => {
        const members: Array<Snapshot["members"][number]> = []
        let undecodable = 0
        for (let i = 0; i + 1 < flat.length; i += 2) {
          const exit = decodeMember(flat[i])
          if (exit._tag === "Success") members.push({ record: exit.value, lastHeartbeat: Number(flat[i + 1]) })
          else undecodable++
        }
        const gone = new Map<string, GoneReason>()
        for (const tombstone of tombstones) {
          const colon = tombstone.indexOf(":")
          const reason = tombstone.slice(0, colon)
          if (colon > 0 && goneReasons.has(reason)) gone.set(tombstone.slice(colon + 1), reason as GoneReason)
        }
        const snapshot: Snapshot = { epoch, version, now, members, gone }
        return undecodable === 0 ?
          Effect.succeed(snapshot) :
          Effect.as(Effect.logWarning(`membership: ${undecodable} registry entries do not decode; ignored`), snapshot)
      }
    ),
    subscribe: Effect.gen(function*() {
      const queue = yield* Queue.unbounded<Notice>()
      const onMessage = (channel: string, message: string) => {
        if (channel !== k.channel) return
        const notice = toNotice(message)
        if (notice !== undefined) Queue.offerUnsafe(queue, notice)
      }
      yield* Effect.acquireRelease(
        Effect.andThen(
          Effect.sync(() => subscriber.on("message", onMessage)),
          call("subscribe", () => subscriber.subscribe(k.channel))
        ),
        () =>
          Effect.andThen(
            Effect.sync(() => subscriber.removeListener("message", onMessage)),
            Effect.andThen(Effect.ignore(call("unsubscribe", () => subscriber.unsubscribe(k.channel))), Queue.shutdown(queue))
          )
      )
      return Stream.fromQueue(queue)
    })
  }
}

/**
 * One silo's Redis membership: opens a command and a subscriber connection (failing with
 * `MembershipError` if the server cannot be reached), reads the registry once, and runs
 * until the scope closes.
 *
 * @since 0.1.0
 */
export const make = (options: RedisMembershipOptions = {}): Effect.Effect<MembershipShape, MembershipError, Scope.Scope> =>
  Effect.gen(function*() {
    const timings = yield* resolveTimings(options)
    const settings = RedisSettings.fromOptions(options.url, options.connection)
    const name = `quark-membership:${encodeURIComponent(options.cluster ?? "default")}`
    const command = yield* connect(settings, name)
    const subscriber = yield* connect(settings, `${name}:subscriber`)
    return yield* makeWithBackend(backendFor(command, subscriber, options, timings), timings)
  })

/**
 * The `Membership` service of one silo, on Redis.
 *
 * @since 0.1.0
 */
export const layer = (options?: RedisMembershipOptions): Layer.Layer<Membership, MembershipError> =>
  layerFrom(make(options))

/**
 * The Redis provider: a `Store` (state records and journals) on one ioredis connection.
 *
 * **Key layout.** Every key is `<prefix>:{<type>:<id>}:<kind>:<record>` (prefix default
 * `"quark"`), with `type`, `id` and `record` each `encodeURIComponent`-encoded, so an id
 * holding `:`, `/`, `{` or `}` cannot run into another key. The `{type:id}` part is a
 * Redis Cluster hash tag: all keys of one actor share a slot (keep braces out of the
 * prefix, which is used verbatim).
 *
 * | key (type `Account`, id `a/1`)           | Redis type | content                        |
 * | ---------------------------------------- | ---------- | ------------------------------ |
 * | `quark:{Account:a%2F1}:state:balance`    | hash       | `version`, `data`              |
 * | `quark:{Account:a%2F1}:journal:ledger`   | list       | the events; index i is seq i+1 |
 * | `quark:{Account:a%2F1}:snapshot:ledger`  | hash       | `sequence`, `data`             |
 *
 * Data (JSON text) is stored as given.
 *
 * **Journals are lists, not streams.** Sequence numbers are dense (1..n), so a list's index
 * is the sequence: `LLEN` is the last sequence and `LRANGE` reads a range by index, with no
 * per-entry ids or field maps to store. Stream ids are time-based and would need a mapping
 * to sequence numbers; what streams add (consumer groups, trimming) a journal does not use.
 *
 * **Atomicity.** Every compare-and-set (state write and clear, journal append, snapshot
 * save) is one Lua script, which Redis runs without interleaving. The scripts are
 * registered with ioredis, which sends each once per connection and then `EVALSHA`.
 * Auto-pipelining lets concurrent commands from many actors share round trips.
 *
 * Operations are timed as store kind `"redis"` (`internal/StoreMetrics.ts`).
 *
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import type { Redis } from "ioredis"
import type { Journal, JournalEntry } from "./Journal.ts"
import { connect, reasonOf } from "./RedisConnection.ts"
import * as RedisSettings from "./RedisSettings.ts"
import { JournalConflict, StateConflict, StoreError } from "./PersistenceError.ts"
import { formatKey, type StateKey, type StateStore } from "./StateStore.ts"
import { instrumentJournal, instrumentState } from "./internal/StoreMetrics.ts"
import { withRedisScan } from "./internal/RedisScan.ts"
import type { Store } from "./Stores.ts"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface RedisStoreOptions {
  /** Default: `process.env.QUARK_REDIS_URL`, else `"redis://127.0.0.1:6379"`. */
  readonly url?: string
  /** Where to connect and how to authenticate (TLS, a password): see `RedisSettings`. Default: `url`. */
  readonly connection?: RedisSettings.Input
  /** The first segment of every key. Default: `"quark"`. */
  readonly keyPrefix?: string
}

/**
 * The kinds of key of one actor.
 *
 * @since 0.1.0
 */
export type KeyKind = "state" | "journal" | "snapshot"

/**
 * The Redis key of a record (see the layout in the module doc).
 *
 * @since 0.1.0
 */
export const redisKey = (prefix: string, kind: KeyKind, key: StateKey): string =>
  `${prefix}:{${encodeURIComponent(key.type)}:${encodeURIComponent(key.id)}}:${kind}:${encodeURIComponent(key.record)}`

// Script convention: a result >= 0 is success (the new version / sequence); a negative
// result is a conflict, and `-result - 1` is the stored version / sequence.
const scripts = {
  quarkWriteState: {
    numberOfKeys: 1,
    lua: `local actual = tonumber(redis.call('HGET', KEYS[1], 'version')) or 0
if actual ~= tonumber(ARGV[1]) then return -actual - 1 end
redis.call('HSET', KEYS[1], 'version', actual + 1, 'data', ARGV[2])
return actual + 1`
  },
  quarkClearState: {
    numberOfKeys: 1,
    lua: `local actual = tonumber(redis.call('HGET', KEYS[1], 'version')) or 0
if actual ~= tonumber(ARGV[1]) then return -actual - 1 end
redis.call('DEL', KEYS[1])
return 0`
  },
  // RPUSH in chunks: Lua's unpack cannot spread more than ~8000 values at once.
  quarkAppend: {
    numberOfKeys: 1,
    lua: `local length = redis.call('LLEN', KEYS[1])
if length ~= tonumber(ARGV[1]) then return -length - 1 end
for i = 2, #ARGV, 4000 do
  length = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 3999, #ARGV)))
end
return length`
  },
  quarkSaveSnapshot: {
    numberOfKeys: 1,
    lua: `local current = tonumber(redis.call('HGET', KEYS[1], 'sequence'))
if current == nil or current <= tonumber(ARGV[1]) then
  redis.call('HSET', KEYS[1], 'sequence', ARGV[1], 'data', ARGV[2])
end
return 0`
  }
}

interface Scripts {
  quarkWriteState(key: string, expected: number, data: string): Promise<number>
  quarkClearState(key: string, expected: number): Promise<number>
  // ioredis flattens array arguments, so the events need not be spread into the call.
  quarkAppend(key: string, expected: number, events: ReadonlyArray<string>): Promise<number>
  quarkSaveSnapshot(key: string, sequence: number, data: string): Promise<number>
}

type Client = Redis & Scripts

/**
 * A Redis-backed `Store` named `name`: opens one connection (failing with `StoreError` if
 * the server cannot be reached) and closes it when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (name: string, options?: RedisStoreOptions): Effect.Effect<Store, StoreError, Scope.Scope> =>
  Effect.map(
    connect<Client, StoreError>(
      RedisSettings.fromOptions(options?.url, options?.connection),
      { scripts, retry: { stepMillis: 100, capMillis: 2_000 } },
      (reason) => new StoreError({ store: name, operation: "connect", reason })
    ),
    (redis) => fromClient(name, redis, options?.keyPrefix ?? "quark")
  )

const fromClient = (name: string, redis: Client, prefix: string): Store => {
  // The key is built inside `try`, so an id that cannot be encoded (a lone surrogate) is a StoreError too.
  const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StoreError> =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new StoreError({ store: name, operation, reason: reasonOf(cause) })
    })

  const state: StateStore = {
    name,
    read: (key) =>
      Effect.map(
        call("read state", () => redis.hmget(redisKey(prefix, "state", key), "data", "version")),
        ([data, version]) => data === null ? undefined : { data, version: Number(version) }
      ),
    write: (key, data, expectedVersion) =>
      Effect.flatMap(
        call("write state", () => redis.quarkWriteState(redisKey(prefix, "state", key), expectedVersion, data)),
        (result) =>
          result >= 0 ? Effect.succeed(result) : Effect.fail(
            new StateConflict({ key: formatKey(key), expectedVersion, actualVersion: -result - 1 })
          )
      ),
    clear: (key, expectedVersion) =>
      Effect.flatMap(
        call("clear state", () => redis.quarkClearState(redisKey(prefix, "state", key), expectedVersion)),
        (result) =>
          result >= 0 ? Effect.void : Effect.fail(
            new StateConflict({ key: formatKey(key), expectedVersion, actualVersion: -result - 1 })
          )
      )
  }

  const journal: Journal = {
    name,
    append: (key, expectedSequence, events) =>
      Effect.flatMap(
        call("append", () => redis.quarkAppend(redisKey(prefix, "journal", key), expectedSequence, events)),
        (result) =>
          result >= 0 ? Effect.succeed(result) : Effect.fail(
            new JournalConflict({ key: formatKey(key), expectedSequence, actualSequence: -result - 1 })
          )
      ),
    read: (key, from, to) => {
      const first = Math.max(from, 1)
      // LRANGE reads a negative stop as "from the end", so an empty range must not reach it.
      if (to !== undefined && to < first) return Effect.succeed([])
      return Effect.map(
        call("read journal", () => redis.lrange(redisKey(prefix, "journal", key), first - 1, to === undefined ? -1 : to - 1)),
        (events) => events.map((data, i): JournalEntry => ({ sequence: first + i, data }))
      )
    },
    lastSequence: (key) => call("read last sequence", () => redis.llen(redisKey(prefix, "journal", key))),
    saveSnapshot: (key, snapshot) =>
      Effect.asVoid(call("save snapshot", () =>
        redis.quarkSaveSnapshot(redisKey(prefix, "snapshot", key), snapshot.sequence, snapshot.data))),
    loadSnapshot: (key) =>
      Effect.map(
        call("load snapshot", () => redis.hmget(redisKey(prefix, "snapshot", key), "sequence", "data")),
        ([sequence, data]) => sequence === null || data === null ? undefined : { sequence: Number(sequence), data }
      )
  }

  // The re-encryption job enumerates through this (`internal/StoreScan.ts`).
  return withRedisScan(
    { name, state: instrumentState("redis", state), journal: instrumentJournal("redis", journal) },
    redis,
    prefix,
    (kind, key) => redisKey(prefix, kind, key)
  )
}

/**
 * The Redis activation directory: one key per actor address, holding the owner's silo id,
 * with the lease as the key's `PX` expiry (so the lease runs on the server's clock, and an
 * expired entry is simply gone); see the lease rule in `Directory.ts`.
 *
 * **Key layout** (prefix default `"quark"`, cluster default `"default"`; cluster, type, id
 * and owner each `encodeURIComponent`-encoded, so a `:` or `{` in them cannot run into
 * another key; the prefix is used verbatim, keep braces out of it):
 *
 * | key (cluster `default`, type `Room`, id `a:1`) | Redis type | content                                 |
 * | ---------------------------------------------- | ---------- | --------------------------------------- |
 * | `quark:{directory:default}:entry:Room:a%3A1`   | string     | the owner's silo id, `PX` = the lease   |
 * | `quark:{directory:default}:silo:<owner>`       | set        | the entry keys that owner registered    |
 *
 * A silo's set may still name entries that expired or were taken over since: `removeSilo`
 * deletes only the entries the silo still owns. The set's own expiry is kept at least as
 * late as that of every entry added to or renewed in it, so it disappears after its last
 * lease: nothing a cluster (e.g. a test run's) wrote outlives its leases.
 *
 * **Atomicity.** `register` (`SET NX PX`, else answer the current owner), `renew`,
 * `unregister` and `transfer` (compare the owner, then change) and `removeSilo` are each one Lua script,
 * registered with ioredis (sent once per connection, then `EVALSHA`). The scripts touch an
 * entry and a silo's set together, so all keys of one cluster share the hash tag
 * `{directory:<cluster>}` and hence one Redis Cluster slot (one cluster's directory lives
 * on one shard).
 *
 * @since 0.1.0
 */
import { Effect, Layer, type Scope } from "effect"
import type { Redis } from "ioredis"
import { connect, reasonOf } from "../Persistence/RedisConnection.ts"
import * as RedisSettings from "../Persistence/RedisSettings.ts"
import {
  checkArguments,
  Directory,
  type DirectoryAddress,
  DirectoryError,
  type DirectoryShape,
  Registered,
  Taken
} from "./Directory.ts"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface RedisDirectoryOptions {
  /** Default: `process.env.QUARK_REDIS_URL`, else `"redis://127.0.0.1:6379"`. */
  readonly url?: string | undefined
  /** Where to connect and how to authenticate (TLS, a password): see `RedisSettings`. Default: `url`. */
  readonly connection?: RedisSettings.Input | undefined
  /** The first segment of every key. Default: `"quark"`. */
  readonly keyPrefix?: string | undefined
  /** The cluster's name: silos with the same prefix and name share one directory. Default `"default"`. */
  readonly cluster?: string | undefined
}

/**
 * The keys of a cluster's directory (see the layout in the module doc).
 *
 * @since 0.1.0
 */
export const keys = (keyPrefix = "quark", cluster = "default") => {
  const base = `${keyPrefix}:{directory:${encodeURIComponent(cluster)}}`
  return {
    entry: (address: DirectoryAddress): string =>
      `${base}:entry:${encodeURIComponent(address.type)}:${encodeURIComponent(address.id)}`,
    silo: (owner: string): string => `${base}:silo:${encodeURIComponent(owner)}`
  }
}

// Keeps the silo set (KEYS[2]) alive at least `lease` (ARGV[2]) from now.
const extendSilo = `if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end`

const scripts = {
  // KEYS: entry, silo set of the owner. ARGV: owner, lease. Nil = registered; else the owner.
  quarkDirectoryRegister: {
    numberOfKeys: 2,
    lua: `if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  local current = redis.call('GET', KEYS[1])
  if current ~= ARGV[1] then return current end
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
redis.call('SADD', KEYS[2], KEYS[1])
${extendSilo}
return false`
  },
  // KEYS: entry, silo set of the owner. ARGV: owner, lease. 1 = renewed, 0 = not the owner.
  quarkDirectoryRenew: {
    numberOfKeys: 2,
    lua: `if redis.call('GET', KEYS[1]) ~= ARGV[1] then
  redis.call('SREM', KEYS[2], KEYS[1])
  return 0
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
redis.call('SADD', KEYS[2], KEYS[1])
${extendSilo}
return 1`
  },
  // KEYS: entry, silo set of the owner. ARGV: owner. 1 = removed, 0 = not the owner.
  quarkDirectoryUnregister: {
    numberOfKeys: 2,
    lua: `redis.call('SREM', KEYS[2], KEYS[1])
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`
  },
  // KEYS: silo set of the owner. ARGV: owner. Answers how many entries it removed.
  quarkDirectoryRemoveSilo: {
    numberOfKeys: 1,
    lua: `local removed = 0
for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    removed = removed + 1
  end
end
redis.call('DEL', KEYS[1])
return removed`
  },
  // KEYS: entry, silo set of the owner, silo set of the new owner. ARGV: owner, new owner,
  // lease. 1 = transferred, 0 = not the owner (nothing changed).
  quarkDirectoryTransfer: {
    numberOfKeys: 3,
    lua: `if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('SREM', KEYS[2], KEYS[1])
redis.call('SADD', KEYS[3], KEYS[1])
if redis.call('PTTL', KEYS[3]) < tonumber(ARGV[3]) then redis.call('PEXPIRE', KEYS[3], ARGV[3]) end
return 1`
  }
}

interface Scripts {
  quarkDirectoryRegister(entry: string, silo: string, owner: string, lease: number): Promise<string | null>
  quarkDirectoryRenew(entry: string, silo: string, owner: string, lease: number): Promise<number>
  quarkDirectoryUnregister(entry: string, silo: string, owner: string): Promise<number>
  quarkDirectoryRemoveSilo(silo: string, owner: string): Promise<number>
  quarkDirectoryTransfer(entry: string, from: string, to: string, owner: string, next: string, lease: number): Promise<number>
}

type Client = Redis & Scripts

/**
 * A Redis directory on one new connection (failing with `DirectoryError`, operation
 * `"connect"`, if the server cannot be reached), closed when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (options: RedisDirectoryOptions = {}): Effect.Effect<DirectoryShape, DirectoryError, Scope.Scope> =>
  Effect.map(
    connect<Client, DirectoryError>(
      RedisSettings.fromOptions(options.url, options.connection),
      {
        scripts,
        connectionName: `quark-directory:${encodeURIComponent(options.cluster ?? "default")}`,
        retry: { stepMillis: 100, capMillis: 2_000 }
      },
      (reason) => new DirectoryError({ operation: "connect", reason })
    ),
    (redis) => fromClient(redis, keys(options.keyPrefix, options.cluster))
  )

/**
 * The `Directory` service on Redis.
 *
 * @since 0.1.0
 */
export const layer = (options?: RedisDirectoryOptions): Layer.Layer<Directory, DirectoryError> =>
  Layer.effect(Directory, make(options))

const fromClient = (redis: Client, k: ReturnType<typeof keys>): DirectoryShape => {
  // Keys are built inside `try`, so an id that cannot be encoded (a lone surrogate) is a DirectoryError too.
  const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, DirectoryError> =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new DirectoryError({ operation, reason: reasonOf(cause) })
    })

  return Directory.of({
    register: (address, owner, leaseMillis) =>
      Effect.flatMap(checkArguments("register", owner, leaseMillis), (lease) =>
        Effect.map(
          call("register", () => redis.quarkDirectoryRegister(k.entry(address), k.silo(owner), owner, lease)),
          (current) => current === null ? Registered : Taken(current)
        )),
    lookup: (address) =>
      Effect.map(call("lookup", () => redis.get(k.entry(address))), (owner) => owner ?? undefined),
    renew: (address, owner, leaseMillis) =>
      Effect.flatMap(checkArguments("renew", owner, leaseMillis), (lease) =>
        Effect.map(
          call("renew", () => redis.quarkDirectoryRenew(k.entry(address), k.silo(owner), owner, lease)),
          (renewed) => renewed === 1
        )),
    unregister: (address, owner) =>
      Effect.flatMap(checkArguments("unregister", owner), () =>
        Effect.asVoid(call("unregister", () => redis.quarkDirectoryUnregister(k.entry(address), k.silo(owner), owner)))),
    removeSilo: (owner) =>
      Effect.flatMap(checkArguments("removeSilo", owner), () =>
        call("removeSilo", () => redis.quarkDirectoryRemoveSilo(k.silo(owner), owner))),
    transfer: (address, from, to, leaseMillis) =>
      Effect.flatMap(
        Effect.andThen(checkArguments("transfer", from), checkArguments("transfer", to, leaseMillis)),
        (lease) =>
          Effect.map(
            call("transfer", () =>
              redis.quarkDirectoryTransfer(k.entry(address), k.silo(from), k.silo(to), from, to, lease)),
            (moved) => moved === 1
          )
      )
  })
}

/**
 * The re-encryption scan of the Redis store (`StoreScan.ts`): `SCAN` over the store's key
 * pattern (`<prefix>:{*}:<kind>:*`, 500 keys a step; a key can be listed twice, which the
 * job tolerates: the second visit finds it current), keys parsed back from the layout of
 * `RedisStore` (each part URI-encoded, so `:`, `{` and `}` cannot occur inside one), and
 * the two compare-and-set replacements as Lua scripts.
 *
 * @internal
 */
import { Effect } from "effect"
import type { Redis } from "ioredis"
import { StoreError } from "../PersistenceError.ts"
import type { StateKey } from "../StateStore.ts"
import { type JournalScan, type KeyPage, type StateScan, withScan } from "./StoreScan.ts"

type Kind = "state" | "journal" | "snapshot"

const replaceEventScript = `if redis.call('LINDEX', KEYS[1], ARGV[1]) == ARGV[2] then
  redis.call('LSET', KEYS[1], ARGV[1], ARGV[3])
  return 1
end
return 0`

const replaceSnapshotScript = `if redis.call('HGET', KEYS[1], 'sequence') == ARGV[1] and redis.call('HGET', KEYS[1], 'data') == ARGV[2] then
  redis.call('HSET', KEYS[1], 'data', ARGV[3])
  return 1
end
return 0`

/** Escapes Redis glob characters in the verbatim prefix. */
const globEscape = (text: string): string => text.replace(/[*?[\]\\]/g, (c) => `\\${c}`)

/** The scans of a Redis store on `redis`, keys under `prefix` (`keyOf` builds one as the store does). @internal */
export const redisScan = (
  name: string,
  redis: Redis,
  prefix: string,
  keyOf: (kind: Kind, key: StateKey) => string
): StateScan & JournalScan => {
  const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StoreError> =>
    Effect.tryPromise({
      try: run,
      catch: (cause) => new StoreError({ store: name, operation, reason: cause instanceof Error ? cause.message : String(cause) })
    })
  const head = `${prefix}:{`
  const parse = (kind: Kind, redisKey: string): StateKey | undefined => {
    const rest = redisKey.slice(head.length)
    const close = rest.indexOf("}:")
    const colon = rest.indexOf(":")
    const tail = `}:${kind}:`
    if (close < 0 || colon < 0 || colon > close || !rest.startsWith(tail, close)) return undefined
    try {
      return {
        type: decodeURIComponent(rest.slice(0, colon)),
        id: decodeURIComponent(rest.slice(colon + 1, close)),
        record: decodeURIComponent(rest.slice(close + tail.length))
      }
    } catch {
      return undefined
    }
  }
  const scan = (kind: Kind) => (cursor: string | undefined): Effect.Effect<KeyPage, StoreError> =>
    Effect.map(
      call("scan", () => redis.scan(cursor ?? "0", "MATCH", `${globEscape(head)}*}:${kind}:*`, "COUNT", 500)),
      ([next, found]) => ({
        keys: found.flatMap((k) => parse(kind, k) ?? []),
        cursor: next === "0" ? undefined : next
      })
    )
  return {
    stateKeys: scan("state"),
    journalKeys: scan("journal"),
    snapshotKeys: scan("snapshot"),
    replaceEvent: (key, sequence, expected, data) =>
      Effect.map(
        call("replace event", () => redis.eval(replaceEventScript, 1, keyOf("journal", key), sequence - 1, expected, data)),
        (result) => result === 1
      ),
    replaceSnapshot: (key, sequence, expected, data) =>
      Effect.map(
        call("replace snapshot", () => redis.eval(replaceSnapshotScript, 1, keyOf("snapshot", key), String(sequence), expected, data)),
        (result) => result === 1
      )
  }
}

/** `store` with the scans of {@link redisScan} registered. @internal */
export const withRedisScan = <S extends { readonly name: string; readonly state: object; readonly journal: object }>(
  store: S,
  redis: Redis,
  prefix: string,
  keyOf: (kind: Kind, key: StateKey) => string
): S => withScan(store, redisScan(store.name, redis, prefix, keyOf))

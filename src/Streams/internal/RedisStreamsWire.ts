/**
 * The Redis side of `RedisStreamProvider`: the consumer group's name, the Lua scripts, and
 * the decoding of what Redis returns (RESP2 and RESP3 shapes both), kept apart from the
 * provider's logic.
 *
 * @internal
 */
import type { Clock } from "effect"
import type { Redis } from "ioredis"
import type { Position, StreamEntry } from "../StreamProvider.ts"
import * as StreamToken from "../StreamToken.ts"

/** The consumer group of every partition. */
export const group = "quark"

/** Elapsed-time readings for deadlines: the monotonic clock (the wall clock may jump). */
export const monotonicMillis = (clock: Clock.Clock): number => Number(clock.monotonicTimeNanosUnsafe() / 1_000_000n)

/** Entries per append script and ids per `XACK`: bounds the time Redis spends on one call. */
export const chunk = 1_000

export const escape = (part: string): string =>
  part.replace(/[\u0000-\u0025]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`)

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Throws (inside a call, so it becomes a `StreamProviderError`) on text UTF-8 cannot carry. */
export const checkText = (...texts: ReadonlyArray<string>): void => {
  for (const text of texts) if (loneSurrogate.test(text)) throw new Error("text with a lone surrogate cannot be stored")
}


export const scripts = {
  // The fence (see "Consuming" in the provider's doc): KEYS: the stream, its owner key.
  // ARGV: group, consumer, owner token, count. -1: another consumer owns the partition.
  // Otherwise {1, XREADGROUP's reply} or, with nothing to read, {0, the newest id}: the
  // caller waits for an entry after it with a plain XREAD, which takes nothing.
  quarkStreamNext: {
    numberOfKeys: 2,
    lua: `if redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
local read = redis.call('XREADGROUP', 'GROUP', ARGV[1], ARGV[2], 'COUNT', ARGV[4], 'STREAMS', KEYS[1], '>')
if read then return {1, read} end
local newest = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)[1]
if newest then return {0, newest[1]} end
return {0, '0-0'}`
  },
  // KEYS: the stream, its owner key. ARGV: group, consumer, owner token, min idle, cursor,
  // count. -1 as above; otherwise XAUTOCLAIM's reply.
  quarkStreamClaim: {
    numberOfKeys: 2,
    lua: `if redis.call('GET', KEYS[2]) ~= ARGV[3] then return -1 end
return redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[4], ARGV[5], 'COUNT', ARGV[6])`
  },
  // KEYS: the stream. ARGV: namespace, key, data, namespace, ... Returns the ids, in order.
  quarkStreamAppend: {
    numberOfKeys: 1,
    lua: `local ids = {}
for i = 1, #ARGV, 3 do
  ids[#ids + 1] = redis.call('XADD', KEYS[1], '*', 'n', ARGV[i], 'k', ARGV[i + 1], 'd', ARGV[i + 2])
end
return ids`
  },
  // KEYS: the stream. ARGV: group, maxLength, age bound id ('': none). Returns how many
  // entries were trimmed (see "Trimming" in the module doc).
  quarkStreamTrim: {
    numberOfKeys: 1,
    lua: `local key, group = KEYS[1], ARGV[1]
if redis.call('EXISTS', key) == 0 then return 0 end
local function split(id)
  local dash = string.find(id, '-', 1, true)
  return string.sub(id, 1, dash - 1), tonumber(string.sub(id, dash + 1))
end
local function less(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  return tonumber(am) < tonumber(bm) or (am == bm and as < bs)
end
local delivered = nil
for _, info in ipairs(redis.call('XINFO', 'GROUPS', key)) do
  local fields = {}
  for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
  if fields['name'] == group then delivered = fields['last-delivered-id'] end
end
if not delivered then return 0 end
local ms, seq = split(delivered)
local bound = ms .. '-' .. string.format('%d', seq + 1)
local oldest = redis.call('XPENDING', key, group)[2]
if oldest and less(oldest, bound) then bound = oldest end
local trimmed = 0
if ARGV[3] ~= '' then
  local aged = ARGV[3]
  if less(bound, aged) then aged = bound end
  trimmed = trimmed + redis.call('XTRIM', key, 'MINID', aged)
end
local maxLength = tonumber(ARGV[2])
if #redis.call('XREVRANGE', key, '+', bound, 'COUNT', maxLength + 1) <= maxLength then
  return trimmed + redis.call('XTRIM', key, 'MAXLEN', maxLength)
end
return trimmed + redis.call('XTRIM', key, 'MINID', bound)`
  }
}

export interface Scripts {
  quarkStreamAppend(key: string, ...args: Array<string>): Promise<Array<string>>
  quarkStreamTrim(key: string, group: string, maxLength: number, ageBound: string): Promise<number>
  quarkStreamNext(key: string, owner: string, group: string, consumer: string, token: string, count: number): Promise<unknown>
  quarkStreamClaim(
    key: string,
    owner: string,
    group: string,
    consumer: string,
    token: string,
    minIdle: number,
    cursor: string,
    count: number
  ): Promise<unknown>
}

export type Client = Redis & Scripts

/** Entries as Redis returned them: the valid ones, the ids of malformed ones, the last id of all. */
export interface Decoded {
  readonly entries: Array<StreamEntry>
  readonly malformed: Array<string>
  readonly lastId: string | undefined
}

/**
 * Decodes `[[id, [field, value, ...]], ...]`; a `null` field list (an entry deleted while
 * pending, from older servers' `XAUTOCLAIM`) is skipped. By hand, not with a Schema: this
 * runs for every event.
 */
export const decodeItems = (items: unknown): Decoded => {
  const entries: Array<StreamEntry> = []
  const malformed: Array<string> = []
  let lastId: string | undefined
  if (!Array.isArray(items)) return { entries, malformed, lastId }
  for (const item of items) {
    if (!Array.isArray(item) || typeof item[0] !== "string") continue
    const id: string = item[0]
    lastId = id
    const fields: unknown = item[1]
    if (fields === null) continue
    let namespace: unknown, key: unknown, data: unknown
    for (let i = 0; Array.isArray(fields) && i + 1 < fields.length; i += 2) {
      if (fields[i] === "n") namespace = fields[i + 1]
      else if (fields[i] === "k") key = fields[i + 1]
      else if (fields[i] === "d") data = fields[i + 1]
    }
    if (typeof namespace !== "string" || typeof key !== "string" || typeof data !== "string") {
      malformed.push(id)
      continue
    }
    try {
      entries.push({ namespace, key, payload: JSON.parse(data), token: id })
    } catch {
      malformed.push(id)
    }
  }
  return { entries, malformed, lastId }
}

/** The entries of an `XREAD`/`XREADGROUP` reply for one stream: `[key, items]` (RESP3) or `[[key, items]]` (RESP2). */
export const itemsOfStreams = (reply: unknown): unknown =>
  !Array.isArray(reply) ? [] : Array.isArray(reply[0]) ? (reply[0] as ReadonlyArray<unknown>)[1] : reply[1]

/** The exclusive lower bound (an id) of a read from `from`. */
export const afterOf = (from: Position): string | undefined => {
  switch (from._tag) {
    case "Earliest":
      return "0-0"
    case "After":
      return StreamToken.parse(from.token) === undefined ? undefined : from.token
    case "Time": {
      const millis = Math.ceil(from.millis)
      return millis > 0 ? `${millis - 1}-18446744073709551615` : "0-0"
    }
  }
}

/** An `XINFO` record (a flat `[name, value, ...]` array in RESP2, a map in RESP3) by field name. */
export const fieldsOf = (info: unknown): Map<string, unknown> => {
  const fields = new Map<string, unknown>()
  if (info instanceof Map) {
    for (const [name, value] of info) if (typeof name === "string") fields.set(name, value)
  } else if (Array.isArray(info)) {
    for (let i = 0; i + 1 < info.length; i += 2) if (typeof info[i] === "string") fields.set(info[i], info[i + 1])
  } else if (typeof info === "object" && info !== null) {
    for (const name of Object.keys(info)) fields.set(name, (info as Record<string, unknown>)[name])
  }
  return fields
}


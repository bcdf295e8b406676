/**
 * The Redis `ReminderStore`: reminders, their history and the dead-letter queue on one
 * ioredis connection (opened with `connect`, as the state store's is).
 *
 * **Members.** A reminder's key is written as one string, its *member*:
 * `esc(type) "!" esc(id) "!" esc(name)`, where `esc` replaces each character up to `%`
 * (U+0000..U+0025: controls, space, `!`, `"`, `#`, `$`, `%`) with `%XX` (hex). Every other
 * character is kept, so members stay readable (`Billing!acct/1!renew`), and the encoding
 * keeps order: byte order of members (how Redis orders equal scores in a sorted set) is the
 * order of keys, part by part, by code point (`!` sorts below every encoded character, so a
 * shorter part sorts first). Members are also where a script finds a reminder's keys.
 *
 * **Key layout** (prefix default `"quark"`, used verbatim: keep braces out of it):
 *
 * | key                                    | Redis type | content                                        |
 * | -------------------------------------- | ---------- | ---------------------------------------------- |
 * | `quark:{reminders}:r:<member>`         | hash       | `data`, `version`, `bucket`, `nextDue`          |
 * | `quark:{reminders}:h:<member>`         | list       | history entries, newest first (LPUSH + LTRIM)   |
 * | `quark:{reminders}:due:<bucket>`       | sorted set | members of the bucket, scored by `nextDue`      |
 * | `quark:{reminders}:a:<type>!<id>`      | sorted set | members of the actor (escaped), all scored 0    |
 * | `quark:{reminders}:dl`                 | sorted set | dead-letter ids, scored by `at`                 |
 * | `quark:{reminders}:dl:by-kind:<kind>`  | sorted set | the same, for one kind                          |
 * | `quark:{reminders}:dl:data`            | hash       | id → `data`                                     |
 * | `quark:{reminders}:dl:kind`            | hash       | id → `kind`                                     |
 *
 * "What is due next in a bucket" is one `ZRANGEBYSCORE … -inf <until> LIMIT 0 <limit>`
 * (O(log n + limit)); ties in `nextDue` come out in member order, that is by key. An
 * actor's reminders are a sorted set whose scores are all 0, so they come out by member,
 * that is by name.
 *
 * **Atomicity.** Every write, and every read that joins an index with the hashes (`due`,
 * `list`, `deadLetters`), is one Lua script: a put checks the version and writes the hash,
 * the bucket's sorted set and the actor's index together; a remove deletes all of them and
 * the history. The scripts are registered with ioredis (sent once per connection, then run
 * by `EVALSHA`); auto-pipelining lets concurrent calls share round trips.
 *
 * **Puts are batched** (as the PostgreSQL stores' are): the puts issued while the previous
 * batch is at the server go together in one script call, each still succeeding or
 * conflicting on its own; a batch holds a key at most once. So a silo firing thousands of
 * ticks a second (a put each) pays the client's per-call cost once per batch, not per put.
 *
 * **One hash tag.** Every key carries the Redis Cluster hash tag `{reminders}`, so all of
 * a store's keys live in one slot and every script is valid on a cluster too (it then runs
 * on one shard). The keys cannot be spread by bucket, as one might wish: `get`, `remove`,
 * `history` and `list` are given a key or an actor, not a bucket, so the hash, history and
 * actor index of a reminder would sit in the actor's slot while its bucket's sorted set sits
 * in the bucket's, and a put must change both atomically. (The scripts also touch a key
 * they are not given, the sorted set of the bucket a reminder was in, which is only valid
 * because it is in the same slot.)
 *
 * Text that UTF-8 cannot carry (a lone surrogate) would be stored altered, so a call with
 * one fails with `StoreError` instead.
 *
 * Operations are timed as store kind `"redis"` (`internal/ReminderStoreMetrics.ts`); a put
 * from its call to its result, the wait for its batch included.
 *
 * @since 0.1.0
 */
import { Effect, type Scope } from "effect"
import type { Redis } from "ioredis"
import { batcher } from "../Persistence/internal/WriteBatcher.ts"
import { StateConflict, StoreError } from "../Persistence/PersistenceError.ts"
import { connect, reasonOf } from "../Persistence/RedisConnection.ts"
import * as RedisSettings from "../Persistence/RedisSettings.ts"
import { instrumentReminderStore } from "./internal/ReminderStoreMetrics.ts"
import { countOf, invalidDeadLetter, invalidWrite } from "./internal/StoreOrder.ts"
import type { DeadLetter, HistoryAppend, ReminderKey, ReminderStore, ReminderWrite, StoredReminder } from "./ReminderStore.ts"

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface RedisReminderStoreOptions {
  /** Default: `process.env.QUARK_REDIS_URL`, else `"redis://127.0.0.1:6379"`. */
  readonly url?: string
  /** Where to connect and how to authenticate (TLS, a password): see `RedisSettings`. Default: `url`. */
  readonly connection?: RedisSettings.Input
  /** The first segment of every key. Default: `"quark"`. */
  readonly keyPrefix?: string
}

const escape = (part: string): string =>
  part.replace(/[\u0000-\u0025]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`)

const unescape = (part: string): string =>
  part.replace(/%([0-9A-F]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)))

const loneSurrogate = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/

/** Throws (inside a call, so it becomes a `StoreError`) on text UTF-8 cannot carry. */
const checkText = (...texts: ReadonlyArray<string>): void => {
  for (const text of texts) {
    if (loneSurrogate.test(text)) throw new Error("text with a lone surrogate cannot be stored")
  }
}

/**
 * The member of a key (see the module doc): order-preserving and unambiguous.
 *
 * @since 0.1.0
 */
export const memberOf = (key: ReminderKey): string => `${escape(key.type)}!${escape(key.id)}!${escape(key.name)}`

/**
 * The key a member stands for.
 *
 * @since 0.1.0
 */
export const keyOfMember = (member: string): ReminderKey => {
  const [type, id, name] = member.split("!")
  return { type: unescape(type!), id: unescape(id!), name: unescape(name!) }
}

/** The Redis score of a bound: `±inf` for infinities. */
const scoreOf = (n: number): string => (n === Infinity ? "+inf" : n === -Infinity ? "-inf" : String(n))

// Reads the hash of each member of `members` into a flat reply:
// member, data, version, bucket, nextDue, member, ...
const readReminders = `local out = {}
for _, member in ipairs(members) do
  local fields = redis.call('HMGET', prefix .. member, 'data', 'version', 'bucket', 'nextDue')
  out[#out + 1] = member
  for i = 1, 4 do out[#out + 1] = fields[i] end
end
return out`

// Script convention (as the state store's): a result >= 0 is success; a negative result is
// a conflict, and `-result - 1` is the stored version.
const scripts = {
  // A batch of puts (keys distinct). ARGV: prefix of bucket sets, then per put: hash, bucket's
  // set, actor's set, history, expected, data, bucket, nextDue, member, history entries kept
  // (-1: no entry to append), the entry. Returns one result per put.
  quarkReminderPutBatch: {
    numberOfKeys: 0,
    lua: `local prefix = ARGV[1]
local out = {}
for i = 2, #ARGV, 11 do
  local hash, due, actor, history = ARGV[i], ARGV[i + 1], ARGV[i + 2], ARGV[i + 3]
  local expected, data, bucket, nextDue, member = ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7], ARGV[i + 8]
  local actual = tonumber(redis.call('HGET', hash, 'version')) or 0
  if actual ~= tonumber(expected) then
    out[#out + 1] = -actual - 1
  else
    local old = redis.call('HGET', hash, 'bucket')
    if old and old ~= bucket then redis.call('ZREM', prefix .. old, member) end
    redis.call('HSET', hash, 'version', actual + 1, 'data', data, 'bucket', bucket, 'nextDue', nextDue)
    redis.call('ZADD', due, nextDue, member)
    redis.call('ZADD', actor, 0, member)
    local keep = tonumber(ARGV[i + 9])
    if keep > 0 then
      redis.call('LPUSH', history, ARGV[i + 10])
      redis.call('LTRIM', history, 0, keep - 1)
    elseif keep == 0 then
      redis.call('DEL', history)
    end
    out[#out + 1] = actual + 1
  end
end
return out`
  },
  // KEYS: hash, history, actor's set. ARGV: expected, member, prefix of bucket sets.
  quarkReminderRemove: {
    numberOfKeys: 3,
    lua: `local actual = tonumber(redis.call('HGET', KEYS[1], 'version')) or 0
if actual ~= tonumber(ARGV[1]) then return -actual - 1 end
if actual == 0 then return 0 end
redis.call('ZREM', ARGV[3] .. redis.call('HGET', KEYS[1], 'bucket'), ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('DEL', KEYS[1], KEYS[2])
return 0`
  },
  // KEYS: bucket's set. ARGV: until, limit, prefix of hashes.
  quarkReminderDue: {
    numberOfKeys: 1,
    lua: `local members = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local prefix = ARGV[3]
${readReminders}`
  },
  // KEYS: actor's set. ARGV: prefix of hashes.
  quarkReminderList: {
    numberOfKeys: 1,
    lua: `local members = redis.call('ZRANGE', KEYS[1], 0, -1)
local prefix = ARGV[1]
${readReminders}`
  },
  // KEYS: hash, history. ARGV: entry, keep. Nothing is kept for a key with no reminder.
  quarkReminderAppendHistory: {
    numberOfKeys: 2,
    lua: `if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local keep = tonumber(ARGV[2])
if keep < 1 then redis.call('DEL', KEYS[2]) return 1 end
redis.call('LPUSH', KEYS[2], ARGV[1])
redis.call('LTRIM', KEYS[2], 0, keep - 1)
return 1`
  },
  // KEYS: all, data, kind, the kind's set. ARGV: id, kind, at, data, prefix of kind sets.
  quarkDeadLetterAdd: {
    numberOfKeys: 4,
    lua: `local old = redis.call('HGET', KEYS[3], ARGV[1])
if old and old ~= ARGV[2] then redis.call('ZREM', ARGV[5] .. old, ARGV[1]) end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[1])
redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 0`
  },
  // KEYS: the set to read (all, or one kind's), data, kind. ARGV: limit.
  // Reply: id, at, kind, data, id, ...
  quarkDeadLetterList: {
    numberOfKeys: 3,
    lua: `local ids = redis.call('ZRANGE', KEYS[1], 0, tonumber(ARGV[1]) - 1, 'WITHSCORES')
local out = {}
for i = 1, #ids, 2 do
  out[#out + 1] = ids[i]
  out[#out + 1] = ids[i + 1]
  out[#out + 1] = redis.call('HGET', KEYS[3], ids[i])
  out[#out + 1] = redis.call('HGET', KEYS[2], ids[i])
end
return out`
  },
  // KEYS: all, data, kind. ARGV: id, prefix of kind sets.
  quarkDeadLetterRemove: {
    numberOfKeys: 3,
    lua: `local kind = redis.call('HGET', KEYS[3], ARGV[1])
if not kind then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', ARGV[2] .. kind, ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[3], ARGV[1])
return 1`
  }
}

type Text = string | null

interface Scripts {
  quarkReminderPutBatch(...args: Array<string | number>): Promise<Array<number>>
  quarkReminderRemove(hash: string, history: string, actor: string, expected: number, member: string, duePrefix: string): Promise<number>
  quarkReminderDue(due: string, until: string, limit: number, hashPrefix: string): Promise<Array<Text>>
  quarkReminderList(actor: string, hashPrefix: string): Promise<Array<Text>>
  quarkReminderAppendHistory(hash: string, history: string, entry: string, keep: number): Promise<number>
  quarkDeadLetterAdd(
    all: string,
    data: string,
    kind: string,
    byKind: string,
    id: string,
    kindValue: string,
    at: string,
    value: string,
    byKindPrefix: string
  ): Promise<number>
  quarkDeadLetterList(set: string, data: string, kind: string, limit: number): Promise<Array<Text>>
  quarkDeadLetterRemove(all: string, data: string, kind: string, id: string, byKindPrefix: string): Promise<number>
}

type Client = Redis & Scripts

/**
 * The keys of a store with key prefix `prefix` (see the layout in the module doc).
 *
 * @since 0.1.0
 */
export const redisKeys = (prefix: string) => {
  const base = `${prefix}:{reminders}`
  const reminderPrefix = `${base}:r:`
  const historyPrefix = `${base}:h:`
  const actorPrefix = `${base}:a:`
  return {
    reminder: (key: ReminderKey) => reminderPrefix + memberOf(key),
    history: (key: ReminderKey) => historyPrefix + memberOf(key),
    due: (bucket: number) => `${base}:due:${bucket}`,
    actor: (type: string, id: string) => `${actorPrefix}${escape(type)}!${escape(id)}`,
    /** A put's keys from its member, escaped once (`!` is escaped, so the last one ends the actor). */
    ofMember: (member: string) => ({
      reminder: reminderPrefix + member,
      history: historyPrefix + member,
      actor: actorPrefix + member.slice(0, member.lastIndexOf("!"))
    }),
    deadLetters: `${base}:dl`,
    deadLettersOfKind: (kind: string) => `${base}:dl:by-kind:${kind}`,
    deadLetterData: `${base}:dl:data`,
    deadLetterKind: `${base}:dl:kind`,
    reminderPrefix,
    duePrefix: `${base}:due:`,
    kindPrefix: `${base}:dl:by-kind:`
  }
}

/**
 * A Redis-backed `ReminderStore` named `name`: opens one connection (failing with
 * `StoreError` if the server cannot be reached) and closes it when the scope closes.
 *
 * @since 0.1.0
 */
export const make = (
  name: string,
  options?: RedisReminderStoreOptions
): Effect.Effect<ReminderStore, StoreError, Scope.Scope> =>
  Effect.flatMap(
    connect<Client, StoreError>(
      RedisSettings.fromOptions(options?.url, options?.connection),
      { scripts, retry: { stepMillis: 100, capMillis: 2_000 } },
      (reason) => new StoreError({ store: name, operation: "connect", reason })
    ),
    (redis) => fromClient(name, redis, options?.keyPrefix ?? "quark")
  )

interface Put {
  readonly reminder: ReminderWrite
  readonly expectedVersion: number
  readonly history: HistoryAppend | undefined
}

const fromClient = (name: string, redis: Client, prefix: string): Effect.Effect<ReminderStore, never, Scope.Scope> =>
  Effect.gen(function*() {
    const keys = redisKeys(prefix)
    // Keys are built inside `try`, so text Redis cannot carry is a StoreError too.
    const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StoreError> =>
      Effect.tryPromise({
        try: run,
        catch: (cause) => new StoreError({ store: name, operation, reason: reasonOf(cause) })
      })
    const conflict = (key: ReminderKey, expectedVersion: number, result: number) =>
      new StateConflict({ key: `${key.type}/${key.id}/${key.name}`, expectedVersion, actualVersion: -result - 1 })

    // Puts made while a batch is at the server go together in the next: one script and one
    // round trip for many (a silo firing thousands of ticks a second writes a put for each).
    const putBatch = yield* batcher(name, "put", (put: Put) => memberOf(put.reminder.key), (batch: ReadonlyArray<Put>) =>
      call("put", () => {
        const args: Array<string | number> = [keys.duePrefix]
        for (const { expectedVersion, history, reminder } of batch) {
          const member = memberOf(reminder.key)
          const of = keys.ofMember(member)
          args.push(
            of.reminder,
            keys.due(reminder.bucket),
            of.actor,
            of.history,
            expectedVersion,
            reminder.data,
            reminder.bucket,
            String(reminder.nextDue),
            member,
            history === undefined ? -1 : countOf(history.keep),
            history?.entry ?? ""
          )
        }
        return redis.quarkReminderPutBatch(...args)
      }))

  /** The reminders of a flat reply of `readReminders`. */
  const reminders = (reply: ReadonlyArray<Text>): Array<StoredReminder> => {
    const out: Array<StoredReminder> = []
    for (let i = 0; i + 4 < reply.length; i += 5) {
      const [member, data, version, bucket, nextDue] = reply.slice(i, i + 5)
      // A member whose hash is gone cannot be produced by the scripts; skipped all the same.
      if (data === null || data === undefined) continue
      out.push({
        key: keyOfMember(member!),
        data,
        version: Number(version),
        bucket: Number(bucket),
        nextDue: Number(nextDue)
      })
    }
    return out
  }

  return instrumentReminderStore("redis", {
    name,
    get: (key) =>
      Effect.map(
        call("get", () => {
          checkText(key.type, key.id, key.name)
          return redis.hmget(keys.reminder(key), "data", "version", "bucket", "nextDue")
        }),
        ([data, version, bucket, nextDue]): StoredReminder | undefined =>
          data === null ? undefined : {
            key: { type: key.type, id: key.id, name: key.name },
            data,
            version: Number(version),
            bucket: Number(bucket),
            nextDue: Number(nextDue)
          }
      ),
    put: (reminder, expectedVersion, history) => {
      const invalid = invalidWrite(reminder)
      if (invalid !== undefined) return Effect.fail(new StoreError({ store: name, operation: "put", reason: invalid }))
      const { key } = reminder
      return Effect.suspend(() => {
        try {
          checkText(key.type, key.id, key.name, reminder.data, history?.entry ?? "")
        } catch (cause) {
          return Effect.fail(new StoreError({ store: name, operation: "put", reason: reasonOf(cause) }))
        }
        return Effect.flatMap(
          putBatch({ reminder, expectedVersion, history }),
          (result) => result >= 0 ? Effect.succeed(result) : Effect.fail(conflict(key, expectedVersion, result))
        )
      })
    },
    remove: (key, expectedVersion) =>
      Effect.flatMap(
        call("remove", () => {
          checkText(key.type, key.id, key.name)
          return redis.quarkReminderRemove(
            keys.reminder(key),
            keys.history(key),
            keys.actor(key.type, key.id),
            expectedVersion,
            memberOf(key),
            keys.duePrefix
          )
        }),
        (result) => result >= 0 ? Effect.void : Effect.fail(conflict(key, expectedVersion, result))
      ),
    list: (type, id) =>
      Effect.map(
        call("list", () => {
          checkText(type, id)
          return redis.quarkReminderList(keys.actor(type, id), keys.reminderPrefix)
        }),
        reminders
      ),
    due: (bucket, until, limit) => {
      const count = countOf(limit)
      // `LIMIT 0 0` would be no limit at all; and nothing is at or before NaN.
      if (count === 0 || Number.isNaN(until)) return Effect.succeed([])
      return Effect.map(
        call("due", () => redis.quarkReminderDue(keys.due(bucket), scoreOf(until), count, keys.reminderPrefix)),
        reminders
      )
    },
    appendHistory: (key, entry, keep) =>
      Effect.asVoid(call("appendHistory", () => {
        checkText(key.type, key.id, key.name, entry)
        return redis.quarkReminderAppendHistory(keys.reminder(key), keys.history(key), entry, countOf(keep))
      })),
    history: (key) =>
      call("history", () => {
        checkText(key.type, key.id, key.name)
        return redis.lrange(keys.history(key), 0, -1)
      }),
    addDeadLetter: (entry) => {
      const invalid = invalidDeadLetter(entry)
      if (invalid !== undefined) {
        return Effect.fail(new StoreError({ store: name, operation: "addDeadLetter", reason: invalid }))
      }
      return Effect.asVoid(call("addDeadLetter", () => {
        checkText(entry.id, entry.kind, entry.data)
        return redis.quarkDeadLetterAdd(
          keys.deadLetters,
          keys.deadLetterData,
          keys.deadLetterKind,
          keys.deadLettersOfKind(entry.kind),
          entry.id,
          entry.kind,
          String(entry.at),
          entry.data,
          keys.kindPrefix
        )
      }))
    },
    deadLetters: ({ kind, limit }) => {
      const count = countOf(limit)
      if (count === 0) return Effect.succeed([])
      return Effect.map(
        call("deadLetters", () => {
          if (kind !== undefined) checkText(kind)
          return redis.quarkDeadLetterList(
            kind === undefined ? keys.deadLetters : keys.deadLettersOfKind(kind),
            keys.deadLetterData,
            keys.deadLetterKind,
            count
          )
        }),
        (reply) => {
          const out: Array<DeadLetter> = []
          for (let i = 0; i + 3 < reply.length; i += 4) {
            out.push({ id: reply[i]!, at: Number(reply[i + 1]), kind: reply[i + 2]!, data: reply[i + 3]! })
          }
          return out
        }
      )
    },
    removeDeadLetter: (id) =>
      Effect.map(
        call("removeDeadLetter", () => {
          checkText(id)
          return redis.quarkDeadLetterRemove(keys.deadLetters, keys.deadLetterData, keys.deadLetterKind, id, keys.kindPrefix)
        }),
        (removed) => removed === 1
      )
  })
  })

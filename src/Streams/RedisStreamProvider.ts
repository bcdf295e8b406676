/**
 * The Redis `StreamProvider`: one Redis stream per partition, consumed through a consumer
 * group, and durable subscriptions in hashes. Payloads travel as JSON (`encodes: true`).
 *
 * **Key layout** (prefix default `"quark:streams"`, used verbatim):
 *
 * | key                                  | Redis type | content                                                  |
 * | ------------------------------------ | ---------- | -------------------------------------------------------- |
 * | `<prefix>:p:{<n>}`                   | stream     | partition `n`: fields `n` (namespace), `k` (key), `d` (`JSON.stringify` of the payload); consumer group `quark` |
| `<prefix>:p:{<n>}:owner`             | string     | the token of the partition's newest consumer (the fence)  |
 * | `<prefix>:subs:<esc(ns)>!<esc(key)>` | hash       | the durable subscriptions of one stream: id → data       |
 *
 * `esc` replaces each character up to `%` (U+0000..U+0025, `!` and `%` among them) with
 * `%XX`, as the reminder store's members do: `!` then separates the parts whatever they hold
 * (`:`, `/`, `__proto__`, any Unicode), and keys stay readable. Every command touches one
 * key, or a partition and its owner key, which share a hash tag (`{<n>}`), so the layout
 * works on a Redis Cluster too.
 *
 * **Accepted** (what `append` waits for): Redis answered the `XADD`s. The entries are in the
 * server's memory, visible to every reader; whether they survive a Redis restart is Redis's
 * persistence configuration (AOF and its `appendfsync`, RDB). Appends made while a
 * partition's batch is at the server go together in its next (scripts of up to 1 000
 * `XADD`s), so publishing event by event costs a command per batch, not per event.
 *
 * **Consuming.** `consume` creates the group at the stream's beginning (`XGROUP CREATE … 0
 * MKSTREAM`; an existing one is kept) and writes a fresh token of its own to the owner key:
 * the fence. `next` is a script that reads (`XREADGROUP … >`) only if the owner key still
 * holds the consumer's token, and otherwise fails with `ConsumerFenced`; Redis runs scripts
 * one at a time, so a read sent before a newer consumer's `consume` took what it took before
 * that consumer's `claim(0)`, which takes it back, and one arriving after takes nothing,
 * however long a pause delayed it. With nothing to read, the script answers the newest id
 * and `next` waits for an entry after it with `XREAD BLOCK` (only when `waitMillis > 0`: 0
 * is "forever" to Redis), which takes nothing, then reads through the script again. The wait
 * runs on a connection of the consumer's own, opened on first use, since a blocked command
 * holds its connection; an interrupted wait drops that connection (quitting would wait out
 * the block) and the next opens another. `claim(minIdle)` is the same fence around
 * `XAUTOCLAIM … minIdle`, from `0-0` until the cursor is back at `0-0`. A full claim (`claim(0)`, what a new agent does first) then deletes the group's other
 * consumers that hold nothing (`XGROUP DELCONSUMER`; one is made per silo incarnation, and
 * they would pile up). `ack` is `XACK`. A reader reads with `XRANGE` and waits with `XREAD
 * BLOCK`, likewise.
 *
 * **Malformed entries** (someone else wrote to a partition's key) are skipped with a warning;
 * a consumer acknowledges them, so they are not delivered again.
 *
 * **Trimming.** After an ack, at most once per `trimIntervalMillis` per partition, a script
 * trims to `MINID min(oldest pending, first undelivered, retention bound)`: the oldest
 * pending from `XPENDING` (summary), the first after the group's `last-delivered-id` (`XINFO
 * GROUPS`), and a bound dropping entries not among the newest `retain.maxLength` or older
 * than `retain.maxAge` (either trims). So no pending or unread entry is ever trimmed. The
 * length bound reads at most `maxLength + 1` entries, inside Redis. Trims are exact: `~`
 * drops only whole nodes of 100 entries, which could leave a small partition untrimmed.
 *
 * @since 0.2.0
 */
import { Duration, Effect, Exit, Scope } from "effect"
import type { Redis } from "ioredis"
import { connect, reasonOf } from "../Persistence/RedisConnection.ts"
import * as RedisSettings from "../Persistence/RedisSettings.ts"
import {
  afterOf,
  checkText,
  chunk,
  type Client,
  type Decoded,
  decodeItems,
  escape,
  fieldsOf,
  group,
  itemsOfStreams,
  monotonicMillis,
  scripts
} from "./internal/RedisStreamsWire.ts"
import * as StreamToken from "./StreamToken.ts"
import {
  ConsumerFenced,
  type NewEntry,
  type PartitionConsumer,
  type PartitionReader,
  type Position,
  type StoredSubscription,
  type StreamEntry,
  type StreamProvider,
  StreamProviderError
} from "./StreamProvider.ts"

/**
 * Options of {@link make}.
 *
 * @since 0.2.0
 */
export interface RedisStreamProviderOptions {
  /** Default: `process.env.QUARK_REDIS_URL`, else `"redis://127.0.0.1:6379"`. */
  readonly url?: string
  /** Where to connect and how to authenticate (TLS, a password): see `RedisSettings`. Default: `url`. */
  readonly connection?: RedisSettings.Input
  /** The first segment of every key. Default: `"quark:streams"`. */
  readonly keyPrefix?: string
  /** How many partitions (fixed for the life of the data). Default: 8. */
  readonly partitions?: number
  /** Acknowledged entries kept per partition for rewind (default 10 000), and for how long (default: no limit). */
  readonly retain?: { readonly maxLength?: number; readonly maxAge?: Duration.Input }
  /** The client name of the connections; dedicated ones add `-p<n>` (consumer) or `-r<n>` (reader). */
  readonly connectionName?: string
  /** The least time between two trims of one partition. Default: 1 000 ms (0: after every ack). */
  readonly trimIntervalMillis?: number
}

/**
 * The keys of a provider with key prefix `prefix` (see the layout in the module doc).
 *
 * @since 0.2.0
 */
export const redisKeys = (prefix: string) => ({
  partition: (partition: number) => `${prefix}:p:{${partition}}`,
  owner: (partition: number) => `${prefix}:p:{${partition}}:owner`,
  subscriptions: (namespace: string, key: string) => `${prefix}:subs:${escape(namespace)}!${escape(key)}`
})

/**
 * A Redis-backed `StreamProvider`: opens its connection (failing with `StreamProviderError`
 * if the server cannot be reached) and closes it, and every consumer's and reader's, when
 * the scope closes.
 *
 * @since 0.2.0
 */
export const make = (options: RedisStreamProviderOptions): Effect.Effect<StreamProvider, StreamProviderError, Scope.Scope> =>
  Effect.gen(function*() {
    const count = options.partitions ?? 8
    if (!Number.isSafeInteger(count) || count < 1) {
      return yield* new StreamProviderError({ operation: "make", reason: `partitions must be a positive integer, not ${count}` })
    }
    const keys = redisKeys(options.keyPrefix ?? "quark:streams")
    const maxLength = Math.max(0, options.retain?.maxLength ?? 10_000)
    const maxAgeMillis = options.retain?.maxAge === undefined ? undefined : Duration.toMillis(options.retain.maxAge)
    const trimInterval = options.trimIntervalMillis ?? 1_000
    const failure = (operation: string, reason: string) => new StreamProviderError({ operation, reason })
    const settings = RedisSettings.fromOptions(options.url, options.connection)
    const open = <C extends Redis>(suffix: string, extra: { readonly scripts?: typeof scripts }) =>
      connect<C, StreamProviderError>(settings, {
        ...extra,
        retry: { stepMillis: 100, capMillis: 2_000 },
        ...(options.connectionName === undefined ? {} : { connectionName: options.connectionName + suffix })
      }, (reason) => failure("connect", reason))
    const redis = yield* open<Client>("", { scripts })

    // Keys and arguments are built inside `try`, so text Redis cannot carry fails the call.
    const call = <A>(operation: string, run: () => Promise<A>): Effect.Effect<A, StreamProviderError> =>
      Effect.tryPromise({ try: run, catch: (cause) => failure(operation, reasonOf(cause)) })
    const withKey = <A, R>(
      operation: string,
      partition: number,
      f: (key: string) => Effect.Effect<A, StreamProviderError, R>
    ): Effect.Effect<A, StreamProviderError, R> =>
      Number.isInteger(partition) && partition >= 0 && partition < count
        ? Effect.suspend(() => f(keys.partition(partition)))
        : Effect.fail(failure(operation, `no partition ${partition} (there are ${count})`))
    const countOf = (max: number) => (max >= 1 ? Math.floor(max) : 1)
    const logMalformed = (partition: number, ids: ReadonlyArray<string>) =>
      Effect.logWarning(`stream partition ${partition}: skipped ${ids.length} malformed entries`).pipe(
        Effect.annotateLogs({ partition, ids: ids.join(",") })
      )

    /** A connection for blocking reads, opened on first use, dropped when a call is interrupted (see "Consuming"). */
    const dedicated = (suffix: string) =>
      Effect.gen(function*() {
        const parent = yield* Effect.scope
        let current: { readonly redis: Redis; readonly scope: Scope.Closeable } | undefined
        const opening = Effect.gen(function*() {
          const scope = yield* Scope.fork(parent)
          const opened = yield* open<Redis>(`-${suffix}`, {}).pipe(
            Scope.provide(scope),
            Effect.tapError(() => Scope.close(scope, Exit.void))
          )
          return current = { redis: opened, scope }
        })
        return (operation: string, command: string, args: Array<string | number>) =>
          Effect.flatMap(current === undefined ? opening : Effect.succeed(current), (connection) =>
            Effect.callback<unknown, StreamProviderError>((resume) => {
              connection.redis.call(command, args).then(
                (reply) => resume(Effect.succeed(reply)),
                (cause) => resume(Effect.fail(failure(operation, reasonOf(cause))))
              )
              return Effect.suspend(() => {
                if (current === connection) current = undefined
                connection.redis.disconnect()
                return Scope.close(connection.scope, Exit.void)
              })
            }))
      })

    /** Runs `attempt` until it returns entries or `waitMillis` have passed (at least once). */
    const untilDeadline = <A, E>(
      waitMillis: number,
      attempt: (remaining: number) => Effect.Effect<ReadonlyArray<A> | undefined, E>
    ): Effect.Effect<ReadonlyArray<A>, E> =>
      Effect.clockWith((clock) => {
        const deadline = monotonicMillis(clock) + Math.max(0, waitMillis)
        const loop: Effect.Effect<ReadonlyArray<A>, E> = Effect.suspend(() =>
          Effect.flatMap(attempt(Math.max(0, Math.ceil(deadline - monotonicMillis(clock)))), (got) =>
            // `undefined`: only malformed entries came (passed over): again at once, even
            // past the deadline, since valid entries may follow them.
            got !== undefined && (got.length > 0 || monotonicMillis(clock) >= deadline) ? Effect.succeed(got) : loop)
        )
        return loop
      })

    // One append batch in flight per partition; the appends made meanwhile go in the next.
    interface Append {
      readonly args: ReadonlyArray<string>
      readonly resume: (effect: Effect.Effect<ReadonlyArray<string>, StreamProviderError>) => void
      cancelled: boolean
    }
    const queues = Array.from({ length: count }, () => ({ waiting: [] as Array<Append>, busy: false }))
    const flush = (partition: number): void => {
      const queue = queues[partition]!
      if (queue.busy || queue.waiting.length === 0) return
      let taken = 0
      let size = 0
      while (taken < queue.waiting.length && size < chunk * 3) size += queue.waiting[taken++]!.args.length
      const batch = queue.waiting.splice(0, taken).filter((append) => !append.cancelled)
      if (batch.length === 0) return flush(partition)
      queue.busy = true
      const args = batch.length === 1 ? batch[0]!.args : batch.flatMap((append) => append.args)
      const key = keys.partition(partition)
      const calls: Array<Promise<Array<string>>> = []
      for (let i = 0; i < args.length; i += chunk * 3) calls.push(redis.quarkStreamAppend(key, ...args.slice(i, i + chunk * 3)))
      void Promise.all(calls).then(
        (replies) => {
          const ids = replies.length === 1 ? replies[0]! : replies.flat()
          let offset = 0
          for (const append of batch) {
            const n = append.args.length / 3
            append.resume(Effect.succeed(ids.slice(offset, offset + n)))
            offset += n
          }
        },
        (cause) => {
          const error = Effect.fail(failure("append", reasonOf(cause)))
          for (const append of batch) append.resume(error)
        }
      ).finally(() => {
        queue.busy = false
        flush(partition)
      })
    }
    yield* Effect.addFinalizer(() =>
      Effect.sync(() => {
        const closed = Effect.fail(failure("append", "the provider was closed"))
        for (const queue of queues) for (const append of queue.waiting.splice(0)) append.resume(closed)
      })
    )

    const append = (partition: number, entries: ReadonlyArray<NewEntry>) =>
      withKey("append", partition, () => {
        if (entries.length === 0) return Effect.succeed([])
        const args: Array<string> = []
        try {
          for (const { key, namespace, payload } of entries) {
            checkText(namespace, key)
            const data = JSON.stringify(payload)
            if (typeof data !== "string") throw new Error(`the payload of ${namespace}/${key} is not a JSON value`)
            args.push(namespace, key, data)
          }
        } catch (cause) {
          return Effect.fail(failure("append", reasonOf(cause)))
        }
        return Effect.callback<ReadonlyArray<string>, StreamProviderError>((resume) => {
          const request: Append = { args, resume, cancelled: false }
          queues[partition]!.waiting.push(request)
          flush(partition)
          return Effect.sync(() => {
            request.cancelled = true
          })
        })
      })

    const lastTrim = new Array<number>(count).fill(Number.NEGATIVE_INFINITY)
    const maybeTrim = (partition: number, key: string) =>
      Effect.clockWith((clock) => {
        const now = clock.currentTimeMillisUnsafe()
        if (now - lastTrim[partition]! < trimInterval) return Effect.void
        lastTrim[partition] = now
        const ageBound = maxAgeMillis === undefined ? "" : `${Math.max(0, Math.floor(now - maxAgeMillis))}-0`
        return call("trim", () => redis.quarkStreamTrim(key, group, maxLength, ageBound)).pipe(
          Effect.asVoid,
          Effect.catch((error) => Effect.logWarning(`stream partition ${partition}: trimming failed: ${error.reason}`))
        )
      })

    const ackNow = (operation: string, key: string, tokens: ReadonlyArray<string>) => {
      const valid = tokens.filter((token) => StreamToken.parse(token) !== undefined)
      if (valid.length === 0) return Effect.void
      return call(operation, () => {
        const calls: Array<Promise<unknown>> = []
        for (let i = 0; i < valid.length; i += chunk) calls.push(redis.call("XACK", [key, group, ...valid.slice(i, i + chunk)]))
        return Promise.all(calls)
      })
    }

    /** The entries of a decoded reply; malformed ones are acknowledged and logged. */
    const delivered = (partition: number, key: string, operation: string, { entries, malformed }: Decoded) =>
      malformed.length === 0
        ? Effect.succeed(entries)
        : Effect.as(Effect.andThen(logMalformed(partition, malformed), ackNow(operation, key, malformed)), entries)

    /**
     * Deletes the group's other consumers that hold no pending entry (their silo is gone, or
     * it reads again and is made anew by its next `XREADGROUP`). Best effort: a failure is
     * only logged, the claim it follows has succeeded.
     */
    const forgetIdleConsumers = (key: string, self: string) =>
      Effect.gen(function*() {
        const reply = yield* call("claim", () => redis.call("XINFO", ["CONSUMERS", key, group]))
        if (!Array.isArray(reply)) return
        for (const info of reply) {
          const fields = fieldsOf(info)
          const name = fields.get("name")
          if (typeof name !== "string" || name === self || fields.get("pending") !== 0) continue
          yield* call("claim", () => redis.call("XGROUP", ["DELCONSUMER", key, group, name]))
        }
      }).pipe(Effect.catch((error) => Effect.logWarning(`stream partition ${key}: forgetting idle consumers failed (${error.message})`)))

    const consume = (partition: number, consumer: string) =>
      withKey("consume", partition, (key) =>
        Effect.gen(function*() {
          const owner = keys.owner(partition)
          // Unique per consume: a silo's later agent for the partition fences its earlier one too.
          const token = `${consumer} ${globalThis.crypto.randomUUID()}`
          const fenced = new ConsumerFenced({ partition, consumer })
          yield* call("consume", async () => {
            await redis.call("XGROUP", ["CREATE", key, group, "0", "MKSTREAM"]).catch((cause: unknown) => {
              if (!reasonOf(cause).startsWith("BUSYGROUP")) throw cause
            })
            await redis.call("SET", [owner, token])
          })
          const blocking = yield* dedicated(`p${partition}`)
          const readNext = (count: number, block: number) =>
            Effect.flatMap(
              call("next", () => redis.quarkStreamNext(key, owner, group, consumer, token, count)),
              (reply): Effect.Effect<ReadonlyArray<StreamEntry> | undefined, StreamProviderError | ConsumerFenced> => {
                if (!Array.isArray(reply)) return reply === -1 ? Effect.fail(fenced) : Effect.fail(failure("next", "unexpected reply"))
                if (reply[0] === 1) {
                  const decoded = decodeItems(itemsOfStreams(reply[1]))
                  const entries = delivered(partition, key, "next", decoded)
                  return decoded.entries.length === 0 ? Effect.as(entries, undefined) : entries
                }
                if (block <= 0) return Effect.succeed([])
                // Wakes as soon as an entry after the newest exists (at once if one came meanwhile).
                return Effect.as(blocking("next", "XREAD", ["COUNT", 1, "BLOCK", block, "STREAMS", key, String(reply[1])]), [])
              }
            )
          return {
            claim: (minIdleMillis) => Effect.gen(function*() {
              const out: Array<StreamEntry> = []
              const minIdle = Math.max(0, Math.floor(minIdleMillis))
              let cursor = "0-0"
              do {
                const reply = yield* call("claim", () => redis.quarkStreamClaim(key, owner, group, consumer, token, minIdle, cursor, chunk))
                if (reply === -1) return yield* fenced
                if (!Array.isArray(reply) || typeof reply[0] !== "string") {
                  return yield* failure("claim", "unexpected reply to XAUTOCLAIM")
                }
                cursor = reply[0]
                out.push(...(yield* delivered(partition, key, "claim", decodeItems(reply[1]))))
              } while (cursor !== "0-0")
              if (minIdle === 0) yield* forgetIdleConsumers(key, consumer)
              return out
            }),
            next: (max, waitMillis) => untilDeadline(waitMillis, (remaining) => readNext(countOf(max), remaining)),
            ack: (tokens) => Effect.andThen(ackNow("ack", key, tokens), maybeTrim(partition, key))
          } satisfies PartitionConsumer
        }))

    const reader = (partition: number) =>
      withKey("reader", partition, (key) =>
        Effect.gen(function*() {
          const blocking = yield* dedicated(`r${partition}`)
          const read = (from: Position, max: number, waitMillis: number) => {
            let after = afterOf(from)
            if (after === undefined) {
              return Effect.fail(failure("read", `not a stream token: ${from._tag === "After" ? from.token : ""}`))
            }
            const count = countOf(max)
            const decode = (items: unknown) => {
              const decoded = decodeItems(items)
              if (decoded.malformed.length === 0) return Effect.succeed(decoded.entries)
              // Read on past them next time (the reader acknowledges nothing).
              if (decoded.entries.length === 0) after = decoded.lastId!
              return Effect.as(logMalformed(partition, decoded.malformed), decoded.entries.length === 0 ? undefined : decoded.entries)
            }
            return untilDeadline(waitMillis, (remaining) =>
              Effect.flatMap(call("read", () => redis.call("XRANGE", [key, `(${after}`, "+", "COUNT", count])), (items) =>
                Array.isArray(items) && items.length > 0
                  ? decode(items)
                  : remaining <= 0
                  ? Effect.succeed([])
                  : Effect.flatMap(
                    blocking("read", "XREAD", ["COUNT", count, "BLOCK", remaining, "STREAMS", key, after!]),
                    (reply) => decode(itemsOfStreams(reply))
                  )))
          }
          return { read } satisfies PartitionReader
        }))

    // The newest id Redis generated (kept even when trimming removed its entry).
    const lastToken = (partition: number) =>
      withKey("lastToken", partition, (key) =>
        call("lastToken", async () => {
          const info = await redis.call("XINFO", ["STREAM", key]).catch((cause: unknown) => {
            if (reasonOf(cause).includes("no such key")) return []
            throw cause
          })
          const fields: ReadonlyArray<unknown> = Array.isArray(info) ? info : []
          const at = fields.indexOf("last-generated-id")
          const id = at < 0 ? undefined : fields[at + 1]
          return typeof id === "string" && id !== "0-0" ? id : undefined
        }))

    const subscriptionsKey = (namespace: string, key: string) => {
      checkText(namespace, key)
      return keys.subscriptions(namespace, key)
    }

    return {
      name: "redis",
      partitions: count,
      encodes: true,
      append,
      consume,
      reader,
      lastToken,
      subscriptions: {
        list: (namespace, key) =>
          call("subscriptions.list", async () => {
            // The raw reply (a flat field/value list), not ioredis's object: no field name
            // ("__proto__") ever becomes an object key.
            const flat = await redis.call("HGETALL", [subscriptionsKey(namespace, key)])
            const out: Array<StoredSubscription> = []
            if (Array.isArray(flat)) {
              for (let i = 0; i + 1 < flat.length; i += 2) out.push({ id: String(flat[i]), data: String(flat[i + 1]) })
            }
            return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
          }),
        put: (namespace, key, subscription) =>
          call("subscriptions.put", () => {
            checkText(subscription.id, subscription.data)
            return redis.hset(subscriptionsKey(namespace, key), subscription.id, subscription.data)
          }).pipe(Effect.asVoid),
        remove: (namespace, key, id) =>
          call("subscriptions.remove", () => {
            checkText(id)
            return redis.hdel(subscriptionsKey(namespace, key), id)
          }).pipe(Effect.map((removed) => removed === 1))
      }
    } satisfies StreamProvider
  })

/**
 * The stores the persistence benchmarks run against, each under a prefix of its own that
 * is removed after the run (the servers outlive it).
 */
import { PgClient } from "@effect/sql-pg"
import { Effect, Redacted } from "effect"
import { Reactivity } from "effect/reactivity"
import { Redis } from "ioredis"
import { EncryptedStore, Encryption, Stores } from "../src/index.ts"
import { PgStore } from "../src/Persistence/pg.ts"
import { RedisStore } from "../src/Persistence/redis.ts"
import type { BenchStore } from "./persistence.ts"

export const memory: BenchStore = { open: Effect.sync(() => Stores.memory("memory")) }

/** The memory store encrypted (AES-256-GCM, `EncryptedStore`): its cost against `memory`, in the same run. */
export const memoryEncrypted: BenchStore = {
  open: Effect.map(
    Encryption.makeKeyring({ keys: [{ id: "bench", key: Redacted.make(new Uint8Array(32).fill(7)) }], active: "bench" }),
    (keyring) => EncryptedStore.wrap(Stores.memory("memory"), keyring)
  )
}

const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
const redisPrefix = `quark-bench-${process.pid}`

export const redis: BenchStore = {
  open: RedisStore.make("redis", { url: redisUrl, keyPrefix: redisPrefix }),
  cleanup: async () => {
    const client = new Redis(redisUrl)
    try {
      let cursor = "0"
      do {
        const [next, keys] = await client.scan(cursor, "MATCH", `${redisPrefix}:*`, "COUNT", 1000)
        if (keys.length > 0) await client.del(...keys)
        cursor = next
      } while (cursor !== "0")
    } finally {
      await client.quit()
    }
  }
}

const pgUrl = process.env.QUARK_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"
const pgTablePrefix = "quark_bench_"

export const pg: BenchStore = {
  open: PgStore.make("pg", { url: pgUrl, tablePrefix: pgTablePrefix }),
  cleanup: () =>
    Effect.runPromise(Effect.scoped(Effect.gen(function*() {
      // A plain client of its own: the store's pool is closed by now.
      const sql = yield* PgClient.make({ url: Redacted.make(pgUrl), maxConnections: 1 }).pipe(
        Effect.provideServiceEffect(Reactivity.Reactivity, Reactivity.make)
      )
      for (const table of ["state", "journal", "snapshot"]) {
        yield* sql.unsafe(`DROP TABLE IF EXISTS ${pgTablePrefix}${table}`)
      }
    })))
}

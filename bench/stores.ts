/**
 * The stores the persistence benchmarks run against, each under a prefix of its own that
 * is removed after the run (the servers outlive it).
 */
import { Effect } from "effect"
import { Redis } from "ioredis"
import { RedisStore, Stores } from "../src/index.ts"
import type { BenchStore } from "./persistence.ts"

export const memory: BenchStore = { open: Effect.sync(() => Stores.memory("memory")) }

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

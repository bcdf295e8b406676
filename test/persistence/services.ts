/**
 * The real services the provider tests use. They read QUARK_REDIS_URL and QUARK_PG_URL
 * (defaults: the local servers). A test that cannot reach its server fails, naming the
 * server and how to start it; it never skips.
 */
export const redisUrl = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
export const pgUrl = process.env.QUARK_PG_URL ?? "postgres://postgres@127.0.0.1:5432/test"

export const unreachable = (what: string, url: string, cause: unknown): Error =>
  new Error(
    `${what} at ${url} is unreachable (${String(cause)}). Start it (see .ci/run) or point ` +
      `${what === "Redis" ? "QUARK_REDIS_URL" : "QUARK_PG_URL"} at one.`
  )

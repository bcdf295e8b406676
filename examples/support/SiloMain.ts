/**
 * The process side of the examples' silos (`cluster/silo.ts`, `reminders/silo.ts`,
 * `streams/silo.ts`): a `ClusterSilo` on 127.0.0.1 (any free port) in a cluster with Redis
 * membership and directory and a Redis state store, hosting what the example gives it;
 * `ready <silo id>` on stdout once it serves; a graceful stop on SIGTERM / SIGINT or when
 * stdin closes (so it never outlives the process that started it), exit 0; exit 3 when
 * declared dead.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cause, Effect, Exit, Layer, Logger } from "effect"
import { Stores } from "quark"
import { Cluster, ClusterSilo } from "quark/cluster"
import { RedisDirectory, RedisMembership } from "quark/cluster/redis"
import { RedisStore } from "quark/persistence/redis"

/** The silo, with what it hosts built on it. */
export const clusterSilo = <A, E, R>(
  hosted: Layer.Layer<A, E, R>,
  options: { readonly url: string; readonly cluster: string; readonly storePrefix: string }
) => {
  const { cluster, storePrefix, url } = options
  return hosted.pipe(
    Layer.provideMerge(ClusterSilo.layer({ port: 0 })),
    Layer.provide(Layer.mergeAll(
      RedisMembership.layer({ url, cluster }),
      RedisDirectory.layer({ url, cluster }),
      Stores.layer(RedisStore.make("redis", { url, keyPrefix: storePrefix }))
    ))
  )
}

/** A stop that hangs must not leave the process behind. */
const exitSoon = () => void setTimeout(() => process.exit(4), 12_000).unref()

/** Completes when stdin closes: the parent closed it, or died. */
const stdinClosed = Effect.callback<void>((resume) => {
  const done = () => {
    exitSoon()
    resume(Effect.void)
  }
  process.stdin.once("end", done)
  process.stdin.once("close", done)
  process.stdin.resume()
})

/** Runs the silo until it is stopped; the exit code says how it ended. */
export const runSilo = <E>(silo: Layer.Layer<Cluster, E>): void => {
  process.once("SIGTERM", exitSoon)
  process.once("SIGINT", exitSoon)
  const main = Effect.gen(function*() {
    const { declaredDead, self } = yield* Cluster
    process.stdout.write(`ready ${self!.id}\n`)
    return yield* Effect.raceFirst(
      Effect.flatMap(declaredDead, (dead) => Effect.as(Effect.logError(`declared dead (${dead.reason}): exiting`), 3)),
      Effect.as(stdinClosed, 0)
    )
  }).pipe(
    Effect.provide(silo), // closing it is the graceful stop
    Effect.provideService(Logger.LogToStderr, true)
  )
  // runMain interrupts `main` on SIGTERM / SIGINT, which closes the silo's layers.
  NodeRuntime.runMain(main, {
    teardown: (exit, onExit) =>
      onExit(Exit.isSuccess(exit) ? exit.value as number : Cause.hasInterruptsOnly(exit.cause) ? 0 : 1)
  })
}

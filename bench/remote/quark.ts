/**
 * Quark across two processes: a silo in a child process (siloServer.ts), this process a
 * cluster client (ClusterClient on Redis membership) calling `BenchCounter` actors that
 * live on the silo. Every reply is checked.
 *
 * - remote.ask.sequential: one call at a time, per-call latency (compare its p50 with
 *   baseline.raw-net.sequential's round trip).
 * - remote.ask.pipelined: 100 callers, each asking in a loop (100 in flight on the one
 *   connection).
 * - remote.tell: one-way sends in batches of 2,000 (well under the mailbox capacity: a
 *   one-way send has no reply to carry back a full mailbox), each followed by one ask that
 *   queues behind them (the mailbox is FIFO); the count must match after each batch.
 * - cluster.failover (field `ms`): three silos; each round starts a fresh victim silo,
 *   calls an actor it owns, `kill -9`s it and measures until the first successful call to
 *   that actor (now on another silo). Default membership timings (dead after 3 s).
 *
 * To profile both ends, give every process the profiler through the environment (the
 * group process and the silo child inherit it): `NODE_OPTIONS="--cpu-prof
 * --cpu-prof-dir=/tmp/prof" node --expose-gc bench/index.ts --only=remote.ask.pipelined`
 * writes one profile per process (the largest two are the client and the silo).
 */
import { Effect, Layer, ManagedRuntime, Schedule } from "effect"
import { ActorUnavailable, OutcomeUnknown } from "../../src/Actor/ActorError.ts"
import { Cluster } from "../../src/Cluster/Cluster.ts"
import * as ClusterClient from "../../src/Cluster/ClusterClient.ts"
import * as RedisMembership from "../../src/Cluster/RedisMembership.ts"
import { nowNs, percentile, type RoundResult } from "../Harness.ts"
import { type Disposable, pipelinedRound } from "./baselines.ts"
import { type Peer, spawnPeer } from "./Peer.ts"
import { checkCounts } from "./protocol.ts"
import { BenchCounter, redisUrl } from "./quarkProtocol.ts"

const inFlight = 100
const tellBatch = 2_000

const spawnSilo = (cluster: string, label: string): Promise<Peer> =>
  spawnPeer({ script: new URL("./siloServer.ts", import.meta.url), args: [cluster], label })

/** A client of `cluster` that has seen `count` silos. */
const makeClient = async (cluster: string, count: number) => {
  const runtime = ManagedRuntime.make(ClusterClient.layer().pipe(Layer.provide(RedisMembership.layer({ url: redisUrl, cluster }))))
  await runtime.runPromise(untilMembers(count))
  return runtime
}

const untilMembers = (count: number) =>
  Effect.gen(function*() {
    const cluster = yield* Cluster
    for (let i = 0; i < 500; i++) {
      if ((yield* cluster.members).length === count) return
      yield* Effect.sleep("10 millis")
    }
    return yield* Effect.die(new Error(`the client never saw ${count} silos`))
  })

const clusterName = (id: string) => `bench-${id}-${process.pid}-${Date.now()}`

/** One silo child and a client; `ref` is one BenchCounter on it. */
const makeRemote = async (id: string) => {
  const name = clusterName(id)
  const peer = await spawnSilo(name, id)
  try {
    const runtime = await makeClient(name, 1)
    const ref = await runtime.runPromise(BenchCounter.ref("bench"))
    let last = await runtime.runPromise(ref.Count())
    return {
      runtime,
      ref,
      last: () => last,
      setLast: (n: number) => (last = n),
      dispose: async () => {
        await runtime.dispose()
        await peer.dispose()
      }
    }
  } catch (error) {
    await peer.dispose()
    throw error
  }
}

export const remoteAskSequential = async (opsPerRound: number): Promise<Disposable> => {
  const id = "remote.ask.sequential"
  const r = await makeRemote(id)
  const call = r.ref.Increment({ by: 1 })
  const round = Effect.gen(function*() {
    const latenciesUs: Array<number> = []
    let expected = r.last()
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) {
      const s = nowNs()
      const got = yield* call
      latenciesUs.push((nowNs() - s) / 1000)
      if (got !== ++expected) throw new Error(`${id}: expected ${expected}, got ${got}`)
    }
    const elapsedNs = nowNs() - t0
    r.setLast(expected)
    return { ops: opsPerRound, elapsedNs, latenciesUs } satisfies RoundResult
  })
  return { id, round: () => r.runtime.runPromise(round), dispose: r.dispose }
}

export const remoteAskPipelined = async (opsPerRound: number): Promise<Disposable> => {
  const id = "remote.ask.pipelined"
  const r = await makeRemote(id)
  const call = r.ref.Increment({ by: 1 })
  const round = Effect.map(pipelinedRound(call, Math.ceil(opsPerRound / inFlight)), ({ replies, round }) => {
    r.setLast(checkCounts(id, replies, r.last()))
    return round
  })
  return { id, round: () => r.runtime.runPromise(round), dispose: r.dispose }
}

export const remoteTell = async (opsPerRound: number): Promise<Disposable> => {
  const id = "remote.tell"
  const r = await makeRemote(id)
  const send = r.ref.tell.Increment({ by: 1 })
  const count = r.ref.Count()
  const round = Effect.gen(function*() {
    const t0 = nowNs()
    for (let sent = 0; sent < opsPerRound;) {
      const batch = Math.min(tellBatch, opsPerRound - sent)
      for (let i = 0; i < batch; i++) yield* send
      sent += batch
      const got = yield* count
      const want = r.last() + batch
      if (got !== want) throw new Error(`${id}: expected ${want} after the sends, got ${got}`)
      r.setLast(got)
    }
    return { ops: opsPerRound, elapsedNs: nowNs() - t0 } satisfies RoundResult
  })
  return { id, round: () => r.runtime.runPromise(round), dispose: r.dispose }
}

/** The first id (of `BenchCounter/f-<n>`) the client places on `silo`. */
const actorOn = (silo: string) =>
  Effect.gen(function*() {
    const cluster = yield* Cluster
    for (let n = 0; ; n++) {
      if ((yield* cluster.ownerOf({ type: BenchCounter.type, id: `f-${n}` })) === silo) return `f-${n}`
    }
  })

export const clusterFailover = async (): Promise<Disposable> => {
  const id = "cluster.failover"
  const name = clusterName(id)
  const stable = [await spawnSilo(name, `${id}-a`), await spawnSilo(name, `${id}-b`)]
  const runtime = await makeClient(name, 2).catch(async (error) => {
    for (const peer of stable) await peer.dispose()
    throw error
  })
  const measured: Array<number> = []
  const round = async (): Promise<RoundResult> => {
    const victim = await spawnSilo(name, `${id}-victim`)
    try {
      await runtime.runPromise(untilMembers(3))
      const target = await runtime.runPromise(actorOn(String(victim.info.id)))
      const ref = await runtime.runPromise(BenchCounter.ref(target))
      await runtime.runPromise(ref.Increment({ by: 1 }))
      const t0 = nowNs()
      victim.kill("SIGKILL")
      // Retry what fails as unavailable (the connection is gone, then refused, until the
      // membership declares the victim dead and the ring moves the actor), and a call the
      // kill cut off after it was written (`OutcomeUnknown`): the bench times the first call
      // that succeeds, and does not count increments.
      await runtime.runPromise(
        ref.Increment({ by: 1 }).pipe(
          Effect.retry({
            while: (error) => error instanceof ActorUnavailable || error instanceof OutcomeUnknown,
            schedule: Schedule.spaced("5 millis")
          })
        )
      )
      const elapsedNs = nowNs() - t0
      measured.push(elapsedNs / 1e6)
      await runtime.runPromise(untilMembers(2))
      return { ops: 1, elapsedNs }
    } finally {
      await victim.dispose()
    }
  }
  return {
    id,
    round,
    extra: () => {
      const sorted = [...measured].sort((a, b) => a - b)
      return { ms: Math.round(percentile(sorted, 50)), msMax: Math.round(sorted[sorted.length - 1] ?? 0) }
    },
    dispose: async () => {
      await runtime.dispose()
      for (const peer of stable) await peer.dispose()
    }
  }
}

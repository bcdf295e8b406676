/**
 * Two-process baselines for the remote (silo-to-silo) benchmarks: the server side runs in a
 * child process (Peer.ts) on 127.0.0.1, the client side in the bench process, so each end has
 * its own event loop (and, on a machine with two cores or more, its own core). Every reply is
 * checked, so a broken baseline cannot report a fast number.
 *
 * - baseline.raw-net.sequential / .pipelined (100 in flight): bare `node:net`, the 4-byte
 *   length framing of Frame.ts, an 8-byte request (slot + sequence number) echoed by
 *   rawEchoServer.ts; each echo must carry the number sent in its slot. The floor.
 * - baseline.effect-rpc.pipelined (100 in flight): effect/rpc RpcClient over NodeSocket,
 *   RpcSerialization.layerSchemaBinary, tracing off, to effectRpcServer.ts; `Increment`
 *   replies with the server's count, and a round's replies must be exactly the next counts.
 * - baseline.effect-cluster.remote (100 in flight): a client-only effect/cluster member
 *   calling `Increment` on an entity hosted by the runner in effectClusterRunner.ts (see
 *   cluster.ts for the setup); replies checked like effect/rpc's.
 */
import { NodeSocket } from "@effect/platform-node"
import { Effect, Exit, Layer, ManagedRuntime, Scope } from "effect"
import { RpcClient, RpcSerialization } from "effect/rpc"
import { nowNs, type RoundResult, type Variant } from "../Harness.ts"
import { connectEchoClient } from "../rawNet.ts"
import * as Cluster from "./cluster.ts"
import { type Peer, spawnPeer } from "./Peer.ts"
import { checkCounts, IncrementGroup } from "./protocol.ts"

export type Disposable = Variant & { readonly dispose: () => Promise<void> }

const inFlight = 100
const host = "127.0.0.1"

/** Runs `build` with the peer, disposing the peer if it fails. */
const withPeer = async <A>(peer: Peer, build: (peer: Peer) => Promise<A>): Promise<A> => {
  try {
    return await build(peer)
  } catch (err) {
    await peer.dispose()
    throw err
  }
}

/**
 * Rounds run while the factory sets up, besides the harness's warm-up round: the effect/rpc
 * and effect/cluster code paths take several rounds of JIT compilation to reach their steady
 * rate (effect/cluster: some 20,000-30,000 calls here), and a baseline measured before that would flatter
 * whatever is compared with it.
 */
const warmUpRounds = 5

const warmUp = async (round: () => Promise<RoundResult>, rounds: number): Promise<void> => {
  for (let i = 0; i < rounds; i++) await round()
}

/**
 * `perCaller` requests from each of `inFlight` fibers, each waiting for its reply before the
 * next; the replies (numbers) are collected for checking.
 */
export const pipelinedRound = <E, R>(call: Effect.Effect<number, E, R>, perCaller: number) =>
  Effect.gen(function*() {
    const ops = perCaller * inFlight
    const replies = new Float64Array(ops)
    const latenciesUs: Array<number> = []
    let next = 0
    const t0 = nowNs()
    yield* Effect.forEach(
      Array.from({ length: inFlight }, (_, i) => i),
      () =>
        Effect.gen(function*() {
          for (let i = 0; i < perCaller; i++) {
            const s = nowNs()
            replies[next++] = yield* call
            latenciesUs.push((nowNs() - s) / 1000)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    const elapsedNs = nowNs() - t0
    return { round: { ops, elapsedNs, latenciesUs } satisfies RoundResult, replies }
  })

// ---------------------------------------------------------------------------------------
// raw node:net

const makeRaw = async (id: string) => {
  const peer = await spawnPeer({ script: new URL("./rawEchoServer.ts", import.meta.url), label: id })
  return withPeer(peer, async () => {
    const client = await connectEchoClient(id, peer.port)
    return {
      run: client.run,
      dispose: async () => {
        client.close()
        await peer.dispose()
      }
    }
  })
}

export const rawSequential = async (opsPerRound: number): Promise<Disposable> => {
  const id = "baseline.raw-net.sequential"
  const raw = await makeRaw(id)
  return { id, round: () => raw.run(opsPerRound, 1), dispose: raw.dispose }
}

export const rawPipelined = async (opsPerRound: number): Promise<Disposable> => {
  const id = "baseline.raw-net.pipelined"
  const raw = await makeRaw(id)
  return { id, round: () => raw.run(opsPerRound, inFlight), dispose: raw.dispose }
}

// ---------------------------------------------------------------------------------------
// effect/rpc

export const effectRpcPipelined = async (opsPerRound: number): Promise<Disposable> => {
  const id = "baseline.effect-rpc.pipelined"
  const peer = await spawnPeer({ script: new URL("./effectRpcServer.ts", import.meta.url), label: id })
  return withPeer(peer, async () => {
    const clientRuntime = ManagedRuntime.make(
      RpcClient.layerProtocolSocket().pipe(
        Layer.provide(NodeSocket.layerNet({ host, port: peer.port })),
        Layer.provide(RpcSerialization.layerSchemaBinary())
      )
    )
    const clientScope = Effect.runSync(Scope.make())
    const client = await clientRuntime.runPromise(
      RpcClient.make(IncrementGroup, { disableTracing: true }).pipe(Scope.provide(clientScope))
    )
    let last = 0 // the server's count after the last round
    const round = Effect.map(
      pipelinedRound(client.Increment({ by: 1 }), Math.ceil(opsPerRound / inFlight)),
      ({ replies, round }) => {
        last = checkCounts(id, replies, last)
        return round
      }
    )
    await warmUp(() => clientRuntime.runPromise(round), warmUpRounds)
    return {
      id,
      round: () => clientRuntime.runPromise(round),
      dispose: async () => {
        await Effect.runPromise(Scope.close(clientScope, Exit.void))
        await clientRuntime.dispose()
        await peer.dispose()
      }
    }
  })
}

// ---------------------------------------------------------------------------------------
// effect/cluster

export const effectClusterRemote = async (opsPerRound: number): Promise<Disposable> => {
  const id = "baseline.effect-cluster.remote"
  await Cluster.dropTables() // no stale runner from an earlier run
  const peer = await spawnPeer({
    script: new URL("./effectClusterRunner.ts", import.meta.url),
    args: ["0", "counter-1"], // a free port; the entity it checks before it is ready
    label: id,
    readyTimeoutMs: 30_000
  })
  return withPeer(peer, async () => {
    const runtime = ManagedRuntime.make(Cluster.clientLayer())
    try {
      const entity = await runtime.runPromise(Effect.map(Cluster.Counter.client, (make) => make("counter-1")))
      let last = 0 // the entity's count after the last round (the runner's own check left it at 0)
      const round = Effect.map(
        pipelinedRound(entity.Increment({ by: 1 }), Math.ceil(opsPerRound / inFlight)),
        ({ replies, round }) => {
          last = checkCounts(id, replies, last)
          return round
        }
      )
      await warmUp(() => runtime.runPromise(round), warmUpRounds)
      return {
        id,
        round: () => runtime.runPromise(round),
        dispose: async () => {
          await runtime.dispose()
          await peer.dispose()
          await Cluster.dropTables()
        }
      }
    } catch (err) {
      await runtime.dispose()
      throw err
    }
  })
}

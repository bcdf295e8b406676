/**
 * Benchmarks of the silo transport against its baselines, all over loopback with server
 * and client in this one process (so both ends share one CPU core's event loop; the
 * two-process baselines, server in a child process, are in bench/remote/baselines.ts).
 *
 * - transport.ask.sequential / transport.ask.pipelined (100 in flight): Connection →
 *   Server, with the payload `{ by }` and the reply encoded by Schema (toCodecJson + JSON)
 *   on both sides, and the handler adding to a counter; every reply is checked.
 * - transport.ask.sequential.tls / .pipelined.tls: the same over mutual TLS (a throw-away
 *   CA and leaf certificates from test/support/certificates.ts, made with openssl).
 * - loopback.raw-net.sequential / .pipelined: bare `node:net` with the same 4-byte length
 *   framing, an 8-byte request (id + value), an echo server, no Effect, no envelope, no
 *   schema: the floor.
 * - loopback.effect-rpc.pipelined: effect/rpc RpcServer/RpcClient over NodeSocket with
 *   RpcSerialization.layerSchemaBinary, the same Increment message (tracing disabled on
 *   both sides, as the transport does none).
 */
import * as Net from "node:net"
import { Effect, Exit, Layer, ManagedRuntime, Schema, Scope } from "effect"
import { Rpc, RpcClient, RpcGroup, RpcSerialization, RpcServer } from "effect/rpc"
import { NodeSocket, NodeSocketServer } from "@effect/platform-node"
import * as Connection from "../src/Transport/Connection.ts"
import { payloadCodec, type ReplyOutcome, type RequestEnvelope } from "../src/Transport/Envelope.ts"
import * as Server from "../src/Transport/Server.ts"
import { nowNs, type RoundResult, type Variant } from "./Harness.ts"
import { connectEchoClient, freePort, host, startEchoServer } from "./rawNet.ts"

type Disposable = Variant & { readonly dispose: () => Promise<void> }

const inFlight = 100

const check = (id: string, got: number, want: number): void => {
  if (got !== want) throw new Error(`${id}: expected ${want}, got ${got}`)
}

// ---------------------------------------------------------------------------------------
// Quark transport

const IncrementPayload = payloadCodec(Schema.Struct({ by: Schema.Int }))
const IntCodec = payloadCodec(Schema.Int)

/** Mutual TLS material for both ends: one CA, a server and a client certificate. */
const mutualTls = async () => {
  const { authority } = await import("../test/support/certificates.ts")
  const ca = authority("quark-bench-ca")
  const silo = ca.issue("bench-silo")
  const client = ca.issue("bench-client")
  return {
    server: { cert: silo.cert, key: silo.key, ca: ca.cert },
    client: { cert: client.cert, key: client.key, ca: ca.cert }
  }
}

const makeTransport = async (tls = false) => {
  const material = tls ? await mutualTls() : undefined
  const scope = Effect.runSync(Scope.make())
  let count = 0
  const handle = (req: RequestEnvelope): Effect.Effect<ReplyOutcome> =>
    Effect.sync(() => {
      count += IncrementPayload.decode(req.payload).by
      return { _tag: "Success", value: IntCodec.encode(count) }
    })
  const connection = await Effect.runPromise(
    Effect.gen(function*() {
      const server = yield* Server.make({ host, port: 0, handle, tls: material?.server })
      return yield* Connection.make({ host, port: server.port, tls: material?.client })
    }).pipe(Scope.provide(scope))
  )
  const payload = IncrementPayload.encode({ by: 1 })
  const request: Connection.CallRequest = {
    target: { type: "BenchCounter", id: "1" },
    tag: "Increment",
    payload,
    context: { correlationId: "bench", metadata: {} },
    chain: []
  }
  const ask = Effect.map(connection.call(request), (outcome) => {
    if (outcome._tag !== "Success") throw new Error(`unexpected ${outcome._tag}`)
    return IntCodec.decode(outcome.value)
  })
  return {
    ask,
    count: () => count,
    dispose: () => Effect.runPromise(Scope.close(scope, Exit.void))
  }
}

/** One caller: ask, wait, ask again. Every op's latency is recorded. */
export const transportSequential = async (opsPerRound: number, tls = false): Promise<Disposable> => {
  const id = tls ? "transport.ask.sequential.tls" : "transport.ask.sequential"
  const t = await makeTransport(tls)
  const round = Effect.gen(function*() {
    const before = t.count()
    const latenciesUs: Array<number> = []
    const t0 = nowNs()
    for (let i = 0; i < opsPerRound; i++) {
      const s = nowNs()
      yield* t.ask
      latenciesUs.push((nowNs() - s) / 1000)
    }
    const elapsedNs = nowNs() - t0
    check(id, t.count() - before, opsPerRound)
    return { ops: opsPerRound, elapsedNs, latenciesUs } satisfies RoundResult
  })
  return { id, round: () => Effect.runPromise(round), dispose: t.dispose }
}

/** 100 callers, each asking in a loop: 100 requests in flight on the one connection. */
export const transportPipelined = async (opsPerRound: number, tls = false): Promise<Disposable> => {
  const id = tls ? "transport.ask.pipelined.tls" : "transport.ask.pipelined"
  const t = await makeTransport(tls)
  const perCaller = Math.ceil(opsPerRound / inFlight)
  const ops = perCaller * inFlight
  const round = Effect.gen(function*() {
    const before = t.count()
    const latenciesUs: Array<number> = []
    const t0 = nowNs()
    yield* Effect.forEach(
      Array.from({ length: inFlight }, (_, i) => i),
      () =>
        Effect.gen(function*() {
          for (let i = 0; i < perCaller; i++) {
            const s = nowNs()
            yield* t.ask
            latenciesUs.push((nowNs() - s) / 1000)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    const elapsedNs = nowNs() - t0
    check(id, t.count() - before, ops)
    return { ops, elapsedNs, latenciesUs } satisfies RoundResult
  })
  return { id, round: () => Effect.runPromise(round), dispose: t.dispose }
}

// ---------------------------------------------------------------------------------------
// raw node:net

const makeRaw = async (id: string) => {
  const server = await startEchoServer()
  const client = await connectEchoClient(id, (server.address() as Net.AddressInfo).port)
  return {
    run: client.run,
    dispose: () =>
      new Promise<void>((resolve) => {
        client.close()
        server.close(() => resolve())
      })
  }
}

export const rawSequential = async (opsPerRound: number): Promise<Disposable> => {
  const id = "loopback.raw-net.sequential"
  const raw = await makeRaw(id)
  return { id, round: () => raw.run(opsPerRound, 1), dispose: raw.dispose }
}

export const rawPipelined = async (opsPerRound: number): Promise<Disposable> => {
  const id = "loopback.raw-net.pipelined"
  const raw = await makeRaw(id)
  return { id, round: () => raw.run(opsPerRound, inFlight), dispose: raw.dispose }
}

// ---------------------------------------------------------------------------------------
// effect/rpc

const Increment = Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int })
const Group = RpcGroup.make(Increment)

export const effectRpcPipelined = async (opsPerRound: number): Promise<Disposable> => {
  const id = "loopback.effect-rpc.pipelined"
  const port = await freePort()
  let count = 0
  const serverLayer = RpcServer.layer(Group, { disableTracing: true }).pipe(
    Layer.provide(Group.toLayer({ Increment: ({ by }) => Effect.sync(() => (count += by)) })),
    Layer.provide(RpcServer.layerProtocolSocketServer),
    Layer.provide(NodeSocketServer.layer({ host, port })),
    Layer.provide(RpcSerialization.layerSchemaBinary())
  )
  const serverRuntime = ManagedRuntime.make(serverLayer)
  await serverRuntime.context()
  const clientLayer = RpcClient.layerProtocolSocket().pipe(
    Layer.provide(NodeSocket.layerNet({ host, port })),
    Layer.provide(RpcSerialization.layerSchemaBinary())
  )
  const clientRuntime = ManagedRuntime.make(clientLayer)
  const clientScope = Effect.runSync(Scope.make())
  const client = await clientRuntime.runPromise(
    RpcClient.make(Group, { disableTracing: true }).pipe(Scope.provide(clientScope))
  )
  const perCaller = Math.ceil(opsPerRound / inFlight)
  const ops = perCaller * inFlight
  const round = Effect.gen(function*() {
    const before = count
    const latenciesUs: Array<number> = []
    const t0 = nowNs()
    yield* Effect.forEach(
      Array.from({ length: inFlight }, (_, i) => i),
      () =>
        Effect.gen(function*() {
          for (let i = 0; i < perCaller; i++) {
            const s = nowNs()
            yield* client.Increment({ by: 1 })
            latenciesUs.push((nowNs() - s) / 1000)
          }
        }),
      { concurrency: "unbounded", discard: true }
    )
    const elapsedNs = nowNs() - t0
    check(id, count - before, ops)
    return { ops, elapsedNs, latenciesUs } satisfies RoundResult
  })
  return {
    id,
    round: () => clientRuntime.runPromise(round),
    dispose: async () => {
      await Effect.runPromise(Scope.close(clientScope, Exit.void))
      await clientRuntime.dispose()
      await serverRuntime.dispose()
    }
  }
}

/**
 * Child process: the effect/rpc server of `baseline.effect-rpc.pipelined`, as in
 * bench/transport.ts (RpcServer over NodeSocketServer, RpcSerialization.layerSchemaBinary,
 * tracing disabled, `Increment` adding to a counter and replying with it), on 127.0.0.1 with
 * a port of its own. Prints `ready <port>`.
 */
import { NodeSocketServer } from "@effect/platform-node"
import { Effect, Layer, ManagedRuntime } from "effect"
import { RpcSerialization, RpcServer } from "effect/rpc"
import { SocketServer } from "effect/socket/SocketServer"
import { announceReady, onParentGone } from "./Peer.ts"
import { IncrementGroup } from "./protocol.ts"

let count = 0
const socketServer = NodeSocketServer.layer({ host: "127.0.0.1", port: 0 })
const serverLayer = RpcServer.layer(IncrementGroup, { disableTracing: true }).pipe(
  Layer.provide(IncrementGroup.toLayer({ Increment: ({ by }) => Effect.sync(() => (count += by)) })),
  Layer.provide(RpcServer.layerProtocolSocketServer),
  Layer.provideMerge(socketServer),
  Layer.provide(RpcSerialization.layerSchemaBinary())
)
const runtime = ManagedRuntime.make(serverLayer)
const address = await runtime.runPromise(Effect.gen(function*() {
  return (yield* SocketServer).address
}))
if (address._tag === "UnixPathAddress") throw new Error("unexpected unix socket address")
onParentGone(() => runtime.dispose())
announceReady(address.port)

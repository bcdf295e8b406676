/**
 * Child process: the raw `node:net` echo server of `baseline.raw-net.*` (`serveEcho`, the
 * one the in-process `loopback.raw-net.*` use too), on 127.0.0.1 port 0. Prints
 * `ready <port>`.
 */
import * as Net from "node:net"
import { serveEcho } from "../rawNet.ts"
import { announceReady, onParentGone } from "./Peer.ts"

const server = Net.createServer({ noDelay: true }, serveEcho)

server.listen(0, "127.0.0.1", () => {
  onParentGone()
  announceReady((server.address() as Net.AddressInfo).port)
})

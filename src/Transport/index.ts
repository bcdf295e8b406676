/**
 * Silo-to-silo transport: length-prefixed frames over TCP, a hand-written envelope codec
 * around Schema-encoded payloads, one multiplexed connection per peer with write batching,
 * backpressure, caps, timeouts and reconnect, and a server that can drain; TLS or mutual TLS,
 * and a handshake (cluster id, role, cluster secret) on every connection. `ClusterSilo` and
 * `ClusterClient` route refs over it.
 *
 * @since 0.1.0
 */
export * as Connection from "./Connection.ts"
export * as Envelope from "./Envelope.ts"
export * as Frame from "./Frame.ts"
export * as PeerInfo from "./PeerInfo.ts"
export * as Server from "./Server.ts"
export * as Tls from "./Tls.ts"

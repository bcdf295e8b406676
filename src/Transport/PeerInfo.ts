/**
 * What a transport server knows of the peer at the other end of a connection, once its
 * handshake is done: given to the request handler with every request of that connection,
 * so the silo can tell a silo from a client and take a caller's principal from its
 * certificate. Nothing here is read from a request envelope: it comes from the socket,
 * the TLS session and the handshake.
 *
 * @since 0.2.0
 */

/**
 * The verified client certificate of a mutual-TLS connection.
 *
 * @since 0.2.0
 */
export interface PeerCertificate {
  /** The subject's common name. */
  readonly commonName: string
  /** The subject alternative names as `node:tls` prints them (`DNS:a, IP Address:127.0.0.1`), or "". */
  readonly subjectAltName: string
  /** SHA-256 fingerprint, `AA:BB:...`. */
  readonly fingerprint256: string
}

/**
 * @since 0.2.0
 */
export interface PeerInfo {
  /** The peer's `host:port` as the socket sees it. */
  readonly address: string
  /** What the peer declared in its handshake: another silo of the cluster, or a client. */
  readonly role: "silo" | "client"
  /** A silo peer's id (`host:port@generation`), as its handshake declared it. */
  readonly siloId?: string | undefined
  /** Present when the connection is TLS and the peer presented a certificate the server verified. */
  readonly certificate?: PeerCertificate | undefined
}

/**
 * Test support (`quark/testing`): `TestCluster`, several silos in one process over real
 * loopback TCP with in-memory membership, for tests of code that runs in a cluster. A
 * single-silo test needs only `Silo.layerTest` from `quark`.
 *
 * @since 0.1.0
 */
export * as TestCluster from "./Cluster/TestCluster.ts"

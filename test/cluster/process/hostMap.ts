/**
 * Per-process host names for the split-brain test (`SplitBrain.test.ts`): a silo listens on,
 * and is reached at, a name (`silo-0.split.test`, …), and each process resolves those names
 * through a map of its own. So the partitioned silo and the others can resolve one name to
 * different loopback addresses: the silo itself to the address it listens on, the others
 * to a TCP proxy in front of it that the test can cut. That is how a real partition of a
 * silo's advertised `host:port` is made on one machine, without changing how Quark
 * listens or connects (both go through `dns.lookup`, which this patches for the mapped
 * names only).
 */
import Dns from "node:dns"

/** The environment variable carrying a process's map (JSON: name → IPv4 address). */
export const hostMapVariable = "QUARK_TEST_HOST_MAP"

type LookupCallback = (error: NodeJS.ErrnoException | null, address: string | Array<Dns.LookupAddress>, family?: number) => void

/**
 * Makes `dns.lookup` (what `net.connect` and `server.listen` use) answer `map[name]` for the
 * names in `map`; other names resolve as before. Returns the undo.
 */
export const installHostMap = (map: Readonly<Record<string, string>>): () => void => {
  const original = Dns.lookup
  const patched = function(this: unknown, hostname: string, options: unknown, callback?: LookupCallback) {
    const cb = (typeof options === "function" ? options : callback) as LookupCallback
    const address = Object.hasOwn(map, hostname) ? map[hostname] : undefined
    if (address === undefined) return (original as Function).apply(this, arguments)
    const all = typeof options === "object" && options !== null && (options as { all?: boolean }).all === true
    if (all) process.nextTick(cb, null, [{ address, family: 4 }])
    else process.nextTick(cb, null, address, 4)
  }
  Dns.lookup = patched as typeof Dns.lookup
  return () => {
    if (Dns.lookup === patched) Dns.lookup = original
  }
}

/** Installs the map in {@link hostMapVariable}, if set. */
export const installHostMapFromEnv = (): void => {
  const json = process.env[hostMapVariable]
  if (json !== undefined && json !== "") installHostMap(JSON.parse(json) as Record<string, string>)
}

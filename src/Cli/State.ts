/**
 * The dev cluster's state file, `.quark/cluster.json` in the project directory: written by
 * `quark cluster start` once every silo is ready, read by `quark cluster stop` (the pids to
 * stop) and by the commands that talk to the cluster (the endpoints URL of each silo, so
 * `quark status` needs no `--url` and `quark drain silo-2` knows where silo-2 listens).
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Effect, Schema } from "effect"

/** @since 0.2.0 */
export const SiloEntry = Schema.Struct({
  label: Schema.String,
  pid: Schema.Int,
  id: Schema.String,
  url: Schema.String
})

/** @since 0.2.0 */
export type SiloEntry = typeof SiloEntry.Type

/** @since 0.2.0 */
export const ClusterState = Schema.Struct({
  /** The `quark cluster start` process, which owns the silos. */
  pid: Schema.Int,
  cluster: Schema.String,
  redis: Schema.String,
  silos: Schema.Array(SiloEntry)
})

/** @since 0.2.0 */
export type ClusterState = typeof ClusterState.Type

/** @since 0.2.0 */
export const stateFile = (dir: string): string => path.join(dir, ".quark", "cluster.json")

const decode = Schema.decodeUnknownSync(Schema.fromJsonString(ClusterState))

/**
 * The state of the dev cluster started from `dir`, or `undefined` (none, or unreadable: a
 * state file cut short by a crash is as good as none).
 *
 * @since 0.2.0
 */
export const read = (dir: string): Effect.Effect<ClusterState | undefined> =>
  Effect.sync(() => {
    try {
      return decode(fs.readFileSync(stateFile(dir), "utf8"))
    } catch {
      return undefined
    }
  })

/** Written whole to a temporary file, then renamed: a reader never sees half of it. @since 0.2.0 */
export const write = (dir: string, state: ClusterState): Effect.Effect<void> =>
  Effect.sync(() => {
    const file = stateFile(dir)
    fs.mkdirSync(path.dirname(file), { recursive: true })
    fs.writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + "\n")
    fs.renameSync(`${file}.tmp`, file)
  })

/** @since 0.2.0 */
export const remove = (dir: string): Effect.Effect<void> => Effect.sync(() => fs.rmSync(stateFile(dir), { force: true }))

/** Whether a process with this pid is alive (signal 0 tests without sending). @since 0.2.0 */
export const isAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    return (error as { readonly code?: string }).code === "EPERM"
  }
}

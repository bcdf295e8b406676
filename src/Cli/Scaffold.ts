/**
 * `quark new <dir>` and `quark add actor <Name>`: files written from `Templates`. Nothing
 * is overwritten: a non-empty directory, or an actor whose files exist, is refused
 * (`CommandFailed`) before anything is written. `add actor` wires the implementation into
 * `src/actors/index.ts` at its marker comments; without them it is `NotFound` (this is not
 * a project `quark new` made, or the markers were removed).
 *
 * @since 0.2.0
 */
import * as fs from "node:fs"
import { createRequire } from "node:module"
import * as path from "node:path"
import { Effect } from "effect"
import { CommandFailed, NotFound } from "./Errors.ts"
import * as Templates from "./Templates.ts"

interface Manifest {
  readonly version?: string
  readonly peerDependencies?: Record<string, string>
}

/** This package's manifest (two levels up from both src/Cli and dist/Cli). */
const manifest: Manifest = (() => {
  try {
    return createRequire(import.meta.url)("../../package.json") as Manifest
  } catch {
    return {}
  }
})()

/** The versions a new project depends on: this Quark, and the peers it was built for. @since 0.2.0 */
export const versions = (quark?: string | undefined): Templates.Versions => ({
  quark: quark ?? `^${manifest.version ?? "0.1.0"}`,
  effect: manifest.peerDependencies?.["effect"] ?? "^4.1.0",
  platformNode: manifest.peerDependencies?.["@effect/platform-node"] ?? "^4.1.0",
  ioredis: manifest.peerDependencies?.["ioredis"] ?? "^6.0.0"
})

/** An npm package name from a directory's name (lower case, URL-safe). */
const packageName = (dir: string): string =>
  path.basename(path.resolve(dir)).toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[._-]+/, "") || "quark-app"

const writeAll = (root: string, files: ReadonlyArray<readonly [string, string]>) =>
  Effect.try({
    try: () => {
      for (const [file, text] of files) {
        const target = path.join(root, file)
        fs.mkdirSync(path.dirname(target), { recursive: true })
        fs.writeFileSync(target, text, { flag: "wx" })
      }
    },
    catch: (cause) => new CommandFailed({ message: `cannot write the files: ${(cause as Error).message}` })
  })

/**
 * A new project in `dir` (created; an existing one must be empty). `quark` is the
 * dependency's spec in its package.json (default `^<this version>`; a path or a tarball to
 * try an unpublished build). The files written, relative to `dir`.
 *
 * @since 0.2.0
 */
export const newProject = (dir: string, options?: { readonly quark?: string | undefined }) =>
  Effect.gen(function*() {
    const root = path.resolve(dir)
    if (fs.existsSync(root) && (!fs.statSync(root).isDirectory() || fs.readdirSync(root).length > 0)) {
      return yield* new CommandFailed({ message: `${dir} exists and is not an empty directory: nothing written` })
    }
    const files: ReadonlyArray<readonly [string, string]> = [
      ["package.json", Templates.packageJson(packageName(dir), versions(options?.quark))],
      ["tsconfig.json", Templates.tsconfig],
      [".gitignore", Templates.gitignore],
      ["README.md", Templates.readme(packageName(dir))],
      ["src/actors/Counter.ts", Templates.counterContract],
      ["src/actors/CounterLive.ts", Templates.counterLive],
      ["src/actors/index.ts", Templates.actorsIndex],
      ["src/main.ts", Templates.main],
      ["src/silo.ts", Templates.silo],
      ["test/Counter.test.ts", Templates.counterTest]
    ]
    yield* writeAll(root, files)
    return files.map(([file]) => file)
  })

/**
 * The contract, implementation and test of actor `name` in the project at `root`, its
 * implementation added to `ActorsLive`. The files written (or changed), relative to `root`.
 *
 * @since 0.2.0
 */
export const addActor = (root: string, name: string) =>
  Effect.gen(function*() {
    const index = path.join(root, "src", "actors", "index.ts")
    const source = fs.existsSync(index) ? fs.readFileSync(index, "utf8") : undefined
    if (source === undefined || !source.includes(Templates.markers.imports) || !source.includes(Templates.markers.actors)) {
      return yield* new NotFound({
        message: `no src/actors/index.ts with the markers "${Templates.markers.imports}" and "${Templates.markers.actors}" ` +
          `in ${root}: run this in a project made by \`quark new\``
      })
    }
    const files: ReadonlyArray<readonly [string, string]> = [
      [`src/actors/${name}.ts`, Templates.actorContract(name)],
      [`src/actors/${name}Live.ts`, Templates.actorLive(name)],
      [`test/${name}.test.ts`, Templates.actorTest(name)]
    ]
    const taken = files.map(([file]) => file).filter((file) => fs.existsSync(path.join(root, file)))
    if (taken.length > 0) return yield* new CommandFailed({ message: `${taken.join(", ")} already exist: nothing written` })
    yield* writeAll(root, files)
    // Each insertion keeps the marker's indentation, so the marker stays last.
    const insert = (text: string, marker: string, line: string) =>
      text.replace(new RegExp(`^([ \\t]*)${marker.replace(/[/]/g, "\\/")}`, "m"), (_, indent: string) => `${indent}${line}\n${indent}${marker}`)
    const wired = insert(
      insert(source, Templates.markers.imports, `import { ${name}Live } from "./${name}Live.ts"`),
      Templates.markers.actors,
      `${name}Live,`
    )
    yield* Effect.sync(() => fs.writeFileSync(index, wired))
    return [...files.map(([file]) => file), "src/actors/index.ts"]
  })

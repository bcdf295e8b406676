/**
 * The files of a project made by `quark new`, and of an actor added by `quark add actor`,
 * as text. Kept as strings in the package (not as template files) so they ship in `dist/`
 * with the CLI and are type-checked by nothing but the project they land in.
 *
 * The project runs TypeScript with Node itself (type stripping, Node >= 22.18): imports
 * name `.ts` files, and types are erasable (no enums, no parameter properties). Its tests
 * use Node's test runner, so `npm install` brings only Quark, effect, the Node platform and
 * ioredis (for the dev cluster).
 *
 * @since 0.2.0
 */

/**
 * A relative import's specifier, quoted. Spelled through this so that the templates' import
 * lines do not read as this module's own imports (test/ImportGraph.test.ts scans the text).
 */
const local = (specifier: string): string => JSON.stringify(specifier)

/** What a project depends on, with the versions of the Quark that made it. @since 0.2.0 */
export interface Versions {
  readonly quark: string
  readonly effect: string
  readonly platformNode: string
  readonly ioredis: string
}

/** `quark add actor` inserts above these lines of `src/actors/index.ts`. @since 0.2.0 */
export const markers = { imports: "// quark:imports", actors: "// quark:actors" } as const

/** @since 0.2.0 */
export const packageJson = (name: string, versions: Versions): string =>
  JSON.stringify(
    {
      name,
      version: "0.0.0",
      private: true,
      type: "module",
      engines: { node: ">=22.19.0" },
      scripts: {
        start: "node src/main.ts",
        silo: "node src/silo.ts",
        test: "node --test \"test/**/*.test.ts\""
      },
      dependencies: {
        quark: versions.quark,
        effect: versions.effect,
        "@effect/platform-node": versions.platformNode,
        ioredis: versions.ioredis
      }
    },
    null,
    2
  ) + "\n"

/** For editors and `tsc --noEmit` (not needed to run: Node strips the types). @since 0.2.0 */
export const tsconfig = JSON.stringify(
  {
    compilerOptions: {
      target: "ES2023",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      strict: true,
      noEmit: true,
      allowImportingTsExtensions: true,
      erasableSyntaxOnly: true,
      verbatimModuleSyntax: true,
      skipLibCheck: true,
      types: ["node"]
    },
    include: ["src", "test"]
  },
  null,
  2
) + "\n"

/** @since 0.2.0 */
export const gitignore = "node_modules/\n.quark/\n"

/** @since 0.2.0 */
export const readme = (name: string): string => `# ${name}

A [Quark](https://www.npmjs.com/package/quark) project: virtual actors on Effect.

\`\`\`sh
npm install
npm start                  # a local silo, its diagnostics at http://127.0.0.1:9464
npm test                   # the actors' tests (Node's test runner)
npx quark add actor Cart   # a contract, an implementation and a test, wired in
npx quark cluster start    # three silos against Redis (QUARK_REDIS_URL), logs by silo
npx quark status           # in another terminal: the cluster, through a silo's endpoints
npx quark cluster stop
\`\`\`

- \`src/actors/\`: one contract (\`<Name>.ts\`) and one implementation (\`<Name>Live.ts\`) per actor;
  \`src/actors/index.ts\` hosts them all (\`ActorsLive\`).
- \`src/main.ts\`: a local silo (\`npm start\`).
- \`src/silo.ts\`: a cluster member (Redis membership, directory, state and reminders), what
  \`quark cluster start\` runs; it prints \`ready <silo id> <endpoints url>\` once it serves.
`

/** @since 0.2.0 */
export const actorsIndex = `/**
 * Every actor this project hosts. \`quark add actor <Name>\` adds its implementation here:
 * keep the two marker comments.
 */
import { Layer } from "effect"
import { CounterLive } from ${local(`./CounterLive.ts`)}
${markers.imports}

export const ActorsLive = Layer.mergeAll(
  CounterLive,
  ${markers.actors}
)
`

/** @since 0.2.0 */
export const counterContract = `/**
 * Counter: a number per id, in memory (an activation's state; give it \`ActorState\` to
 * keep it across activations).
 */
import { Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor } from "quark"

export const Counter = Actor.make("Counter", [
  Rpc.make("Increment", { payload: { by: Schema.Number }, success: Schema.Number }),
  Rpc.make("Get", { success: Schema.Number })
])
`

/** @since 0.2.0 */
export const counterLive = `import { Effect, Ref } from "effect"
import { Counter } from ${local(`./Counter.ts`)}

export const CounterLive = Counter.toLayer(
  Effect.gen(function*() {
    const count = yield* Ref.make(0)
    return Counter.of({
      Increment: ({ by }) => Ref.updateAndGet(count, (n) => n + by),
      Get: () => Ref.get(count)
    })
  })
)
`

/** @since 0.2.0 */
export const counterTest = `import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect, Layer } from "effect"
import { Silo } from "quark"
import { Counter } from ${local(`../src/actors/Counter.ts`)}
import { CounterLive } from ${local(`../src/actors/CounterLive.ts`)}

const run = <A, E>(effect: Effect.Effect<A, E, Silo.Silo>) =>
  Effect.runPromise(effect.pipe(Effect.provide(CounterLive.pipe(Layer.provideMerge(Silo.layer())))))

test("a counter adds what it is given, per id", async () => {
  const [a, b] = await run(Effect.gen(function*() {
    const a = yield* Counter.refOrDie("a")
    const b = yield* Counter.refOrDie("b")
    yield* a.Increment({ by: 2 })
    yield* a.Increment({ by: 3 })
    yield* b.Increment({ by: 1 })
    return [yield* a.Get(), yield* b.Get()]
  }))
  assert.equal(a, 5)
  assert.equal(b, 1)
})
`

/** @since 0.2.0 */
export const main = `/**
 * \`npm start\`: a local silo hosting every actor, with reminders (in memory) and the
 * diagnostics endpoints (QUARK_ENDPOINTS_PORT, default 9464), until Ctrl-C.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Console, Effect, Layer } from "effect"
import { Reminders, Silo } from "quark"
import { Endpoints } from "quark/telemetry/node"
import { Counter } from ${local(`./actors/Counter.ts`)}
import { ActorsLive } from ${local(`./actors/index.ts`)}

const port = Number(process.env.QUARK_ENDPOINTS_PORT ?? 9464)

const MainLive = Endpoints.layer({ port }).pipe(
  Layer.provideMerge(Reminders.layer()),
  Layer.provideMerge(ActorsLive),
  Layer.provideMerge(Silo.layer())
)

const main = Effect.gen(function*() {
  const { url } = yield* Endpoints.Endpoints
  const counter = yield* Counter.refOrDie("demo")
  const count = yield* counter.Increment({ by: 1 })
  yield* Console.log(\`Counter/demo is at \${count}\`)
  yield* Console.log(\`a local silo serves, its endpoints at \${url} (npx quark status --url \${url}); Ctrl-C stops it\`)
  return yield* Effect.never
}).pipe(Effect.provide(MainLive))

NodeRuntime.runMain(main)
`

/** @since 0.2.0 */
export const silo = `/**
 * One member of this project's cluster, what \`quark cluster start\` runs (once per silo):
 * a \`ClusterSilo\` hosting every actor, with Redis membership, directory, state and
 * reminders, and the diagnostics endpoints the CLI talks to.
 *
 * Environment: QUARK_REDIS_URL (default redis://127.0.0.1:6379), QUARK_CLUSTER (the
 * cluster's name, default "dev"), QUARK_ENDPOINTS_PORT (default 0: any free port).
 * It prints \`ready <silo id> <endpoints url>\` on stdout once it serves (the CLI waits for
 * it), logs to stderr, stops gracefully on SIGTERM / Ctrl-C, and exits once drained
 * (\`quark drain\`).
 */
import { NodeRuntime } from "@effect/platform-node"
import { Effect, Layer, Logger } from "effect"
import { Reminders, Stores } from "quark"
import { Cluster, ClusterSilo } from "quark/cluster"
import { RedisDirectory, RedisMembership } from "quark/cluster/redis"
import { RedisReminderStore, RedisStore } from "quark/persistence/redis"
import { Endpoints } from "quark/telemetry/node"
import { ActorsLive } from ${local(`./actors/index.ts`)}

const url = process.env.QUARK_REDIS_URL ?? "redis://127.0.0.1:6379"
const cluster = process.env.QUARK_CLUSTER ?? "dev"
const port = Number(process.env.QUARK_ENDPOINTS_PORT ?? 0)

const SiloLive = Endpoints.layer({ port, config: { cluster } }).pipe(
  Layer.provideMerge(Reminders.layer({ store: RedisReminderStore.make("reminders", { url, keyPrefix: \`\${cluster}:reminders\` }) })),
  Layer.provideMerge(ActorsLive),
  Layer.provideMerge(ClusterSilo.layer({ port: 0 })),
  Layer.provide(Layer.mergeAll(
    RedisMembership.layer({ url, cluster }),
    RedisDirectory.layer({ url, cluster }),
    Stores.layer(RedisStore.make("redis", { url, keyPrefix: \`\${cluster}:state\` }))
  ))
)

const main = Effect.gen(function*() {
  const { declaredDead, drained, self } = yield* Cluster
  const endpoints = yield* Endpoints.Endpoints
  process.stdout.write(\`ready \${self!.id} \${endpoints.url}\\n\`)
  // Until drained or declared dead; SIGTERM / Ctrl-C interrupt this, which closes the silo gracefully.
  yield* Effect.raceFirst(drained, Effect.asVoid(declaredDead))
}).pipe(Effect.provide(SiloLive), Effect.provideService(Logger.LogToStderr, true))

NodeRuntime.runMain(main)
`

/** A new actor's contract: one message to start from. @since 0.2.0 */
export const actorContract = (name: string): string => `/**
 * ${name}: what it answers (its contract). Add messages with \`Rpc.make\`.
 */
import { Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor } from "quark"

export const ${name} = Actor.make("${name}", [
  Rpc.make("Hello", { payload: { name: Schema.String }, success: Schema.String })
])
`

/** @since 0.2.0 */
export const actorLive = (name: string): string => `import { Effect, Ref } from "effect"
import { ActorContext } from "quark"
import { ${name} } from ${local(`./${name}.ts`)}

export const ${name}Live = ${name}.toLayer(
  Effect.gen(function*() {
    const { id } = (yield* ActorContext).address
    const greeted = yield* Ref.make(0)
    return ${name}.of({
      Hello: ({ name }) =>
        Effect.map(Ref.updateAndGet(greeted, (n) => n + 1), (n) => \`hello \${name}, from ${name} \${id} (#\${n})\`)
    })
  })
)
`

/** @since 0.2.0 */
export const actorTest = (name: string): string => `import assert from "node:assert/strict"
import { test } from "node:test"
import { Effect, Layer } from "effect"
import { Silo } from "quark"
import { ${name} } from ${local(`../src/actors/${name}.ts`)}
import { ${name}Live } from ${local(`../src/actors/${name}Live.ts`)}

test("${name} answers Hello, counting per id", async () => {
  const replies = await Effect.runPromise(Effect.gen(function*() {
    const actor = yield* ${name}.refOrDie("a")
    return [yield* actor.Hello({ name: "x" }), yield* actor.Hello({ name: "y" })]
  }).pipe(Effect.provide(${name}Live.pipe(Layer.provideMerge(Silo.layer())))))
  assert.deepEqual(replies, ["hello x, from ${name} a (#1)", "hello y, from ${name} a (#2)"])
})
`

/**
 * ESLint's `RuleTester` under vitest, parsing TypeScript with `@babel/eslint-parser` and
 * `@babel/preset-typescript` (TypeScript 7 has no JS compiler API, so typescript-eslint's
 * parser cannot run here; the rules need no types). The parser is configured here directly,
 * not through the plugin's lazy wrapper, so the rule tests do not depend on it (the examples
 * test runs the recommended config, wrapper included).
 *
 * `prelude` is a contract as users write one; cases append handlers to it.
 */
import * as babelParser from "@babel/eslint-parser"
import { describe, it } from "@effect/vitest"
import { RuleTester } from "eslint"

// RuleTester calls describe/it; vitest's are not globals here.
RuleTester.describe = describe
RuleTester.it = it
// No `only: true` case may narrow the suite unnoticed: RuleTester's focused cases run as plain ones.
RuleTester.itOnly = it

export const ruleTester = new RuleTester({
  languageOptions: {
    parser: babelParser,
    sourceType: "module",
    parserOptions: {
      requireConfigFile: false,
      babelOptions: {
        babelrc: false,
        configFile: false,
        presets: [["@babel/preset-typescript", { allExtensions: true }]]
      }
    }
  }
})

/** A contract in the shape of docs/concepts.md's Counter, with the imports a handler file has. */
export const prelude = `
import * as fs from "node:fs"
import { execSync } from "node:child_process"
import { Effect, Ref, Schema } from "effect"
import { Rpc } from "effect/rpc"
import { Actor, ActorContext, ActorSchema } from "quark"

const Counter = Actor.make("Counter", [
  Rpc.make("Increment", { payload: { by: Schema.Int }, success: Schema.Int }),
  Rpc.make("Get", { success: Schema.Int }).annotate(ActorSchema.ReadOnly, true)
])
`

/** `prelude` plus a Counter layer whose handlers are `handlers` (the body of `Counter.of({ … })`). */
export const counter = (handlers: string, build = ""): string => `${prelude}
export const CounterLive = Counter.toLayer(
  Effect.gen(function*() {
    const count = yield* Ref.make(0)
    ${build}
    return Counter.of({
      ${handlers}
    })
  })
)
`

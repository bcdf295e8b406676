/**
 * `quark/eslint`: an ESLint plugin for what Quark's types cannot see in actor code.
 *
 * Most of what an actor framework's analyzers check (payloads are serializable, handlers
 * return the declared reply) Quark's types already enforce. What remains is code that
 * type-checks and still breaks the actor model: blocking the silo's event loop, running an
 * effect outside the turn, awaiting a promise the turn does not wait for, handlers that ask
 * each other in a cycle, and module-level state every activation shares. One rule each; see
 * docs/lint.md for what each reports, with a bad and a good example.
 *
 * Every rule is syntactic (no type information), so it runs under `@babel/eslint-parser` as
 * under typescript-eslint's parser. `configs.recommended` parses `.ts`/`.mts`/`.cts` files with
 * Babel (loaded on first parse, so this module loads nothing at import: not eslint, not
 * Babel); `configs["recommended-rules"]` is the same rules for a parser of your own.
 *
 * @since 0.2.0
 */
import type { ESLint, Linter, Rule } from "eslint"
import { babelTypeScriptParser } from "./internal/BabelParser.ts"
import { noAwaitInHandler } from "./rules/NoAwaitInHandler.ts"
import { noBlockingInHandler } from "./rules/NoBlockingInHandler.ts"
import { noMutableModuleState } from "./rules/NoMutableModuleState.ts"
import { noReentrancyCycle } from "./rules/NoReentrancyCycle.ts"
import { noRunInHandler } from "./rules/NoRunInHandler.ts"

/**
 * The rules, by name (used as `quark/<name>`).
 *
 * @since 0.2.0
 */
export const rules: Record<
  "no-blocking-in-handler" | "no-run-in-handler" | "no-await-in-handler" | "no-reentrancy-cycle" | "no-mutable-module-state",
  Rule.RuleModule
> = {
  "no-blocking-in-handler": noBlockingInHandler,
  "no-run-in-handler": noRunInHandler,
  "no-await-in-handler": noAwaitInHandler,
  "no-reentrancy-cycle": noReentrancyCycle,
  "no-mutable-module-state": noMutableModuleState
}

const recommendedRules: Linter.RulesRecord = {
  "quark/no-blocking-in-handler": "error",
  "quark/no-run-in-handler": "error",
  "quark/no-await-in-handler": "error",
  // A cycle closes only when the ids meet, which the source does not show.
  "quark/no-reentrancy-cycle": "warn",
  "quark/no-mutable-module-state": "error"
}

// A type alias, not an interface: ESLint's `configs` wants an index signature.
type Configs = {
  /** The rules, with `.ts`/`.mts`/`.cts` files parsed by Babel (see the module comment). */
  recommended: Linter.Config
  /** The same rules and severities, for any files and a parser of your own. */
  "recommended-rules": Linter.Config
}

/**
 * The configs, also as `plugin.configs`: `recommended` (Babel parses TypeScript) and
 * `recommended-rules` (no parser, no `files`). Filled in below: each names the plugin itself.
 *
 * @since 0.2.0
 */
export const configs = {} as Configs

/**
 * The plugin: `meta`, `rules` and `configs` (`recommended`, `recommended-rules`).
 *
 * @since 0.2.0
 */
export const plugin: ESLint.Plugin & { readonly configs: Configs } = {
  meta: { name: "quark/eslint", version: "0.2.0" },
  rules,
  configs
}

configs.recommended = {
  name: "quark/recommended",
  files: ["**/*.ts", "**/*.mts", "**/*.cts"],
  plugins: { quark: plugin },
  languageOptions: { parser: babelTypeScriptParser, sourceType: "module" },
  rules: recommendedRules
}
configs["recommended-rules"] = {
  name: "quark/recommended-rules",
  plugins: { quark: plugin },
  rules: recommendedRules
}

export default plugin

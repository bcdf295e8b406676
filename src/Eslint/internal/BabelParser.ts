/**
 * A parser for the recommended config that parses TypeScript with `@babel/eslint-parser` and
 * `@babel/preset-typescript`, loaded on first use.
 *
 * Why Babel: TypeScript 7 (the native port) has no JS compiler API, so typescript-eslint's
 * parser cannot run where it is installed; Babel parses TypeScript syntax without it, and
 * the rules need no type information. Why lazily: `quark/eslint` must load nothing at import
 * (a flat config object needs a parser object, and importing Babel here would make every
 * import of the plugin load it). So this object forwards to Babel, resolved with
 * `require` (both packages are CommonJS) from the working directory first (where the user's
 * `eslint.config.js` and dev dependencies are), then from Quark's own location. The `node:`
 * builtins come from `process.getBuiltinModule`, not an import, for the same reason.
 *
 * @internal
 */
import type { Linter } from "eslint"

interface BabelParser {
  readonly parseForESLint: (code: string, options: Record<string, unknown>) => Linter.ESLintParseResult
}

let loaded: { readonly parser: BabelParser; readonly preset: unknown } | undefined

const load = (): { readonly parser: BabelParser; readonly preset: unknown } => {
  if (loaded !== undefined) return loaded
  const { createRequire } = process.getBuiltinModule("node:module")
  const path = process.getBuiltinModule("node:path")
  const requires = [createRequire(path.join(process.cwd(), "eslint.config.js")), createRequire(import.meta.url)]
  const need = (name: string): unknown => {
    for (const require of requires) {
      try {
        return require(name)
      } catch (error) {
        if ((error as { code?: unknown }).code !== "MODULE_NOT_FOUND") throw error
      }
    }
    throw new Error(
      `quark/eslint: the recommended config parses TypeScript with ${name}, which is not installed ` +
        "(npm install --save-dev @babel/eslint-parser @babel/core @babel/preset-typescript), " +
        "or use configs[\"recommended-rules\"] with a parser of your own"
    )
  }
  const parser = need("@babel/eslint-parser") as BabelParser
  const preset = need("@babel/preset-typescript")
  loaded = { parser, preset }
  return loaded
}

/** A flat-config parser: `@babel/eslint-parser` with `@babel/preset-typescript`, for .ts/.mts/.cts. */
export const babelTypeScriptParser: Linter.Parser = {
  meta: { name: "quark/babel-typescript", version: "0.2.0" },
  parseForESLint(code: string, options?: Record<string, unknown>): Linter.ESLintParseResult {
    const { parser, preset } = load()
    return parser.parseForESLint(code, {
      ...options,
      requireConfigFile: false,
      babelOptions: {
        babelrc: false,
        configFile: false,
        presets: [[preset, { allExtensions: true }]]
      }
    })
  }
}

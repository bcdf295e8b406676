/**
 * The plugin as users enable it: `configs.recommended` (TypeScript parsed by Babel through the
 * plugin's lazy parser) run by ESLint over real Quark code, the examples and the test
 * fixtures, reports only what is expected there, while finding their actor code (a probe
 * rule counts the handlers and builds the analysis sees, so "no findings" cannot mean "saw
 * nothing").
 *
 * The one expected finding is a true positive: examples/persistence.ts counts replayed events
 * in a module-level `let` on purpose (a process-wide total the demo prints).
 */
import { assert, describe, it } from "@effect/vitest"
import { ESLint, type Rule } from "eslint"
import * as fs from "node:fs"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { configs, plugin, rules } from "../../src/Eslint/index.ts"
import { analyze } from "../../src/Eslint/internal/ActorCode.ts"
import { codeBlocks, isTypeScript } from "../fixtures/MarkdownBlocks.ts"

const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..")

const probe: Rule.RuleModule = {
  meta: { type: "suggestion", schema: [], messages: { root: "{{kind}}" } },
  create(context) {
    return {
      Program(node) {
        for (const code of analyze(context).roots.values()) context.report({ node, messageId: "root", data: { kind: code.kind } })
      }
    }
  }
}

describe("quark/eslint", () => {
  it("exposes every rule in both configs, with the reentrancy cycle a warning", () => {
    assert.deepStrictEqual(Object.keys(plugin.rules ?? {}).sort(), Object.keys(rules).sort())
    assert.strictEqual(plugin.configs, configs)
    for (const config of [configs.recommended, configs["recommended-rules"]]) {
      assert.strictEqual(config.plugins?.["quark"], plugin)
      assert.deepStrictEqual(Object.keys(config.rules ?? {}).sort(), Object.keys(rules).map((name) => `quark/${name}`).sort())
    }
    assert.strictEqual(configs.recommended.rules?.["quark/no-reentrancy-cycle"], "warn")
    assert.strictEqual(configs.recommended.rules?.["quark/no-blocking-in-handler"], "error")
    for (const rule of Object.values(rules)) assert.isString(rule.meta?.docs?.description)
  })

  it("the recommended config finds no false positive in examples/ and test/fixtures/", { timeout: 60_000 }, async () => {
    const eslint = new ESLint({
      cwd: repo,
      overrideConfigFile: true,
      overrideConfig: [
        configs.recommended,
        { files: ["**/*.ts"], plugins: { probe: { rules: { root: probe } } }, rules: { "probe/root": "warn" } }
      ]
    })
    const started = Date.now()
    const results = await eslint.lintFiles(["examples/**/*.ts", "test/fixtures/*.ts"])
    const elapsed = Date.now() - started
    const fatal = results.flatMap((r) => r.messages.filter((m) => m.fatal).map((m) => `${r.filePath}: ${m.message}`))
    assert.deepStrictEqual(fatal, [], "every file parses")
    const roots = results.flatMap((r) => r.messages.filter((m) => m.ruleId === "probe/root").map((m) => m.message))
    const findings = results.flatMap((r) =>
      r.messages.filter((m) => m.ruleId?.startsWith("quark/")).map((m) =>
        `${path.relative(repo, r.filePath)}:${m.line} ${m.ruleId}`
      )
    )
    const handlers = roots.filter((kind) => kind === "handler").length
    const builds = roots.filter((kind) => kind === "build").length
    console.log(
      `quark/eslint recommended: ${results.length} files, ${builds} builds and ${handlers} handlers seen, ` +
        `${findings.length} findings, ${elapsed} ms`
    )
    assert.isAtLeast(results.length, 25)
    assert.isAtLeast(builds, 15)
    assert.isAtLeast(handlers, 40)
    assert.deepStrictEqual(findings, ["examples/persistence.ts:69 quark/no-mutable-module-state"])
  })

  it("docs/lint.md's examples: each Bad block gets exactly its rule's finding, each Good block none", async () => {
    const eslint = new ESLint({ cwd: repo, overrideConfigFile: true, overrideConfig: [configs.recommended] })
    const blocks = codeBlocks(fs.readFileSync(path.join(repo, "docs/lint.md"), "utf8")).filter(isTypeScript)
    const seen = new Set<string>()
    for (const block of blocks) {
      const label = /^\/\/ (Bad: (quark\/[\w-]+)|Good)\n/.exec(block.code)
      assert.isNotNull(label, `docs/lint.md:${block.line} starts with "// Bad: quark/<rule>" or "// Good"`)
      const expected = label![2] === undefined ? [] : [label![2]]
      if (label![2] !== undefined) seen.add(label![2])
      const [result] = await eslint.lintText(block.code, { filePath: path.join(repo, "docs", `lint_L${block.line}.ts`) })
      assert.deepStrictEqual(
        result!.messages.map((m) => m.ruleId ?? m.message),
        expected,
        `docs/lint.md:${block.line}`
      )
    }
    assert.deepStrictEqual([...seen].sort(), Object.keys(rules).map((name) => `quark/${name}`).sort(), "a Bad example for each rule")
  })
})

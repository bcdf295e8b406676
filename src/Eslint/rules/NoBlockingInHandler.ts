/**
 * `quark/no-blocking-in-handler`: no call that blocks the thread inside actor code.
 *
 * A silo runs every activation's turns on one event loop. A handler that blocks it (a
 * synchronous file read, a child process waited for, `Atomics.wait`, a loop spinning on the
 * clock) stops every other activation, the silo's timers and its cluster heartbeats until it
 * returns: one slow turn becomes a silo that looks dead. Types cannot see it (`readFileSync`
 * inside `Effect.sync` is a well-typed `Effect`).
 *
 * Reported inside actor code (see `internal/ActorCode.ts`):
 * - the synchronous forms of `node:fs` (every `…Sync`), `node:child_process` (`execSync`,
 *   `execFileSync`, `spawnSync`), `node:zlib` (every `…Sync`) and the slow ones of
 *   `node:crypto` (`pbkdf2Sync`, `scryptSync`, `generateKeyPairSync`, `generatePrimeSync`),
 *   called through a namespace or default import (`fs.readFileSync`) or a named one
 *   (`readFileSync`), with or without the `node:` prefix;
 * - `Atomics.wait(…)`;
 * - a busy wait: a `while`, `do … while` or `for` loop whose condition reads the clock
 *   (`Date.now()`, `performance.now()`, `process.hrtime…`, `new Date()`) and whose body
 *   neither `yield`s nor `await`s.
 *
 * @since 0.2.0
 */
import type { Rule } from "eslint"
import { analyze, describe } from "../internal/ActorCode.ts"
import { type AstNode, calleeOf, isFunction, pathText, unwrap, walk } from "../internal/Ast.ts"

const allSync = (name: string): boolean => name.endsWith("Sync")
const blocking: Record<string, (name: string) => boolean> = {
  fs: allSync,
  zlib: allSync,
  child_process: (name) => name === "execSync" || name === "execFileSync" || name === "spawnSync",
  crypto: (name) => ["pbkdf2Sync", "scryptSync", "generateKeyPairSync", "generatePrimeSync"].includes(name)
}
const moduleName = (source: string): string => source.startsWith("node:") ? source.slice(5) : source

const readsClock = (node: AstNode): boolean => {
  const n = unwrap(node)
  if (n === undefined) return false
  if (n.type === "NewExpression") return pathText(n["callee"] as AstNode) === "Date"
  if (n.type !== "CallExpression") return false
  const path = pathText(n["callee"] as AstNode)
  return path === "Date.now" || path === "performance.now" || path === "process.hrtime" || path === "process.hrtime.bigint"
}

export const noBlockingInHandler: Rule.RuleModule = {
  meta: {
    type: "problem",
    docs: {
      description: "Disallow calls that block the event loop (sync I/O, Atomics.wait, busy waits) inside actor handlers",
      recommended: true
    },
    schema: [],
    messages: {
      blockingCall:
        "`{{call}}` blocks the event loop inside {{where}}: every activation on the silo waits until it returns. Use the asynchronous form inside Effect (Effect.tryPromise, or @effect/platform's FileSystem/Command).",
      busyWait:
        "This loop spins on the clock inside {{where}}, blocking every activation on the silo. Wait with Effect.sleep (or a Schedule) instead."
    }
  },
  create(context) {
    const analysis = analyze(context)
    const visitorKeys = context.sourceCode.visitorKeys
    const blockingName = (call: AstNode): string | undefined => {
      const callee = calleeOf(call)
      if (callee.name === undefined) return undefined
      if (callee.object === "Atomics" && callee.name === "wait") return "Atomics.wait"
      if (callee.object === undefined) {
        const binding = analysis.imports.get(callee.name)
        const test = binding === undefined ? undefined : blocking[moduleName(binding.source)]
        return test !== undefined && test(binding!.imported) ? callee.name : undefined
      }
      const binding = analysis.imports.get(callee.object)
      if (binding === undefined || (binding.imported !== "*" && binding.imported !== "default")) return undefined
      const test = blocking[moduleName(binding.source)]
      return test !== undefined && test(callee.name) ? `${callee.object}.${callee.name}` : undefined
    }
    // Whether a loop body gives the thread back: a `yield` or an `await` of its own (not of a
    // function defined in it).
    const yields = (body: AstNode): boolean => {
      let found = false
      walk(body, visitorKeys, (node) => {
        if (found || isFunction(node)) return "skip"
        if (node.type === "YieldExpression" || node.type === "AwaitExpression") found = true
      })
      return found
    }
    const clockInTest = (test: AstNode | null): boolean => {
      if (test === null) return false
      let found = false
      walk(test, visitorKeys, (node) => {
        if (found || isFunction(node)) return "skip"
        if (readsClock(node)) found = true
      })
      return found
    }
    const loop = (node: Rule.Node): void => {
      const n = node as unknown as AstNode
      if (!clockInTest(n["test"] as AstNode | null) || yields(n["body"] as AstNode)) return
      const code = analysis.enclosing(n)
      if (code !== undefined) context.report({ node, messageId: "busyWait", data: { where: describe(code) } })
    }
    return {
      CallExpression(node) {
        const call = blockingName(node as unknown as AstNode)
        if (call === undefined) return
        const code = analysis.enclosing(node as unknown as AstNode)
        if (code !== undefined) context.report({ node, messageId: "blockingCall", data: { call, where: describe(code) } })
      },
      WhileStatement: loop,
      DoWhileStatement: loop,
      ForStatement: loop
    }
  }
}

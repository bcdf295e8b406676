/**
 * `quark/no-run-in-handler`: no `Effect.runPromise`, `runSync`, `runFork` (or a runtime's
 * `run…`) inside actor code.
 *
 * A handler is an `Effect` the silo runs as the activation's turn. An effect run from inside
 * it with `Effect.run…` is a new fiber outside that turn: it escapes the turn's ordering
 * (the next message may start while it runs), its interruption (a deactivation or a caller's
 * timeout does not stop it), the call chain that deadlock detection follows, the request
 * context and the span, and it does not get the layer's services. `runSync` also blocks
 * when the effect is asynchronous. Types cannot see it: `Effect.sync(() =>
 * Effect.runFork(e))` is a well-typed `Effect`. Yield the effect, or fork it in the turn
 * (`Effect.fork`, `Effect.forkScoped` in a build).
 *
 * Reported inside actor code (see `internal/ActorCode.ts`): a call of a method named
 * `runPromise`, `runPromiseExit`, `runSync`, `runSyncExit`, `runFork`, `runCallback` or
 * `runMain` on any object (`Effect.runPromise`, a `ManagedRuntime`'s `runtime.runPromise`,
 * `NodeRuntime.runMain`), or of such a name imported from an `effect` package.
 *
 * @since 0.2.0
 */
import type { Rule } from "eslint"
import { analyze, describe } from "../internal/ActorCode.ts"
import { type AstNode, calleeOf } from "../internal/Ast.ts"

const runners = new Set(["runPromise", "runPromiseExit", "runSync", "runSyncExit", "runFork", "runCallback", "runMain"])

export const noRunInHandler: Rule.RuleModule = {
  meta: {
    type: "problem",
    docs: {
      description: "Disallow running effects (Effect.runPromise, runSync, runFork, a runtime's run*) inside actor handlers",
      recommended: true
    },
    schema: [],
    messages: {
      run:
        "`{{call}}` inside {{where}} runs an effect outside the actor's turn: it escapes the turn's ordering, interruption, call chain and services. Yield the effect instead (or Effect.fork it)."
    }
  },
  create(context) {
    const analysis = analyze(context)
    return {
      CallExpression(node) {
        const callee = calleeOf(node as unknown as AstNode)
        if (callee.name === undefined || !runners.has(callee.name)) return
        if (callee.object === undefined) {
          const binding = analysis.imports.get(callee.name)
          if (binding === undefined || !/^(effect|@effect\/)/.test(binding.source)) return
        }
        const code = analysis.enclosing(node as unknown as AstNode)
        if (code === undefined) return
        const call = callee.object === undefined ? callee.name : `${callee.object}.${callee.name}`
        context.report({ node, messageId: "run", data: { call, where: describe(code) } })
      }
    }
  }
}

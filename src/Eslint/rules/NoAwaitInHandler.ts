/**
 * `quark/no-await-in-handler`: no `await`, `for await` or `.then(…)` inside actor code,
 * except inside the function given to `Effect.promise` / `Effect.tryPromise`.
 *
 * A promise awaited outside Effect is invisible to the actor's turn: the turn (an `Effect`)
 * has already returned, or returns without waiting, so the next message runs beside the
 * promise's continuation, which then reads and writes the activation's state out of turn;
 * its failure is an unhandled rejection instead of the message's error, and interrupting
 * the turn (a deactivation, a caller's timeout) does not stop it. Types cannot see it:
 * `Effect.sync(() => { fetch(url).then(save) })` is a well-typed `Effect<void>`. Wrap the
 * promise: `Effect.promise(() => p)`, or `Effect.tryPromise({ try: () => p, catch })`.
 *
 * Reported inside actor code (see `internal/ActorCode.ts`): each `AwaitExpression`, each
 * `for await`, and each call of a method named `then`, unless a function between it and the
 * handler is an argument of a call of a method named `promise` or `tryPromise` (or the `try`
 * of the object given to one): that is where a promise belongs.
 *
 * @since 0.2.0
 */
import type { Rule } from "eslint"
import { type Analysis, analyze, describe } from "../internal/ActorCode.ts"
import { type AstNode, calleeOf, isFunction, keyName } from "../internal/Ast.ts"

const promiseBoundaries = new Set(["promise", "tryPromise"])

/** Whether `fn` is the thunk of `X.promise(fn)`, `X.tryPromise(fn)` or `X.tryPromise({ try: fn })`. */
const isPromiseThunk = (fn: AstNode, analysis: Analysis): boolean => {
  let holder = analysis.parent(fn)
  if (holder?.type === "Property" && keyName(holder) === "try" && holder["value"] === fn) {
    const object = analysis.parent(holder)
    holder = object === undefined ? undefined : analysis.parent(object)
  }
  if (holder?.type !== "CallExpression") return false
  const name = calleeOf(holder).name
  return name !== undefined && promiseBoundaries.has(name)
}

export const noAwaitInHandler: Rule.RuleModule = {
  meta: {
    type: "problem",
    docs: {
      description: "Disallow awaiting promises outside Effect (await, for await, .then) inside actor handlers",
      recommended: true
    },
    schema: [],
    messages: {
      await:
        "{{what}} inside {{where}} waits on a promise outside Effect: the turn does not wait for it, so it runs beside later messages and its failure is lost. Use Effect.promise(() => …) or Effect.tryPromise({ try, catch })."
    }
  },
  create(context) {
    const analysis = analyze(context)
    const check = (node: Rule.Node, what: string): void => {
      const code = analysis.enclosing(node as unknown as AstNode)
      if (code === undefined) return
      for (let n: AstNode | undefined = node as unknown as AstNode; n !== undefined && n !== code.root; n = analysis.parent(n)) {
        if (isFunction(n) && isPromiseThunk(n, analysis)) return
      }
      context.report({ node, messageId: "await", data: { what, where: describe(code) } })
    }
    return {
      AwaitExpression(node) {
        check(node, "`await`")
      },
      ForOfStatement(node) {
        if ((node as unknown as AstNode)["await"] === true) check(node, "`for await`")
      },
      CallExpression(node) {
        if (calleeOf(node as unknown as AstNode).name === "then") check(node, "`.then(…)`")
      }
    }
  }
}

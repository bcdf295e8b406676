/**
 * `quark/no-mutable-module-state`: actor code does not write module-level state.
 *
 * State of an activation lives in its build (a `Ref`, a `let` inside the build), so it is
 * created with the activation and dropped at deactivation. A module-level variable is one
 * per process instead: every activation of every actor in the silo shares it, it survives
 * deactivation (a passivated actor comes back to someone else's data), it is not persisted,
 * and on another silo of the cluster it holds something else. Types cannot see it.
 *
 * Reported, for each variable declared at the top level of the module, at each place inside
 * actor code (see `internal/ActorCode.ts`) that:
 * - assigns it (`x = …`, `x += …`, `x++`), when it is a `let` or `var`; or
 * - mutates what it holds, when it is a `let`/`var`, or a `const` initialized with a
 *   `new Map`/`Set`/`WeakMap`/`WeakSet`/`Array`, an array or object literal, or
 *   `Array.from`/`Array.of`: a property assignment, `++`/`--` or `delete` on
 *   `x.a`/`x[k]`/`x.a.b`, a call of `push`, `pop`, `shift`, `unshift`, `splice`, `sort`,
 *   `reverse`, `fill`, `copyWithin`, `set`, `add`, `delete` or `clear` on it, or
 *   `Object.assign(x, …)`.
 *
 * Reads are not reported (a module-level table of constants is fine), nor are writes from
 * code outside actor code (module initialization, a helper the rule does not follow).
 *
 * @since 0.2.0
 */
import type { Rule, Scope } from "eslint"
import { type Analysis, analyze, describe } from "../internal/ActorCode.ts"
import { type AstNode, pathText, propertyName, unwrap } from "../internal/Ast.ts"

const mutators = new Set([
  "push",
  "pop",
  "shift",
  "unshift",
  "splice",
  "sort",
  "reverse",
  "fill",
  "copyWithin",
  "set",
  "add",
  "delete",
  "clear"
])
const containers = new Set(["Map", "Set", "WeakMap", "WeakSet", "Array"])

const isContainer = (init: AstNode | undefined): boolean => {
  if (init === undefined) return false
  if (init.type === "ArrayExpression" || init.type === "ObjectExpression") return true
  if (init.type === "NewExpression") return containers.has(pathText(init["callee"] as AstNode) ?? "")
  if (init.type === "CallExpression") {
    const path = pathText(init["callee"] as AstNode)
    return path === "Array.from" || path === "Array.of" || path === "Array"
  }
  return false
}

/** How the reference at `identifier` mutates what it holds, if it does. */
const mutation = (identifier: AstNode, analysis: Analysis): string | undefined => {
  // Up the member chain rooted at the identifier (`x.a.b`), through casts (`(x as T).a`).
  let top = identifier
  let member = false
  for (let p = analysis.parent(top); p !== undefined; p = analysis.parent(top)) {
    if (p.type === "MemberExpression" && p["object"] === top) member = true
    else if (!(unwrap(p) !== p && p["expression"] === top)) break
    top = p
  }
  const holder = analysis.parent(top)
  if (holder === undefined) return undefined
  if (!member) {
    if (holder.type === "CallExpression" && (holder["arguments"] as Array<AstNode>)[0] === top) {
      return pathText(holder["callee"] as AstNode) === "Object.assign" ? "Object.assign" : undefined
    }
    return undefined
  }
  if (holder.type === "AssignmentExpression" && holder["left"] === top) return "assigns a property of"
  if (holder.type === "UpdateExpression" && holder["argument"] === top) return "updates a property of"
  if (holder.type === "UnaryExpression" && holder["operator"] === "delete" && holder["argument"] === top) {
    return "deletes a property of"
  }
  if (holder.type === "CallExpression" && holder["callee"] === top) {
    const method = propertyName(top)
    if (method !== undefined && mutators.has(method)) return `calls .${method}() on`
  }
  return undefined
}

const moduleScope = (globalScope: Scope.Scope | null): Scope.Scope | undefined =>
  globalScope === null ? undefined : globalScope.childScopes.find((s) => s.type === "module") ?? globalScope

export const noMutableModuleState: Rule.RuleModule = {
  meta: {
    type: "problem",
    docs: {
      description: "Disallow actor handlers writing module-level state, which every activation in the process shares",
      recommended: true
    },
    schema: [],
    messages: {
      assign:
        "{{where}} assigns module-level `{{name}}`: one variable per process, shared by every activation and kept across deactivation. Keep state in the build (a Ref) or in persisted state.",
      mutate:
        "{{where}} {{how}} module-level `{{name}}`: one object per process, shared by every activation and kept across deactivation. Keep state in the build (a Ref) or in persisted state."
    }
  },
  create(context) {
    return {
      Program() {
        const analysis = analyze(context)
        if (analysis.roots.size === 0) return
        const scope = moduleScope(context.sourceCode.scopeManager.globalScope)
        if (scope === undefined) return
        for (const variable of scope.variables) {
          const def = variable.defs[0]
          if (def === undefined || def.type !== "Variable") continue
          const declaration = def.parent as unknown as AstNode
          const kind = declaration["kind"] as string
          const declarator = def.node as unknown as AstNode
          const container = kind !== "const" || isContainer(unwrap(declarator["init"] as AstNode | null))
          for (const reference of variable.references) {
            const identifier = reference.identifier as unknown as AstNode
            const code = analysis.enclosing(identifier)
            if (code === undefined) continue
            const where = describe(code).replace(/^the/, "The").replace(/^handler/, "Handler")
            if (kind !== "const" && reference.isWrite() && !reference.init) {
              context.report({ node: reference.identifier, messageId: "assign", data: { where, name: variable.name } })
              continue
            }
            if (!container) continue
            const how = mutation(identifier, analysis)
            if (how !== undefined) {
              context.report({
                node: reference.identifier,
                messageId: "mutate",
                data: { where, how: how === "Object.assign" ? "calls Object.assign on" : how, name: variable.name }
              })
            }
          }
        }
      }
    }
  }
}

/**
 * `quark/no-reentrancy-cycle` (a warning): the handlers of one contract ask each other, through
 * refs of that contract, in a cycle (`A → B → A`), and the type is not reentrant.
 *
 * A turn that asks an activation whose turn is waiting on it cannot be served: a
 * non-reentrant type refuses the call with `Deadlock` at once (better than a hang, still a
 * failure). When a handler of `C` asks `C` for message `B` and `B`'s handler asks back for
 * `A`, the cycle closes whenever the ids meet (a peer asking the original, a node its
 * parent). Whether they meet is data, so this is a warning with the cycle in it: if the
 * re-entry is meant, pass `{ reentrant: true }` to `toLayer` (or `spawn`), or annotate the
 * message that re-enters `ActorSchema.AlwaysInterleave`.
 *
 * What is read (syntactic, one file):
 * - the handlers of each contract (see `internal/ActorCode.ts`) and, in each, the asks
 *   `r.Msg(…)` where `r` is a ref of the same contract: `C.ref(…)` / `C.refOrDie(…)`
 *   directly, through `yield*` and `.pipe(…)`, through a `const` holding one (in the
 *   handler or its build), or as the parameter of `Effect.flatMap(C.ref(…), (r) => …)` or
 *   `C.ref(…).pipe(Effect.flatMap((r) => …))` (also `andThen`, `map`, `tap`);
 * - tells (`r.tell.Msg(…)`) are not edges: a tell waits for the mailbox, not the turn;
 * - a message asking itself alone (`A → A`) is not reported: recursion over other ids of the
 *   same type (a tree of nodes) is the common case;
 * - a contract some `toLayer`/`spawn` gives `reentrant: true`, or options that are not an
 *   object literal, is skipped; asks of a message annotated `AlwaysInterleave` are not
 *   edges when the contract's `Actor.make` is in this file (annotations of an imported
 *   contract cannot be seen: disable the rule on the line, saying why).
 *
 * @since 0.2.0
 */
import type { Rule } from "eslint"
import { type Analysis, analyze, type ContractInfo } from "../internal/ActorCode.ts"
import { type AstNode, calleeOf, isFunction, pathText, unwrap, walk } from "../internal/Ast.ts"

const chainers = new Set(["flatMap", "andThen", "map", "tap", "flatMapError", "zipRight"])
const refMethods = new Set(["address", "tell", "pipe"])

/** The contract a ref expression is of, when it is visibly `C.ref(…)` / `C.refOrDie(…)`. */
const refSource = (expression: AstNode | undefined, analysis: Analysis, depth: number): string | undefined => {
  let n = unwrap(expression)
  if (n === undefined || depth > 6) return undefined
  if (n.type === "YieldExpression" && n["delegate"] === true) n = unwrap(n["argument"] as AstNode)
  if (n?.type === "AwaitExpression") n = unwrap(n["argument"] as AstNode)
  if (n === undefined) return undefined
  if (n.type === "CallExpression") {
    const callee = calleeOf(n)
    if (callee.name === "pipe" && callee.objectNode !== undefined) return refSource(callee.objectNode, analysis, depth + 1)
    if ((callee.name === "ref" || callee.name === "refOrDie") && callee.object !== undefined) {
      return analysis.contracts.has(callee.object) ? callee.object : undefined
    }
    return undefined
  }
  if (n.type === "Identifier") return refOfIdentifier(n, analysis, depth + 1)
  return undefined
}

const refOfIdentifier = (identifier: AstNode, analysis: Analysis, depth: number): string | undefined => {
  const variable = analysis.resolve(identifier)
  const def = variable?.defs.length === 1 ? variable.defs[0] : undefined
  if (def === undefined) return undefined
  if (def.type === "Variable") {
    const declarator = def.node as unknown as AstNode
    return declarator["id"] === def.name ? refSource(declarator["init"] as AstNode, analysis, depth) : undefined
  }
  if (def.type !== "Parameter") return undefined
  // `(r) => …` given a ref by `Effect.flatMap(C.ref(…), fn)` or `C.ref(…).pipe(Effect.flatMap(fn))`.
  const fn = def.node as unknown as AstNode
  if (!isFunction(fn) || (fn["params"] as Array<AstNode>)[0] !== (def.name as unknown as AstNode)) return undefined
  const call = analysis.parent(fn)
  if (call?.type !== "CallExpression") return undefined
  const callee = calleeOf(call)
  if (callee.name === undefined || !chainers.has(callee.name)) return undefined
  const args = call["arguments"] as Array<AstNode>
  if (args.length >= 2 && args[1] === fn) return refSource(args[0], analysis, depth)
  if (args.length === 1 && args[0] === fn) {
    const pipe = analysis.parent(call)
    if (pipe?.type === "CallExpression" && calleeOf(pipe).name === "pipe" && (pipe["arguments"] as Array<AstNode>)[0] === call) {
      return refSource(calleeOf(pipe).objectNode, analysis, depth)
    }
  }
  return undefined
}

interface Edge {
  readonly to: string
  readonly node: AstNode
}

/** The shortest cycle through each message of each strongly connected part, each once. */
const cyclesOf = (graph: ReadonlyMap<string, ReadonlyArray<Edge>>): Array<Array<string>> => {
  const cycles: Array<Array<string>> = []
  const seen = new Set<string>()
  for (const start of [...graph.keys()].sort()) {
    const parent = new Map<string, string>()
    const queue = [start]
    let closing: string | undefined
    search: for (let q = 0; q < queue.length; q++) {
      const v = queue[q]!
      for (const { to } of graph.get(v) ?? []) {
        if (to === start && v !== start) {
          closing = v
          break search
        }
        if (to !== start && !parent.has(to)) {
          parent.set(to, v)
          queue.push(to)
        }
      }
    }
    if (closing === undefined) continue
    const cycle = [closing]
    while (cycle[0] !== start) cycle.unshift(parent.get(cycle[0]!)!)
    const key = cycle.map((_, i) => [...cycle.slice(i), ...cycle.slice(0, i)].join(" ")).sort()[0]!
    if (seen.has(key)) continue
    seen.add(key)
    cycles.push(cycle)
  }
  return cycles
}

export const noReentrancyCycle: Rule.RuleModule = {
  meta: {
    type: "problem",
    docs: {
      description: "Warn when a non-reentrant contract's handlers ask each other in a cycle through refs of the same contract",
      recommended: true
    },
    schema: [],
    messages: {
      cycle:
        "Messages of `{{contract}}` ask each other in a cycle: {{cycle}}. When the asks reach the same activation it fails with Deadlock. If re-entering is meant, pass { reentrant: true } to toLayer, or annotate the re-entered message ActorSchema.AlwaysInterleave."
    }
  },
  create(context) {
    return {
      "Program:exit"() {
        const analysis = analyze(context)
        const graphs = new Map<ContractInfo, Map<string, Array<Edge>>>()
        for (const code of analysis.roots.values()) {
          if (code.kind !== "handler" || code.message === undefined) continue
          const info = analysis.contracts.get(code.contract)!
          if (info.reentrant || info.optionsUnknown) continue
          let graph = graphs.get(info)
          if (graph === undefined) graphs.set(info, graph = new Map())
          const edges = graph.get(code.message) ?? []
          graph.set(code.message, edges)
          walk(code.root, context.sourceCode.visitorKeys, (node) => {
            if (node.type !== "CallExpression") return
            const callee = unwrap(node["callee"] as AstNode)
            if (callee?.type !== "MemberExpression") return
            const to = calleeOf(node).name
            if (to === undefined || refMethods.has(to)) return
            const object = unwrap(callee["object"] as AstNode)
            if (object?.type === "MemberExpression" && pathText(object)?.endsWith(".tell")) return
            if (refSource(object, analysis, 0) !== code.contract) return
            if (info.messages !== undefined && (!info.messages.has(to) || info.messages.get(to) === true)) return
            edges.push({ to, node })
          })
        }
        for (const [info, graph] of graphs) {
          for (const cycle of cyclesOf(graph)) {
            const at = graph.get(cycle[0]!)!.find((edge) => edge.to === cycle[1 % cycle.length])!
            context.report({
              node: at.node as unknown as Rule.Node,
              messageId: "cycle",
              data: { contract: info.name, cycle: [...cycle, cycle[0]].join(" → ") }
            })
          }
        }
      }
    }
  }
}

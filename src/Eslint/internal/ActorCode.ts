/**
 * Where a file's actor code is: the contracts it declares or implements, their handlers and
 * builds. Every rule asks one question of it: is this node inside actor code, and whose?
 *
 * The definition (syntactic, one file; docs/lint.md states it for users):
 * - A **contract** is a name `C` (an identifier or a dotted path such as `Api.Account`) that
 *   the file declares with `const C = Actor.make(…)` (`Actor` as imported from quark, or so
 *   named), or that it implements with `C.toLayer(…)` or spawns with `ctx.spawn(C, build, …)`
 *   when the file uses Quark (imports from `quark`, or imports a binding named `Actor`,
 *   `ActorContext`, `ActorSchema` or `Silo`) and `C` is not declared in the file by another
 *   call (`RpcGroup.make`, `Entity.make`: effect's own `toLayer`s). A spawn counts when its
 *   build is an `Effect.…(…)` call or a name, so `child_process.spawn(cmd, args)` does not.
 * - A **build** is the first argument of `C.toLayer(build, options)` and the second of
 *   `ctx.spawn(C, build, options)`: the effect that runs once per activation, with everything
 *   lexically inside it (the handlers it returns, helpers it defines).
 * - A **handler** is the value of a property of the object passed to `C.of({ … })`, where `C`
 *   is a contract. The object may be a `const` of the same file; a value that names a
 *   function of the file (`Get: getHandler`) makes that function the handler. A handler's
 *   message is its property's name. (`S.of({ … })` of anything else, an Effect service
 *   say, is not a handler table.)
 * - **Actor code** is everything lexically inside a handler or a build. Code a handler
 *   reaches only by calling a function defined elsewhere is not (the rules do not follow
 *   calls), and neither is code of another file.
 *
 * Builds count as well as handlers because they run on the same event loop, once per
 * activation: a blocking call there stalls the silo exactly as one in a handler does.
 *
 * The analysis is one walk per file, shared by the rules that ask (cached per AST).
 *
 * @internal
 */
import type { Rule, Scope } from "eslint"
import { type AstNode, calleeOf, isFunction, keyName, pathText, stringValue, unwrap, walk } from "./Ast.ts"

/** What the file shows of one contract. */
export interface ContractInfo {
  readonly name: string
  /** Declared by `Actor.make` in this file (so its messages and annotations are visible). */
  declared: boolean
  /** Message tag → annotated `ActorSchema.AlwaysInterleave`; undefined when not all are visible. */
  messages: Map<string, boolean> | undefined
  /** Some `toLayer`/`spawn` of it passes `reentrant: true`. */
  reentrant: boolean
  /** Some `toLayer`/`spawn` of it passes options that are not an object literal (unreadable). */
  optionsUnknown: boolean
}

/** A root of actor code: a handler (with its message) or a build. */
export interface ActorCode {
  readonly kind: "handler" | "build"
  readonly contract: string
  readonly message?: string | undefined
  readonly root: AstNode
}

export interface ImportBinding {
  readonly source: string
  /** The imported name; `"*"` for a namespace import, `"default"` for a default import. */
  readonly imported: string
}

export interface Analysis {
  readonly contracts: ReadonlyMap<string, ContractInfo>
  readonly roots: ReadonlyMap<AstNode, ActorCode>
  readonly imports: ReadonlyMap<string, ImportBinding>
  readonly parent: (node: AstNode) => AstNode | undefined
  /** The innermost handler or build that holds `node`, if any. */
  readonly enclosing: (node: AstNode) => ActorCode | undefined
  /** The variable an identifier refers to, through the enclosing scopes. */
  readonly resolve: (identifier: AstNode) => Scope.Variable | undefined
  /** The initializer of the `const`/`let` an identifier refers to (casts looked through). */
  readonly initOf: (identifier: AstNode) => AstNode | undefined
}

/** "handler `Get` of `Counter`" or "the build of `Counter`": how messages name actor code. */
export const describe = (code: ActorCode): string =>
  code.kind === "handler" ? `handler \`${code.message}\` of \`${code.contract}\`` : `the build of \`${code.contract}\``

const cache = new WeakMap<object, Analysis>()

export const analyze = (context: Rule.RuleContext): Analysis => {
  const sourceCode = context.sourceCode
  const ast = sourceCode.ast as unknown as AstNode
  const cached = cache.get(ast)
  if (cached !== undefined) return cached
  const analysis = build(context)
  cache.set(ast, analysis)
  return analysis
}

const isQuark = (source: string): boolean => source === "quark" || source.startsWith("quark/")
/** Names only Quark exports: a file importing one (from wherever) uses Quark. */
const quarkNames = new Set(["Actor", "ActorContext", "ActorSchema", "Silo"])

const build = (context: Rule.RuleContext): Analysis => {
  const sourceCode = context.sourceCode
  const ast = sourceCode.ast as unknown as AstNode
  const parents = new WeakMap<AstNode, AstNode>()
  const imports = new Map<string, ImportBinding>()
  const declarations: Array<{ readonly name: string; readonly call: AstNode }> = []
  const layers: Array<{ readonly contract: string; readonly at: AstNode; readonly build: AstNode | undefined; readonly options: AstNode | undefined }> = []
  const ofCalls: Array<{ readonly contract: string; readonly object: AstNode | undefined }> = []

  walk(ast, sourceCode.visitorKeys, (node, parent) => {
    if (parent !== undefined) parents.set(node, parent)
    if (node.type === "ImportDeclaration") {
      const source = node["source"]["value"] as string
      for (const specifier of node["specifiers"] as Array<AstNode>) {
        const local = specifier["local"]["name"] as string
        const imported = specifier.type === "ImportNamespaceSpecifier" ?
          "*" :
          specifier.type === "ImportDefaultSpecifier" ?
          "default" :
          (specifier["imported"]["name"] ?? specifier["imported"]["value"]) as string
        imports.set(local, { source, imported })
      }
    } else if (node.type === "VariableDeclarator" && node["id"].type === "Identifier") {
      const init = unwrap(node["init"] as AstNode | null)
      if (init?.type === "CallExpression") declarations.push({ name: node["id"]["name"] as string, call: init })
    } else if (node.type === "CallExpression") {
      const callee = calleeOf(node)
      const args = node["arguments"] as Array<AstNode>
      if (callee.object === undefined) return
      if (callee.name === "toLayer") {
        layers.push({ contract: callee.object, at: callee.objectNode!, build: args[0], options: args[1] })
      } else if (callee.name === "spawn" && args.length >= 2) {
        const contract = pathText(args[0])
        const buildArg = unwrap(args[1])
        const buildCall = buildArg?.type === "CallExpression" ? calleeOf(buildArg).object : undefined
        if (contract !== undefined && buildArg !== undefined && (buildCall === "Effect" || buildArg.type === "Identifier")) {
          layers.push({ contract, at: args[0]!, build: buildArg, options: args[2] })
        }
      } else if (callee.name === "of" && args.length === 1) {
        ofCalls.push({ contract: callee.object, object: args[0] })
      }
    }
  })

  const resolve = (identifier: AstNode): Scope.Variable | undefined => {
    const name = identifier["name"] as string
    let scope: Scope.Scope | null = sourceCode.getScope(identifier as never)
    while (scope !== null) {
      const found = scope.set.get(name)
      if (found !== undefined) return found
      scope = scope.upper
    }
    return undefined
  }
  const initOf = (identifier: AstNode): AstNode | undefined => {
    const variable = resolve(identifier)
    const def = variable?.defs.length === 1 ? variable.defs[0] : undefined
    if (def === undefined) return undefined
    if (def.type === "FunctionName") return def.node as unknown as AstNode
    if (def.type === "Variable") return unwrap((def.node as unknown as AstNode)["init"] as AstNode | null)
    return undefined
  }

  // `Actor` as imported from quark (possibly renamed); the bare name too, for files that
  // reach it another way.
  const actorNames = new Set(["Actor"])
  for (const [local, binding] of imports) if (isQuark(binding.source) && binding.imported === "Actor") actorNames.add(local)

  const contracts = new Map<string, ContractInfo>()
  const contract = (name: string): ContractInfo => {
    let info = contracts.get(name)
    if (info === undefined) {
      info = { name, declared: false, messages: undefined, reentrant: false, optionsUnknown: false }
      contracts.set(name, info)
    }
    return info
  }
  for (const { call, name } of declarations) {
    const callee = calleeOf(call)
    if (callee.name !== "make" || callee.object === undefined || !actorNames.has(callee.object)) continue
    const info = contract(name)
    info.declared = true
    info.messages = messagesOf(unwrap((call["arguments"] as Array<AstNode>)[1]), initOf)
  }
  const readOptions = (info: ContractInfo, options: AstNode | undefined): void => {
    const o = unwrap(options)
    if (o === undefined) return
    if (o.type !== "ObjectExpression") {
      info.optionsUnknown = true
      return
    }
    for (const property of o["properties"] as Array<AstNode>) {
      if (property.type !== "Property") info.optionsUnknown = true
      else if (keyName(property) === "reentrant") {
        const value = unwrap(property["value"] as AstNode)
        if (value?.type === "Literal" && value["value"] === false) continue
        if (value?.type === "Literal" && value["value"] === true) info.reentrant = true
        else info.optionsUnknown = true
      }
    }
  }

  const usesQuark = [...imports.values()].some((binding) =>
    isQuark(binding.source) || quarkNames.has(binding.imported)
  )
  // `X.toLayer` / `spawn(X, …)` of a name the file declares by another call is effect's
  // (`RpcGroup.make`, `Entity.make`, `Toolkit.make` have a `toLayer` too).
  const declaredOtherwise = (at: AstNode): boolean => {
    let root = unwrap(at)
    while (root?.type === "MemberExpression") root = unwrap(root["object"] as AstNode)
    if (root?.type !== "Identifier") return false
    const init = initOf(root)
    return init !== undefined && init.type === "CallExpression" && !contracts.get(root["name"] as string)?.declared
  }

  const roots = new Map<AstNode, ActorCode>()
  for (const layer of layers) {
    if (!contracts.get(layer.contract)?.declared && (!usesQuark || declaredOtherwise(layer.at))) continue
    const info = contract(layer.contract)
    readOptions(info, layer.options)
    if (layer.build !== undefined) roots.set(layer.build, { kind: "build", contract: layer.contract, root: layer.build })
  }
  for (const call of ofCalls) {
    if (!contracts.has(call.contract)) continue
    let table = unwrap(call.object)
    if (table?.type === "Identifier") table = initOf(table)
    if (table?.type !== "ObjectExpression") continue
    for (const property of table["properties"] as Array<AstNode>) {
      if (property.type !== "Property") continue
      const message = keyName(property)
      let value = unwrap(property["value"] as AstNode)
      if (message === undefined || value === undefined) continue
      if (value.type === "Identifier") {
        const target = initOf(value)
        if (target !== undefined && isFunction(target)) value = target
      }
      roots.set(value, { kind: "handler", contract: call.contract, message, root: value })
    }
  }

  const parent = (node: AstNode): AstNode | undefined => parents.get(node)
  const enclosing = (node: AstNode): ActorCode | undefined => {
    for (let n: AstNode | undefined = node; n !== undefined; n = parents.get(n)) {
      const code = roots.get(n)
      if (code !== undefined) return code
    }
    return undefined
  }
  return { contracts, roots, imports, parent, enclosing, resolve, initOf }
}

/**
 * The messages of `Actor.make(type, [ … ])`: each element an `Rpc.make("Tag", …)` (or a
 * `const` holding one), possibly `.annotate(…)`d. Undefined when one cannot be read.
 */
const messagesOf = (
  list: AstNode | undefined,
  initOf: (identifier: AstNode) => AstNode | undefined
): Map<string, boolean> | undefined => {
  if (list?.type !== "ArrayExpression") return undefined
  const messages = new Map<string, boolean>()
  for (const element of list["elements"] as Array<AstNode | null>) {
    const message = messageOf(unwrap(element), initOf, 0)
    if (message === undefined) return undefined
    messages.set(message.tag, message.interleave)
  }
  return messages
}

const messageOf = (
  node: AstNode | undefined,
  initOf: (identifier: AstNode) => AstNode | undefined,
  depth: number
): { readonly tag: string; readonly interleave: boolean } | undefined => {
  let interleave = false
  let n = node
  while (n?.type === "CallExpression" && calleeOf(n).name === "annotate") {
    const [key, value] = n["arguments"] as Array<AstNode>
    const keyPath = pathText(key)
    if (keyPath !== undefined && (keyPath === "AlwaysInterleave" || keyPath.endsWith(".AlwaysInterleave"))) {
      const v = unwrap(value)
      interleave ||= v?.type === "Literal" && v["value"] === true
    }
    n = unwrap(n["callee"]["object"] as AstNode)
  }
  if (n?.type === "Identifier" && depth < 4) {
    const inner = messageOf(initOf(n), initOf, depth + 1)
    return inner === undefined ? undefined : { tag: inner.tag, interleave: interleave || inner.interleave }
  }
  if (n?.type === "CallExpression" && calleeOf(n).name === "make") {
    const tag = stringValue((n["arguments"] as Array<AstNode>)[0])
    return tag === undefined ? undefined : { tag, interleave }
  }
  return undefined
}

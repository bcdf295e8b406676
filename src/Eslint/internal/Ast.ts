/**
 * Syntax helpers shared by the lint rules: a loose node type, a walk, and the few shapes the
 * rules match on (a call's callee, a dotted path, a function).
 *
 * Rule: nothing here needs type information, and nothing assumes one parser. The rules run
 * under `@babel/eslint-parser` (TypeScript 7 has no JS compiler API, so typescript-eslint's
 * parser cannot run on it) and under typescript-eslint's parser; both produce ESTree, and the
 * TypeScript-only wrappers both produce (`x as T`, `x satisfies T`, `x!`) are looked through
 * by `unwrap`. Nodes are typed loosely (`AstNode`) for the same reason: the TypeScript nodes
 * are not in ESTree's types, and the rules only read a few fields.
 *
 * @internal
 */
import type { SourceCode } from "eslint"

/** An ESTree node, read loosely: the rules read a few fields and check `type` first. */
export interface AstNode {
  readonly type: string
  // The fields depend on `type`; each use checks `type` first.
  readonly [field: string]: any
}

const wrappers = new Set([
  "TSAsExpression",
  "TSSatisfiesExpression",
  "TSNonNullExpression",
  "TSTypeAssertion",
  "ParenthesizedExpression",
  "ChainExpression"
])

/** The expression under TypeScript casts, `!`, parentheses and optional chains. */
export const unwrap = (node: AstNode | null | undefined): AstNode | undefined => {
  let current = node ?? undefined
  while (current !== undefined && wrappers.has(current.type)) current = current["expression"] as AstNode
  return current
}

export const isFunction = (node: AstNode | undefined): boolean =>
  node !== undefined &&
  (node.type === "ArrowFunctionExpression" || node.type === "FunctionExpression" || node.type === "FunctionDeclaration")

/** The name of a member's property: `a.b` and `a["b"]` give `"b"`; `a[k]` gives nothing. */
export const propertyName = (member: AstNode): string | undefined => {
  const property = member["property"] as AstNode
  if (!member["computed"] && property.type === "Identifier") return property["name"] as string
  if (property.type === "Literal" && typeof property["value"] === "string") return property["value"]
  if (property.type === "StringLiteral") return property["value"] as string
  return undefined
}

/** The name of an object property's key (`a:`, `"a":`, `a()`), or nothing for a computed key. */
export const keyName = (property: AstNode): string | undefined => {
  const key = property["key"] as AstNode
  if (!property["computed"] && key.type === "Identifier") return key["name"] as string
  if ((key.type === "Literal" || key.type === "StringLiteral") && typeof key["value"] === "string") return key["value"]
  return undefined
}

/** `a`, `a.b`, `a.b.c` as text (casts looked through), or nothing for any other expression. */
export const pathText = (node: AstNode | undefined): string | undefined => {
  const n = unwrap(node)
  if (n === undefined) return undefined
  if (n.type === "Identifier") return n["name"] as string
  if (n.type === "ThisExpression") return "this"
  if (n.type === "MemberExpression") {
    const object = pathText(n["object"] as AstNode)
    const name = propertyName(n)
    return object === undefined || name === undefined ? undefined : `${object}.${name}`
  }
  return undefined
}

/** A call's callee split in two: `a.b.run(…)` is `{ object: "a.b", name: "run" }`, `run(…)` is `{ name: "run" }`. */
export interface Callee {
  readonly object?: string | undefined
  /** The object expression itself (for a member callee). */
  readonly objectNode?: AstNode | undefined
  readonly name?: string | undefined
}

export const calleeOf = (call: AstNode): Callee => {
  const callee = unwrap(call["callee"] as AstNode)
  if (callee === undefined) return {}
  if (callee.type === "Identifier") return { name: callee["name"] as string }
  if (callee.type === "MemberExpression") {
    const objectNode = callee["object"] as AstNode
    return { object: pathText(objectNode), objectNode, name: propertyName(callee) }
  }
  return {}
}

export const isCall = (node: AstNode | undefined): node is AstNode =>
  node !== undefined && (node.type === "CallExpression" || node.type === "NewExpression")

export const isTrue = (node: AstNode | undefined): boolean => {
  const n = unwrap(node)
  return n !== undefined && (n.type === "Literal" || n.type === "BooleanLiteral") && n["value"] === true
}

export const stringValue = (node: AstNode | undefined): string | undefined => {
  const n = unwrap(node)
  if (n === undefined) return undefined
  if ((n.type === "Literal" || n.type === "StringLiteral") && typeof n["value"] === "string") return n["value"]
  if (n.type === "TemplateLiteral" && (n["expressions"] as Array<AstNode>).length === 0) {
    return (n["quasis"] as Array<AstNode>)[0]!["value"]["cooked"] as string
  }
  return undefined
}

/**
 * Every node under `root` (itself included) in source order, with each node's parent. Uses the
 * parser's visitor keys, so TypeScript nodes are walked too; `parent` fields are never read
 * (a node's parent comes from the returned map), so the walk does not depend on whether the
 * linter has set them yet.
 */
export const walk = (
  root: AstNode,
  visitorKeys: SourceCode.VisitorKeys,
  visit: (node: AstNode, parent: AstNode | undefined) => void | "skip",
  parent?: AstNode
): void => {
  if (visit(root, parent) === "skip") return
  const keys = visitorKeys[root.type] ?? Object.keys(root).filter((k) => k !== "parent" && k !== "loc" && k !== "range")
  for (const key of keys) {
    const child = root[key] as unknown
    if (Array.isArray(child)) {
      for (const item of child) if (isNode(item)) walk(item, visitorKeys, visit, root)
    } else if (isNode(child)) walk(child, visitorKeys, visit, root)
  }
}

const isNode = (value: unknown): value is AstNode =>
  typeof value === "object" && value !== null && typeof (value as { type?: unknown }).type === "string"

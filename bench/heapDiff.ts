/**
 * What a heap grew by between two V8 heap snapshots of one process, per object kind,
 * divided by a count (for bytes per activation):
 * `node bench/heapDiff.ts before.heapsnapshot after.heapsnapshot 100000 [top]`.
 * Objects new in the second snapshot (by snapshot node id) minus those gone since the first,
 * grouped by type and constructor name; plain objects also by their property names, so
 * `{ key, value, parent }` and `{ state, strategy }` show apart. Not part of `npm run bench`.
 */
import { readFileSync } from "node:fs"

interface Snapshot {
  readonly snapshot: {
    readonly meta: {
      readonly node_fields: Array<string>
      readonly node_types: [Array<string>]
      readonly edge_fields: Array<string>
      readonly edge_types: [Array<string>]
    }
  }
  readonly nodes: Array<number>
  readonly edges: Array<number>
  readonly strings: Array<string>
}

type Groups = Map<string, { count: number; bytes: number }>

const load = (file: string) => {
  const snap = JSON.parse(readFileSync(file, "utf8")) as Snapshot
  const meta = snap.snapshot.meta
  const width = meta.node_fields.length
  const at = (field: string) => meta.node_fields.indexOf(field)
  const [typeAt, nameAt, idAt, sizeAt, edgeCountAt] = [at("type"), at("name"), at("id"), at("self_size"), at("edge_count")]
  const edgeWidth = meta.edge_fields.length
  const edgeTypeAt = meta.edge_fields.indexOf("type")
  const edgeNameAt = meta.edge_fields.indexOf("name_or_index")
  const edgeTypes = meta.edge_types[0]
  const ids = new Set<number>()
  const keyed: Array<{ id: number; key: string; size: number }> = []
  let edge = 0
  for (let i = 0; i < snap.nodes.length; i += width) {
    const type = meta.node_types[0][snap.nodes[i + typeAt]!]!
    let name = snap.strings[snap.nodes[i + nameAt]!]!
    const edges = snap.nodes[i + edgeCountAt]!
    if (type === "string" || type === "concatenated string" || type === "sliced string") name = "(string)"
    else if (type === "number") name = "(heap number)"
    else if (name.length > 50) name = name.slice(0, 50) + "…"
    if (type === "object" && name === "Object") {
      const props: Array<string> = []
      for (let e = 0; e < edges; e++) {
        const base = (edge + e) * edgeWidth
        if (edgeTypes[snap.edges[base + edgeTypeAt]!] === "property") props.push(snap.strings[snap.edges[base + edgeNameAt]!]!)
      }
      name = `{ ${props.slice(0, 8).join(", ")} }`
    }
    edge += edges
    const id = snap.nodes[i + idAt]!
    ids.add(id)
    keyed.push({ id, key: `${type} ${name}`, size: snap.nodes[i + sizeAt]! })
  }
  return { ids, keyed }
}

const add = (groups: Groups, key: string, size: number, sign: number) => {
  const group = groups.get(key) ?? { count: 0, bytes: 0 }
  group.count += sign
  group.bytes += sign * size
  groups.set(key, group)
}

const [beforeFile, afterFile, perArg = "1", topArg = "30"] = process.argv.slice(2)
if (beforeFile === undefined || afterFile === undefined) throw new Error("usage: heapDiff.ts before after [count] [top]")
const per = Number(perArg)
const before = load(beforeFile)
const after = load(afterFile)
const groups: Groups = new Map()
for (const node of after.keyed) if (!before.ids.has(node.id)) add(groups, node.key, node.size, 1)
for (const node of before.keyed) if (!after.ids.has(node.id)) add(groups, node.key, node.size, -1)
const rows = [...groups].map(([key, g]) => ({ key, bytes: g.bytes / per, count: g.count / per }))
  .sort((x, y) => Math.abs(y.bytes) - Math.abs(x.bytes))
const total = rows.reduce((sum, row) => sum + row.bytes, 0)
console.log(`total growth: ${total.toFixed(1)} B per unit`)
for (const row of rows.slice(0, Number(topArg))) {
  console.log(`${row.bytes.toFixed(1).padStart(8)} B  ${row.count.toFixed(2).padStart(6)} objs  ${row.key}`)
}

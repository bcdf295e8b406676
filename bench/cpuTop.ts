/**
 * Top self-time functions of a `.cpuprofile` (from `node --cpu-prof`):
 * `node bench/cpuTop.ts file.cpuprofile [top]`. Prints self time per function (name, file,
 * line) as a share of all samples, and the share of (garbage collector) and (idle). Not
 * part of `npm run bench`.
 */
import { readFileSync } from "node:fs"

interface Node {
  readonly id: number
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number }
}
interface Profile {
  readonly nodes: Array<Node>
  readonly samples: Array<number>
  readonly timeDeltas: Array<number>
}

const [file, topArg = "25"] = process.argv.slice(2)
if (file === undefined) throw new Error("usage: cpuTop.ts file.cpuprofile [top]")
const profile = JSON.parse(readFileSync(file, "utf8")) as Profile
const byId = new Map(profile.nodes.map((node) => [node.id, node]))
const self = new Map<string, number>()
let total = 0
for (let i = 0; i < profile.samples.length; i++) {
  const node = byId.get(profile.samples[i]!)!
  const dt = profile.timeDeltas[i] ?? 0
  const { functionName, lineNumber, url } = node.callFrame
  const where = url === "" ? "" : ` ${url.replace(/^file:\/\/.*?\/(src|bench|node_modules)\//, "$1/")}:${lineNumber + 1}`
  const key = `${functionName || "(anonymous)"}${where}`
  self.set(key, (self.get(key) ?? 0) + dt)
  total += dt
}
console.log(`total ${(total / 1e3).toFixed(0)} ms sampled`)
for (const [key, us] of [...self].sort((a, b) => b[1] - a[1]).slice(0, Number(topArg))) {
  console.log(`${((100 * us) / total).toFixed(1).padStart(5)} %  ${key}`)
}

/**
 * What the telemetry tests share: reading one series out of Prometheus text, a tracer that
 * keeps the spans it makes, and where the Prometheus binary is.
 */
import * as fs from "node:fs"
import * as path from "node:path"
import { Layer, Tracer } from "effect"

/** The value of the first series `name` whose labels include `labels` (in any order), or undefined. */
export const series = (text: string, name: string, labels: Record<string, string> = {}): number | undefined => {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name + "{") && !line.startsWith(name + " ")) continue
    if (Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(" ") + 1))
  }
  return undefined
}

/** effect's native spans, kept in `spans` in the order they started; `layer` provides the tracer. */
export const recordingTracer = () => {
  const spans: Array<Tracer.NativeSpan> = []
  const tracer = Tracer.make({
    span: (options) => {
      const span = new Tracer.NativeSpan(options)
      spans.push(span)
      return span
    }
  })
  return { spans, layer: Layer.succeed(Tracer.Tracer, tracer) }
}

/** `/usr/bin/prometheus`, or the first `prometheus` on the PATH; undefined when there is none. */
export const prometheusBinary: string | undefined = ["/usr/bin", ...(process.env.PATH ?? "").split(path.delimiter)]
  .filter((dir) => dir !== "")
  .map((dir) => path.join(dir, "prometheus"))
  .find((file) => {
    try {
      fs.accessSync(file, fs.constants.X_OK)
      return fs.statSync(file).isFile()
    } catch {
      return false
    }
  })

/**
 * What the telemetry tests share: reading one series out of Prometheus text, and a tracer
 * that keeps the spans it makes.
 */
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

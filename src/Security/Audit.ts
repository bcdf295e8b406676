/**
 * A record of who called what. Optional: provide `Audit.layer(...)` to the silo's layer
 * (beside `Silo.layer`, `ClusterSilo.layer`).
 *
 * The rules:
 * - **One record per call admitted or refused**, on the silo that runs (or refused) the
 *   turn, written before the turn: the principal, the address, the message tag, whether it
 *   was one-way, the outcome (`allowed`, `denied` by `Authorization`, `unauthenticated`), the
 *   time and the correlation id. Not the turn's result: that is the caller's business.
 * - **Never the payload**, unless `includePayloads` is set: payloads are the application's
 *   data (personal data, secrets), and an audit log is often kept longer and read by more
 *   people than the data itself. Tokens are never recorded (they are consumed before).
 * - **System types** (`$reminders`, `$streams`: Quark's own housekeeping, every few
 *   seconds) are not recorded unless `includeSystemTypes` is set.
 * - **The sink** runs in the caller's fiber, before the turn: keep it fast (hand records to
 *   a queue if they go to a database). The default writes one log line per record through
 *   Effect's logger, message `quark.audit`, the fields as `quark.audit.*` annotations.
 *   `outcomes: "refused"` keeps only the denied and unauthenticated calls.
 *
 * @since 0.2.0
 */
import { Context, Effect, Layer } from "effect"
import type { ActorAddress } from "../Actor/ActorAddress.ts"
import type { Principal } from "./Principal.ts"

/**
 * What happened to the call.
 *
 * @since 0.2.0
 */
export type Outcome = "allowed" | "denied" | "unauthenticated"

/**
 * @since 0.2.0
 */
export interface AuditRecord {
  /** Epoch milliseconds, from Effect's `Clock`. */
  readonly time: number
  readonly principal: Principal
  readonly address: ActorAddress
  readonly tag: string
  readonly oneWay: boolean
  readonly outcome: Outcome
  /** Why a call was refused. */
  readonly reason?: string | undefined
  /** Shared by every call made on behalf of one outside request (see `RequestContext`). */
  readonly correlationId: string
  /** Only with `includePayloads`: the decoded payload. */
  readonly payload?: unknown
}

/**
 * @since 0.2.0
 */
export interface AuditShape {
  readonly record: (record: AuditRecord) => Effect.Effect<void>
  /** Whether calls to `type` are recorded. */
  readonly covers: (type: string) => boolean
  /** Whether allowed calls are recorded (not only refused ones). */
  readonly allowed: boolean
  readonly includePayloads: boolean
}

/**
 * @since 0.2.0
 */
export class Audit extends Context.Service<Audit, AuditShape>()("quark/Security/Audit") {}

/**
 * @since 0.2.0
 */
export interface AuditOptions<R> {
  /** Where records go. Default: {@link logSink}. */
  readonly sink?: ((record: AuditRecord) => Effect.Effect<void, never, R>) | undefined
  /** Record each call's payload too. Default false. */
  readonly includePayloads?: boolean | undefined
  /** Record calls to system types (`$...`). Default false. */
  readonly includeSystemTypes?: boolean | undefined
  /** `"all"` (default) or only the `"refused"` calls. */
  readonly outcomes?: "all" | "refused" | undefined
}

/**
 * The default sink: one log line per record, at info level (warning for a refused call).
 *
 * @since 0.2.0
 */
export const logSink = (record: AuditRecord): Effect.Effect<void> => {
  const annotations: Record<string, unknown> = {
    "quark.audit.principal": record.principal.id,
    "quark.audit.principalKind": record.principal.kind,
    "quark.audit.address": `${record.address.type}/${record.address.id}`,
    "quark.audit.tag": record.tag,
    "quark.audit.oneWay": record.oneWay,
    "quark.audit.outcome": record.outcome,
    "quark.audit.time": new Date(record.time).toISOString(),
    "quark.audit.correlationId": record.correlationId
  }
  if (record.reason !== undefined) annotations["quark.audit.reason"] = record.reason
  if ("payload" in record) annotations["quark.audit.payload"] = record.payload
  const line = record.outcome === "allowed" ? Effect.logInfo("quark.audit") : Effect.logWarning("quark.audit")
  return Effect.annotateLogs(line, annotations)
}

/**
 * The audit service.
 *
 * @since 0.2.0
 */
export const layer = <R = never>(options: AuditOptions<R> = {}): Layer.Layer<Audit, never, R> =>
  Layer.effect(
    Audit,
    Effect.map(Effect.context<R>(), (context) => {
      const sink = options.sink
      const includeSystem = options.includeSystemTypes === true
      return Audit.of({
        record: sink === undefined ? logSink : (record) => Effect.provideContext(sink(record), context),
        covers: (type) => includeSystem || type.charCodeAt(0) !== 36, // "$"
        allowed: options.outcomes !== "refused",
        includePayloads: options.includePayloads === true
      })
    })
  )

/**
 * The names Quark's spans and log lines carry: one convention for both, so a log line can
 * be joined to its span. RPC names follow OpenTelemetry's semantic conventions for RPC
 * (`rpc.system` is `quark`, `rpc.service` the actor type, `rpc.method` the message tag);
 * the rest live under `quark.`.
 *
 * Metric labels are not these: they are short (`type`, `message`) and listed with each
 * metric in `MetricCatalog`.
 *
 * @since 0.2.0
 */

/** @since 0.2.0 */
export const rpcSystem = "rpc.system"
/** The value of `rpc.system` on Quark's spans. @since 0.2.0 */
export const rpcSystemValue = "quark"
/** The actor type. @since 0.2.0 */
export const rpcService = "rpc.service"
/** The message tag. @since 0.2.0 */
export const rpcMethod = "rpc.method"
/** The actor type. @since 0.2.0 */
export const actorType = "quark.actor.type"
/** The actor id. @since 0.2.0 */
export const actorId = "quark.actor.id"
/** `Type/id`. @since 0.2.0 */
export const actorAddress = "quark.actor"
/** The message tag. @since 0.2.0 */
export const message = "quark.message"
/** `ask`, `tell` or `tick`. @since 0.2.0 */
export const turnKind = "quark.turn.kind"
/** The silo's id, on a clustered silo. @since 0.2.0 */
export const silo = "quark.silo"
/** The request id: the turn's sequence number in its silo. @since 0.2.0 */
export const requestId = "quark.request_id"
/** The correlation id, shared by every turn a request causes (see `RequestContext`). @since 0.2.0 */
export const correlationId = "quark.correlation_id"
/** The tag of the error a span ended with (OpenTelemetry's `error.type`). @since 0.2.0 */
export const errorType = "error.type"
/** The trace id, on log lines written under a sampled span. @since 0.2.0 */
export const traceId = "trace_id"
/** The span id, on log lines written under a sampled span. @since 0.2.0 */
export const spanId = "span_id"
/** The store kind (`memory`, `redis`, `postgres`), on a store operation's span. @since 0.2.0 */
export const store = "quark.store"
/** The operation (`state.write`, `journal.append`, …), on a store operation's span. @since 0.2.0 */
export const storeOperation = "quark.store.operation"
/** The reminder's name, on a reminder tick's span. @since 0.2.0 */
export const reminder = "quark.reminder"
/** The tick's attempt (1 for the first), on a reminder tick's span. @since 0.2.0 */
export const reminderAttempt = "quark.reminder.attempt"
/** On a log line: how many lines of this actor the log sampling dropped since the last one it kept. @since 0.2.0 */
export const logsSuppressed = "quark.logs_suppressed"

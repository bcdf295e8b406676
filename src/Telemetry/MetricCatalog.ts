/**
 * Every metric Quark emits: name, kind, unit, labels and meaning. docs/observability.md
 * prints this table, and a test checks that what a silo exports is in it.
 *
 * Names follow Prometheus conventions (`_total` for counters, base units: seconds and
 * bytes). Labels are bounded: actor types, message tags, outcomes, error tags, store
 * kinds, directions and statuses, never an actor id, silo id or request id (the profiler
 * names hot activations; metrics do not).
 *
 * @since 0.2.0
 */

/**
 * One metric of the catalog. `scale` converts what the code observes (milliseconds) into
 * the unit exported.
 *
 * @since 0.2.0
 */
export interface MetricDefinition {
  readonly name: string
  readonly kind: "counter" | "gauge" | "histogram"
  readonly unit: "1" | "seconds" | "bytes"
  readonly labels: ReadonlyArray<string>
  readonly description: string
  readonly scale: number
}

const define = (
  name: string,
  kind: MetricDefinition["kind"],
  unit: MetricDefinition["unit"],
  labels: ReadonlyArray<string>,
  description: string
): MetricDefinition => ({ name, kind, unit, labels, description, scale: unit === "seconds" ? 0.001 : 1 })

// Activations and turns: kept per silo, on when `Telemetry.layer` has metrics on.

/** @since 0.2.0 */
export const activationsActive = define("quark_activations_active", "gauge", "1", ["type"], "Activations in this silo (any state but stopped)")
/** @since 0.2.0 */
export const activationsTotal = define("quark_activations_total", "counter", "1", ["type"], "Activation effects that succeeded")
/** @since 0.2.0 */
export const activationFailuresTotal = define("quark_activation_failures_total", "counter", "1", ["type"], "Activation effects that failed or timed out")
/** @since 0.2.0 */
export const activationDuration = define("quark_activation_duration_seconds", "histogram", "seconds", ["type"], "How long activation effects ran, successful or not")
/** @since 0.2.0 */
export const deactivationsTotal = define("quark_deactivations_total", "counter", "1", ["type"], "Activations that stopped for good (idle, asked, failed, moved or shut down)")
/** @since 0.2.0 */
export const turnsTotal = define("quark_turns_total", "counter", "1", ["type", "message", "outcome"], "Turns that ended; outcome is ok, error, defect or interrupted")
/** @since 0.2.0 */
export const turnDuration = define("quark_turn_duration_seconds", "histogram", "seconds", ["type", "message"], "Turn run time, from its start to its end (not its mailbox wait)")
/** @since 0.2.0 */
export const mailboxWait = define("quark_mailbox_wait_seconds", "histogram", "seconds", ["type"], "How long a message waited in the mailbox before its turn started (0 when it ran at once)")
/** @since 0.2.0 */
export const mailboxDepth = define("quark_mailbox_depth", "gauge", "1", ["type"], "Messages waiting in the mailboxes of the type's activations, summed (read at scrape time)")
/** @since 0.2.0 */
export const callErrorsTotal = define("quark_call_errors_total", "counter", "1", ["type", "message", "error"], "Turns that failed, by the error's tag (a defect counts as ActorDefect)")
/** @since 0.2.0 */
export const supervisionDecisionsTotal = define("quark_supervision_decisions_total", "counter", "1", ["type", "directive"], "Supervisor decisions about failed activations: resume, restart, stop or escalate")

// Process-wide: kept whenever the code runs, exported when `Telemetry.layer` has metrics on.

/** @since 0.2.0 */
export const storeOperationDuration = define("quark_store_operation_duration_seconds", "histogram", "seconds", ["store", "operation"], "State, journal and reminder store operations, successful or not, from the caller's call to its result (a batched write's wait included). store: memory, redis or postgres. operation: state.read, state.write, state.clear, journal.append, journal.read, journal.last_sequence, snapshot.save, snapshot.load, reminder.get, reminder.put, reminder.remove, reminder.list, reminder.due, reminder.history_append, reminder.history, dead_letter.add, dead_letter.list or dead_letter.remove")
/** @since 0.2.0 */
export const storeOperationErrorsTotal = define("quark_store_operation_errors_total", "counter", "1", ["store", "operation"], "Store operations that failed: a store error or a defect (a version conflict is the compare-and-set's answer, and an interrupted caller no failure of the store)")
/** @since 0.2.0 */
export const transportFramesTotal = define("quark_transport_frames_total", "counter", "1", ["direction"], "Frames written (out: handed to the socket) and read (in) on silo connections, both ends in this process")
/** @since 0.2.0 */
export const transportBytesTotal = define("quark_transport_bytes_total", "counter", "bytes", ["direction"], "Frame bytes written (out) and read (in), length prefixes included")
/** @since 0.2.0 */
export const transportCallsInFlight = define("quark_transport_calls_in_flight", "gauge", "1", [], "Remote asks sent and not yet answered, failed or timed out, over every connection of this process")
/** @since 0.2.0 */
export const transportConnections = define("quark_transport_connections", "gauge", "1", ["direction"], "Open connections: outbound (to peers) and inbound (accepted)")
/** @since 0.2.0 */
export const clusterSilos = define("quark_cluster_silos", "gauge", "1", ["status"], "Silos in this silo's membership view, by status (alive, suspected; a dead silo leaves the view), read at scrape time. With several silos in one process (tests), the newest open view")
/** @since 0.2.0 */
export const clusterFailoversTotal = define("quark_cluster_failovers_total", "counter", "1", [], "Silos this silo saw declared dead: their addresses move to the survivors. With several silos in one process (tests), as the newest open view saw them")
/** @since 0.2.0 */
export const reminderTicksTotal = define("quark_reminder_ticks_total", "counter", "1", ["outcome"], "Reminder ticks delivered (ok), further attempts of a tick (retry: after a failed turn, or while its actor is unavailable) and ticks given up on (dead_letter)")
/** @since 0.2.0 */
export const reminderTickLag = define("quark_reminder_tick_lag_seconds", "histogram", "seconds", [], "From a reminder tick's due time to its first attempt (jitter and catch-up included)")
/** @since 0.2.0 */
export const streamEventsTotal = define("quark_stream_events_total", "counter", "1", ["outcome"], "Stream events by what became of them: published (accepted by the provider), delivered (a subscriber's turn succeeded; one per subscriber), dropped (by a subscription's backpressure strategy), failed (not delivered after the retries)")
/** @since 0.2.0 */
export const eventLoopLag = define("quark_event_loop_lag_seconds", "gauge", "seconds", ["quantile"], "Event-loop delay over the profiler's window (p50, p99, max)")
/** @since 0.2.0 */
export const heapUsed = define("quark_heap_used_bytes", "gauge", "bytes", [], "V8 heap in use")

// The rebalancer (`Rebalancer.layer`): kept while one runs, exported when `Telemetry.layer` has metrics on.

/** @since 0.2.0 */
export const rebalancerMigrationsTotal = define("quark_rebalancer_migrations_total", "counter", "1", ["outcome"], "Activations the rebalancer moved to another silo (moved) or tried to and could not (failed)")
/** @since 0.2.0 */
export const rebalancerSkew = define("quark_rebalancer_skew", "gauge", "1", [], "This silo's migratable activations over the cluster's mean, as a share of the mean (0.25: a quarter above it), at the rebalancer's last round. With several silos in one process (tests), the newest rebalancer's")
/** @since 0.2.0 */
export const rebalancerPaused = define("quark_rebalancer_paused", "gauge", "1", [], "1 while the rebalancer is paused, else 0. With several silos in one process (tests), the newest rebalancer's")
/** @since 0.2.0 */
export const rebalancerEvictionsTotal = define("quark_rebalancer_evictions_total", "counter", "1", [], "Silos that drained themselves because their health score stayed under the eviction threshold")

/**
 * The catalog, in the order the docs list it.
 *
 * @since 0.2.0
 */
export const all: ReadonlyArray<MetricDefinition> = [
  activationsActive,
  activationsTotal,
  activationFailuresTotal,
  activationDuration,
  deactivationsTotal,
  turnsTotal,
  turnDuration,
  mailboxWait,
  mailboxDepth,
  callErrorsTotal,
  supervisionDecisionsTotal,
  storeOperationDuration,
  storeOperationErrorsTotal,
  transportFramesTotal,
  transportBytesTotal,
  transportCallsInFlight,
  transportConnections,
  clusterSilos,
  clusterFailoversTotal,
  reminderTicksTotal,
  reminderTickLag,
  streamEventsTotal,
  eventLoopLag,
  heapUsed,
  rebalancerMigrationsTotal,
  rebalancerSkew,
  rebalancerPaused,
  rebalancerEvictionsTotal
]

/**
 * Bucket bounds, in milliseconds, for durations: 10 µs to 10 s, about three per decade.
 *
 * @since 0.2.0
 */
export const durationBoundsMillis: ReadonlyArray<number> = [
  0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
]

/**
 * The metrics sink every layer may use (issue 14, docs/operating.md "Metrics"): counters that code
 * increments where an event happens, and values read from existing state when scraped. The
 * Prometheus implementation lives in src/metrics/ (the only folder that imports prom-client); a
 * node without `metrics.listen` gets `noMetrics`, which does nothing.
 *
 * Every metric is declared once, in METRICS below: its type, help text and label names. No label
 * ever carries a node ID, an address or a message ID (unbounded cardinality): labels take values
 * from small fixed sets (a path, a trust level, an error code name).
 */

export type MetricKind = "counter" | "gauge";

export interface MetricDef {
  readonly kind: MetricKind;
  readonly help: string;
  readonly labels: readonly string[];
}

const counter = (help: string, ...labels: string[]): MetricDef => ({ kind: "counter", help, labels });
const gauge = (help: string, ...labels: string[]): MetricDef => ({ kind: "gauge", help, labels });

/** Every Atlas metric (process_* and nodejs_* come from prom-client's default collectors). */
export const METRICS = {
  atlas_info: gauge("Always 1; the labels name this process's role and version", "role", "version"),
  // sessions and handshakes (every role)
  atlas_sessions: gauge("Open sessions by path (direct, relay) and trust level", "path", "trust"),
  atlas_handshakes_total: counter(
    "Handshakes completed or failed, by direction, result (ok, failed) and reason (an error code name; none when ok)",
    "direction",
    "result",
    "reason",
  ),
  atlas_rate_limited_total: counter("Requests refused with Error 4001 (rate limit), by the peer's trust tier", "tier"),
  atlas_requests_served_total: counter(
    "Requests from peers this node answered, by the stream they came on (own: a stream per request; pipe: pipelined)",
    "stream",
  ),
  atlas_bans_total: counter("Peers banned, by reason (rate_limit, manual)", "reason"),
  atlas_bans_active: gauge("Peers banned right now"),
  atlas_busy_polls_total: counter(
    "Waits for a nearby peer's answer before the event loop slept (busy polling), by how they ended (io: an event such as the answer came; timeout)",
    "ended",
  ),
  // messages (daemon)
  atlas_messages_sent_total: counter("Messages put on the wire by the outbox (each attempt that reached a session)"),
  atlas_messages_finished_total: counter(
    "Outbox messages with a final outcome: delivered, failed (refused by the peer) or expired (outbox.ttl passed)",
    "outcome",
  ),
  atlas_messages_received_total: counter("Messages received and stored in the inbox (first delivery only)"),
  atlas_outbox_depth: gauge("Messages in the outbox (queued or being delivered)"),
  atlas_outbox_oldest_age_seconds: gauge("Age of the oldest message in the outbox (0 when empty)"),
  // STUN (daemon)
  atlas_stun_checks_total: counter(
    "Public-address checks against the configured STUN servers, by result (ok, no_answer)",
    "result",
  ),
  atlas_public_address_known: gauge("1 when STUN (or two agreeing peers) gave this daemon a public address"),
  // relay links this node is an end of (daemon)
  atlas_relay_links_open: gauge("Relayed connections this node is an end of"),
  // relay server (relay, daemon with transport.offer_relay)
  atlas_relay_registered: gauge("Agents registered with this relay"),
  atlas_relay_pipes: gauge("Relay pipes open"),
  atlas_relay_pipe_capacity: gauge("transport.relay_capacity: pipes this relay accepts at once"),
  atlas_relay_pipes_opened_total: counter("Relay pipes opened"),
  atlas_relay_pipes_refused_total: counter("Relay pairings refused, by RelayError code name", "reason"),
  atlas_relay_pipes_closed_unused_total: counter(
    "Relay pipes closed because a side sent nothing within the pairing timeout",
  ),
  atlas_relay_forwarded_packets_total: counter("DATAGRAMs forwarded through relay pipes"),
  atlas_relay_forwarded_bytes_total: counter("Bytes forwarded through relay pipes"),
  atlas_relay_dropped_total: counter(
    "DATAGRAMs the relay dropped, by reason (rate_limit, queue_full, unknown_session)",
    "reason",
  ),
  // bootstrap server (bootstrap)
  atlas_bootstrap_registrations_total: counter(
    "BootstrapRegister requests, by result (new, renewed, refused)",
    "result",
  ),
  atlas_bootstrap_lookups_total: counter("BootstrapDiscover requests answered"),
  atlas_bootstrap_registered: gauge("Peers in the bootstrap registry"),
} as const satisfies Record<string, MetricDef>;

export type MetricName = keyof typeof METRICS;
export type Labels = Readonly<Record<string, string>>;
export interface Sample {
  labels?: Labels;
  value: number;
}

export interface MetricsSink {
  /** Add `n` (default 1) to a counter. */
  inc(name: MetricName, labels?: Labels, n?: number): void;
  /**
   * Read `name`'s values when scraped: a gauge, or a counter whose running total is kept
   * elsewhere (the relay's own counters). A second call for the same name replaces the reader.
   */
  observe(name: MetricName, read: () => Sample[] | Promise<Sample[]>): void;
}

/** The sink of a node without metrics: every call does nothing. */
export const noMetrics: MetricsSink = {
  inc() {},
  observe() {},
};

/** The error code name of a failure (`ERR_HANDSHAKE_TIMEOUT`), else `other`: a bounded label value. */
export function reasonOf(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^[A-Z][A-Z0-9_]{0,40}$/.test(code) ? code : "other";
}

/**
 * Every tunable of Atlas, with its default (src/config/defaults.ts). This is the one place where tunable
 * timeouts, intervals and limits are defined; code reads them from a loaded `Config`, never from
 * literals. Fixed timings that are not for an operator to change live in `durations.ts`.
 * Keys mirror `state/config.toml` exactly (snake_case sections and keys), so
 * `config get transport.dial_timeout` is `config.transport.dial_timeout`.
 *
 * Keys marked "Atlas extension" are not in src/config/defaults.ts; docs/decisions.md says why they exist.
 */
export const DEFAULTS = {
  network: {
    host: "::", // dual-stack; falls back to 0.0.0.0 where IPv6 is unavailable
    port: 4433, // 0 = any free port
    bootstrap: [] as string[], // "host:port" or "atlas_<id>@host:port"
    relays: [] as string[],
  },
  transport: {
    enable_relay: true,
    offer_relay: false,
    relay_bandwidth_limit: 1048576, // bytes/s per relayed connection and direction
    relay_capacity: 64,
    relay_announce_interval: 2, // s
    relay_idle_timeout: 60, // s
    relay_pipes_per_source: 4,
    relay_pipes_per_target: 8, // pipes one registered agent can be paired into at once (docs/protocol.md#relay)
    relay_pairings_per_ip: 8, // pipes whose sources share one IP address, an IPv6 /64 (docs/protocol.md#relay)
    relay_missed_announces: 5,
    relay_pairing_timeout: 10, // s
    relay_stagger_ms: 300, // relays raced this long after the first direct candidate (docs/protocol.md#dialing)
    // docs/protocol.md#the-tcp-leg: how this agent reaches relays and bootstrap nodes — "auto" tries
    // UDP and falls back to TLS on TCP when nothing answers within 3 s; "udp" or "tcp" only.
    relay_transport: "auto" as "auto" | "udp" | "tcp",
    // TCP port of the TCP leg that relays and bootstrap nodes listen on, and the port an agent
    // dials when a relay entry names none (`tcp://host:port` does). 0 = the same number as the
    // UDP port (network.port here; the entry's port for a relay). Deployments: 443.
    relay_tcp_port: 0,
    relay_tcp_connections: 512, // TCP-leg connections at once on a relay or bootstrap node
    relay_tcp_connections_per_ip: 8, // … from one IP address
    relay_tcp_handshake_timeout: 5, // s, from TCP accept to a finished TLS handshake
    relay_tcp_idle_timeout: 60, // s, a TCP leg with no byte either way is closed
    hole_punch: true, // upgrade relayed sessions to a direct path where the NATs allow it (docs/protocol.md#hole-punching)
    dial_timeout: 5, // s, per direct candidate
    dial_stagger_ms: 250, // Happy Eyeballs start offset
    keepalive_interval: 15, // s, QUIC PING (keeps NAT mappings open)
    idle_timeout: 300, // s, QUIC idle timeout
    session_idle: 300, // s, daemon closes delivery/ping sessions after this much silence
    max_connections: 200,
    max_streams_per_conn: 50,
    max_datagram_size: 1350, // Atlas extension: UDP payload (quiche default 1200, no PMTUD)
    initial_conn_window: 1048576, // Atlas extension: 1 MiB, auto-tuned up to max_conn_window
    initial_stream_window: 262144, // Atlas extension: 256 KiB, auto-tuned up to max_stream_window
    max_conn_window: 67108864, // Atlas extension: 64 MiB
    max_stream_window: 16777216, // Atlas extension: 16 MiB
    max_buffered_bytes: 67108864, // Atlas extension: 64 MiB, cap on bytes of frames still arriving, all connections
    max_buffered_per_conn: 16777216, // Atlas extension: 16 MiB, the same cap for one connection
    read_timeout: 30, // Atlas extension: s, deadline of a single read on a request stream
    request_timeout: 10, // Atlas extension: s, wait for a Pong / MessageAck / any response frame
    // Atlas extension: µs a node stays awake, after sending to a peer that answers within 1 ms, for
    // the answer before its event loop sleeps (docs/transport.md#busy-polling). 0 = never.
    busy_poll_us: 200,
  },
  security: {
    ban_duration_secs: 600,
    ban_violations: 3,
    ban_window_secs: 300,
    handshake_limit: 50,
    retry_above_handshakes: 8, // Atlas extension: inbound handshakes in flight from which new connections get a QUIC Retry
    handshakes_per_ip_per_minute: 30,
    handshake_timeout: 10, // s
    max_clock_drift_secs: 300,
    max_pending_streams: 8, // Atlas extension: request streams held unread before VerifyAck
  },
  rate_limit: {
    unknown: { per_second: 5, per_minute: 60, bytes_per_minute: 10485760 },
    verified: { per_second: 20, per_minute: 300, bytes_per_minute: 52428800 },
    bootstrap: { per_second: 5, per_minute: 60, bytes_per_minute: 10485760 },
    relay: { per_second: 5, per_minute: 60, bytes_per_minute: 10485760 },
  },
  stun: {
    servers: ["stun.l.google.com:19302", "stun.cloudflare.com:3478"],
    timeout: 3, // s, total
    interval: 300, // s
    serve: false, // Atlas extension: answer STUN Binding requests on the QUIC port (bootstrap and relay nodes always do)
  },
  keepalive: {
    interval: 60, // s, Atlas Ping to every live session
    max_missed: 3, // then Disconnect DISCONNECT_IDLE
  },
  outbox: {
    poll_interval_ms: 250,
    ttl: 86400, // s
    backoff_initial: 1, // s
    backoff_max: 300, // s
    window: 32, // Atlas extension: messages in flight per target at once (over a live session)
  },
  inbox: {
    retention_days: 30,
    max_per_peer: 10000,
  },
  peers: {
    // Atlas extension: days after its last_seen that an `unknown` peer never used for anything
    // (no message either way, no open session, no ban in force) is deleted, with its session rows.
    // Throwaway identities otherwise leave a permanent row each (docs/decisions.md, Peer store).
    prune_unknown_after_days: 7,
  },
  farcaster: {
    verify: "hub" as "hub" | "signature",
    hub_url: "",
    cache_ttl: 86400, // s
  },
  bootstrap: {
    capacity: 10000,
    stale_after: 3600, // s
    register_interval: 300, // s
  },
  metrics: {
    // Atlas extension: "host:port" of the Prometheus endpoint (GET /metrics); "" = off. Daemon,
    // relay and bootstrap roles serve it (docs/operating.md, "Metrics").
    listen: "",
    // Atlas extension: allow a metrics.listen host that is not loopback (no authentication is offered).
    allow_remote: false,
  },
};

/**
 * Prefix of a relay or bootstrap entry reached only over its TCP leg, at the port the entry names
 * (docs/protocol.md#the-tcp-leg): `tcp://atlas_<id>@relay.example:443`.
 */
export const TCP_SCHEME = "tcp://";

type Widen<T> = T extends string ? string : T extends number ? number : T extends boolean ? boolean
: T extends readonly (infer U)[] ? Widen<U>[]
: { [K in keyof T]: Widen<T[K]> };

/** A fully resolved configuration: defaults overlaid with config.toml and command-line flags. */
export type Config = Widen<typeof DEFAULTS> & {
  farcaster: { verify: "hub" | "signature" };
  transport: { relay_transport: "auto" | "udp" | "tcp" };
};

/** A deep copy of the defaults (so callers may mutate their own). */
export function defaultConfig(): Config {
  return structuredClone(DEFAULTS) as Config;
}

/**
 * Fixed limits of the control socket (docs/protocol.md#control-socket-cli--daemon), not config keys: they bound
 * what a local client can make the daemon hold, whatever it does.
 */
export const CONTROL_LIMITS = {
  /** Connections served at once (subscribers included); one more is closed at accept. */
  MAX_CONNECTIONS: 64,
  /** A subscriber whose unread output reaches this many bytes gets nothing more until it reads. */
  PUSH_HIGH_WATER_BYTES: 1024 * 1024,
  /** Inbox rows read per page by a subscriber's pump: what it holds in memory at most. */
  PUSH_PAGE_ROWS: 16,
  /** Session events queued per subscriber while it is behind; beyond, they are counted and dropped. */
  PUSH_MAX_EVENTS: 256,
  /** Delivery records of sends made at once, held before a batch commit is forced. */
  DELIVERY_BATCH: 256,
} as const;

import type { Config } from "../config/defaults.ts";

/** What the transport needs from the configuration, in transport units (ms, bytes). */
export interface TransportOptions {
  idleTimeoutMs: number;
  keepAliveIntervalMs: number;
  maxDatagramSize: number;
  initialConnWindow: number;
  initialStreamWindow: number;
  maxConnWindow: number;
  maxStreamWindow: number;
  /** Node-wide cap on bytes of frames still arriving (read-budget.ts). */
  maxBufferedBytes: number;
  /** The same cap for one connection. */
  maxBufferedPerConn: number;
  maxStreamsPerConn: number;
  maxConnections: number;
  handshakeLimit: number;
  handshakesPerIpPerMinute: number;
  /**
   * Under load — at least this many inbound connections not yet through the Atlas handshake — a
   * new connection must first pass a QUIC Retry (address validation); below it, none is sent.
   */
  retryAboveHandshakes: number;
  /** Enable QUIC DATAGRAM frames (relay pipes, docs/protocol.md#relay). */
  datagrams: boolean;
  /** µs to stay awake for a nearby peer's reply before the event loop sleeps; 0 = never (docs/transport.md). */
  busyPollUs: number;
}

export function transportOptions(cfg: Config): TransportOptions {
  const t = cfg.transport;
  return {
    idleTimeoutMs: t.idle_timeout * 1000,
    keepAliveIntervalMs: t.keepalive_interval * 1000,
    maxDatagramSize: t.max_datagram_size,
    initialConnWindow: t.initial_conn_window,
    initialStreamWindow: t.initial_stream_window,
    maxConnWindow: t.max_conn_window,
    maxStreamWindow: t.max_stream_window,
    maxBufferedBytes: t.max_buffered_bytes,
    maxBufferedPerConn: t.max_buffered_per_conn,
    maxStreamsPerConn: t.max_streams_per_conn,
    maxConnections: t.max_connections,
    handshakeLimit: cfg.security.handshake_limit,
    handshakesPerIpPerMinute: cfg.security.handshakes_per_ip_per_minute,
    retryAboveHandshakes: cfg.security.retry_above_handshakes,
    datagrams: true,
    busyPollUs: t.busy_poll_us,
  };
}

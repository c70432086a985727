/**
 * Fixed durations, in milliseconds: the protocol and implementation timings that are not config
 * keys. `defaults.ts` holds what an operator may tune; these are fixed because something else
 * relies on their value (a protocol deadline, what the peer expects, the order two timers fire in),
 * not a deployment's needs. Each says why it has its value. Durations that scale with a config
 * key (a multiple of `transport.request_timeout`, say) stay next to that key's use.
 */

// ---- Daemon lifecycle ----

/** docs/architecture.md#daemon: a daemon told to stop is gone within 5 s; the hard exit fires with half a second to spare. */
export const DAEMON_EXIT_DEADLINE_MS = 4_500;

/** Each service (outbox, presence…) gets this long to stop, so one that hangs cannot eat the exit deadline. */
export const SERVICE_STOP_MS = 1_000;

/** A live pid whose control socket does not answer may be a daemon still starting: wait this long for it. */
export const PIDFILE_STARTUP_WAIT_MS = 1_500;

/** A control socket that does not accept within this long counts as no daemon (a local socket answers in µs). */
export const DAEMON_PROBE_MS = 1_000;

/** A control call may run a whole network operation (dials, a send with its timeouts): bounded well above those. */
export const CONTROL_CALL_TIMEOUT_MS = 120_000;

/** A control connection that has not sent its request line within this long is closed: it holds one of the 64 slots. */
export const CONTROL_REQUEST_WAIT_MS = 10_000;

/** The library closes a control connection idle this long: well before the daemon's CONTROL_REQUEST_WAIT_MS. */
export const CONTROL_POOL_IDLE_MS = 3_000;

/** `daemon stop` waits this long for the process to exit: twice the daemon's own 5 s deadline. */
export const DAEMON_STOP_WAIT_MS = 10_000;

/** …checking its pid this often (cheap: a signal 0). */
export const DAEMON_STOP_POLL_MS = 50;

/** Housekeeping (inbox and peer pruning) runs hourly: retention is in days, an hour's delay changes nothing. */
export const HOUSEKEEPING_INTERVAL_MS = 3_600_000;

// ---- Handshakes and connections ----

/**
 * A handshake refused without an Error frame of ours (the peer's own refusal, or no control stream
 * yet) is closed this long after: time for a first 1-RTT packet, without which the close cannot
 * carry an application code (docs/transport.md, traps in the quiche binding).
 */
export const REFUSAL_FLUSH_MS = 20;

/**
 * After an Error frame that ends a handshake, how long it gets to reach the peer before the
 * connection is closed: quiche drops stream data not yet sent once close() is called, and a
 * fixed 20 ms lost the Error whenever a turn of a busy daemon took longer (issue 16: 13 of 52
 * refusals under the stress fuzzer). The wait ends early when the peer closes first — an Atlas
 * peer does on reading the Error — so only a peer that ignores it holds the connection this long.
 */
export const REFUSAL_LINGER_MS = 200;

/** Writing that Error frame is bounded: a peer that does not read must not hold the refusal up. */
export const REFUSAL_WRITE_MS = 200;

/** A stream broke mid-handshake: wait this long for the connection's close code, which says why. */
export const CLOSE_REASON_WAIT_MS = 200;

/** Closing the endpoint: its CONNECTION_CLOSE packets get this long to leave before the socket closes. */
export const ENDPOINT_CLOSE_GRACE_MS = 300;

/**
 * A connection finds new peer streams by probing the next stream ID, and walks quiche's full
 * readable list (~10 µs) only when nothing else is pending; a stream it cannot find that way (the
 * peer skipped an ID, or opened it out of order) while other streams sit unread is found at the
 * latest this long after (src/transport/connection.ts, dispatchReadable).
 */
export const WALK_BACKSTOP_MS = 20;

/**
 * Writes made during one turn normally leave together at its end; a turn that has been busy
 * longer than this (answering a batch of requests) sends what it has written so far at once, so
 * the peer works on the first answers while the rest are made (src/transport/connection.ts,
 * markWritten). 25 µs measured best of 0.01–0.1 ms with a stream per request (bench/RESULTS.md,
 * "Issue 17 levers", item 8). A longer slice delays a lone message in a daemon's turn (its
 * enqueue → stored p50 +0.6–1.2 ms at 0.1 ms: item 14).
 */
export const BURST_SLICE_MS = 0.025;

/**
 * The slice for writes on a pipe (docs/protocol.md#pipelined-requests), whose answers can share a
 * packet: 0.1 ms measured best of 0.025–0.15 ms (item 14: 8 in flight +9 to +33 % over 0.025).
 */
export const PIPE_BURST_SLICE_MS = 0.1;

/**
 * Busy polling (`transport.busy_poll_us`, docs/transport.md "Busy polling"): a connection whose
 * replies have been coming within this long — a peer on the same host or network — asks its
 * socket to stay awake for the next one after each send. Farther peers never cost a spin.
 */
export const BUSY_POLL_NEAR_MS = 1;
/** Weight of the newest sample in a connection's reply-time average (1/4: a few exchanges adapt it). */
export const REPLY_TIME_WEIGHT = 0.25;

/**
 * A connection closed by a CONNECTION_CLOSE (ours or the peer's) keeps its connection IDs this
 * long, and packets for them are dropped without a stateless reset (src/transport/endpoint.ts):
 * both ends had just dropped such a connection, and each answered the other's last packet — then
 * each other's resets — with a reset one byte shorter, seven packets a close, during the next
 * connect. Longer than the closing period (3 PTO) of any path we keep; a peer that did not hear
 * the close still gets its reset after it.
 */
export const RETIRED_CID_MS = 5_000;

/** docs/protocol.md#handshake: `security.handshakes_per_ip_per_minute` counts over a sliding window of one minute. */
export const HANDSHAKE_IP_WINDOW_MS = 60_000;

// ---- Rate limits (docs/protocol.md#trust-rate-limits-and-bans) ----

/** `per_minute` and `bytes_per_minute` count over a sliding window of one minute. */
export const RATE_WINDOW_MS = 60_000;

/** Lazy sweeps from a rate check run at most this often, so the accepted path stays O(1). */
export const RATE_SWEEP_MS = 1_000;

/** A peer's counters outlive its last session this long, so reconnecting does not reset them. */
export const RATE_STATE_RETAIN_MS = 600_000;

// ---- Registrations with relays and bootstrap nodes ----

/** First retry after a failed registration, doubled each time: soon enough for a relay that restarts. */
export const REGISTER_RETRY_FIRST_MS = 1_000;

/** Relay presence retries back off to at most this (bootstrap ones to `bootstrap.register_interval`). */
export const RELAY_RETRY_MAX_MS = 30_000;

// ---- The TCP leg (docs/protocol.md#the-tcp-leg) ----

/** With `transport.relay_transport = "auto"`: no UDP answer from a relay or bootstrap node within this → TLS on TCP. */
export const UDP_ANSWER_WAIT_MS = 3_000;

/** While a relay is reached over TCP, UDP is tried again this often; when it answers, presence moves back to QUIC. */
export const UDP_PROBE_INTERVAL_MS = 30_000;

/** A TLS connection to a TCP leg must be up within this (a TCP SYN retransmits after 1 s, then 3 s). */
export const TCP_TLS_CONNECT_MS = 5_000;

// ---- Hole punching (docs/protocol.md, "Hole punching") ----
// Both ends must roughly agree on these, so they are not config keys (`transport.hole_punch` is).

/** Attempts after a relayed session is up, in ms from its start (0, 2 and 8 s: DCUtR-like). */
export const PUNCH_ATTEMPTS_MS = [0, 2_000, 8_000] as const;

/**
 * When each side sends its burst of punch packets, in ms from the agreed moment. Dense at first
 * (both NATs open within a round trip of each other), then sparser to cover a late peer or a lost
 * packet; about 2 s in all, bounded.
 */
export const PUNCH_SCHEDULE_MS = [0, 50, 100, 200, 350, 500, 750, 1_000, 1_500, 2_000] as const;

/** After the last burst, how long an answer may still arrive (a slow path's round trip). */
export const PUNCH_LAST_WAIT_MS = 500;

/** A relayed session stays this long after the direct one replaced it, for what is in flight. */
export const RELAY_GRACE_MS = 5_000;

/** A hole-punched path is checked this often with a Ping (keeps the NAT mappings open too). */
export const PUNCHED_PROBE_INTERVAL_MS = 2_000;

/** After a direct path died, the next punching attempts wait this long (the NAT just dropped us). */
export const PUNCH_RETRY_AFTER_LOSS_MS = 30_000;

// ---- STUN, store, CLI ----

/** RFC 5389 §7.2.1: a Binding request's initial RTO, doubled on each retransmission. */
export const STUN_INITIAL_RTO_MS = 100;

/** SQLite busy timeout: a CLI's write waits this long for the daemon's transaction (they are ms long). */
export const BUSY_TIMEOUT_MS = 5_000;

/**
 * How long session bookkeeping rows (peer merge + session open/close) wait to be committed
 * together (src/store/batch-writer.ts). libSQL runs statements synchronously on the event loop:
 * committed at once, each handshake's rows held the loop ~0.5 ms while the next handshake's
 * packets waited; gathered for 25 ms, a burst of handshakes pays for one commit, after them.
 */
export const SESSION_ROWS_LINGER_MS = 25;

/**
 * Deliveries sent at once over a live session (the library's sends) are recorded in batches this
 * often: a commit (fsync) per message would stall the daemon between a send and the reply to it.
 */
export const DELIVERY_FLUSH_MS = 100;

/** `net request` waits this long for the reply unless `--timeout` says otherwise. */
export const REQUEST_TIMEOUT_MS = 30_000;

/** The Farcaster sign-in spinner's frame time (a terminal animation, nothing waits on it). */
export const SPINNER_FRAME_MS = 120;

/** A Farcaster hub request (custody address, username) gets this long: a new session's trust level waits on it. */
export const HUB_REQUEST_TIMEOUT_MS = 5_000;

/** The Farcaster relay's first request gets at least this long, even when little of `--timeout-secs` is left. */
export const AUTH_FIRST_REQUEST_MIN_MS = 10_000;

// ---- sessions (docs/protocol.md "Frames and streams") ----

/**
 * After a malformed control frame, how long the Error frame (or Disconnect) gets to reach the
 * peer before the connection is closed: quiche discards stream data not yet sent once close() is
 * called. Long enough for a loopback or LAN peer to acknowledge it, or for one retransmission;
 * on a slower path the CONNECTION_CLOSE still carries the code and the reason. The wait ends
 * early when the peer closes first (an Atlas peer does, on reading the Error and FIN).
 */
export const PROTOCOL_ERROR_LINGER_MS = 200;

/**
 * A request waiting for its response probes the peer once nothing has been heard from it (no
 * control frame, no response) for this long: a peer that crashed sends no CONNECTION_CLOSE, and
 * without a probe the request would only fail at `transport.request_timeout` (10 s).
 */
export const LIVENESS_QUIET_MS = 1_000;

/**
 * The probe's Pong deadline (or 4 × the session's last RTT, if longer). Pings are answered by the
 * peer's control loop, never behind a slow request handler, so a missing Pong means the peer (or
 * the path) is gone: the session is closed and the caller dials afresh.
 */
export const LIVENESS_PROBE_MS = 1_000;

/**
 * A requester that ended its pipe (FIN after its last answer) waits this long for the responder's
 * FIN before it resets the stream: the responder sends it at once on reading ours, so this only
 * bounds how long a misbehaving peer keeps one of our streams (docs/protocol.md#pipelined-requests).
 */
export const PIPE_END_WAIT_MS = 10_000;

/**
 * A peer's Error frames on the control stream are logged at most PEER_ERROR_LOG_BURST times per
 * this window and session (then one line says how many were not): they are not rate limited, and
 * one line each let a peer make the daemon write ~100 bytes of log per 25-byte frame, 2–5 MB/s
 * (issue 16, stress floods phase).
 */
export const PEER_ERROR_LOG_WINDOW_MS = 60_000;
export const PEER_ERROR_LOG_BURST = 5;

/** A Disconnect frame gets this long to be accepted by quiche, and the close this long to finish. */
export const DISCONNECT_WRITE_MS = 500;

/** Pause between writing Disconnect and CONNECTION_CLOSE, so the frame leaves first. */
export const DISCONNECT_FLUSH_MS = 10;

/** An outbox outcome whose write failed is retried once after this pause (a busy database). */
export const OUTCOME_RETRY_MS = 200;

/** After an Error 4001 the outbox waits at least this long (capped by outbox.backoff_max): retrying sooner would likely be refused again, and three refusals ban us. */
export const RATE_LIMITED_RETRY_MIN_S = 60;

// ---- Devnet (atlas devnet, issue 14) ----

/** `devnet up` is ready within 10 s (issue 14): every node started and registered, or it fails and stops them. */
export const DEVNET_READY_MS = 10_000;

/** `devnet down` waits this long for its SIGTERMed nodes (each exits within 5 s, docs/architecture.md#daemon), then SIGKILLs. */
export const DEVNET_STOP_MS = 6_000;

/** How often devnet checks a log file, a registry or a pid while it waits. */
export const DEVNET_POLL_MS = 50;

// ---- netcheck (issue 14) ----

/**
 * Every probe of `atlas netcheck` (STUN, relay and bootstrap dials and Pings, all at once) ends
 * within this; with start-up and shutdown the command stays under the 3 s the issue asks.
 */
export const NETCHECK_BUDGET_MS = 2_000;

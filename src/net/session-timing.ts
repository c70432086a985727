/**
 * Session timings that are protocol behaviour rather than operator settings, so constants and
 * not config keys (docs/protocol.md "Frames and streams"; docs/decisions.md, 2026-12-02).
 */

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

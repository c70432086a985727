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

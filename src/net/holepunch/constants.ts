/**
 * Hole punching's fixed bounds (docs/protocol.md, "Hole punching"; docs/decisions.md). Its timings
 * are in config/durations.ts with the other fixed durations; the switch an operator may want is a
 * config key (`transport.hole_punch`).
 */

/** Candidate addresses announced per side (STUN address, bind addresses, observed ones). */
export const MAX_PUNCH_CANDIDATES = 8;

/** Missed probes after which a hole-punched path is declared dead and traffic goes back to a relay. */
export const PUNCHED_PROBE_MISSES = 2;

/** Peers whose punching state (status, expected punches, lost paths) is kept; the oldest go first. */
export const MAX_TRACKED_PEERS = 1_024;

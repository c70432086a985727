/**
 * Hole punching's fixed timings (docs/protocol.md, "Hole punching"; docs/decisions.md). The ones
 * an operator may want to change are config keys (`transport.hole_punch`); these are protocol
 * timings that both ends must roughly agree on, so they are constants.
 */

/** Attempts after a relayed session is up, in ms from its start (0, 2 and 8 s: DCUtR-like). */
export const PUNCH_ATTEMPTS_MS = [0, 2_000, 8_000] as const;

/**
 * When each side sends its burst of punch packets, in ms from the agreed moment. Dense at first
 * (both NATs open within a round trip of each other), then sparser to cover a late peer or a lost
 * packet; about 2 s in all, bounded.
 */
export const PUNCH_SCHEDULE_MS = [0, 50, 100, 200, 350, 500, 750, 1_000, 1_500, 2_000] as const;

/** Candidate addresses announced per side (STUN address, bind addresses, observed ones). */
export const MAX_PUNCH_CANDIDATES = 8;

/** A relayed session stays this long after the direct one replaced it, for what is in flight. */
export const RELAY_GRACE_MS = 5_000;

/** A hole-punched path is checked this often with a Ping (keeps the NAT mappings open too). */
export const PUNCHED_PROBE_INTERVAL_MS = 2_000;

/** Missed probes after which a hole-punched path is declared dead and traffic goes back to a relay. */
export const PUNCHED_PROBE_MISSES = 2;

/** After a direct path died, the next punching attempts wait this long (the NAT just dropped us). */
export const PUNCH_RETRY_AFTER_LOSS_MS = 30_000;

/** Peers whose punching state (status, expected punches, lost paths) is kept; the oldest go first. */
export const MAX_TRACKED_PEERS = 1_024;

/**
 * RelayError codes (docs/protocol.md#messages; 8 is an Atlas extension of 1.2, docs/protocol.md "Relay"): each
 * code's number, the short text the dialler shows, and when a relay (or the target) sends it.
 * docs/errors.md is generated from this table.
 */

export const RELAY_ERRORS = {
  TARGET_NOT_REGISTERED: {
    code: 1,
    text: "target not registered",
    when: "no live registration for target_id, or its connection closed while pairing",
  },
  AT_CAPACITY: { code: 2, text: "relay at capacity", when: "`transport.relay_capacity` pipes open" },
  SOURCE_MISMATCH: {
    code: 3,
    text: "source mismatch",
    when: "source_id (or an announce's node_id) is not the connection's node ID",
  },
  PAIRING_TIMEOUT: {
    code: 4,
    text: "pairing timeout",
    when: "the target did not answer within `transport.relay_pairing_timeout`",
  },
  TARGET_REFUSED: {
    code: 5,
    text: "target refused",
    when: "the target answered RelayError or Error (banned source, not its relay, …)",
  },
  DATAGRAMS_UNAVAILABLE: {
    code: 6,
    text: "datagrams unavailable or too small",
    when: "a connection cannot carry a 1204-byte DATAGRAM",
  },
  PER_SOURCE_LIMIT: {
    code: 7,
    text: "per-source pipe limit",
    when: "the dialler's node, its address, or its address's share of the target is full",
  },
  TARGET_BUSY: {
    code: 8,
    text: "target busy",
    when: "the target has `transport.relay_pipes_per_target` pipes, or no stream left on its connection",
  },
} as const satisfies Record<string, { code: number; text: string; when: string }>;

export type RelayErrorCodeName = keyof typeof RELAY_ERRORS;

/** Name → number of each RelayError code, e.g. `RelayErrorCode.TARGET_BUSY` is 8. */
export const RelayErrorCode = Object.fromEntries(
  Object.entries(RELAY_ERRORS).map(([name, row]) => [name, row.code]),
) as { readonly [K in RelayErrorCodeName]: (typeof RELAY_ERRORS)[K]["code"] };

/** The short text of a RelayError code; "error" for a code this version does not know. */
export function relayErrorText(code: number): string {
  return Object.values(RELAY_ERRORS).find((r) => r.code === code)?.text ?? "error";
}

/**
 * How the dialler takes a RelayError. A refusal of us — a source mismatch, or the target refusing a
 * banned source — is a rejection (exit 4; the outbox stops retrying); anything else, including a
 * target that refused for another reason (its registration racing a relay restart), only means
 * this relay could not reach it now (exit 3; retried).
 */
export function relayErrorName(code: number, reason: string): "ERR_REJECTED" | "ERR_UNREACHABLE" {
  const refusedUs = code === RelayErrorCode.SOURCE_MISMATCH ||
    (code === RelayErrorCode.TARGET_REFUSED && /\bbanned\b/.test(reason));
  return refusedUs ? "ERR_REJECTED" : "ERR_UNREACHABLE";
}

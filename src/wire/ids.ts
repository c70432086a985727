/**
 * The two identifier formats of the wire (docs/protocol.md#messages): node IDs (`atlas_` + 64 lowercase hex digits,
 * the SHA-256 of the ed25519 public key) and message IDs (`msg_` + a lowercase UUID). Syntax only:
 * whether a node ID matches a key is the identity module's business.
 */

const NODE_ID_RE = /^atlas_[0-9a-f]{64}$/;
const MSG_ID_RE = /^msg_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `atlas_` + 64 lowercase hex digits. */
export function isNodeId(s: unknown): s is string {
  return typeof s === "string" && s.length === 70 && NODE_ID_RE.test(s);
}

/** `msg_` + a UUID (any version) in lowercase hex with dashes. */
export function isMsgId(s: unknown): s is string {
  return typeof s === "string" && s.length === 40 && MSG_ID_RE.test(s);
}

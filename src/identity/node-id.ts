/**
 * Node IDs (docs/protocol.md#nodes-and-identities): `atlas_` + lowercase hex SHA-256 of the raw 32-byte ed25519 public key.
 * Commands accept the full ID or any unique prefix of at least 8 hex characters.
 */
import { sha256 } from "@noble/hashes/sha2.js";
import { bytesToHex } from "@noble/hashes/utils.js";
import { AtlasError } from "../errors.ts";

export const NODE_ID_PREFIX = "atlas_";
/** Shortest prefix a user may type: 8 hex = 32 bits, enough to be unique among known peers. */
export const MIN_PREFIX_HEX = 8;

const NODE_ID_RE = /^atlas_[0-9a-f]{64}$/;
const PREFIX_RE = /^[0-9a-f]{8,64}$/;

export function nodeIdFromPublicKey(pk: Uint8Array): string {
  if (pk.length !== 32) throw new AtlasError("ERR_INVALID_IDENTITY", `public key must be 32 bytes, got ${pk.length}`);
  return NODE_ID_PREFIX + bytesToHex(sha256(pk));
}

export function isNodeId(s: string): boolean {
  return typeof s === "string" && NODE_ID_RE.test(s);
}

/** Display form for humans; never parse it back (the ellipsis makes that obvious). */
export function shortNodeId(id: string): string {
  const hex = id.startsWith(NODE_ID_PREFIX) ? id.slice(NODE_ID_PREFIX.length) : id;
  return NODE_ID_PREFIX + hex.slice(0, 12) + "…";
}

/** "atlas_ABCD1234…" or "abcd1234…" (case-insensitive, >= 8 hex) -> lowercase hex without prefix. */
export function parseIdPrefix(input: string): string | null {
  if (typeof input !== "string") return null;
  let s = input.trim().toLowerCase();
  if (s.startsWith(NODE_ID_PREFIX)) s = s.slice(NODE_ID_PREFIX.length);
  return PREFIX_RE.test(s) ? s : null;
}

/** Resolve a user-typed ID or prefix against known full IDs; exactly one must match. */
export function resolveNodeIdPrefix(input: string, known: Iterable<string>): string {
  const hex = parseIdPrefix(input);
  if (hex === null) {
    throw new AtlasError(
      "ERR_USAGE",
      `invalid node ID ${JSON.stringify(input)}: expected atlas_ followed by at least ${MIN_PREFIX_HEX} hex characters`,
    );
  }
  const want = NODE_ID_PREFIX + hex;
  const matches = new Set<string>();
  for (const id of known) if (id.startsWith(want) && isNodeId(id)) matches.add(id);
  if (matches.size === 0) throw new AtlasError("ERR_USAGE", `no known peer matches ${input}`);
  if (matches.size > 1) {
    const list = [...matches].sort().join(", ");
    throw new AtlasError("ERR_USAGE", `ambiguous node ID prefix ${input}: matches ${list}`);
  }
  return [...matches][0]!;
}

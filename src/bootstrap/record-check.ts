/**
 * The checks on a PeerRecord received from a bootstrap node, which is trusted for nothing: the
 * public key must hash to the node ID, and a signed record, when present, must verify under that
 * key. Only then may what it says reach the peer table or the user.
 */
import { nodeIdFromPublicKey } from "../identity/node-id.ts";
import type { PeerRecord } from "../wire/messages.ts";
import { type RecordData, tryVerifyRecord } from "./record.ts";

/** A PeerRecord as received, with its checked signed record (null when it had none). */
export interface CheckedPeer {
  peer: PeerRecord;
  record: RecordData | null;
}

/**
 * Check one PeerRecord: its public key must hash to its node ID, and a signed record, when
 * present, must verify (else the whole entry is refused: whoever altered the record may have
 * altered the rest). Returns null for a refused entry.
 */
export function checkPeerRecord(p: PeerRecord): CheckedPeer | null {
  try {
    if (nodeIdFromPublicKey(p.public_key) !== p.node_id) return null;
  } catch {
    return null;
  }
  if (!p.record) return { peer: p, record: null };
  const rec = tryVerifyRecord(p.node_id, p.record);
  if (!rec) return null;
  if (rec.public_key.length !== p.public_key.length || rec.public_key.some((b, i) => b !== p.public_key[i])) {
    return null;
  }
  return { peer: p, record: rec };
}

/**
 * Merging a discovered peer into the store's `peers` table (docs/architecture.md#peer-store, docs/protocol.md#bootstrap-and-discovery): what a bootstrap answer
 * may set, and what it must leave alone because this node learnt it first-hand.
 */
import type { PeerRow, PeerUpdate, Store } from "../store/index.ts";
import { unixNow } from "../util/time.ts";
import type { CheckedPeer } from "./record-check.ts";

/**
 * Upsert one discovered peer into `peers` (docs/architecture.md#peer-store, docs/protocol.md#bootstrap-and-discovery). Trust is never set here: a new row
 * starts `unknown`, a known one keeps its level.
 * - A verified signed record newer than any this node has seen (peers.record_seq) is the node's
 *   own latest word: it sets address, public address, relays, name and skills, and record_seq.
 * - Anything else — no record, or a replayed/repeated one — only fills fields this node does not
 *   know yet; it never overwrites an address (or a name) learnt in a handshake.
 * - The bootstrap's operator username is not stored: peers.operator_username holds only
 *   usernames this node verified itself.
 */
export async function absorbPeer(store: Store, c: CheckedPeer, now: number = unixNow()): Promise<void> {
  const p = c.peer;
  const row: PeerRow | null = await store.peers.get(p.node_id);
  const rec = c.record;
  const fresh = rec !== null && (row?.record_seq === null || row?.record_seq === undefined || rec.seq > row.record_seq);
  const u: PeerUpdate = { node_id: p.node_id, public_key: p.public_key, last_seen: Math.min(p.last_seen, now) };
  const src = rec ??
    { address: p.address, public_address: p.public_address, relays: p.relays, name: p.name, skills: p.skills };
  if (fresh) {
    u.address = src.address;
    u.public_address = src.public_address;
    u.relays = src.relays;
    u.name = src.name;
    u.skills = src.skills;
    u.record_seq = rec.seq;
  } else {
    if (!row?.address) u.address = src.address;
    if (!row?.public_address && !row?.address) u.public_address = src.public_address;
    if (!row?.relays.length) u.relays = src.relays;
    if (!row?.name) u.name = src.name;
    if (!row?.skills.length) u.skills = src.skills;
  }
  await store.peers.upsert(u, now);
}

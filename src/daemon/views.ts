/**
 * Store rows and service reports as the shapes of src/daemon/shapes.ts: the one place where a
 * column name (`trust_level`, `operator_username`) becomes the shared field name (`trust`,
 * `operator`), so every command prints the same object the same way.
 */
import type { DiscoverReport } from "../bootstrap/discover.ts";
import type { PeerRow } from "../store/index.ts";
import type { DeliveryView, DiscoverView, OperatorView, PeerView } from "./shapes.ts";

/** The latest session's path with a peer, as the store's `latestPaths` gives it. */
export interface LatestPath {
  path: "direct" | "relay";
  relay: string | null;
  punched: boolean;
}

/** A stored operator: the store keeps only bindings this node verified (docs/protocol.md#operator-binding). */
function storedOperator(username: string | null, fid: number | null): OperatorView | null {
  return username ? { username, fid, status: "verified", reason: null } : null;
}

export function peerView(r: PeerRow, last: LatestPath | undefined, now: number): PeerView {
  return {
    node_id: r.node_id,
    public_key: r.public_key ? Buffer.from(r.public_key).toString("hex") : null,
    address: r.address,
    public_address: r.public_address,
    relays: r.relays,
    name: r.name,
    bio: r.bio,
    skills: r.skills,
    operator: storedOperator(r.operator_username, r.operator_fid),
    trust: r.trust_level,
    first_seen: r.first_seen,
    last_seen: r.last_seen,
    last_failure: r.last_failure,
    last_failure_at: r.last_failure_at,
    ban_until: r.ban_until,
    banned: r.ban_until !== null && r.ban_until > now,
    violations: r.violations,
    record_seq: r.record_seq,
    last_path: last?.path ?? null,
    last_relay: last?.relay ?? null,
    last_punched: last?.punched ?? false,
  };
}

/** `net discover`'s report with the operator as an object and every field present. */
export function discoverView(r: DiscoverReport): DiscoverView {
  return {
    peers: r.peers.map(({ operator_username, ...p }) => ({
      ...p,
      operator: operator_username ? { username: operator_username, fid: null, status: "verified", reason: null } : null,
    })),
    bootstraps: r.bootstraps.map((b) => ({
      bootstrap: b.bootstrap,
      ok: b.ok,
      peers: b.peers ?? null,
      rejected: b.rejected ?? null,
      error: b.error ?? null,
    })),
  };
}

/** A message queued for the outbox: the shape of a delivered one, the delivery fields null. */
export function queuedView(msgId: string, target: string): DeliveryView {
  return {
    msg_id: msgId,
    target,
    queued: true,
    node_id: null,
    name: null,
    trust: null,
    path: null,
    relay: null,
    ack: null,
  };
}

/**
 * `net discover` (docs/protocol.md#bootstrap-and-discovery): ask every configured bootstrap node at once, check each PeerRecord,
 * merge the answers per node ID (the newest verified record wins), upsert the result into `peers`
 * and report per bootstrap node what it answered.
 */
import { AtlasError, isAtlasError } from "../errors.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { ControlHandler } from "../util/service.ts";
import { unixNow } from "../util/time.ts";
import type { BootstrapDiscover } from "../wire/messages.ts";
import { expectType, withBootstrap } from "./borrow-session.ts";
import { absorbPeer } from "./merge.ts";
import { type CheckedPeer, checkPeerRecord } from "./record-check.ts";
import { MAX_DISCOVER_LIMIT, normalizeOperator } from "./registry.ts";
import { bootstrapTargets, noBootstrapError } from "./targets.ts";

export type { ControlHandler } from "../util/service.ts";

export interface DiscoverQuery {
  skill?: string;
  /** Operator username, `@` optional. */
  operator?: string;
  limit?: number;
  /** Bootstrap nodes to ask besides network.bootstrap (`--bootstrap`). */
  bootstrap?: string[];
}

export interface DiscoveredPeer {
  node_id: string;
  name: string;
  address: string;
  public_address: string | null;
  relays: string[];
  skills: string[];
  /** The username the bootstrap node verified (docs/protocol.md#operator-binding); shown, not stored as this node's verdict. */
  operator_username: string | null;
  last_seen: number;
  /** `verified`: a signed record checked out and its content is shown; `none`: bootstrap's word only. */
  record: "verified" | "none";
  record_seq: number | null;
  /** The bootstrap nodes that returned it. */
  bootstraps: string[];
}

export interface BootstrapAnswer {
  bootstrap: string;
  ok: boolean;
  peers?: number;
  /** PeerRecords refused: key not matching the node ID, or a signed record that does not verify. */
  rejected?: number;
  error?: { code: string; message: string };
}

export interface DiscoverReport {
  peers: DiscoveredPeer[];
  bootstraps: BootstrapAnswer[];
}

function discoveredView(c: CheckedPeer, from: string): DiscoveredPeer {
  const p = c.peer;
  const src = c.record ?? p;
  return {
    node_id: p.node_id,
    name: src.name,
    address: src.address,
    public_address: src.public_address ?? null,
    relays: [...src.relays],
    skills: [...src.skills],
    operator_username: p.operator_username ?? null,
    last_seen: p.last_seen,
    record: c.record ? "verified" : "none",
    record_seq: c.record?.seq ?? null,
    bootstraps: [from],
  };
}

/** Of two answers about one node: the higher verified seq wins, then the later last_seen. */
function better(a: CheckedPeer, b: CheckedPeer): boolean {
  const sa = a.record?.seq ?? -1;
  const sb = b.record?.seq ?? -1;
  return sa !== sb ? sa > sb : a.peer.last_seen > b.peer.last_seen;
}

/**
 * `net discover` (docs/protocol.md#bootstrap-and-discovery): BootstrapDiscover to every configured bootstrap node (and
 * `q.bootstrap`), in parallel; answers merged per node ID, upserted into `peers`, returned newest
 * first. Fails only when no bootstrap node answered.
 */
export async function discover(node: AtlasNode, q: DiscoverQuery = {}): Promise<DiscoverReport> {
  const targets = bootstrapTargets(node.config, q.bootstrap);
  if (targets.length === 0) throw noBootstrapError();
  const req: BootstrapDiscover = { type: "BootstrapDiscover" };
  const skill = q.skill?.trim().toLowerCase();
  if (skill) req.skill = skill;
  const op = q.operator !== undefined ? normalizeOperator(q.operator) : undefined;
  if (op) req.operator = op;
  if (q.limit !== undefined) req.limit = Math.max(1, Math.min(MAX_DISCOVER_LIMIT, Math.trunc(q.limit)));
  const timeoutMs = node.config.transport.request_timeout * 1000;

  const merged = new Map<string, { best: CheckedPeer; from: Set<string>; firstFrom: string }>();
  const answers = await Promise.all(
    targets.map(async (b): Promise<BootstrapAnswer> => {
      try {
        const res = await withBootstrap(
          node,
          b,
          async (s) => expectType(await s.request(req, timeoutMs), "BootstrapPeers", "BootstrapDiscover"),
        );
        let rejected = 0;
        for (const p of res.peers) {
          if (p.node_id === node.nodeId) continue;
          const c = checkPeerRecord(p);
          if (!c) {
            rejected++;
            node.log.info("refused a discovered peer record", { bootstrap: b, peer: shortNodeId(p.node_id) });
            continue;
          }
          const m = merged.get(p.node_id);
          if (!m) merged.set(p.node_id, { best: c, from: new Set([b]), firstFrom: b });
          else {
            m.from.add(b);
            if (better(c, m.best)) m.best = c;
          }
        }
        const a: BootstrapAnswer = { bootstrap: b, ok: true, peers: res.peers.length };
        if (rejected > 0) a.rejected = rejected;
        return a;
      } catch (e) {
        const err = isAtlasError(e) ? e : new AtlasError("ERR_INTERNAL", (e as Error).message);
        node.log.info("bootstrap node did not answer", { bootstrap: b, error: err.message });
        return { bootstrap: b, ok: false, error: { code: err.code, message: err.message } };
      }
    }),
  );
  if (!answers.some((a) => a.ok)) {
    const first = answers[0]!.error!;
    const detail = answers.map((a) => `${a.bootstrap}: ${a.error!.message}`).join("; ");
    throw new AtlasError(first.code as AtlasError["code"], `no bootstrap node answered (${detail})`);
  }
  const now = unixNow();
  const peers: DiscoveredPeer[] = [];
  for (const m of merged.values()) {
    await absorbPeer(node.store, m.best, now);
    peers.push({ ...discoveredView(m.best, m.firstFrom), bootstraps: [...m.from] });
  }
  peers.sort((a, b) => b.last_seen - a.last_seen);
  return { peers, bootstraps: answers };
}

/** Control-socket arguments of `net.discover` → a DiscoverQuery (anything malformed is dropped). */
export function discoverArgs(a: Record<string, unknown>): DiscoverQuery {
  const q: DiscoverQuery = {};
  if (typeof a.skill === "string") q.skill = a.skill;
  if (typeof a.operator === "string") q.operator = a.operator;
  if (typeof a.limit === "number" && Number.isFinite(a.limit)) q.limit = a.limit;
  if (Array.isArray(a.bootstrap)) q.bootstrap = a.bootstrap.filter((x): x is string => typeof x === "string");
  return q;
}

/** The daemon's `net.discover` control op. */
export function discoverHandler(node: AtlasNode): ControlHandler {
  return (a) => discover(node, discoverArgs(a));
}

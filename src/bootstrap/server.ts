/**
 * The bootstrap node (docs/architecture.md, docs/protocol.md#bootstrap-and-discovery): an ordinary Atlas node that answers BootstrapRegister and
 * BootstrapDiscover from an in-memory Registry. `atlas bootstrap` runs it as a daemon (same home
 * layout, pid file, control socket, shutdown; src/daemon/roles.ts), without inbox or outbox.
 */
import { isAtlasError, ProtocolCode } from "../errors.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { DaemonPart } from "../util/service.ts";
import { MAX_PAYLOAD, type PeerRecord, type WireMessage } from "../wire/messages.ts";
import { Registry, type RegistryOptions } from "./registry.ts";
import { discoverArgs } from "./discover.ts";

/** Room kept free in a BootstrapPeers payload for its envelope. */
const PEERS_HEADROOM = 64 * 1024;

/** A generous upper bound of one PeerRecord's MessagePack size. */
function estimateBytes(p: PeerRecord): number {
  let n = 160 + 32 + p.node_id.length + p.name.length * 3 + p.address.length + (p.public_address?.length ?? 0) +
    (p.operator_username?.length ?? 0) * 3;
  for (const r of p.relays) n += r.length + 5;
  for (const s of p.skills) n += s.length * 3 + 5;
  if (p.record) n += p.record.data.length + p.record.signature.length + 32;
  return n;
}

/** The longest prefix of `peers` that fits in one frame. */
function fitPayload(peers: PeerRecord[]): PeerRecord[] {
  let total = 0;
  const budget = MAX_PAYLOAD - PEERS_HEADROOM;
  for (let i = 0; i < peers.length; i++) {
    total += estimateBytes(peers[i]!);
    if (total > budget) return peers.slice(0, i);
  }
  return peers;
}

function errorFrame(e: unknown): WireMessage {
  if (isAtlasError(e) && e.protocolCode !== undefined) {
    return { type: "Error", code: e.protocolCode, message: e.message };
  }
  return { type: "Error", code: ProtocolCode.ERR_INTERNAL, message: "internal error" };
}

/**
 * Serve the registry on `node`: BootstrapRegister → MessageAck `registered` (or Error 2003 /
 * 4001), BootstrapDiscover → BootstrapPeers. Returns the registry.
 */
export function serveBootstrap(node: AtlasNode, o: Partial<RegistryOptions> = {}): Registry {
  const registry = new Registry({
    capacity: node.config.bootstrap.capacity,
    staleAfter: node.config.bootstrap.stale_after,
    ...o,
  });
  node.handle("BootstrapRegister", (session, req) => {
    if (req.type !== "BootstrapRegister") return Promise.resolve(null);
    try {
      const known = registry.get(req.node_id) !== undefined;
      const e = registry.register(
        { nodeId: session.nodeId, card: session.peer, remoteAddress: session.remoteAddress },
        req,
      );
      const fields = {
        peer: shortNodeId(e.node_id),
        name: e.name,
        address: e.address,
        observed: e.observed_address,
        signed: !!e.record,
        registry: registry.size,
      };
      node.metrics.inc("atlas_bootstrap_registrations_total", { result: known ? "renewed" : "new" });
      if (known) node.log.debug("registration renewed", fields);
      else node.log.info("peer registered", fields);
      return Promise.resolve({ type: "MessageAck", status: "registered" });
    } catch (e) {
      node.metrics.inc("atlas_bootstrap_registrations_total", { result: "refused" });
      node.log.info("registration refused", { peer: shortNodeId(session.nodeId), error: (e as Error).message });
      return Promise.resolve(errorFrame(e));
    }
  });
  node.handle("BootstrapDiscover", (session, req) => {
    if (req.type !== "BootstrapDiscover") return Promise.resolve(null);
    const peers = fitPayload(registry.discover(req, session.nodeId));
    node.metrics.inc("atlas_bootstrap_lookups_total");
    node.log.debug("discover answered", {
      peer: shortNodeId(session.nodeId),
      skill: req.skill,
      operator: req.operator,
      peers: peers.length,
    });
    return Promise.resolve({ type: "BootstrapPeers", peers });
  });
  node.metrics.observe("atlas_bootstrap_registered", () => [{ value: registry.size }]);
  node.metrics.inc("atlas_bootstrap_lookups_total", {}, 0);
  return registry;
}

/** What the bootstrap node's own control socket answers for `net discover` run in its home. */
function localDiscover(registry: Registry) {
  return (a: Record<string, unknown>) => {
    const q = discoverArgs(a);
    const peers = registry.discover({ skill: q.skill, operator: q.operator, limit: q.limit });
    return Promise.resolve({
      peers: peers.map((p) => {
        const e = registry.get(p.node_id)!;
        return {
          node_id: p.node_id,
          name: p.name,
          address: p.address,
          public_address: p.public_address ?? null,
          relays: p.relays,
          skills: p.skills,
          operator_username: p.operator_username ?? null,
          last_seen: p.last_seen,
          record: p.record ? "verified" : "none",
          record_seq: null,
          bootstraps: ["local"],
          observed_address: e.observed_address,
        };
      }),
      bootstraps: [{ bootstrap: "local", ok: true, peers: peers.length }],
    });
  };
}

/**
 * Offer the bootstrap registry on `node` (what `atlas bootstrap` runs, src/daemon/roles.ts): the
 * request handlers, STUN on its QUIC port, and `net.discover` and `bootstrap.status` on the control
 * socket. Returns the registry.
 */
export async function bootstrapPart(node: AtlasNode): Promise<DaemonPart> {
  const registry = serveBootstrap(node);
  (await import("../stun/server.ts")).serveStun(node.endpoint); // docs/protocol.md#stun: bootstrap nodes answer STUN on their QUIC port
  node.log.info("bootstrap registry ready", { capacity: registry.capacity, stale_after: registry.staleAfter });
  const status = { registered: registry.size, capacity: registry.capacity, stale_after: registry.staleAfter };
  return {
    name: "bootstrap registry",
    handlers: {
      "net.discover": localDiscover(registry),
      "bootstrap.status": () => Promise.resolve({ ...status, registered: registry.size }),
    },
  };
}

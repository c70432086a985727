/**
 * Sessions with relays, shared by presence (announce), dialling through a relay and the
 * accepting side: a relay named `host:port` or `atlas_<id>@host:port` (SPEC §11 `network.relays`,
 * or a peer's advertised home relays).
 */
import { AtlasError } from "../errors.ts";
import { isNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { formatAddr, resolveAddr, sameAddr, type SockAddr } from "../transport/addr.ts";

export interface RelayRef {
  nodeId?: string;
  addr: SockAddr;
  text: string;
}

export async function resolveRelay(text: string): Promise<RelayRef> {
  const t = text.trim();
  const at = t.indexOf("@");
  if (at > 0) {
    const nodeId = t.slice(0, at).toLowerCase();
    if (!isNodeId(nodeId)) throw new AtlasError("ERR_CONFIG", `invalid relay '${text}': expected host:port or atlas_<full node ID>@host:port`);
    return { nodeId, addr: await resolveAddr(t.slice(at + 1)), text: t };
  }
  return { addr: await resolveAddr(t), text: t };
}

/** A live session with the relay (by pinned ID, else by address), or a new one. */
export async function relaySession(node: AtlasNode, ref: RelayRef, signal?: AbortSignal): Promise<Session> {
  const live = ref.nodeId ? node.liveSession(ref.nodeId) : node.allSessions().find((s) => s.path === "direct" && s.direction === "outbound" && s.dialledAddr && sameAddr(s.dialledAddr, ref.addr));
  if (live) return live;
  return node.connectTo(ref.addr, { expectedNodeId: ref.nodeId, signal });
}

/** How sessions and outputs name a relay: `atlas_<id>@host:port` (the address it was reached at). */
export function relayLabel(s: Session, ref: RelayRef): string {
  return `${s.nodeId}@${formatAddr(ref.addr)}`;
}

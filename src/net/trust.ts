import { type Config, TCP_SCHEME } from "../config/defaults.ts";
import type { PeerCard } from "../handshake/handshake.ts";
import { parseAddr, sameAddr, type SockAddr } from "../transport/addr.ts";
import type { TrustLevel } from "../wire/messages.ts";
import type { PathKind } from "./session.ts";

/** A configured bootstrap/relay entry: `host:port` or `atlas_<id>@host:port`. */
export interface NodeRef {
  nodeId?: string;
  addr: SockAddr | null;
  text: string;
}

export function parseNodeRef(full: string): NodeRef {
  const text = full.startsWith(TCP_SCHEME) ? full.slice(TCP_SCHEME.length) : full; // docs/protocol.md#the-tcp-leg
  const at = text.indexOf("@");
  if (at > 0) return { nodeId: text.slice(0, at).toLowerCase(), addr: parseAddr(text.slice(at + 1)), text };
  return { addr: parseAddr(text), text };
}

function matches(refs: NodeRef[], peer: PeerCard, dialled?: SockAddr): boolean {
  return refs.some((r) => (r.nodeId ? r.nodeId === peer.nodeId : !!(dialled && r.addr && sameAddr(r.addr, dialled))));
}

/**
 * Trust level of a session, first match wins (docs/protocol.md#trust-rate-limits-and-bans): verified (operator binding — arrives
 * with the Farcaster work), bootstrap (configured bootstrap node, by pinned ID or by the address
 * it was dialled at), relay (configured relay, or the session came through a relay), unknown.
 */
export function trustLevelFor(
  cfg: Config,
  peer: PeerCard,
  ctx: { dialled?: SockAddr; path: PathKind; operatorVerified?: boolean },
): TrustLevel {
  if (ctx.operatorVerified) return "verified";
  if (matches(cfg.network.bootstrap.map(parseNodeRef), peer, ctx.dialled)) return "bootstrap";
  if (ctx.path === "relay" || matches(cfg.network.relays.map(parseNodeRef), peer, ctx.dialled)) return "relay";
  return "unknown";
}

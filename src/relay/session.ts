/**
 * Sessions with relays, shared by presence (announce), dialling through a relay and the
 * accepting side: a relay named `host:port` or `atlas_<id>@host:port` (SPEC §11 `network.relays`,
 * or a peer's advertised home relays).
 */
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { type ResolvedNodeRef, resolveNodeRef } from "../net/target.ts";
import { formatAddr } from "../transport/addr.ts";

export type RelayRef = ResolvedNodeRef;

export function resolveRelay(text: string): Promise<RelayRef> {
  return resolveNodeRef(text, "relay");
}

/** A live session with the relay (by pinned ID, else by address), or a new one. */
export function relaySession(node: AtlasNode, ref: RelayRef, signal?: AbortSignal): Promise<Session> {
  return Promise.resolve(node.liveSessionAt(ref) ?? node.connectTo(ref.addr, { expectedNodeId: ref.nodeId, signal }));
}

/** How sessions and outputs name a relay: `atlas_<id>@host:port` (the address it was reached at). */
export function relayLabel(s: Session, ref: RelayRef): string {
  return `${s.nodeId}@${formatAddr(ref.addr)}`;
}

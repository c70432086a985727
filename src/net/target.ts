import { TCP_SCHEME } from "../config/defaults.ts";
import { AtlasError } from "../errors.ts";
import { isNodeId, parseIdPrefix, resolveNodeIdPrefix } from "../identity/node-id.ts";
import type { Store } from "../store/index.ts";
import { parseAddr, resolveAddr, type SockAddr } from "../transport/addr.ts";

/**
 * What `dial` accepts (docs/protocol.md#dialing): a socket address, a node ID or unique prefix, or
 * `atlas_<id>@host:port` (dial that address and require that node ID).
 */
export type DialTarget =
  | { kind: "addr"; addr: SockAddr; text: string }
  | { kind: "id"; prefix: string; text: string }
  | { kind: "pinned"; nodeId: string; addr: SockAddr; text: string };

export function parseTarget(text: string): DialTarget {
  const t = text.trim();
  const at = t.indexOf("@");
  if (at > 0) {
    const id = t.slice(0, at).toLowerCase();
    const addr = parseAddr(t.slice(at + 1));
    if (!isNodeId(id)) {
      throw new AtlasError("ERR_USAGE", `invalid target '${text}': expected a full atlas_… node ID before '@'`);
    }
    if (!addr) throw new AtlasError("ERR_USAGE", `invalid target '${text}': expected host:port after '@'`);
    return { kind: "pinned", nodeId: id, addr, text: t };
  }
  const addr = parseAddr(t);
  if (addr) return { kind: "addr", addr, text: t };
  const prefix = parseIdPrefix(t);
  if (prefix) return { kind: "id", prefix, text: t };
  throw new AtlasError(
    "ERR_USAGE",
    `invalid target '${text}': expected host:port, [ipv6]:port, a node ID (or a prefix of at least 8 hex characters) or atlas_<id>@host:port`,
  );
}

/**
 * The node ID `text` names (docs/protocol.md#nodes-and-identities): a full ID, known or not, or a unique prefix (≥ 8 hex,
 * `atlas_` optional) of a known peer. Unknown, ambiguous or malformed → ERR_USAGE. `live`: the IDs
 * of the node's open sessions, known before their peer rows are committed (they linger,
 * SESSION_ROWS_LINGER_MS).
 */
export async function resolvePeerId(
  store: Pick<Store, "peers">,
  text: string,
  live: Iterable<string> = [],
): Promise<string> {
  const hex = parseIdPrefix(text);
  if (hex && isNodeId("atlas_" + hex)) return "atlas_" + hex;
  return resolveNodeIdPrefix(text, [...await store.peers.allIds(), ...live]);
}

/** A configured bootstrap node or relay, resolved: the node ID it pins (if any) and its address. */
export interface ResolvedNodeRef {
  nodeId?: string;
  addr: SockAddr;
  text: string;
  /** `tcp://…`: reached only over its TCP leg, at `addr` (docs/protocol.md#the-tcp-leg). */
  tcpOnly?: boolean;
}

/**
 * `host:port` or `atlas_<id>@host:port` (docs/protocol.md#relay, docs/protocol.md#bootstrap-and-discovery) → the node ID to require and the address
 * (DNS names resolved). `what` names the entry in errors: "bootstrap node", "relay".
 */
export async function resolveNodeRef(text: string, what: string): Promise<ResolvedNodeRef> {
  const trimmed = text.trim();
  const tcpOnly = trimmed.startsWith(TCP_SCHEME);
  if (tcpOnly) return { ...(await resolveNodeRef(trimmed.slice(TCP_SCHEME.length), what)), text: trimmed, tcpOnly };
  const t = trimmed;
  const at = t.indexOf("@");
  if (at > 0) {
    const nodeId = t.slice(0, at).toLowerCase();
    if (!isNodeId(nodeId)) {
      throw new AtlasError(
        "ERR_CONFIG",
        `invalid ${what} '${text}': expected host:port or atlas_<full node ID>@host:port`,
        { exit: 1 },
      );
    }
    return { nodeId, addr: await resolveAddr(t.slice(at + 1)), text: t };
  }
  return { addr: await resolveAddr(t), text: t };
}

import { AtlasError, isAtlasError } from "../errors.ts";
import type { FailureKind } from "../store/index.ts";
import { formatAddr, parseAddr, type SockAddr } from "../transport/addr.ts";
import type { AtlasNode } from "./node.ts";
import type { Session } from "./session.ts";
import { parseTarget, resolvePeerId } from "./target.ts";

export interface DialResult {
  session: Session;
  /** true when an existing live session was used (SPEC §7: no new dial). */
  reused: boolean;
}

/** Which `last_failure` kind an error of a dial attempt stands for (SPEC §7). */
export function failureKind(e: unknown): FailureKind {
  if (!isAtlasError(e)) return "unreachable";
  if (e.code === "ERR_HANDSHAKE_FAILED" && /clock drift/.test(e.message)) return "expired";
  switch (e.code) {
    case "ERR_UNREACHABLE":
    case "ERR_CLOSED":
      return "unreachable";
    case "ERR_RESET":
    case "ERR_HANDSHAKE_TIMEOUT":
    case "ERR_TIMEOUT":
      return "reset";
    default:
      return "rejected";
  }
}

interface Candidates {
  nodeId?: string;
  addrs: SockAddr[];
  /** Relays to try after the direct candidates (SPEC §7): the target's home relays, then ours. */
  relays: string[];
}

/** Resolve a target to the node ID it names (if any) and the candidates to try, in order. */
async function candidatesFor(node: AtlasNode, text: string): Promise<Candidates> {
  const t = parseTarget(text);
  if (t.kind === "addr") return { addrs: [t.addr], relays: [] };
  const nodeId = t.kind === "pinned" ? t.nodeId : await resolvePeerId(node.store, t.text);
  const row = await node.store.peers.get(nodeId);
  const addrs: SockAddr[] = [];
  for (const a of t.kind === "pinned" ? [formatAddr(t.addr)] : [row?.address, row?.public_address]) {
    const p = a ? parseAddr(a) : null;
    if (p && !addrs.some((x) => formatAddr(x) === formatAddr(p))) addrs.push(p);
  }
  const relays = node.config.transport.enable_relay
    ? relayCandidates(row?.relays ?? [], node.config.network.relays)
    : [];
  if (addrs.length === 0 && relays.length === 0) {
    throw new AtlasError(
      "ERR_UNREACHABLE",
      `no known address for ${nodeId.slice(0, 18)}…: connect to it by address first, or discover it`,
    );
  }
  return { nodeId, addrs, relays };
}

/** Home relays first, then configured ones; one entry per relay (by pinned node ID, else by text). */
function relayCandidates(home: string[], own: string[]): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const r of [...home, ...own]) {
    const t = r.trim();
    const at = t.indexOf("@");
    const key = at > 0 ? t.slice(0, at).toLowerCase() : t;
    const addrKey = at > 0 ? t.slice(at + 1) : t;
    if (t === "" || seen.has(key) || seen.has(addrKey)) continue;
    seen.add(key);
    seen.add(addrKey);
    out.push(t);
  }
  return out;
}

/**
 * dial(target) (SPEC §7): reuse a live session; otherwise try the direct candidates in order,
 * each within `transport.dial_timeout`, a later one starting `transport.dial_stagger_ms` after
 * the previous (Happy Eyeballs). The first handshake to complete wins; the others are cancelled.
 * When all of them fail and the target is a node ID, its home relays and then ours are tried in
 * order — unless the peer itself refused us directly (a relay would not change its mind).
 * Failures are written to the peer's `last_failure`.
 */
export async function dialPeer(node: AtlasNode, target: string): Promise<DialResult> {
  const { nodeId, addrs, relays } = await candidatesFor(node, target);
  if (nodeId) {
    const live = node.liveSession(nodeId);
    if (live) return { session: live, reused: true };
  }
  const errors: unknown[] = [];
  let session = await dialDirect(node, addrs, nodeId, errors);
  const refused = errors.some((e) =>
    isAtlasError(e) && e.code !== "ERR_INVALID_IDENTITY" && ["rejected", "expired"].includes(failureKind(e))
  );
  if (!session && nodeId && !refused) session = await dialRelays(node, relays, nodeId, errors);
  if (session) return { session, reused: false };
  const err = pickError(errors.filter((e) => e !== undefined), addrs, relays);
  if (nodeId) await node.store.peers.recordFailure(nodeId, failureKind(err), Math.floor(Date.now() / 1000));
  throw err;
}

/** The direct candidates, Happy Eyeballs style; null when none completed the handshake. */
function dialDirect(
  node: AtlasNode,
  addrs: SockAddr[],
  nodeId: string | undefined,
  errors: unknown[],
): Promise<Session | null> {
  if (addrs.length === 0) return Promise.resolve(null);
  const cfg = node.config.transport;
  const ctrl = new AbortController();
  return new Promise<Session | null>((resolve) => {
    let pending = addrs.length;
    let won = false;
    addrs.forEach((addr, i) => {
      const start = () => {
        if (won) return;
        node
          .connectTo(addr, { expectedNodeId: nodeId, signal: ctrl.signal })
          .then((s) => {
            if (won) return void s.close("replaced", "dial lost the race");
            won = true;
            ctrl.abort();
            resolve(s);
          })
          .catch((e) => {
            errors.push(e);
            if (--pending === 0 && !won) resolve(null);
          });
      };
      if (i === 0) start();
      else setTimeout(start, i * cfg.dial_stagger_ms);
    });
  });
}

/** Relays in order (SPEC §7), each until one pipe completes the handshake inside it. */
async function dialRelays(
  node: AtlasNode,
  relays: string[],
  nodeId: string,
  errors: unknown[],
): Promise<Session | null> {
  if (relays.length === 0) return null;
  const { dialViaRelay } = await import("../relay/dial.ts");
  for (const r of relays) {
    try {
      return await dialViaRelay(node, r, nodeId);
    } catch (e) {
      node.log.info("relay attempt failed", { relay: r, error: (e as Error).message });
      errors.push(e);
    }
  }
  return null;
}

/** The most telling error: a refusal beats a timeout beats silence. */
function pickError(errors: unknown[], addrs: SockAddr[], relays: string[]): AtlasError {
  const typed = errors.filter((e): e is AtlasError => isAtlasError(e));
  const rank = (
    e: AtlasError,
  ) => (failureKind(e) === "rejected" || failureKind(e) === "expired"
    ? 0
    : e.code === "ERR_HANDSHAKE_TIMEOUT"
    ? 1
    : e.code === "ERR_RESET"
    ? 2
    : 3);
  typed.sort((a, b) => rank(a) - rank(b));
  const best = typed[0];
  if (best && rank(best) < 3) return best;
  if (addrs.length + relays.length === 1 && best) return best;
  const tried = [...addrs.map(formatAddr), ...relays.map((r) => `relay ${r}`)];
  return new AtlasError("ERR_UNREACHABLE", `no answer from ${tried.join(", ")}`);
}

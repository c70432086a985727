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

/** Resolve a target to the node ID it names (if any) and the direct candidates to try, in order. */
async function candidatesFor(node: AtlasNode, text: string): Promise<{ nodeId?: string; addrs: SockAddr[] }> {
  const t = parseTarget(text);
  if (t.kind === "addr") return { addrs: [t.addr] };
  if (t.kind === "pinned") return { nodeId: t.nodeId, addrs: [t.addr] };
  const nodeId = await resolvePeerId(node.store, t.text);
  const row = await node.store.peers.get(nodeId);
  const addrs: SockAddr[] = [];
  for (const a of [row?.address, row?.public_address]) {
    const p = a ? parseAddr(a) : null;
    if (p && !addrs.some((x) => formatAddr(x) === formatAddr(p))) addrs.push(p);
  }
  if (addrs.length === 0) throw new AtlasError("ERR_UNREACHABLE", `no known address for ${nodeId.slice(0, 18)}…: connect to it by address first, or discover it`);
  return { nodeId, addrs };
}

/**
 * dial(target) (SPEC §7): reuse a live session; otherwise try the direct candidates in order,
 * each within `transport.dial_timeout`, a later one starting `transport.dial_stagger_ms` after
 * the previous (Happy Eyeballs). The first handshake to complete wins; the others are cancelled.
 * Failures are written to the peer's `last_failure`.
 */
export async function dialPeer(node: AtlasNode, target: string): Promise<DialResult> {
  const { nodeId, addrs } = await candidatesFor(node, target);
  if (nodeId) {
    const live = node.liveSession(nodeId);
    if (live) return { session: live, reused: true };
  }
  const cfg = node.config.transport;
  const ctrl = new AbortController();
  const errors: unknown[] = [];
  const session = await new Promise<Session | null>((resolve) => {
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
            errors[i] = e;
            if (--pending === 0 && !won) resolve(null);
          });
      };
      if (i === 0) start();
      else setTimeout(start, i * cfg.dial_stagger_ms);
    });
  });
  if (session) return { session, reused: false };
  const err = pickError(errors.filter((e) => e !== undefined), addrs);
  if (nodeId) await node.store.peers.recordFailure(nodeId, failureKind(err), Math.floor(Date.now() / 1000));
  throw err;
}

/** The most telling error: a refusal beats a timeout beats silence. */
function pickError(errors: unknown[], addrs: SockAddr[]): AtlasError {
  const typed = errors.filter((e): e is AtlasError => isAtlasError(e));
  const rank = (e: AtlasError) => (failureKind(e) === "rejected" || failureKind(e) === "expired" ? 0 : e.code === "ERR_HANDSHAKE_TIMEOUT" ? 1 : e.code === "ERR_RESET" ? 2 : 3);
  typed.sort((a, b) => rank(a) - rank(b));
  const best = typed[0];
  if (best && rank(best) < 3) return best;
  if (addrs.length === 1 && best) return best;
  return new AtlasError("ERR_UNREACHABLE", `no answer from ${addrs.map(formatAddr).join(", ")}`);
}

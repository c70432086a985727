import { AtlasError, Exit, isAtlasError } from "../errors.ts";
import type { FailureKind } from "../store/index.ts";
import { formatAddr, parseAddr, type SockAddr } from "../transport/addr.ts";
import { resolveSockAddrs } from "../transport/resolve.ts";
import type { AtlasNode } from "./node.ts";
import type { Session } from "./session.ts";
import { parseTarget, resolvePeerId } from "./target.ts";
import { sleep } from "../util/time.ts";

export interface DialResult {
  session: Session;
  /** true when an existing live session was used (docs/protocol.md#dialing: no new dial). */
  reused: boolean;
}

/** Which `last_failure` kind an error of a dial attempt stands for (docs/protocol.md#dialing). */
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
  /** `atlas_<id>@addr`: only that address, no other session, no relay (docs/protocol.md#dialing). */
  pinned: boolean;
  addrs: SockAddr[];
  /** Relays to try after the direct candidates (docs/protocol.md#dialing): the target's home relays, then ours. */
  relays: string[];
}

/**
 * Resolve a target to the node ID it names (if any) and the candidates to try, in order. A host
 * name the user typed becomes every address it resolves to (A and AAAA, Happy Eyeballs order),
 * so that only IPs reach the sessions, the peer rows and the wire.
 */
async function candidatesFor(node: AtlasNode, text: string): Promise<Candidates> {
  const t = parseTarget(text);
  if (t.kind === "addr") return { pinned: false, addrs: notSelf(node, await resolveSockAddrs(t.addr)), relays: [] };
  const nodeId = t.kind === "pinned" ? t.nodeId : await resolvePeerId(node.store, t.text, node.liveNodeIds());
  if (nodeId === node.nodeId) throw new AtlasError("ERR_USAGE", `${text} is this node itself`);
  if (t.kind === "pinned") {
    return { nodeId, pinned: true, addrs: notSelf(node, await resolveSockAddrs(t.addr)), relays: [] };
  }
  const row = await node.store.peers.get(nodeId);
  const addrs: SockAddr[] = [];
  const known = [row?.address, row?.public_address].map((a) => (a ? parseAddr(a) : null));
  for (const p of known) {
    if (p && !addrs.some((x) => formatAddr(x) === formatAddr(p))) addrs.push(p);
  }
  const relays = node.config.transport.enable_relay
    ? relayCandidates(row?.relays ?? [], node.config.network.relays)
    : [];
  // A live session needs no address (its peer row may not even be committed yet).
  if (addrs.length === 0 && relays.length === 0 && !node.liveSession(nodeId)) {
    throw new AtlasError(
      "ERR_UNREACHABLE",
      `no known address for ${nodeId.slice(0, 18)}…: connect to it by address first, or discover it`,
    );
  }
  return { nodeId, pinned: false, addrs, relays };
}

const LOOPBACK_OR_ANY = /^(127\.|0\.0\.0\.0$|::1?$|::ffff:127\.)/;

/** Refuse a dial to this node's own listening socket (it would only time out on itself). */
function notSelf(node: AtlasNode, addrs: SockAddr[]): SockAddr[] {
  const own = node.endpoint.local;
  const isSelf = (a: SockAddr) =>
    node.card.listenAddrs.includes(formatAddr(a)) ||
    (a.port === own.port && (a.host === own.host || (LOOPBACK_OR_ANY.test(a.host) && LOOPBACK_OR_ANY.test(own.host))));
  const self = addrs.find(isSelf);
  if (self && addrs.every(isSelf)) {
    throw new AtlasError("ERR_USAGE", `${formatAddr(self)} is this node's own address`);
  }
  return addrs.filter((a) => !isSelf(a));
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
 * dial(target) (docs/protocol.md#dialing): reuse a live session; otherwise race every path. The direct candidates
 * go first, each within `transport.dial_timeout`, a later one starting `transport.dial_stagger_ms`
 * after the previous (Happy Eyeballs). For a node-ID target the relays — its home relays, then
 * ours — join the race `transport.relay_stagger_ms` after the first direct candidate instead of
 * waiting for every direct timeout, and are tried one after another. The first path to complete
 * the handshake wins and the others are cancelled. A direct refusal by the peer itself stops the
 * relay attempt (a relay would not change its mind). Failures go to the peer's `last_failure`.
 */
export async function dialPeer(
  node: AtlasNode,
  target: string,
  o: { relayOnly?: boolean } = {},
): Promise<DialResult> {
  const found = await candidatesFor(node, target);
  const { nodeId, relays } = found;
  // relayOnly: the direct path just died (hole punching's loss), so only a relay can win now.
  const addrs = o.relayOnly && relays.length > 0 ? [] : found.addrs;
  if (nodeId) {
    const live = node.liveSession(nodeId);
    // A pinned target reuses a session only at the very address it names.
    if (live && (!found.pinned || addrs.some((a) => formatAddr(a) === live.remoteAddress))) {
      return { session: live, reused: true };
    }
  }
  const errors: unknown[] = [];
  const race = new DialRace(errors);
  const direct = dialDirect(node, addrs, nodeId, race);
  const relayed = nodeId && relays.length > 0
    ? delayed(addrs.length > 0 ? node.config.transport.relay_stagger_ms : 0, race.signal)
      .then(() => dialRelays(node, relays, nodeId, race))
    : Promise.resolve(null);
  const session = await race.first([direct, relayed]);
  if (session) return { session, reused: false };
  const tried = [...addrs.map(formatAddr), ...relays.map((r) => `relay ${r}`)];
  const err = pickError(errors.filter((e) => e !== undefined), tried);
  if (nodeId) await node.store.peers.recordFailure(nodeId, failureKind(err), Math.floor(Date.now() / 1000));
  throw err;
}

/** True for an error by which the peer itself refused us (not a wrong identity at an address). */
function refusedByPeer(e: unknown): boolean {
  return isAtlasError(e) && e.code !== "ERR_INVALID_IDENTITY" && ["rejected", "expired"].includes(failureKind(e));
}

/**
 * The shared state of one dial's attempts: the first session to arrive wins, aborts the others
 * and closes any that complete after it; every failure is collected for the final error.
 */
class DialRace {
  private ctrl = new AbortController();
  private winner: Session | null = null;
  /** Set once the peer refused a direct attempt: relays are not tried after that. */
  refused = false;

  constructor(private errors: unknown[]) {}

  get signal(): AbortSignal {
    return this.ctrl.signal;
  }

  get over(): boolean {
    return this.winner !== null || this.ctrl.signal.aborted;
  }

  /** Offer a session that completed its handshake; false (and it is closed) if another won. */
  offer(s: Session): boolean {
    if (this.winner) {
      s.close("replaced", "dial lost the race");
      return false;
    }
    this.winner = s;
    this.ctrl.abort();
    return true;
  }

  fail(e: unknown): void {
    this.errors.push(e);
    if (refusedByPeer(e)) this.refused = true;
  }

  /** The winning session once every attempt has settled or one has won; null when none did. */
  first(attempts: Promise<Session | null>[]): Promise<Session | null> {
    return new Promise((resolve) => {
      let pending = attempts.length;
      for (const a of attempts) {
        void a.then((s) => {
          if (s && this.winner === s) return resolve(s);
          if (--pending === 0) resolve(this.winner);
        });
      }
    });
  }
}

/** Resolves after `ms`, or at once when the race is already over. */
function delayed(ms: number, signal: AbortSignal): Promise<void> {
  return ms > 0 ? sleep(ms, signal) : Promise.resolve();
}

/** The direct candidates, Happy Eyeballs style; resolves with the winner or null. */
function dialDirect(
  node: AtlasNode,
  addrs: SockAddr[],
  nodeId: string | undefined,
  race: DialRace,
): Promise<Session | null> {
  if (addrs.length === 0) return Promise.resolve(null);
  const stagger = node.config.transport.dial_stagger_ms;
  return new Promise<Session | null>((resolve) => {
    let pending = addrs.length;
    addrs.forEach((addr, i) => {
      void delayed(i * stagger, race.signal).then(async () => {
        try {
          if (race.over) return;
          const s = await node.connectTo(addr, { expectedNodeId: nodeId, signal: race.signal });
          // An address of this host that leads back here (a LAN IP of a wildcard bind).
          if (s.nodeId === node.nodeId) {
            s.close("self", "dialled itself");
            throw new AtlasError("ERR_USAGE", `${formatAddr(addr)} is this node's own address`);
          }
          if (race.offer(s)) return resolve(s);
        } catch (e) {
          race.fail(e);
        }
        if (--pending === 0) resolve(null);
      });
    });
  });
}

/** Relays in order (docs/protocol.md#dialing), each until one pipe completes the handshake inside it. */
async function dialRelays(
  node: AtlasNode,
  relays: string[],
  nodeId: string,
  race: DialRace,
): Promise<Session | null> {
  const { dialViaRelay } = await import("../relay/dial.ts");
  for (const r of relays) {
    if (race.over || race.refused) return null;
    try {
      const s = await dialViaRelay(node, r, nodeId, { signal: race.signal });
      return race.offer(s) ? s : null;
    } catch (e) {
      if (race.over) return null;
      node.log.info("relay attempt failed", { relay: r, error: (e as Error).message });
      race.fail(e);
    }
  }
  return null;
}

/**
 * The error of a dial that tried several paths (docs/decisions.md, "Exit-code precedence"): our
 * own usage error first, then 4 if any path refused us, else 5 if any answered at the QUIC level
 * and then timed out, else 3, no answer at all.
 */
export function pickError(errors: unknown[], tried: string[]): AtlasError {
  const typed = errors.filter((e): e is AtlasError => isAtlasError(e));
  for (const exit of [Exit.USAGE, Exit.REJECTED, Exit.TIMEOUT]) {
    const e = typed.find((x) => x.exit === exit);
    if (e) return e;
  }
  const only = typed.length === 1 && tried.length === 1 ? typed[0]! : null;
  if (only?.code === "ERR_UNREACHABLE") return only;
  if (only) return new AtlasError("ERR_UNREACHABLE", `could not reach ${tried[0]}: ${only.message}`);
  return new AtlasError("ERR_UNREACHABLE", `no answer from ${tried.join(", ")}`);
}

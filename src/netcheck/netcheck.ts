/**
 * `atlas netcheck` (issue 14, docs/operating.md "netcheck"): what the network between this node
 * and the others looks like, in under 3 s. From one UDP socket (the node's own QUIC endpoint, so
 * the NAT mapping measured is the one peers would see) and all at once:
 *
 *   - a STUN Binding request to every configured STUN server: the public address each one saw;
 *   - two servers (at different addresses) that saw the same public address mean the NAT maps
 *     endpoint-independently (hole punching can work); different ones mean a mapping per
 *     destination (a symmetric NAT: only relays will do);
 *   - a QUIC connection and Atlas handshake to every configured relay and bootstrap node, then a
 *     Ping on it: reachability and the UDP round trip; at the same time TLS to its TCP leg
 *     (docs/protocol.md#the-tcp-leg), the certificate checked against the pinned node ID, without
 *     a session (one would replace the UDP probe's): whether UDP-blocked networks can reach it;
 *   - UDP works at all when anything above answered;
 *   - the Farcaster hub, when `farcaster.verify = "hub"`: reachable over HTTP(S), and how fast
 *     (src/netcheck/hub.ts). It does not count towards `reachable`, which is about Atlas nodes.
 */
import { networkInterfaces } from "node:os";
import { NETCHECK_BUDGET_MS } from "../config/durations.ts";
import type { AtlasNode } from "../net/node.ts";
import { serviceLegs } from "../net/legs.ts";
import { type ResolvedNodeRef, resolveNodeRef } from "../net/target.ts";
import { probeTcpLeg } from "../net/tcp-dial.ts";
import { stunBinding } from "../stun/client.ts";
import { formatAddr, resolveAddr, type SockAddr } from "../transport/addr.ts";
import { DISCONNECT_SHUTDOWN } from "../wire/messages.ts";
import { type HubProbe, probeHub } from "./hub.ts";

export interface StunProbe {
  server: string;
  ok: boolean;
  /** The address and port this server saw us send from. */
  public_address: string | null;
  rtt_ms: number | null;
  error: string | null;
}

export interface NodeProbe {
  /** As configured: `host:port` or `atlas_<id>@host:port`. */
  target: string;
  ok: boolean;
  node_id: string | null;
  /** Round trip of an Atlas Ping over the QUIC session (UDP). */
  udp_rtt_ms: number | null;
  /** QUIC connection plus the four-message handshake. */
  handshake_ms: number | null;
  /** Its TCP leg: TLS to it, the certificate's node ID checked. */
  tcp: TcpProbe;
  error: string | null;
}

export interface TcpProbe {
  /** `host:port` asked: the entry's (`tcp://`), else the advertised port, else the default rule. */
  address: string | null;
  ok: boolean;
  /** TCP connect plus the TLS 1.3 handshake. */
  tls_ms: number | null;
  error: string | null;
}

export type Mapping = "endpoint-independent" | "endpoint-dependent" | "unknown";

export interface NetcheckReport {
  /** true: something answered over UDP; false: everything asked stayed silent; null: nothing to ask. */
  udp: boolean | null;
  /** The public address STUN saw (the first answer), or null. */
  public_address: string | null;
  /** false when the public address is one of this host's own: no NAT in between. null: unknown. */
  behind_nat: boolean | null;
  mapping: Mapping;
  /** Why the mapping is what it is, in words. */
  mapping_reason: string;
  stun: StunProbe[];
  relays: NodeProbe[];
  bootstrap: NodeProbe[];
  /** The Farcaster hub this node would ask; null when bindings are checked by signature only. */
  hub: HubProbe | null;
  /** Anything at all answered (STUN, relays or bootstrap nodes over UDP or TCP; not the hub). */
  reachable: boolean;
  duration_ms: number;
}

export interface NetcheckTargets {
  stun: readonly string[];
  relays: readonly string[];
  bootstrap: readonly string[];
  /** The hub URL to probe, or null (farcaster.verify = "signature"). */
  hub: string | null;
}

const ms = (t0: number) => Math.round((performance.now() - t0) * 100) / 100;
const message = (e: unknown) => (e as Error)?.message ?? String(e);

async function probeStun(node: AtlasNode, server: string, deadline: number): Promise<StunProbe & { addr?: SockAddr }> {
  const t0 = performance.now();
  try {
    const addr = await resolveAddr(server);
    const left = deadline - Date.now();
    if (left <= 0) throw new Error("no time left after resolving");
    const seen = await stunBinding(node.endpoint, addr, left);
    return { server, ok: true, public_address: formatAddr(seen), rtt_ms: ms(t0), error: null, addr };
  } catch (e) {
    return { server, ok: false, public_address: null, rtt_ms: null, error: message(e) };
  }
}

async function probeNode(node: AtlasNode, target: string, what: string, deadline: number): Promise<NodeProbe> {
  let ref: ResolvedNodeRef;
  try {
    ref = await resolveNodeRef(target, what);
  } catch (e) {
    const tcp = { address: null, ok: false, tls_ms: null, error: message(e) };
    return { target, ok: false, node_id: null, udp_rtt_ms: null, handshake_ms: null, tcp, error: message(e) };
  }
  const [udp, tcp] = await Promise.all([
    ref.tcpOnly ? Promise.resolve(null) : probeUdp(node, ref, deadline),
    probeTcp(node, ref, deadline),
  ]);
  if (udp) return { target, ...udp, tcp };
  return {
    target,
    ok: false,
    node_id: null,
    udp_rtt_ms: null,
    handshake_ms: null,
    tcp,
    error: "tcp:// entry: UDP not asked",
  };
}

async function probeTcp(node: AtlasNode, ref: ResolvedNodeRef, deadline: number): Promise<TcpProbe> {
  const to = serviceLegs(node).tcpAddr(ref);
  const t0 = performance.now();
  try {
    await probeTcpLeg(to, ref.nodeId, AbortSignal.timeout(Math.max(1, deadline - Date.now())));
    return { address: formatAddr(to), ok: true, tls_ms: ms(t0), error: null };
  } catch (e) {
    const late = Date.now() >= deadline;
    const error = late ? `no TLS answer within ${NETCHECK_BUDGET_MS} ms` : message(e);
    return { address: formatAddr(to), ok: false, tls_ms: null, error };
  }
}

async function probeUdp(
  node: AtlasNode,
  ref: ResolvedNodeRef,
  deadline: number,
): Promise<Omit<NodeProbe, "target" | "tcp">> {
  const t0 = performance.now();
  try {
    const session = await node.connectTo(ref.addr, {
      expectedNodeId: ref.nodeId,
      dialTimeoutMs: Math.max(1, deadline - Date.now()),
    });
    const handshake = ms(t0);
    try {
      const pong = await session.ping(Math.max(1, deadline - Date.now()));
      return {
        ok: true,
        node_id: session.nodeId,
        udp_rtt_ms: Math.round(pong.rttMs * 100) / 100,
        handshake_ms: handshake,
        error: null,
      };
    } finally {
      void session.disconnect(DISCONNECT_SHUTDOWN, "netcheck done");
    }
  } catch (e) {
    return { ok: false, node_id: null, udp_rtt_ms: null, handshake_ms: null, error: message(e) };
  }
}

function ownAddresses(): Set<string> {
  const out = new Set<string>();
  for (const list of Object.values(networkInterfaces())) for (const i of list ?? []) out.add(i.address);
  return out;
}

/** Endpoint-independent when two servers at different addresses saw the same public address. */
function mappingOf(answers: (StunProbe & { addr?: SockAddr })[]): { mapping: Mapping; reason: string } {
  const ok = answers.filter((a) => a.ok && a.addr);
  const distinct = ok.filter((a, i) => ok.findIndex((b) => formatAddr(b.addr!) === formatAddr(a.addr!)) === i);
  if (distinct.length < 2) {
    return {
      mapping: "unknown",
      reason: `${distinct.length === 0 ? "no" : "only one"} STUN server answered (two are needed to compare)`,
    };
  }
  const [x, y] = distinct as [StunProbe, StunProbe];
  const differ = distinct.find((a) => a.public_address !== x.public_address);
  if (differ) {
    return {
      mapping: "endpoint-dependent",
      reason:
        `${x.server} saw ${x.public_address}, ${differ.server} saw ${differ.public_address}: the NAT maps each destination apart (symmetric); hole punching will not work, relays will`,
    };
  }
  return {
    mapping: "endpoint-independent",
    reason: `${x.server} and ${y.server} saw the same ${x.public_address}: hole punching can work`,
  };
}

/** Run every probe at once on `node` (a node that does not listen), within NETCHECK_BUDGET_MS. */
export async function netcheck(node: AtlasNode, targets: NetcheckTargets): Promise<NetcheckReport> {
  const t0 = performance.now();
  const deadline = Date.now() + NETCHECK_BUDGET_MS;
  const [stun, relays, bootstrap, hub] = await Promise.all([
    Promise.all(targets.stun.map((s) => probeStun(node, s, deadline))),
    Promise.all(targets.relays.map((r) => probeNode(node, r, "relay", deadline))),
    Promise.all(targets.bootstrap.map((b) => probeNode(node, b, "bootstrap node", deadline))),
    targets.hub === null ? null : probeHub(targets.hub, deadline),
  ]);
  const { mapping, reason } = mappingOf(stun);
  const asked = stun.length + relays.length + bootstrap.length;
  const answered = [...stun, ...relays, ...bootstrap].filter((p) => p.ok).length;
  const overTcp = [...relays, ...bootstrap].some((p) => p.tcp.ok);
  const publicAddress = stun.find((s) => s.ok)?.public_address ?? null;
  const publicHost = publicAddress?.replace(/^\[?(.*?)\]?:\d+$/, "$1");
  return {
    udp: asked === 0 ? null : answered > 0,
    public_address: publicAddress,
    behind_nat: publicHost ? !ownAddresses().has(publicHost) : null,
    mapping,
    mapping_reason: reason,
    stun: stun.map(({ addr: _addr, ...p }) => p),
    relays,
    bootstrap,
    hub,
    reachable: answered > 0 || overTcp,
    duration_ms: Math.round(performance.now() - t0),
  };
}

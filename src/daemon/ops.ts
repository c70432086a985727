/**
 * Peer operations as plain request → result functions over an AtlasNode. The daemon runs them
 * for the CLI over the control socket; a CLI without a daemon runs the same functions on a node
 * of its own. Results are JSON-safe so both paths print the same thing.
 */
import type { LegsStatus } from "../net/legs.ts";
import type { TcpLegStats } from "../transport/tcp-listener.ts";
import { AtlasError } from "../errors.ts";
import { dialPeer } from "../net/dial.ts";
import { parseTarget, resolvePeerId } from "../net/target.ts";
import { resolveSockAddrs } from "../transport/resolve.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import { formatAddr } from "../transport/addr.ts";
import { DISCONNECT_SHUTDOWN } from "../wire/messages.ts";
import { sleep } from "../util/time.ts";
import type { BanView, DisconnectView, OperatorView, PingView, SessionView } from "./shapes.ts";

export type OperatorInfoView = OperatorView;
export type SessionInfo = SessionView;

export function operatorView(s: Session): OperatorInfoView | null {
  const op = s.peer.operator;
  if (!op) return null;
  const v = s.peer.verdict;
  if (v?.status === "verified") return { username: v.username, fid: v.fid, status: "verified", reason: null };
  return { username: op.username, fid: op.fid ?? null, status: "unconfirmed", reason: v?.reason ?? "not checked" };
}

export function sessionInfo(s: Session): SessionInfo {
  return {
    node_id: s.nodeId,
    name: s.peer.name,
    trust: s.trust,
    path: s.path,
    relay: s.relay ?? null,
    punched: s.punched,
    address: s.remoteAddress,
    operator: operatorView(s),
  };
}

/** `net connect`: in a daemon the session is kept until `net disconnect` (docs/protocol.md#dialing). */
export async function connectOp(node: AtlasNode, a: { target: string; keep?: boolean }): Promise<SessionInfo> {
  const { session } = await dialPeer(node, a.target);
  if (a.keep) session.pinned = true;
  return sessionInfo(session);
}

export type PingReport = PingView;

/**
 * `net ping`: `count` Pings `interval` ms apart over a live or new session. Each Ping goes over the
 * peer's current session, so a path change in the middle (a relayed session upgraded to a
 * hole-punched one, or back) shows in `path_changes` at the Ping it happened before.
 */
export async function pingOp(
  node: AtlasNode,
  a: { target: string; count: number; interval: number },
): Promise<PingReport> {
  const { session: dialled } = await dialPeer(node, a.target);
  let s = dialled;
  const timeoutMs = node.config.transport.request_timeout * 1000;
  const rtts: (number | null)[] = [];
  const changes: PingReport["path_changes"] = [];
  let first: { pingTs: number; pongTs: number } | null = null;
  let lastErr: unknown = null;
  for (let i = 0; i < a.count; i++) {
    if (i > 0) await sleep(a.interval);
    const now = node.liveSession(s.nodeId);
    if (now && now !== s) {
      if (now.pathLabel !== s.pathLabel) {
        changes.push({ before_ping: i, path: now.path, relay: now.relay ?? null, punched: now.punched });
      }
      s = now;
    }
    try {
      const r = await s.ping(timeoutMs);
      s.lastActivity = Date.now();
      rtts.push(r.rttMs);
      first ??= r;
    } catch (e) {
      lastErr = e;
      rtts.push(null);
      if (!s.isOpen) break;
    }
  }
  const got = rtts.filter((r): r is number => r !== null).sort((x, y) => x - y);
  const report: PingReport = {
    ...sessionInfo(dialled),
    ping_ts: first?.pingTs ?? null,
    pong_ts: first?.pongTs ?? null,
    rtt_ms: rtts,
    sent: rtts.length,
    received: got.length,
    min_ms: got[0] ?? null,
    median_ms: got.length ? got[Math.floor((got.length - 1) / 2)]! : null,
    max_ms: got.at(-1) ?? null,
    path_changes: changes,
    error: null,
  };
  if (got.length === 0) {
    const e = lastErr instanceof AtlasError ? lastErr : new AtlasError("ERR_TIMEOUT", "no Pong received");
    report.error = { code: e.code, message: e.message, exit: e.exit };
  }
  return report;
}

/**
 * `net disconnect`: Disconnect every live session with the peer. Without one there is nothing to
 * say goodbye on, so nothing is dialled: `sessions` is 0 and `node_id` null when the target was
 * an address no session uses.
 */
export async function disconnectOp(
  node: AtlasNode,
  a: { target: string },
): Promise<DisconnectView> {
  const all = await liveSessionsFor(node, a.target);
  await Promise.all(all.map((s) => s.disconnect(DISCONNECT_SHUTDOWN, "operator requested disconnect")));
  const id = all[0]?.nodeId ??
    (parseTarget(a.target).kind === "addr" ? null : await resolvePeerId(node.store, a.target, node.liveNodeIds()));
  return { node_id: id, sessions: all.length };
}

/** The live sessions a target names: by node ID, or by the remote address they use. */
async function liveSessionsFor(node: AtlasNode, target: string): Promise<Session[]> {
  const t = parseTarget(target);
  if (t.kind !== "addr") return node.sessionsWith(await resolvePeerId(node.store, t.text, node.liveNodeIds()));
  const addrs = (await resolveSockAddrs(t.addr)).map(formatAddr);
  const ids = new Set(node.allSessions().filter((s) => addrs.includes(s.remoteAddress)).map((s) => s.nodeId));
  return [...ids].flatMap((id) => node.sessionsWith(id));
}

export interface StatusReport {
  node_id: string;
  name: string;
  pid: number;
  uptime_s: number;
  listen_address: string;
  listen_addrs: string[];
  /** How the UDP socket moves datagrams (docs/transport.md#datagram-io-udp). */
  datagram_io?: "batched" | "dgram";
  public_address: string | null;
  public_address_source: string;
  sessions: {
    node_id: string;
    name: string;
    direction: string;
    path: string;
    relay: string | null;
    punched: boolean;
    address: string;
    trust: string;
    age_s: number;
    rtt_ms: number | null;
    pinned: boolean;
    operator: OperatorInfoView | null;
  }[];
  outbox_depth: number;
  /** `host:port` of the Prometheus endpoint (`metrics.listen`), or null when it is off. */
  metrics_address?: string | null;
  farcaster: { verify: string; hub: { url: string; reachable: boolean | null; last_error: string | null } | null };
  /** Presence at the configured relays (docs/protocol.md#relay), from the daemon's relay service. */
  relays?: {
    relay: string;
    node_id: string | null;
    registered: boolean;
    last_ok: number | null;
    last_error: string | null;
    attempts: number;
    /** QUIC over UDP or the TCP leg (docs/protocol.md#the-tcp-leg); null without a session. */
    leg: "udp" | "tcp" | null;
  }[];
  /** How this agent reaches relays and bootstrap nodes (docs/protocol.md#the-tcp-leg). */
  relay_transport?: LegsStatus;
  /** This relay's or bootstrap node's TCP leg listener. */
  tcp_leg?: TcpLegStats;
  /** Pipes through relays that this node is an end of, and their DATAGRAM drops. */
  relay_pipes?: { open: number; datagram_drops: number; unknown_session: number };
  /** Hole punching per peer (docs/protocol.md#hole-punching): direct, trying, or failed with the last reason. */
  hole_punch?: {
    node_id: string;
    state: string;
    attempts: number;
    last_error: string | null;
    direct_since: number | null;
  }[];
  /** This node's own relay service, when it offers relaying. */
  relay_server?: {
    registered: number;
    pipes: number;
    capacity: number;
    forwarded_packets: number;
    forwarded_bytes: number;
    dropped_rate_limit: number;
    dropped_queue_full: number;
    pipes_refused: number;
    /** Refusals by RelayError code name (`target_busy`, `per_source_limit`, …). */
    refused: Record<string, number>;
    pipes_closed_unused: number;
  } | null;
}

export async function statusOp(node: AtlasNode, startedAt: number): Promise<StatusReport> {
  const now = Date.now();
  return {
    node_id: node.nodeId,
    name: node.card.name,
    pid: process.pid,
    uptime_s: Math.round((now - startedAt) / 1000),
    listen_address: formatAddr(node.endpoint.local),
    listen_addrs: node.card.listenAddrs,
    datagram_io: node.endpoint.datagramIo,
    public_address: null,
    public_address_source: "none (this process runs no STUN check; peers see the listen address)",
    sessions: node.allSessions().map((s) => ({
      node_id: s.nodeId,
      name: s.peer.name,
      direction: s.direction,
      path: s.path,
      relay: s.relay ?? null,
      punched: s.punched,
      address: s.remoteAddress,
      trust: s.trust,
      age_s: Math.round((now - s.openedAt) / 1000),
      rtt_ms: s.lastRttMs,
      pinned: s.pinned,
      operator: operatorView(s),
    })),
    outbox_depth: await node.store.outbox.count(),
    farcaster: { verify: node.config.farcaster.verify, hub: node.hubStatus() },
  };
}

export type BanResult = BanView;

/** Ban by hand (docs/protocol.md#trust-rate-limits-and-bans): stored, live sessions get Disconnect DISCONNECT_BANNED. */
export async function banOp(node: AtlasNode, a: { target: string; seconds: number }): Promise<BanResult> {
  const id = await resolvePeerId(node.store, a.target, node.liveNodeIds());
  const until = Math.floor(Date.now() / 1000) + a.seconds;
  const live = node.sessionsWith(id).length;
  await node.ban(id, until);
  return { node_id: id, ban_until: until, disconnected: live };
}

export async function unbanOp(node: AtlasNode, a: { target: string }): Promise<BanResult> {
  const id = await resolvePeerId(node.store, a.target, node.liveNodeIds());
  await node.unban(id);
  return { node_id: id, ban_until: null, disconnected: 0 };
}

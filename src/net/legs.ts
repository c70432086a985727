/**
 * Which leg reaches a relay or bootstrap node (docs/protocol.md#the-tcp-leg), by
 * `transport.relay_transport`: "udp" (QUIC only), "tcp" (TLS on TCP only) or "auto": QUIC first,
 * and when nothing answers within UDP_ANSWER_WAIT_MS, the node's TCP leg. Once a TCP leg worked
 * where UDP did not, UDP counts as blocked and later connects go straight to TCP; every
 * UDP_PROBE_INTERVAL_MS each pinned TCP-leg session (presence at a relay) is dialled again over
 * UDP, and when that succeeds the new QUIC session replaces it (one session per peer), which
 * moves the presence back to QUIC.
 *
 * The TCP port: the entry's own (`tcp://host:port`), else the one the node advertised in its
 * Hello (`tcp/<port>` in `features`), else `transport.relay_tcp_port`, where 0 means the UDP
 * port's number.
 */
import { UDP_ANSWER_WAIT_MS, UDP_PROBE_INTERVAL_MS } from "../config/durations.ts";
import { isAtlasError } from "../errors.ts";
import { shortNodeId } from "../identity/node-id.ts";
import { formatAddr, type SockAddr } from "../transport/addr.ts";
import { isTcpLeg } from "../transport/tcp-leg.ts";
import type { AtlasNode } from "./node.ts";
import type { Session } from "./session.ts";
import type { ResolvedNodeRef } from "./target.ts";
import { connectOverTcp } from "./tcp-dial.ts";

/** The Hello feature by which a node advertises its TCP leg: `tcp/443`. */
export const TCP_FEATURE_PREFIX = "tcp/";
/** Advertised TCP ports remembered, at most (oldest forgotten first). */
const MAX_ADVERTISED = 1024;

export type UdpState = "unknown" | "ok" | "blocked";

export interface LegsStatus {
  mode: "auto" | "udp" | "tcp";
  udp: UdpState;
  tcp_sessions: number;
  udp_probes: number;
  last_probe: number | null;
}

export class ServiceLegs {
  udp: UdpState = "unknown";
  /** How often UDP is tried again while on TCP (tests shorten it). */
  probeIntervalMs = UDP_PROBE_INTERVAL_MS;
  private tcpSessions = new Map<Session, ResolvedNodeRef>();
  private advertised = new Map<string, number>();
  private probeTimer: ReturnType<typeof setInterval> | null = null;
  private probing = false;
  private probes = 0;
  private lastProbe: number | null = null;

  constructor(private node: AtlasNode) {
    node.onSessionOpen((s) => this.noteAdvertised(s));
  }

  status(): LegsStatus {
    return {
      mode: this.node.config.transport.relay_transport,
      udp: this.udp,
      tcp_sessions: [...this.tcpSessions.keys()].filter((s) => s.isOpen).length,
      udp_probes: this.probes,
      last_probe: this.lastProbe,
    };
  }

  /** A live TCP-leg session with `ref` (by pinned ID, else by the entry it was dialled for). */
  liveFor(ref: ResolvedNodeRef): Session | undefined {
    for (const [s, r] of this.tcpSessions) {
      if (s.isOpen && (ref.nodeId ? s.nodeId === ref.nodeId : r.text === ref.text)) return s;
    }
    return undefined;
  }

  /** A new session with the relay or bootstrap node `ref`, over the leg the mode picks. */
  async connect(ref: ResolvedNodeRef, signal?: AbortSignal): Promise<Session> {
    const mode = this.node.config.transport.relay_transport;
    if (mode === "udp") return this.node.connectTo(ref.addr, { expectedNodeId: ref.nodeId, signal });
    if (mode === "tcp" || ref.tcpOnly || this.udp === "blocked") return this.overTcp(ref, signal);
    try {
      const s = await this.node.connectTo(ref.addr, {
        expectedNodeId: ref.nodeId,
        signal,
        dialTimeoutMs: UDP_ANSWER_WAIT_MS,
      });
      this.udp = "ok";
      return s;
    } catch (e) {
      if (signal?.aborted || !isAtlasError(e, "ERR_UNREACHABLE")) throw e;
      let s: Session;
      try {
        s = await this.overTcp(ref, signal);
      } catch {
        throw e; // neither leg answered: the node is down, not UDP blocked
      }
      this.markBlocked(ref);
      return s;
    }
  }

  private markBlocked(ref: ResolvedNodeRef): void {
    if (this.udp !== "blocked") {
      this.node.log.warn("no UDP answer: relay and bootstrap traffic goes over TLS on TCP", { node: ref.text });
    }
    this.udp = "blocked";
  }

  stop(): void {
    if (this.probeTimer) clearInterval(this.probeTimer);
    this.probeTimer = null;
  }

  private async overTcp(ref: ResolvedNodeRef, signal?: AbortSignal): Promise<Session> {
    const to = this.tcpAddr(ref);
    const s = await connectOverTcp(this.node, to, { expectedNodeId: ref.nodeId, dialled: ref.addr, signal });
    this.tcpSessions.set(s, ref);
    void s.done.then(() => this.tcpSessions.delete(s));
    this.node.log.info("session over the TCP leg", { node: shortNodeId(s.nodeId), tcp: formatAddr(to) });
    if (this.node.config.transport.relay_transport === "auto") this.startProbing();
    return s;
  }

  /** Where the node's TCP leg is: the entry's port, else the advertised one, else the default rule. */
  tcpAddr(ref: ResolvedNodeRef): SockAddr {
    if (ref.tcpOnly) return ref.addr;
    const port = (ref.nodeId && this.advertised.get(ref.nodeId)) ||
      this.node.config.transport.relay_tcp_port || ref.addr.port;
    return { host: ref.addr.host, port };
  }

  private noteAdvertised(s: Session): void {
    const f = s.peer.features.find((x) => x.startsWith(TCP_FEATURE_PREFIX));
    const port = f ? Number(f.slice(TCP_FEATURE_PREFIX.length)) : NaN;
    if (!Number.isInteger(port) || port < 1 || port > 65535) return;
    this.advertised.delete(s.nodeId);
    this.advertised.set(s.nodeId, port);
    if (this.advertised.size > MAX_ADVERTISED) this.advertised.delete(this.advertised.keys().next().value!);
  }

  private startProbing(): void {
    if (this.probeTimer) return;
    this.probeTimer = setInterval(() => void this.probe(), this.probeIntervalMs);
    this.probeTimer.unref();
  }

  /**
   * Dial each pinned TCP-leg session's node over UDP once. A success replaces the TCP session
   * (the node keeps one session per peer, the newer); with nothing left on TCP, probing stops.
   */
  private async probe(): Promise<void> {
    if (this.probing) return;
    this.probing = true;
    try {
      const due = [...this.tcpSessions].filter(([s, r]) => s.isOpen && s.pinned && !r.tcpOnly && isTcpLeg(s.conn));
      if (due.length === 0) {
        if (this.udp === "blocked") this.udp = "unknown"; // the next connect tries UDP first again
        if (this.tcpSessions.size === 0) this.stop();
        return;
      }
      for (const [s, ref] of due) {
        this.probes++;
        this.lastProbe = Math.floor(Date.now() / 1000);
        try {
          await this.node.connectTo(ref.addr, { expectedNodeId: s.nodeId, dialTimeoutMs: UDP_ANSWER_WAIT_MS });
        } catch {
          continue; // still no UDP
        }
        if (this.udp !== "ok") this.node.log.info("UDP answers again: moved to QUIC", { node: ref.text });
        this.udp = "ok";
      }
    } finally {
      this.probing = false;
    }
  }
}

const perNode = new WeakMap<AtlasNode, ServiceLegs>();

/** The node's leg chooser (one per node). */
export function serviceLegs(node: AtlasNode): ServiceLegs {
  let l = perNode.get(node);
  if (!l) perNode.set(node, l = new ServiceLegs(node));
  return l;
}

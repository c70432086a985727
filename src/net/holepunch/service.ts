/**
 * Hole punching (docs/protocol.md#hole-punching; docs/protocol.md, "Hole punching"): a daemon that holds a relayed
 * session it dialled tries to replace it with a direct one.
 *
 *   dialler B (relayed session's initiator)          target A
 *   PunchOffer {nonce, candidates}  ───relay──▶
 *                                   ◀──relay───  PunchAnswer {nonce, candidates}   (B measures RTT)
 *   PunchSync {nonce} + FIN         ───relay──▶  A punches at once
 *   B punches RTT/2 later  ◀────── STUN Binding requests (tid = nonce) both ways ──────▶
 *   first address A reached B from / answered at  →  B dials QUIC there, full handshake pinned
 *   to A's node ID  →  direct session; the relayed one is retired after its grace period.
 *
 * Only B opens the direct QUIC connection (so the new session has the relayed one's direction and
 * the one-session-per-peer rule never mistakes it for a simultaneous dial); both sides punch.
 * Attempts at PUNCH_ATTEMPTS_MS after the relayed session is up; when they all fail the session
 * stays relayed and `status` says why. A punched path is probed every PUNCHED_PROBE_INTERVAL_MS;
 * when it dies, B dials again (the relay wins the race within a fraction of a second) and punching
 * starts over after PUNCH_RETRY_AFTER_LOSS_MS.
 */
import { randomBytes } from "node:crypto";
import { PUNCH_ATTEMPTS_MS, PUNCH_RETRY_AFTER_LOSS_MS, PUNCHED_PROBE_INTERVAL_MS } from "../../config/durations.ts";
import { ProtocolCode } from "../../errors.ts";
import { shortNodeId } from "../../identity/node-id.ts";
import { formatAddr, parseAddr, type SockAddr } from "../../transport/addr.ts";
import type { QuicStream } from "../../transport/stream.ts";
import type { Logger } from "../../util/log.ts";
import { sleep } from "../../util/time.ts";
import { FramedStream } from "../../wire/framed-stream.ts";
import { DISCONNECT_REPLACED, type WireMessage } from "../../wire/messages.ts";
import type { AtlasNode } from "../node.ts";
import { type Session, UPGRADED_TO_DIRECT } from "../session.ts";
import { MAX_PUNCH_CANDIDATES, MAX_TRACKED_PEERS, PUNCHED_PROBE_MISSES } from "./constants.ts";
import { punch } from "./puncher.ts";

/** The feature a peer advertises in Hello/HelloAck `features` when it speaks these messages. */
export const PUNCH_FEATURE = "punch/1";

/** Per peer, for `atlas status`. */
export interface PunchPeerStatus {
  node_id: string;
  state: "trying" | "direct" | "relayed" | "failed";
  attempts: number;
  last_error: string | null;
  /** Unix ms of the last direct path found, or null. */
  direct_since: number | null;
}

export interface HolePunchOptions {
  /** This node's public address (STUN, agreeing observations, else the bind address). */
  publicAddress: () => string | null;
  log: Logger;
}

export class HolePunchService {
  private stopped = false;
  private removeListener: (() => void) | null = null;
  private peers = new Map<string, PunchPeerStatus>();
  /** A (target side): peers whose punches we expect, so their direct session is marked punched. */
  private expecting = new Map<string, number>();
  /** When each peer's punched path last died (Unix ms): the next attempts wait a while. */
  private lostAt = new Map<string, number>();
  private probes = new Set<Session>();

  constructor(private node: AtlasNode, private o: HolePunchOptions) {}

  start(): void {
    // Advertised in Hello/HelloAck from now on: peers only send PunchOffer to nodes that say so.
    if (!this.node.card.features.includes(PUNCH_FEATURE)) this.node.card.features.push(PUNCH_FEATURE);
    this.node.handle("PunchOffer", (s, req, stream) => this.onOffer(s, req, stream));
    this.removeListener = this.node.onSessionOpen((s) => this.onSession(s));
  }

  stop(): void {
    this.stopped = true;
    this.removeListener?.();
  }

  status(): PunchPeerStatus[] {
    return [...this.peers.values()];
  }

  // ---- both sides ----

  private onSession(s: Session): void {
    if (s.path === "direct" && this.expecting.has(s.nodeId) && s.direction === "inbound") {
      if (this.expecting.get(s.nodeId)! > Date.now()) this.markDirect(s);
      this.expecting.delete(s.nodeId);
    }
    if (s.path === "relay" && s.direction === "outbound" && s.peer.features.includes(PUNCH_FEATURE)) {
      void this.upgrade(s);
    }
    if (s.direction === "outbound") void s.done.then((why) => this.afterEnd(s, why));
  }

  /**
   * B keeps a session with a peer whose path changed under it: when a punched session dies (a
   * probe, a request's liveness check or a timeout noticed it first) or the relayed session it
   * replaced is retired although the direct one is gone too, and nothing else is open with the
   * peer, B dials again at once (the relay wins that race) and punching starts over later.
   */
  private afterEnd(s: Session, why: string): void {
    if (this.stopped) return;
    const punchedLost = s.punched && (why === "timeout" || why === "direct path lost");
    if (punchedLost) {
      remember(this.lostAt, s.nodeId, Date.now()); // punching waits a while before trying again
      this.statusOf(s.nodeId).state = "relayed";
    }
    if (this.node.liveSession(s.nodeId)) return;
    // (the peer may retire the relayed session for a direct one it has not yet seen die)
    const retired = s.path === "relay" && (why === UPGRADED_TO_DIRECT || why === DISCONNECT_REPLACED);
    if (!punchedLost && !retired) return;
    void this.redial(s.nodeId);
  }

  private markDirect(s: Session): void {
    s.punched = true;
    const st = this.statusOf(s.nodeId);
    st.state = "direct";
    st.direct_since = Date.now();
    st.last_error = null;
    this.watch(s);
  }

  private statusOf(nodeId: string): PunchPeerStatus {
    let st = this.peers.get(nodeId);
    if (!st) {
      st = { node_id: nodeId, state: "trying", attempts: 0, last_error: null, direct_since: null };
      remember(this.peers, nodeId, st);
    }
    return st;
  }

  /** Our candidates: public address first, then bind addresses, one entry each, bounded. */
  private ownCandidates(): string[] {
    const out: string[] = [];
    for (const a of [this.o.publicAddress(), ...this.node.card.listenAddrs]) {
      if (a && !out.includes(a) && out.length < MAX_PUNCH_CANDIDATES) out.push(a);
    }
    return out;
  }

  // ---- B: the dialler of the relayed session ----

  private async upgrade(relayed: Session): Promise<void> {
    const st = this.statusOf(relayed.nodeId);
    st.state = "trying";
    const lost = this.lostAt.get(relayed.nodeId);
    const holdOff = lost ? Math.max(0, lost + PUNCH_RETRY_AFTER_LOSS_MS - Date.now()) : 0;
    const started = Date.now() + holdOff;
    for (const at of PUNCH_ATTEMPTS_MS) {
      await sleep(Math.max(0, started + at - Date.now()));
      if (this.stopped || !relayed.isOpen || relayed.replacedByDirect) return;
      if (this.node.liveSession(relayed.nodeId)?.path === "direct") return;
      st.attempts++;
      try {
        const direct = await this.attempt(relayed, st.attempts);
        this.markDirect(direct);
        this.o.log.info("hole punched: direct path", {
          peer: shortNodeId(relayed.nodeId),
          address: direct.remoteAddress,
          attempt: st.attempts,
        });
        return;
      } catch (e) {
        st.last_error = (e as Error).message;
        this.o.log.info("hole punch attempt failed", {
          peer: shortNodeId(relayed.nodeId),
          attempt: st.attempts,
          error: st.last_error,
        });
      }
    }
    if (relayed.isOpen) st.state = "failed";
  }

  /** One attempt: offer, answer (RTT), sync, punch, dial the first address that worked. */
  private async attempt(relayed: Session, n: number): Promise<Session> {
    const timeoutMs = this.node.config.transport.request_timeout * 1000;
    const nonce = new Uint8Array(randomBytes(12));
    const fs = new FramedStream(relayed.conn.openStream());
    const sentAt = performance.now();
    let answer: WireMessage | null;
    try {
      await fs.write({ type: "PunchOffer", nonce, candidates: this.ownCandidates(), attempt: n });
      answer = await fs.read(timeoutMs);
    } catch (e) {
      fs.stream.abort(0);
      throw new Error(`no answer to PunchOffer: ${(e as Error).message}`);
    }
    const rttMs = performance.now() - sentAt;
    if (answer?.type !== "PunchAnswer") {
      fs.stream.abort(0);
      const why = answer?.type === "Error" ? `${answer.code}: ${answer.message}` : answer ? answer.type : "nothing";
      throw new Error(`peer answered PunchOffer with ${why}`);
    }
    await fs.end({ type: "PunchSync", nonce });
    const peerCandidates = addrs(answer.candidates);
    await sleep(rttMs / 2);
    const h = punch(this.node.endpoint, nonce, peerCandidates);
    try {
      const reached = await h.reached;
      if (!reached) {
        throw new Error(
          `no punch got through (${h.sent} sent to ${peerCandidates.map(formatAddr).join(", ") || "no candidates"})`,
        );
      }
      const s = await this.node.connectTo(reached.addr, {
        expectedNodeId: relayed.nodeId,
        dialTimeoutMs: this.node.config.transport.dial_timeout * 1000,
        punched: true,
      });
      return s;
    } finally {
      h.stop();
    }
  }

  // ---- A: the target ----

  private async onOffer(s: Session, req: WireMessage, stream: QuicStream): Promise<WireMessage | null> {
    if (req.type !== "PunchOffer") return null;
    if (s.path !== "relay") {
      return {
        type: "Error",
        code: ProtocolCode.ERR_MESSAGE_REJECTED,
        message: "PunchOffer is only valid on a relayed session",
      };
    }
    const fs = new FramedStream(stream);
    const st = this.statusOf(s.nodeId);
    st.state = "trying";
    st.attempts++;
    const timeoutMs = this.node.config.transport.request_timeout * 1000;
    await fs.write({ type: "PunchAnswer", nonce: req.nonce, candidates: this.ownCandidates() });
    const sync = await fs.read(timeoutMs).catch(() => null);
    if (sync?.type !== "PunchSync" || !bytesEqual(sync.nonce, req.nonce)) {
      stream.abort(0);
      st.last_error = "no PunchSync";
      return null;
    }
    await fs.end().catch(() => {});
    const h = punch(this.node.endpoint, req.nonce, addrs(req.candidates));
    remember(this.expecting, s.nodeId, Date.now() + timeoutMs + this.node.config.transport.dial_timeout * 1000);
    // Keep punching until the schedule ends or B's direct connection is up.
    const until = this.node.onSessionOpen((d) => {
      if (d.nodeId === s.nodeId && d.path === "direct") h.stop();
    });
    void h.reached.then(async () => {
      await sleep(this.node.config.transport.dial_timeout * 1000);
      h.stop();
      until();
      // No direct connection from B by now: this attempt failed here too (B may try again).
      if (this.node.liveSession(s.nodeId)?.path !== "direct" && st.state === "trying") {
        st.state = "failed";
        st.last_error = "no direct connection from the peer after punching";
      }
    });
    return null;
  }

  // ---- a punched path, watched ----

  /**
   * Probe a punched session with Pings; after PUNCHED_PROBE_MISSES misses in a row its path is
   * dead (a NAT mapping expired or moved): close it, and on B's side dial again at once — the
   * relay wins that race — so traffic is back on the relay within seconds.
   */
  private watch(s: Session): void {
    if (this.probes.has(s)) return;
    this.probes.add(s);
    void (async () => {
      let misses = 0;
      let next = Date.now() + PUNCHED_PROBE_INTERVAL_MS;
      while (!this.stopped && s.isOpen) {
        // Probes start every interval whatever the last one cost: a miss (which waited out its
        // whole timeout) must not push the next probe, and so the verdict, a full interval later.
        await sleep(Math.max(0, next - Date.now()));
        next += PUNCHED_PROBE_INTERVAL_MS;
        if (!s.isOpen) break;
        try {
          await s.ping(PUNCHED_PROBE_INTERVAL_MS);
          misses = 0;
        } catch {
          if (++misses < PUNCHED_PROBE_MISSES || !s.isOpen) continue;
          this.o.log.info("hole-punched path lost", { peer: shortNodeId(s.nodeId), address: s.remoteAddress });
          remember(this.lostAt, s.nodeId, Date.now());
          this.statusOf(s.nodeId).state = "relayed";
          s.abandon("direct path lost"); // B redials from afterEnd
          break;
        }
      }
      this.probes.delete(s);
    })();
  }

  private async redial(nodeId: string): Promise<void> {
    if (this.stopped) return;
    const { dialPeer } = await import("../dial.ts");
    try {
      const { session } = await dialPeer(this.node, nodeId, { relayOnly: true });
      this.o.log.info("back on the relay after losing the direct path", {
        peer: shortNodeId(nodeId),
        path: session.pathLabel,
      });
    } catch (e) {
      this.o.log.info("redial after losing the direct path failed", {
        peer: shortNodeId(nodeId),
        error: (e as Error).message,
      });
    }
  }
}

/**
 * Set `key` in a per-peer map that must not grow with every identity that ever relayed to us: the
 * entry moves to the newest end, and the oldest go beyond MAX_TRACKED_PEERS.
 */
export function remember<V>(map: Map<string, V>, key: string, value: V): void {
  map.delete(key);
  while (map.size >= MAX_TRACKED_PEERS) map.delete(map.keys().next().value!);
  map.set(key, value);
}

function addrs(list: string[]): SockAddr[] {
  const out: SockAddr[] = [];
  for (const a of list.slice(0, MAX_PUNCH_CANDIDATES)) {
    const p = parseAddr(a);
    if (p) out.push(p);
  }
  return out;
}

function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((x, i) => x === b[i]);
}

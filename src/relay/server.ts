/**
 * The relay (SPEC §11): agents behind NATs announce themselves; a dialler that cannot reach one
 * directly asks the relay to pair them; the relay then forwards the QUIC DATAGRAMs of the pipe
 * between the two agent connections, rewriting the 4-byte session prefix. It only ever sees the
 * inner connection's ciphertext: it never terminates the agents' end-to-end QUIC.
 *
 * Pipe states: pairing (slot reserved, waiting for the target's RelayReady) → forwarding →
 * closed (a pairing stream ended, either agent connection closed, or idle for
 * `transport.relay_idle_timeout`). Closing frees the capacity slot and all state of the pipe.
 */
import type { Config } from "../config/defaults.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import type { QuicConnection } from "../transport/connection.ts";
import type { QuicStream } from "../transport/stream.ts";
import { FramedStream } from "../wire/framed-stream.ts";
import { type RelayConnect, RelayErrorCode, type WireMessage } from "../wire/messages.ts";
import { TokenBucket } from "./bucket.ts";
import { MIN_PIPE_DATAGRAM, PIPE_HEADER, pipeSession, setPipeSession } from "./pipe.ts";

interface Registration {
  session: Session;
  lastAnnounce: number;
}

/** One direction's view of a pipe: where a DATAGRAM arriving on `conn` with this session goes. */
interface PipeEnd {
  pipe: Pipe;
  session: Session;
  stream: QuicStream;
  /** The other side: its connection and its session number. */
  to: QuicConnection;
  toSession: number;
  /** This side's own session number (the key it is installed under). */
  own: number;
  bucket: TokenBucket;
}

interface Pipe {
  source: string;
  target: string;
  ends: PipeEnd[];
  /** performance.now() of the last DATAGRAM either way. */
  lastPacket: number;
  closed: boolean;
  /** Frees the capacity slot and the per-source count. */
  release: () => void;
}

export interface RelayStats {
  registered: number;
  pipes: number;
  capacity: number;
  forwarded_packets: number;
  forwarded_bytes: number;
  dropped_rate_limit: number;
  dropped_queue_full: number;
  dropped_unknown_session: number;
  pipes_opened: number;
  pipes_refused: number;
}

export class RelayServer {
  private node: AtlasNode;
  private cfg: Config["transport"];
  private registrations = new Map<string, Registration>();
  private pipes = new Set<Pipe>();
  /** Pipes and pairings in progress per source node (SPEC §11 per-source limit). */
  private perSource = new Map<string, number>();
  private slots = 0;
  private ends = new Map<QuicConnection, Map<number, PipeEnd>>();
  private nextSession = new WeakMap<QuicConnection, number>();
  private sweeper: ReturnType<typeof setInterval> | null = null;
  private counters = {
    forwarded_packets: 0,
    forwarded_bytes: 0,
    dropped_rate_limit: 0,
    dropped_queue_full: 0,
    dropped_unknown_session: 0,
    pipes_opened: 0,
    pipes_refused: 0,
  };

  constructor(node: AtlasNode) {
    this.node = node;
    this.cfg = node.config.transport;
    node.handle(
      "RelayAnnounce",
      (s, req) => Promise.resolve(req.type === "RelayAnnounce" ? this.announce(s, req.node_id) : null),
    );
    // A RelayConnect carrying a session number comes from a relay this node is registered with
    // (this node is the target): leave it to the agent-side handler when there is one.
    const asTarget = node.handlerFor("RelayConnect");
    node.handle("RelayConnect", (s, req, stream) => {
      if (req.type !== "RelayConnect") return Promise.resolve(null);
      if (req.session !== undefined && asTarget) return asTarget(s, req, stream);
      return this.connect(s, req, stream);
    });
  }

  start(): void {
    const ms = Math.max(
      250,
      Math.min(this.cfg.relay_announce_interval * 1000, (this.cfg.relay_idle_timeout * 1000) / 4),
    );
    this.sweeper = setInterval(() => this.sweep(), ms);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
    for (const p of [...this.pipes]) this.teardown(p, "relay shutting down");
  }

  status(): RelayStats {
    return {
      registered: this.registrations.size,
      pipes: this.pipes.size,
      capacity: this.cfg.relay_capacity,
      ...this.counters,
    };
  }

  /** Is `nodeId` registered right now (tests, status)? */
  isRegistered(nodeId: string): boolean {
    return this.registrations.has(nodeId);
  }

  // ---- announce ----

  private announce(s: Session, nodeId: string): WireMessage {
    if (nodeId !== s.nodeId) {
      return relayError(RelayErrorCode.SOURCE_MISMATCH, "node_id is not this connection's authenticated node ID");
    }
    const known = this.registrations.get(nodeId);
    if (!known || known.session !== s) {
      this.registrations.set(nodeId, { session: s, lastAnnounce: Date.now() });
      void s.done.then(() => {
        if (this.registrations.get(nodeId)?.session === s) {
          this.registrations.delete(nodeId);
          this.node.log.info("relay registration dropped", { peer: shortNodeId(nodeId), reason: "connection closed" });
        }
      });
      this.node.log.info("agent registered with relay", { peer: shortNodeId(nodeId), address: s.remoteAddress });
    } else known.lastAnnounce = Date.now();
    return { type: "RelayReady", status: "waiting" };
  }

  // ---- pairing ----

  private async connect(b: Session, req: RelayConnect, bStream: QuicStream): Promise<WireMessage | null> {
    const refuse = (code: number, reason: string): WireMessage => {
      this.counters.pipes_refused++;
      this.node.log.info("relay connect refused", {
        source: shortNodeId(b.nodeId),
        target: shortNodeId(req.target_id),
        code,
        reason,
      });
      return relayError(code, reason);
    };
    if (req.source_id !== b.nodeId) {
      return refuse(RelayErrorCode.SOURCE_MISMATCH, "source_id is not this connection's authenticated node ID");
    }
    const reg = this.registrations.get(req.target_id);
    if (!reg || !reg.session.isOpen) {
      return refuse(RelayErrorCode.TARGET_NOT_REGISTERED, "target is not registered with this relay");
    }
    if (this.slots >= this.cfg.relay_capacity) {
      return refuse(RelayErrorCode.AT_CAPACITY, `relay at capacity (${this.cfg.relay_capacity} pipes)`);
    }
    if ((this.perSource.get(b.nodeId) ?? 0) >= this.cfg.relay_pipes_per_source) {
      return refuse(RelayErrorCode.PER_SOURCE_LIMIT, `at most ${this.cfg.relay_pipes_per_source} pipes per source`);
    }
    const a = reg.session;
    for (const s of [b, a]) {
      if (s.conn.maxDatagramLen() < MIN_PIPE_DATAGRAM) {
        return refuse(
          RelayErrorCode.DATAGRAMS_UNAVAILABLE,
          `${
            s === b ? "source" : "target"
          } connection carries DATAGRAMs of at most ${s.conn.maxDatagramLen()} bytes (need ${MIN_PIPE_DATAGRAM})`,
        );
      }
    }
    // Reserve the slot before waiting on the target, so concurrent requests cannot overshoot.
    this.slots++;
    this.perSource.set(b.nodeId, (this.perSource.get(b.nodeId) ?? 0) + 1);
    let reserved = true;
    const release = () => {
      if (!reserved) return;
      reserved = false;
      this.slots--;
      const n = (this.perSource.get(b.nodeId) ?? 1) - 1;
      if (n <= 0) this.perSource.delete(b.nodeId);
      else this.perSource.set(b.nodeId, n);
    };
    const sa = this.allocSession(a.conn);
    const sb = this.allocSession(b.conn);
    let aStream: QuicStream | null = null;
    let answer: WireMessage | null;
    try {
      aStream = a.conn.openStream();
      const fa = new FramedStream(aStream);
      await fa.write({ type: "RelayConnect", source_id: b.nodeId, target_id: req.target_id, session: sa });
      answer = await fa.read(this.cfg.relay_pairing_timeout * 1000);
    } catch (e) {
      release();
      aStream?.abort(0); // a late RelayReady must not leave the target holding a pipe
      const timedOut = (e as { code?: string }).code === "ERR_TIMEOUT";
      return refuse(
        timedOut ? RelayErrorCode.PAIRING_TIMEOUT : RelayErrorCode.TARGET_NOT_REGISTERED,
        timedOut
          ? `target did not answer within ${this.cfg.relay_pairing_timeout} s`
          : "target's connection failed while pairing",
      );
    }
    if (!answer || answer.type !== "RelayReady" || answer.status !== "ready" || !b.isOpen) {
      release();
      aStream.abort(0);
      const why = answer?.type === "RelayError"
        ? answer.reason
        : answer?.type === "Error"
        ? answer.message
        : "no RelayReady";
      return refuse(RelayErrorCode.TARGET_REFUSED, `target refused: ${why}`);
    }
    const pipe: Pipe = {
      source: b.nodeId,
      target: a.nodeId,
      ends: [],
      lastPacket: performance.now(),
      closed: false,
      release,
    };
    const rate = this.cfg.relay_bandwidth_limit;
    this.install({
      pipe,
      session: b,
      stream: bStream,
      to: a.conn,
      toSession: sa,
      own: sb,
      bucket: new TokenBucket(rate),
    });
    this.install({
      pipe,
      session: a,
      stream: aStream,
      to: b.conn,
      toSession: sb,
      own: sa,
      bucket: new TokenBucket(rate),
    });
    this.pipes.add(pipe);
    this.counters.pipes_opened++;
    try {
      await new FramedStream(bStream).write({ type: "RelayReady", status: "ready", session: sb });
    } catch {
      this.teardown(pipe, "source gone");
      return null;
    }
    for (const end of pipe.ends) void this.watch(end);
    this.node.log.info("relay pipe open", {
      source: shortNodeId(pipe.source),
      target: shortNodeId(pipe.target),
      pipes: this.pipes.size,
    });
    return null; // the stream stays open as the pipe's lifetime (SPEC §5 Streams)
  }

  private allocSession(conn: QuicConnection): number {
    const m = this.ends.get(conn);
    let n = this.nextSession.get(conn) ?? 1;
    while (m?.has(n)) n = (n + 1) >>> 0 || 1;
    this.nextSession.set(conn, (n + 1) >>> 0 || 1);
    return n;
  }

  private install(end: PipeEnd): void {
    end.pipe.ends.push(end);
    const conn = end.session.conn;
    let m = this.ends.get(conn);
    if (!m) {
      this.ends.set(conn, m = new Map());
      conn.onDatagram = (d) => this.forward(conn, d);
    }
    m.set(end.own, end);
  }

  /** A pairing stream's end (FIN, reset, connection gone) closes the pipe. */
  private async watch(end: PipeEnd): Promise<void> {
    try {
      while ((await end.stream.read()) !== null) {
        // nothing is expected after RelayReady
      }
    } catch {
      // reset or connection gone
    }
    this.teardown(
      end.pipe,
      end.session === end.pipe.ends[0]?.session ? "source closed the pipe" : "target closed the pipe",
    );
  }

  private teardown(pipe: Pipe, why: string): void {
    if (pipe.closed) return;
    pipe.closed = true;
    this.pipes.delete(pipe);
    pipe.release();
    for (const end of pipe.ends) {
      const conn = end.session.conn;
      const m = this.ends.get(conn);
      m?.delete(end.own);
      if (m && m.size === 0) {
        this.ends.delete(conn);
        conn.onDatagram = null;
      }
      end.stream.end().catch(() => {});
      end.stream.stopReading(0);
    }
    this.node.log.info("relay pipe closed", {
      source: shortNodeId(pipe.source),
      target: shortNodeId(pipe.target),
      reason: why,
      pipes: this.pipes.size,
    });
  }

  // ---- forwarding ----

  /** One DATAGRAM from an agent: look up its pipe, charge the bucket, rewrite the prefix, send. */
  private forward(conn: QuicConnection, d: Uint8Array): void {
    if (d.length <= PIPE_HEADER) return void this.counters.dropped_unknown_session++;
    const end = this.ends.get(conn)?.get(pipeSession(d));
    if (!end) return void this.counters.dropped_unknown_session++;
    const now = performance.now();
    end.pipe.lastPacket = now;
    if (!end.bucket.take(d.length, now)) return void this.counters.dropped_rate_limit++;
    setPipeSession(d, end.toSession);
    if (!end.to.sendDatagram(d)) return void this.counters.dropped_queue_full++;
    this.counters.forwarded_packets++;
    this.counters.forwarded_bytes += d.length;
  }

  // ---- housekeeping ----

  /** Expire silent registrations and idle pipes; keep sessions that carry live pipes from idling out. */
  private sweep(): void {
    const now = Date.now();
    const announceMs = this.cfg.relay_announce_interval * 1000 * this.cfg.relay_missed_announces;
    for (const [id, r] of this.registrations) {
      if (now - r.lastAnnounce > announceMs) {
        this.registrations.delete(id);
        this.node.log.info("relay registration dropped", {
          peer: shortNodeId(id),
          reason: `${this.cfg.relay_missed_announces} announces missed`,
        });
      }
    }
    const perfNow = performance.now();
    for (const p of [...this.pipes]) {
      if (perfNow - p.lastPacket > this.cfg.relay_idle_timeout * 1000) this.teardown(p, "idle");
      else for (const e of p.ends) e.session.lastActivity = now;
    }
  }
}

function relayError(code: number, reason: string): WireMessage {
  return { type: "RelayError", code, reason };
}

/** What a daemon service is (the daemon's Service interface, restated to keep this module light). */
interface Service {
  start(): void;
  stop(): void | Promise<void>;
}
type ControlHandler = (args: Record<string, unknown>) => Promise<unknown>;

/**
 * Offer relaying on `node` (SPEC §11 `transport.offer_relay`): the server, STUN, and the relay's
 * counters in `atlas status` (`relay_server`). Call after any other wrapper of "status".
 */
export async function offerRelay(
  node: AtlasNode,
  handlers: Map<string, ControlHandler>,
  services: Service[],
): Promise<RelayServer> {
  const relay = new RelayServer(node);
  services.push(relay);
  (await import("../stun/server.ts")).serveStun(node.endpoint); // SPEC §10: relay nodes answer STUN on their QUIC port
  handlers.set("relay.status", () => Promise.resolve(relay.status()));
  const base = handlers.get("status");
  if (base) handlers.set("status", async (a) => ({ ...((await base(a)) as object), relay_server: relay.status() }));
  return relay;
}

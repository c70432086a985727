/**
 * The relay (docs/protocol.md#relay): agents behind NATs announce themselves; a dialler that cannot reach one
 * directly asks the relay to pair them; the relay then forwards the QUIC DATAGRAMs of the pipe
 * between the two agent connections, rewriting the 4-byte session prefix. It only ever sees the
 * inner connection's ciphertext: it never terminates the agents' end-to-end QUIC.
 *
 * Pipe states: pairing (slot reserved, waiting for the target's RelayReady) → forwarding →
 * closed (a pairing stream ended, either agent connection closed, no DATAGRAM from each side
 * within `transport.relay_pairing_timeout` of RelayReady, or idle for
 * `transport.relay_idle_timeout`). Closing frees the slot (limits.ts) and all state of the pipe.
 */
import type { Config } from "../config/defaults.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { AtlasNode } from "../net/node.ts";
import type { Session } from "../net/session.ts";
import type { QuicConnection } from "../transport/connection.ts";
import type { QuicStream } from "../transport/stream.ts";
import type { DaemonPart } from "../util/service.ts";
import { FramedStream } from "../wire/framed-stream.ts";
import { type RelayConnect, RelayErrorCode, type RelayErrorCodeName, type WireMessage } from "../wire/messages.ts";
import { TokenBucket } from "./bucket.ts";
import { addressKey, type PipeOwner, PipeSlots, type Refusal } from "./limits.ts";
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
  /** A DATAGRAM came from this side: the pipe is in use (see closeIfUnused). */
  heard: boolean;
}

interface Pipe {
  source: string;
  target: string;
  ends: PipeEnd[];
  /** performance.now() of the last DATAGRAM either way. */
  lastPacket: number;
  closed: boolean;
  /** Frees the pipe's slot and its counts against every limit. */
  release: () => void;
  unusedTimer: ReturnType<typeof setTimeout> | null;
}

/** `target_busy` for RelayErrorCode.TARGET_BUSY: the keys of `RelayStats.refused`. */
const REFUSAL_NAME = Object.fromEntries(
  Object.entries(RelayErrorCode).map(([k, v]) => [v, k.toLowerCase()]),
) as Record<Refusal["code"], Lowercase<RelayErrorCodeName>>;

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
  /** Refusals by RelayError code name (`target_busy`, `per_source_limit`, …). */
  refused: Partial<Record<Lowercase<RelayErrorCodeName>, number>>;
  /** Pipes closed because no DATAGRAM came from each side within the pairing timeout. */
  pipes_closed_unused: number;
}

export class RelayServer {
  private node: AtlasNode;
  private cfg: Config["transport"];
  private registrations = new Map<string, Registration>();
  private pipes = new Set<Pipe>();
  /** Pipes and pairings in progress, charged to capacity, source, address and target. */
  private slots: PipeSlots;
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
    pipes_closed_unused: 0,
  };
  private refused: RelayStats["refused"] = {};

  constructor(node: AtlasNode) {
    this.node = node;
    this.cfg = node.config.transport;
    this.slots = new PipeSlots(this.cfg);
    node.handle(
      "RelayAnnounce",
      (s, req) => Promise.resolve(req.type === "RelayAnnounce" ? this.announce(s, req.node_id) : null),
    );
    // A RelayConnect carrying a session number comes from a relay this node is registered with
    // (this node is the target): leave it to the agent-side handler when there is one.
    const asTarget = node.handlerFor("RelayConnect");
    node.handle("RelayConnect", (s, req, stream, shared) => {
      if (req.type !== "RelayConnect") return Promise.resolve(null);
      if (req.session !== undefined && asTarget) return asTarget(s, req, stream, shared);
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
      refused: { ...this.refused },
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
    const admitted = this.admit(b, req);
    if ("code" in admitted) return this.refuse(b, req, admitted);
    const { a, owner } = admitted;
    // Reserve the slot before waiting on the target, so concurrent requests cannot overshoot.
    const release = this.slots.reserve(owner);
    const sa = this.allocSession(a.conn);
    const paired = await this.askTarget(a, b, req, sa);
    if ("code" in paired) {
      release();
      return this.refuse(b, req, paired);
    }
    const pipe: Pipe = {
      source: b.nodeId,
      target: a.nodeId,
      ends: [],
      lastPacket: performance.now(),
      closed: false,
      release,
      unusedTimer: null,
    };
    return this.open(pipe, { session: b, stream: bStream }, { session: a, stream: paired.stream, number: sa });
  }

  /** The checks before the target is asked (docs/protocol.md#relay step 3): who asks, for whom, and room for it. */
  private admit(b: Session, req: RelayConnect): Refusal | { a: Session; owner: PipeOwner } {
    if (req.source_id !== b.nodeId) {
      return {
        code: RelayErrorCode.SOURCE_MISMATCH,
        reason: "source_id is not this connection's authenticated node ID",
      };
    }
    const reg = this.registrations.get(req.target_id);
    if (!reg || !reg.session.isOpen) {
      return { code: RelayErrorCode.TARGET_NOT_REGISTERED, reason: "target is not registered with this relay" };
    }
    const owner = { source: b.nodeId, address: addressKey(b.conn.remote.host), target: req.target_id };
    const full = this.slots.refusal(owner);
    if (full) return full;
    const a = reg.session;
    for (const s of [b, a]) {
      if (s.conn.maxDatagramLen() < MIN_PIPE_DATAGRAM) {
        return {
          code: RelayErrorCode.DATAGRAMS_UNAVAILABLE,
          reason: `${
            s === b ? "source" : "target"
          } connection carries DATAGRAMs of at most ${s.conn.maxDatagramLen()} bytes (need ${MIN_PIPE_DATAGRAM})`,
        };
      }
    }
    return { a, owner };
  }

  /** RelayConnect with session `sa` to the target on a new stream; its RelayReady, or why not. */
  private async askTarget(
    a: Session,
    b: Session,
    req: RelayConnect,
    sa: number,
  ): Promise<Refusal | { stream: QuicStream }> {
    let stream: QuicStream;
    try {
      stream = a.conn.openStream();
    } catch {
      // No stream credit left on the target's connection: it is registered, only busy.
      return a.conn.isConnected
        ? { code: RelayErrorCode.TARGET_BUSY, reason: "target's connection has no stream left for another pipe" }
        : { code: RelayErrorCode.TARGET_NOT_REGISTERED, reason: "target's connection closed" };
    }
    let answer: WireMessage | null;
    try {
      const fa = new FramedStream(stream);
      await fa.write({ type: "RelayConnect", source_id: b.nodeId, target_id: req.target_id, session: sa });
      answer = await fa.read(this.cfg.relay_pairing_timeout * 1000);
    } catch (e) {
      stream.abort(0); // a late RelayReady must not leave the target holding a pipe
      return (e as { code?: string }).code === "ERR_TIMEOUT"
        ? {
          code: RelayErrorCode.PAIRING_TIMEOUT,
          reason: `target did not answer within ${this.cfg.relay_pairing_timeout} s`,
        }
        : { code: RelayErrorCode.TARGET_NOT_REGISTERED, reason: "target's connection failed while pairing" };
    }
    if (!answer || answer.type !== "RelayReady" || answer.status !== "ready" || !b.isOpen) {
      stream.abort(0);
      const why = answer?.type === "RelayError"
        ? answer.reason
        : answer?.type === "Error"
        ? answer.message
        : "no RelayReady";
      return { code: RelayErrorCode.TARGET_REFUSED, reason: `target refused: ${why}` };
    }
    return { stream };
  }

  /** Install both ends, answer the dialler RelayReady, and watch the pipe's life. */
  private async open(
    pipe: Pipe,
    b: { session: Session; stream: QuicStream },
    a: { session: Session; stream: QuicStream; number: number },
  ): Promise<null> {
    const sb = this.allocSession(b.session.conn);
    const rate = this.cfg.relay_bandwidth_limit;
    const end = (from: typeof b, to: Session, toSession: number, own: number): PipeEnd => ({
      pipe,
      session: from.session,
      stream: from.stream,
      to: to.conn,
      toSession,
      own,
      bucket: new TokenBucket(rate),
      heard: false,
    });
    this.install(end(b, a.session, a.number, sb));
    this.install(end(a, b.session, sb, a.number));
    this.pipes.add(pipe);
    this.counters.pipes_opened++;
    try {
      await new FramedStream(b.stream).write({ type: "RelayReady", status: "ready", session: sb });
    } catch {
      this.teardown(pipe, "source gone");
      return null;
    }
    for (const e of pipe.ends) void this.watch(e);
    // A pipe nobody sends through only holds a slot (and a stream on the target's connection).
    pipe.unusedTimer = setTimeout(() => this.closeIfUnused(pipe), this.cfg.relay_pairing_timeout * 1000);
    pipe.unusedTimer.unref();
    this.node.log.info("relay pipe open", {
      source: shortNodeId(pipe.source),
      target: shortNodeId(pipe.target),
      pipes: this.pipes.size,
    });
    return null; // the stream stays open as the pipe's lifetime (docs/protocol.md#messages Streams)
  }

  /** Unless a DATAGRAM came from each side since RelayReady, the pipe is not in use: close it. */
  private closeIfUnused(pipe: Pipe): void {
    if (pipe.closed || pipe.ends.every((e) => e.heard)) return;
    this.counters.pipes_closed_unused++;
    this.teardown(pipe, `no inner packet each way within ${this.cfg.relay_pairing_timeout} s`);
  }

  private refuse(b: Session, req: RelayConnect, r: Refusal): WireMessage {
    this.counters.pipes_refused++;
    const name = REFUSAL_NAME[r.code];
    this.refused[name] = (this.refused[name] ?? 0) + 1;
    this.node.log.info("relay connect refused", {
      source: shortNodeId(b.nodeId),
      target: shortNodeId(req.target_id),
      code: r.code,
      reason: r.reason,
    });
    return relayError(r.code, r.reason);
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
    if (pipe.unusedTimer) clearTimeout(pipe.unusedTimer);
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
    end.heard = true;
    const now = performance.now();
    end.pipe.lastPacket = now;
    if (!end.bucket.take(d.length, now)) return void this.counters.dropped_rate_limit++;
    // The other end's connection is closing (its agent left; the pipe is being torn down): its
    // session is gone, which is not a full queue.
    if (!end.to.isConnected || end.to.isClosing) return void this.counters.dropped_unknown_session++;
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

/**
 * Offer relaying on `node` (docs/protocol.md#relay `transport.offer_relay`), as daemon parts: the
 * server with its counters in `atlas status` (`relay_server`) and STUN on the QUIC port, then the
 * TCP leg (docs/protocol.md#the-tcp-leg) for agents whose networks drop UDP.
 */
export async function relayParts(node: AtlasNode): Promise<DaemonPart[]> {
  const relay = new RelayServer(node);
  observeRelay(node, relay);
  (await import("../stun/server.ts")).serveStun(node.endpoint); // docs/protocol.md#stun: relay nodes answer STUN on their QUIC port
  const server: DaemonPart = {
    name: "relay server",
    services: [relay],
    handlers: { "relay.status": () => Promise.resolve(relay.status()) },
    status: () => ({ relay_server: relay.status() }),
  };
  return [server, await (await import("../net/tcp-serve.ts")).tcpLegPart(node)];
}

/** The relay's gauges and its own running totals, read when scraped (docs/operating.md, "Metrics"). */
function observeRelay(node: AtlasNode, relay: RelayServer): void {
  const m = node.metrics;
  const one = (value: number) => [{ value }];
  m.observe("atlas_relay_registered", () => one(relay.status().registered));
  m.observe("atlas_relay_pipes", () => one(relay.status().pipes));
  m.observe("atlas_relay_pipe_capacity", () => one(relay.status().capacity));
  m.observe("atlas_relay_pipes_opened_total", () => one(relay.status().pipes_opened));
  m.observe("atlas_relay_pipes_closed_unused_total", () => one(relay.status().pipes_closed_unused));
  m.observe("atlas_relay_forwarded_packets_total", () => one(relay.status().forwarded_packets));
  m.observe("atlas_relay_forwarded_bytes_total", () => one(relay.status().forwarded_bytes));
  m.observe("atlas_relay_dropped_total", () => {
    const s = relay.status();
    return [
      { labels: { reason: "rate_limit" }, value: s.dropped_rate_limit },
      { labels: { reason: "queue_full" }, value: s.dropped_queue_full },
      { labels: { reason: "unknown_session" }, value: s.dropped_unknown_session },
    ];
  });
  m.observe(
    "atlas_relay_pipes_refused_total",
    () => Object.entries(relay.status().refused).map(([reason, value]) => ({ labels: { reason }, value: value ?? 0 })),
  );
}

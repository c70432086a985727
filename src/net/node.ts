import type { Config } from "../config/defaults.ts";
import { AtlasError, ProtocolCode } from "../errors.ts";
import {
  acceptHandshake,
  type HandshakeResult,
  initiateHandshake,
  type LocalCard,
  type PeerCard,
} from "../handshake/handshake.ts";
import type { Identity } from "../identity/identity.ts";
import type { Profile } from "../identity/profile.ts";
import { shortNodeId } from "../identity/node-id.ts";
import type { Store } from "../store/index.ts";
import { formatAddr, sameAddr, type SockAddr } from "../transport/addr.ts";
import type { QuicConnection } from "../transport/connection.ts";
import { QuicEndpoint } from "../transport/endpoint.ts";
import { transportOptions } from "../transport/options.ts";
import type { QuicStream } from "../transport/stream.ts";
import { type Logger, silentLogger } from "../util/log.ts";
import { type MetricsSink, noMetrics, reasonOf } from "../util/metrics.ts";
import { AGENT } from "../version.ts";
import { unixNow } from "../util/time.ts";
import { FramedStream, type HeaderCheck } from "../wire/framed-stream.ts";
import {
  DISCONNECT_BANNED,
  DISCONNECT_REPLACED,
  DISCONNECT_SHUTDOWN,
  HEADER_LEN,
  type MsgTypeName,
  PRE_HANDSHAKE_MAX_PAYLOAD,
  type TrustLevel,
  type WireMessage,
} from "../wire/messages.ts";
import { PeerRateLimiter, type RateDecision } from "./rate-limit.ts";
import { listenAddrs } from "../transport/listen-addrs.ts";
import { type Direction, type PathKind, type RequestHandler, Session, UPGRADED_TO_DIRECT } from "./session.ts";
import { trustLevelFor } from "./trust.ts";
import { PIPELINE_FEATURE, STREAM_OWNING_REQUESTS } from "./pipeline/constants.ts";
import { type Answer, servePipe } from "./pipeline/serve-pipe.ts";
import { RELAY_GRACE_MS } from "../config/durations.ts";
import type { HttpHubClient } from "../operator/hub.ts";

export interface NodeOptions {
  config: Config;
  identity: Identity;
  profile: Profile;
  store: Store;
  /** Accept inbound connections (daemon / `net listen`); a one-shot CLI command does not. */
  listen: boolean;
  host?: string;
  port?: number;
  log?: Logger;
  /** Where counters go (src/util/metrics.ts); default: nowhere. */
  metrics?: MetricsSink;
  /**
   * Requests from peers wait until `openRequests()` (a daemon plugs its handlers in after the
   * node listens): without it, a Message arriving in between got "unsupported request" (2003),
   * which a sender takes as final, and was lost.
   */
  holdRequests?: boolean;
  /**
   * Pipeline requests with peers that do too (docs/protocol.md#pipelined-requests): advertises
   * `pipeline/1`. Default true; false makes a node that uses a stream per request (comparisons).
   */
  pipeline?: boolean;
}

/**
 * An Atlas node: one QUIC endpoint, the handshake on every connection, the live sessions and
 * their rows in the store. Daemon features (keepalive, outbox, rate limits) build on it.
 */
export class AtlasNode {
  readonly config: Config;
  readonly identity: Identity;
  readonly store: Store;
  readonly endpoint: QuicEndpoint;
  readonly log: Logger;
  /** Counters and scrape-time values (docs/operating.md, "Metrics"); `noMetrics` unless the daemon serves them. */
  readonly metrics: MetricsSink;
  readonly card: LocalCard;
  private sessions = new Map<string, Set<Session>>();
  private handlers = new Map<MsgTypeName, RequestHandler>();
  private closing = false;
  /** Our address as a peer saw it (HelloAck observed_addr), for STUN's second source (docs/protocol.md#stun). */
  onObservedAddr: ((addr: string, peerNodeId: string) => void) | null = null;
  /** Inbound request limits per peer and tier (docs/protocol.md#trust-rate-limits-and-bans). */
  readonly limiter: PeerRateLimiter;
  /** Called for every session as it opens (after rivals are settled): daemon services hook in here. */
  private openListeners = new Set<(s: Session) => void>();

  private constructor(o: NodeOptions, endpoint: QuicEndpoint) {
    if (o.holdRequests) this.requestsOpen = new Promise((r) => (this.releaseRequests = r));
    this.config = o.config;
    this.identity = o.identity;
    this.store = o.store;
    this.endpoint = endpoint;
    this.log = o.log ?? silentLogger;
    this.metrics = o.metrics ?? noMetrics;
    this.limiter = new PeerRateLimiter(o.config);
    this.card = {
      identity: o.identity,
      name: o.profile.name,
      skills: o.profile.skills,
      operator: o.profile.operator,
      wallet: o.profile.wallet,
      listenAddrs: o.listen ? listenAddrs(endpoint.local) : [],
      relays: [],
      agent: AGENT,
      features: o.pipeline === false ? [] : [PIPELINE_FEATURE],
    };
    if (o.listen) endpoint.onConnection = (c) => this.acceptConnection(c);
  }

  static async start(o: NodeOptions): Promise<AtlasNode> {
    const endpoint = await QuicEndpoint.bind({
      ...transportOptions(o.config),
      host: o.host ?? o.config.network.host,
      port: o.port ?? (o.listen ? o.config.network.port : 0),
      tls: { keyPem: o.identity.keyPem, certPem: o.identity.certPem },
    });
    return new AtlasNode(o, endpoint);
  }

  get nodeId(): string {
    return this.identity.nodeId;
  }

  /** Register the handler for one request type (Message, BootstrapRegister, …). */
  handle(type: MsgTypeName, h: RequestHandler): void {
    this.handlers.set(type, h);
  }

  /** Requests held since start (`holdRequests`) are served from now on. Idempotent. */
  openRequests(): void {
    this.releaseRequests();
  }

  private releaseRequests: () => void = () => {};
  /** Settles once requests may be served (at once unless `holdRequests`). */
  private requestsOpen: Promise<void> = Promise.resolve();

  /** Run `fn` for every session that opens from now on; returns the removal function. */
  onSessionOpen(fn: (s: Session) => void): () => void {
    this.openListeners.add(fn);
    return () => this.openListeners.delete(fn);
  }

  /** The handler registered for `type`, if any (to chain a new one in front of it). */
  handlerFor(type: MsgTypeName): RequestHandler | undefined {
    return this.handlers.get(type);
  }

  /** A live session with `nodeId`, preferring the newest (a relayed one in its grace period last). */
  liveSession(nodeId: string): Session | undefined {
    let best: Session | undefined;
    const rank = (s: Session) => (s.replacedByDirect ? 0 : 1);
    for (const s of this.sessions.get(nodeId) ?? []) {
      if (!s.isOpen) continue;
      if (!best || rank(s) > rank(best) || (rank(s) === rank(best) && s.openedAt > best.openedAt)) best = s;
    }
    return best;
  }

  /**
   * A live session with a configured node (bootstrap, relay): by its pinned node ID, else a direct
   * session with its address (a relayed session's remote is the relay's, never the peer's).
   */
  liveSessionAt(ref: { nodeId?: string; addr: SockAddr }): Session | undefined {
    if (ref.nodeId) return this.liveSession(ref.nodeId);
    return this.allSessions().find((s) => s.path === "direct" && sameAddr(s.conn.remote, ref.addr));
  }

  /** Every open session with one peer. */
  sessionsWith(nodeId: string): Session[] {
    return [...(this.sessions.get(nodeId) ?? [])].filter((s) => s.isOpen);
  }

  /** The node IDs of the peers with an open session (their rows may not be committed yet). */
  liveNodeIds(): IterableIterator<string> {
    return this.sessions.keys();
  }

  allSessions(): Session[] {
    return [...this.sessions.values()].flatMap((set) => [...set]).filter((s) => s.isOpen);
  }

  /**
   * Dial one address and run the handshake as initiator. `expectedNodeId` pins the peer.
   * Throws typed errors; the dialer (dial.ts) turns them into `last_failure` kinds.
   */
  // deno-lint-ignore require-await -- endpoint.connect can throw (closing, connection limit): callers need a rejection
  async connectTo(
    addr: SockAddr,
    o: { expectedNodeId?: string; dialTimeoutMs?: number; signal?: AbortSignal; punched?: boolean } = {},
  ): Promise<Session> {
    return this.runOutbound(this.endpoint.connect(addr), { ...o, dialled: addr, path: "direct" });
  }

  /**
   * The initiator's half on a connection already started: QUIC within the dial timeout, then the
   * handshake, then the session. Used for direct dials and for a relay pipe's inner connection.
   */
  async runOutbound(conn: QuicConnection, o: OutboundOptions): Promise<Session> {
    const held = this.holdStreams(conn);
    const onAbort = () => conn.close(0, "dial cancelled");
    o.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      const dialMs = o.dialTimeoutMs ?? this.config.transport.dial_timeout * 1000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const timeout = new Promise<never>((_, rej) => {
        timer = setTimeout(() => {
          conn.close(0, "dial timeout");
          rej(
            new AtlasError(
              "ERR_UNREACHABLE",
              `no answer from ${
                o.relay ? `${o.expectedNodeId?.slice(0, 18)}… via relay ${o.relay}` : formatAddr(conn.remote)
              } within ${dialMs / 1000} s`,
            ),
          );
        }, dialMs);
      });
      try {
        await Promise.race([conn.established, timeout]);
      } finally {
        clearTimeout(timer);
      }
      if (o.signal?.aborted) throw new AtlasError("ERR_CLOSED", "dial cancelled");
      let hs: HandshakeResult;
      try {
        hs = await initiateHandshake(conn, this.card, {
          expectedNodeId: o.expectedNodeId,
          timeoutMs: this.config.security.handshake_timeout * 1000,
          maxDriftS: this.config.security.max_clock_drift_secs,
          trustFor: (peer) => this.trustFor(peer, { dialled: o.dialled, path: o.path }),
        });
      } catch (e) {
        this.metrics.inc("atlas_handshakes_total", { direction: "outbound", result: "failed", reason: reasonOf(e) });
        throw e;
      }
      this.metrics.inc("atlas_handshakes_total", { direction: "outbound", result: "ok", reason: "none" });
      if (o.signal?.aborted) {
        conn.close(0, "dial cancelled");
        throw new AtlasError("ERR_CLOSED", "dial cancelled");
      }
      if (hs.observedAddr && o.path === "direct" && !o.tcpLeg) this.onObservedAddr?.(hs.observedAddr, hs.peer.nodeId);
      const s = this.openSession(conn, hs, "outbound", { path: o.path, relay: o.relay }, held, o.dialled);
      if (o.punched) s.punched = true; // before its row is written, which waits for the next turn
      return s;
    } catch (e) {
      conn.close(0, "dial failed");
      for (const s of held.streams) s.abort(0);
      throw e;
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Disconnect every session (docs/architecture.md#daemon shutdown) and close the endpoint. */
  async close(reason = DISCONNECT_SHUTDOWN, message = "node shutting down", localReason?: string): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    await Promise.all(this.allSessions().map((s) => s.disconnect(reason, message, localReason)));
    await this.endpoint.close(reason);
    // Session rows are closed as each session's `done` settles; give those writes a moment.
    await this.pendingWrites();
  }

  // ---- trust ----

  private hub: HttpHubClient | null = null;

  /**
   * docs/protocol.md#trust-rate-limits-and-bans trust, with the operator binding checked first (§13): verified only when it passes
   * both steps (or step 1 with farcaster.verify = "signature"); anything else leaves the session
   * at its other trust level and the verdict says why. The verdict rides on the peer card.
   */
  private async trustFor(peer: PeerCard, ctx: { dialled?: SockAddr; path: PathKind }): Promise<TrustLevel> {
    if (peer.operator) {
      const { verifyOperator } = await import("../operator/verify.ts");
      if (this.config.farcaster.verify === "hub" && !this.hub) {
        const { HttpHubClient, hubUrlFor } = await import("../operator/hub.ts");
        this.hub = new HttpHubClient(hubUrlFor(this.config.farcaster.hub_url), {
          cacheTtlSecs: this.config.farcaster.cache_ttl,
        });
      }
      peer.verdict = await verifyOperator(
        peer.operator,
        peer.nodeId,
        this.config,
        this.config.farcaster.verify === "hub" ? this.hub : null,
      );
      if (peer.verdict.status !== "verified") {
        this.log.info("operator binding not confirmed", {
          peer: shortNodeId(peer.nodeId),
          reason: peer.verdict.reason,
        });
      }
    }
    return trustLevelFor(this.config, peer, { ...ctx, operatorVerified: peer.verdict?.status === "verified" });
  }

  /** The hub client's reachability, for `atlas status` (null until a binding needed it). */
  hubStatus(): { url: string; reachable: boolean | null; last_error: string | null } | null {
    if (!this.hub) return null;
    const st = this.hub.status();
    return { url: this.hub.baseUrl, reachable: st.reachable, last_error: st.lastError ?? null };
  }

  // ---- inbound ----

  /**
   * The responder's half of a new connection. `relayed` marks a relay pipe's inner connection:
   * only its `source_id` may complete the handshake, and it has no address of its own (docs/protocol.md#relay).
   */
  acceptConnection(
    conn: QuicConnection,
    relayed?: { sourceId: string; relay: string },
    o: { tcpLeg?: boolean } = {},
  ): void {
    // No control stream within the handshake deadline: close with ERR_HANDSHAKE_TIMEOUT (no stream
    // can carry an Error frame). Once stream 0 arrives, acceptHandshake's own deadline takes over.
    const t = setTimeout(() => {
      if (!conn.verified) conn.close(ProtocolCode.ERR_HANDSHAKE_TIMEOUT, "handshake timeout");
    }, this.config.security.handshake_timeout * 1000);
    void conn.closed.then(() => clearTimeout(t));
    const held = this.holdStreams(conn, (s) => {
      clearTimeout(t);
      void this.runAccept(conn, new FramedStream(s), held, relayed, o.tcpLeg);
    });
  }

  private async runAccept(
    conn: QuicConnection,
    control: FramedStream,
    held: HeldStreams,
    relayed?: { sourceId: string; relay: string },
    tcpLeg = false,
  ): Promise<void> {
    const path: PathKind = relayed ? "relay" : "direct";
    let hs: HandshakeResult;
    try {
      await conn.established;
      hs = await acceptHandshake(conn, control, this.card, {
        timeoutMs: this.config.security.handshake_timeout * 1000,
        maxDriftS: this.config.security.max_clock_drift_secs,
        trustFor: (peer) => this.trustFor(peer, { path }),
        bannedUntil: (id) => this.bannedUntil(id),
        expectedNodeId: relayed?.sourceId,
        // A TCP leg's remote is a TCP address: no use to the peer's STUN (docs/protocol.md#the-tcp-leg).
        observedAddr: relayed || tcpLeg ? null : undefined,
      });
    } catch (e) {
      this.metrics.inc("atlas_handshakes_total", { direction: "inbound", result: "failed", reason: reasonOf(e) });
      this.log.info("inbound handshake failed", {
        from: relayed ? `relay ${relayed.relay}` : formatAddr(conn.remote),
        error: (e as Error).message,
      });
      for (const s of held.streams) s.abort(0);
      return;
    }
    this.metrics.inc("atlas_handshakes_total", { direction: "inbound", result: "ok", reason: "none" });
    try {
      this.openSession(conn, hs, "inbound", { path, relay: relayed?.relay }, held);
    } catch (e) {
      this.log.error("could not open session", { error: (e as Error).message });
      conn.close(ProtocolCode.ERR_INTERNAL, "internal error");
    }
  }

  /**
   * Hold request streams that arrive before the handshake completes (at most
   * `security.max_pending_streams`, docs/protocol.md#messages Streams); the first stream (id 0) is the control stream.
   */
  private holdStreams(conn: QuicConnection, onControl?: (s: QuicStream) => void): HeldStreams {
    const held: HeldStreams = { streams: [], session: null };
    conn.onStream = (s) => {
      if (held.session) return void this.serveRequest(held.session, s);
      if (s.id === 0 && onControl) return onControl(s);
      if (held.streams.length >= this.config.security.max_pending_streams) {
        return s.abort(ProtocolCode.ERR_NOT_VERIFIED);
      }
      held.streams.push(s);
    };
    return held;
  }

  private openSession(
    conn: QuicConnection,
    hs: HandshakeResult,
    direction: Direction,
    via: { path: PathKind; relay?: string },
    held: HeldStreams,
    dialled?: SockAddr,
  ): Session {
    const { path, relay } = via;
    const s = new Session({
      conn,
      control: hs.control,
      peer: hs.peer,
      trust: hs.trust,
      direction,
      path,
      relay,
      remoteAddress: formatAddr(conn.remote),
      log: this.log,
      verifyAck: hs.verifyAck,
      pipelined: this.card.features.includes(PIPELINE_FEATURE) && hs.peer.features.includes(PIPELINE_FEATURE),
    });
    // libSQL runs statements synchronously: write the rows after this turn, so VerifyAck (and the
    // caller's first request) leave first instead of waiting for fsyncs.
    s.recorded = this.track(
      new Promise((r) => setImmediate(r))
        .then(() => this.recordSession(s, hs.peer, hs.trust, dialled))
        .catch((e) => this.log.warn("could not record session", { error: (e as Error).message })),
    );
    const rivals = this.sessionsWith(s.nodeId);
    let set = this.sessions.get(s.nodeId);
    if (!set) this.sessions.set(s.nodeId, set = new Set());
    set.add(s);
    this.limiter.sessionStarted(s.nodeId);
    this.log.info("session opened", {
      peer: shortNodeId(s.nodeId),
      name: hs.peer.name,
      direction,
      path,
      relay,
      trust: hs.trust,
      remote: s.remoteAddress,
    });
    void s.done.then((reason) => this.onSessionDone(s, reason));
    void s.runControl();
    held.session = s;
    for (const st of held.streams.splice(0)) void this.serveRequest(s, st);
    const winner = this.settleRivals(s, rivals);
    for (const fn of this.openListeners) {
      try {
        fn(s);
      } catch (e) {
        this.log.warn("session listener failed", { error: (e as Error).message });
      }
    }
    return winner;
  }

  /**
   * One session per peer (docs/protocol.md#dialing). Two connections dialled at once from both ends: keep the one
   * initiated by the lower node ID, on both sides, so exactly one survives. Otherwise a newer
   * connection replaces the older. The loser gets Disconnect DISCONNECT_REPLACED.
   */
  private settleRivals(s: Session, rivals: Session[]): Session {
    let winner = s;
    const raceMs = this.config.security.handshake_timeout * 1000;
    const initiator = (x: Session) => (x.direction === "outbound" ? this.nodeId : x.nodeId);
    for (const old of rivals) {
      if (old.path === "relay" && s.path === "direct") {
        this.retireRelayed(old, s);
        continue;
      }
      const race = old.direction !== s.direction && s.openedAt - old.openedAt < raceMs;
      const keepOld = race && initiator(old) < initiator(s);
      const loser = keepOld ? s : old;
      if (keepOld) winner = old;
      if (loser.pinned) (keepOld ? old : s).pinned = true;
      void loser.disconnect(DISCONNECT_REPLACED, "replaced by another connection between the same nodes");
    }
    return winner;
  }

  /**
   * A direct session replaced a relayed one (hole punching, docs/protocol.md#hole-punching): new traffic takes the
   * direct one at once (`liveSession` prefers the newest), while requests already in flight on the
   * relayed one finish during RELAY_GRACE_MS; then it is closed and its relay slot freed.
   */
  private retireRelayed(old: Session, direct: Session): void {
    if (old.replacedByDirect) return;
    old.replacedByDirect = true;
    if (old.pinned) direct.pinned = true;
    const t = setTimeout(() => {
      void old.disconnect(DISCONNECT_REPLACED, "replaced by a direct path", UPGRADED_TO_DIRECT);
    }, RELAY_GRACE_MS);
    t.unref?.();
    void old.done.then(() => clearTimeout(t));
    // The direct path died within the grace: the relayed session is the best there is again.
    void direct.done.then(() => {
      if (!old.isOpen) return;
      clearTimeout(t);
      old.replacedByDirect = false;
    });
  }

  private async recordSession(s: Session, peer: PeerCard, trust: TrustLevel, dialled?: SockAddr): Promise<void> {
    const now = unixNow();
    // docs/architecture.md#peer-store: the address we dialled successfully, else its first advertised listen address
    // (only when we know none: an advertised address never replaces a proven one).
    // A relayed connection's `remote` is the relay's address: never the peer's public address.
    const relayed = s.path === "relay";
    const address = dialled
      ? formatAddr(dialled)
      : (await this.store.peers.get(peer.nodeId))?.address
      ? undefined
      : peer.listenAddrs[0];
    s.rowId = await this.store.recordSessionOpen(
      {
        node_id: peer.nodeId,
        public_key: peer.publicKey,
        address,
        public_address: s.direction === "inbound" && !relayed ? s.remoteAddress : undefined,
        relays: peer.relays,
        name: peer.name,
        skills: peer.skills,
        operator_username: peer.verdict?.status === "verified" ? peer.verdict.username : undefined,
        operator_fid: peer.verdict?.status === "verified" ? peer.verdict.fid : undefined,
        trust_level: trust,
        last_seen: now,
      },
      {
        node_id: peer.nodeId,
        direction: s.direction,
        path: s.path,
        relay: s.relay ?? null,
        remote_address: s.remoteAddress,
        protocol_v: 1,
        trust_level: trust,
        connected_at: now,
        punched: s.punched,
      },
      now,
    );
  }

  private writes = new Set<Promise<unknown>>();
  private async pendingWrites(): Promise<void> {
    while (this.writes.size > 0) await Promise.allSettled([...this.writes]);
  }

  /** Keep track of a background store write so `close()` can wait for it. */
  private track<T>(p: Promise<T>): Promise<T> {
    this.writes.add(p);
    void p.finally(() => this.writes.delete(p));
    return p;
  }

  private onSessionDone(s: Session, reason: string): void {
    this.sessions.get(s.nodeId)?.delete(s);
    if (this.sessions.get(s.nodeId)?.size === 0) {
      this.sessions.delete(s.nodeId);
      this.limiter.sessionEnded(s.nodeId);
    }
    // The peer's operator asked to disconnect: close every session with it (docs/protocol.md#dialing).
    if (s.remoteDisconnect && reason === DISCONNECT_SHUTDOWN) {
      for (const o of this.sessionsWith(s.nodeId)) o.close(reason);
    }
    this.log.info("session closed", { peer: shortNodeId(s.nodeId), reason });
    const now = unixNow();
    void this.track((async () => {
      try {
        await s.recorded;
        if (s.rowId !== null) await this.store.recordSessionClose(s.rowId, s.nodeId, reason, now);
        else await this.store.peers.upsert({ node_id: s.nodeId, last_seen: now }, now);
        if (reason === "timeout") await this.store.peers.recordFailure(s.nodeId, "disconnected", now);
      } catch (e) {
        this.log.warn("could not record session end", { error: (e as Error).message });
      }
    })());
  }

  // ---- request streams ----

  /**
   * Rate limits (docs/protocol.md#trust-rate-limits-and-bans): a request over its tier's limit is answered Error 4001 and counts as
   * a violation; enough violations ban the peer: ban_until stored, Disconnect DISCONNECT_BANNED.
   */
  private admit(session: Session, req: WireMessage, bytes: number): Answer | null {
    // A configured relay pairs many sources with this node: its RelayConnects are their requests,
    // not its own, and must not get the relay banned (docs/decisions.md, "Relay").
    if (
      req.type === "RelayConnect" && req.session !== undefined && session.trust === "relay" && session.path === "direct"
    ) return null;
    const d = this.limiter.check(session.nodeId, session.trust, bytes);
    if (d.ok) return null;
    return {
      res: {
        type: "Error",
        code: ProtocolCode.ERR_RATE_LIMITED,
        message: `rate limit exceeded (${d.limit})`,
        ref_msg_id: req.type === "Message" ? req.id : undefined,
      },
      after: () => this.penalize(session, d),
    };
  }

  /**
   * A large request (payload above 64 KiB) is charged to the peer's limits when its header
   * arrives, before its payload is read: frames that never complete count too (issue 16). The
   * refusal cannot name the message (its id is in the payload), so it carries no ref_msg_id.
   */
  private chargeAtHeader(session: Session, onRefused: (d: RateDecision) => void): HeaderCheck {
    return (_type, len) => {
      if (len <= PRE_HANDSHAKE_MAX_PAYLOAD) return null;
      const d = this.limiter.check(session.nodeId, session.trust, HEADER_LEN + len);
      if (d.ok) return null;
      onRefused(d);
      return { code: "ERR_RATE_LIMITED", message: `rate limit exceeded (${d.limit})` };
    };
  }

  /** A refused request is a violation; enough of them ban the peer. */
  private async penalize(session: Session, d: RateDecision): Promise<void> {
    this.metrics.inc("atlas_rate_limited_total", { tier: session.trust });
    this.log.warn("rate limited", { peer: shortNodeId(session.nodeId), limit: d.limit, violations: d.violations });
    await this.store.peers.setViolations(session.nodeId, d.violations).catch(() => {});
    if (d.banUntil !== undefined) await this.ban(session.nodeId, d.banUntil, "rate_limit");
  }

  /**
   * Unix time until which `nodeId` is banned, or null. Bans live in memory (loaded at start,
   * updated by ban/unban), so a handshake costs no database query.
   */
  private bans: Map<string, number> | null = null;
  async bannedUntil(nodeId: string): Promise<number | null> {
    this.bans ??= await this.store.peers.bans();
    const until = this.bans.get(nodeId);
    if (until === undefined) return null;
    if (until <= unixNow()) {
      this.bans.delete(nodeId);
      return null;
    }
    return until;
  }

  /** Ban a peer until `until` (Unix s): stored, and every live session with it closed. */
  async ban(nodeId: string, until: number, reason: "rate_limit" | "manual" = "manual"): Promise<void> {
    this.metrics.inc("atlas_bans_total", { reason });
    await this.store.peers.setBan(nodeId, until);
    (this.bans ??= await this.store.peers.bans()).set(nodeId, until);
    this.log.warn("peer banned", { peer: shortNodeId(nodeId), until });
    await Promise.all(this.sessionsWith(nodeId).map((s) => s.disconnect(DISCONNECT_BANNED, `banned until ${until}`)));
  }

  /** Peers banned right now (from the in-memory ban list; 0 before the first handshake loaded it). */
  activeBans(): number {
    const now = unixNow();
    let n = 0;
    for (const until of this.bans?.values() ?? []) if (until > now) n++;
    return n;
  }

  async unban(nodeId: string): Promise<void> {
    await this.store.peers.setBan(nodeId, null);
    this.bans?.delete(nodeId);
    this.limiter.reset(nodeId);
  }

  /**
   * A request stream: one request and its answer, or — from a peer that pipelines, when more
   * frames follow the first — a pipe of them (docs/protocol.md#pipelined-requests).
   */
  private async serveRequest(session: Session, stream: QuicStream): Promise<void> {
    const fs = new FramedStream(stream);
    let refused: RateDecision | null = null;
    fs.checkHeader = this.chargeAtHeader(session, (d) => (refused = d));
    try {
      const req = await fs.read(this.config.transport.read_timeout * 1000);
      if (!req) return stream.abort(0);
      const owning = STREAM_OWNING_REQUESTS.has(req.type);
      const first = await this.answer(session, req, fs.lastFrameBytes, stream, false).catch((e) => {
        if (owning) throw e; // its exchange is mid-way: the reset says so
        return this.handlerFailed(session, e);
      });
      if (!owning && session.pipelined && !fs.atEnd()) {
        this.metrics.inc("atlas_requests_served_total", PIPE);
        const answer = (m: WireMessage, bytes: number) => {
          this.metrics.inc("atlas_requests_served_total", PIPE);
          return this.answer(session, m, bytes, stream, true).catch((e) => this.handlerFailed(session, e));
        };
        return await servePipe({ fs, answer, readTimeoutMs: this.config.transport.read_timeout * 1000 }, first);
      }
      this.metrics.inc("atlas_requests_served_total", OWN_STREAM);
      if (first.res) await fs.end(first.res);
      // One request frame per stream (docs/protocol.md#messages Streams): bytes after it that the handler did not
      // read would only sit in quiche's buffers — except on streams that carry a multi-frame exchange.
      if (!owning) stream.stopReading(0);
      await first.after?.();
    } catch (e) {
      if (refused) await this.penalize(session, refused);
      this.log.debug("request stream failed", { peer: shortNodeId(session.nodeId), error: (e as Error).message });
      stream.abort(0);
    }
  }

  /** Admit one request frame of `bytes` bytes and run its handler; `shared`: it came on a pipe. */
  private async answer(
    session: Session,
    req: WireMessage,
    bytes: number,
    stream: QuicStream,
    shared: boolean,
  ): Promise<Answer> {
    session.lastActivity = Date.now();
    const chargedAtHeader = bytes > HEADER_LEN + PRE_HANDSHAKE_MAX_PAYLOAD;
    const refusal = chargedAtHeader ? null : this.admit(session, req, bytes);
    if (refusal) return refusal;
    await this.requestsOpen;
    const h = this.handlers.get(req.type);
    if (!h) return { res: rejected(`unsupported request ${req.type}`) };
    if (shared && STREAM_OWNING_REQUESTS.has(req.type)) {
      return { res: rejected(`${req.type} needs a stream of its own, not a pipe`) };
    }
    return { res: await h(session, req, stream, shared) };
  }

  /** A handler threw: its request is answered Error 5001 (on a pipe, the others go on). */
  private handlerFailed(session: Session, e: unknown): Answer {
    this.log.debug("request handler failed", { peer: shortNodeId(session.nodeId), error: (e as Error).message });
    return { res: { type: "Error", code: ProtocolCode.ERR_INTERNAL, message: "internal error" } };
  }
}

const PIPE = { stream: "pipe" } as const;
const OWN_STREAM = { stream: "own" } as const;

function rejected(message: string): WireMessage {
  return { type: "Error", code: ProtocolCode.ERR_MESSAGE_REJECTED, message };
}

export interface OutboundOptions {
  expectedNodeId?: string;
  dialTimeoutMs?: number;
  signal?: AbortSignal;
  /** The address dialled directly (stored as the peer's `address`, matched for trust). */
  dialled?: SockAddr;
  path: PathKind;
  /** `atlas_<id>@host:port` of the relay a relayed connection goes through. */
  relay?: string;
  /** A direct connection through the NAT mappings hole punching opened (docs/protocol.md#hole-punching). */
  punched?: boolean;
  /** The connection runs over the TCP leg: the peer's observed_addr is a TCP address, no STUN source. */
  tcpLeg?: boolean;
}

export interface HeldStreams {
  streams: QuicStream[];
  session: Session | null;
}

import { AtlasError, isAtlasError, ProtocolCode, remoteCodeName } from "../errors.ts";
import type { PeerCard } from "../handshake/handshake.ts";
import type { QuicConnection } from "../transport/connection.ts";
import type { QuicStream } from "../transport/stream.ts";
import { FramedStream } from "../wire/framed-stream.ts";
import { WireError } from "../wire/errors.ts";
import {
  DISCONNECT_PROTOCOL_ERROR,
  DISCONNECT_REPLACED,
  DISCONNECT_SHUTDOWN,
  type TrustLevel,
  type WireMessage,
} from "../wire/messages.ts";
import { LogBudget, type Logger } from "../util/log.ts";
import { STREAM_OWNING_REQUESTS } from "./pipeline/constants.ts";
import { type PipeHost, RequestPipe } from "./pipeline/request-pipe.ts";
import { sleep, unixNow, within } from "../util/time.ts";
import {
  DISCONNECT_FLUSH_MS,
  DISCONNECT_WRITE_MS,
  LIVENESS_PROBE_MS,
  LIVENESS_QUIET_MS,
  PEER_ERROR_LOG_BURST,
  PEER_ERROR_LOG_WINDOW_MS,
  PROTOCOL_ERROR_LINGER_MS,
} from "../config/durations.ts";

export type PathKind = "direct" | "relay";

/** The close reason of a relayed session retired because a direct one replaced it (docs/protocol.md#hole-punching). */
export const UPGRADED_TO_DIRECT = "upgraded to a direct path";
export type Direction = "inbound" | "outbound";

export interface PingResult {
  rttMs: number;
  /** Ping.ts we sent and Pong.ts the peer answered with (Unix seconds). */
  pingTs: number;
  pongTs: number;
}

/** Handles one request frame on a request stream and returns the response frame (docs/protocol.md#messages Streams). */
/**
 * Requests an initiator sends before VerifyAck (docs/protocol.md#handshake step 4); more wait for
 * it. Half of what a responder holds unread before its own VerifyAck (`security.max_pending_streams`,
 * 8 by default), so a responder with a lowered limit still takes them.
 */
export const EARLY_REQUESTS = 4;

/**
 * Answers one request. `stream` is the request's stream: a handler may read and write more on it
 * only when `shared` is false — on a pipe (docs/protocol.md#pipelined-requests) other requests' frames
 * and answers use it too, and only its ID (their order) is the handler's.
 */
export type RequestHandler = (
  session: Session,
  req: WireMessage,
  stream: QuicStream,
  shared: boolean,
) => Promise<WireMessage | null>;

/**
 * A verified connection to one peer: the control stream (Ping/Pong, Disconnect, Error) and
 * request streams. States: open → closed (with a reason recorded in the session row).
 */
export class Session {
  readonly conn: QuicConnection;
  readonly control: FramedStream;
  readonly peer: PeerCard;
  readonly trust: TrustLevel;
  readonly direction: Direction;
  readonly path: PathKind;
  readonly relay?: string;
  readonly remoteAddress: string;
  readonly openedAt = Date.now();
  rowId: number | null = null;
  /** Settles once the peer and session rows are written (in the background). */
  recorded: Promise<void> = Promise.resolve();
  /** When a frame last came from the peer (control frame or response): liveness, not activity. */
  lastHeardAt = Date.now();
  /** Last request or operator action; keepalive Pings do not count (docs/protocol.md#dialing session_idle). */
  lastActivity = Date.now();
  /** Kept until `net disconnect` (made by `net connect` in a daemon): never closed for idleness. */
  pinned = false;
  /** A direct session that hole punching opened through both NATs (docs/protocol.md#hole-punching). */
  punched = false;
  /** Set while this relayed session is kept for its grace period after a direct one replaced it. */
  replacedByDirect = false;
  /** RTT of the latest Pong, for `atlas status`. */
  lastRttMs: number | null = null;
  /** The peer ended the session with a Disconnect frame. */
  remoteDisconnect = false;
  /** The last control frame was an Error (a FIN right after it: the peer refused our frame). */
  private peerRefused = false;
  /** Both ends advertised `pipeline/1`: requests made while others wait share a stream. */
  readonly pipelined: boolean;
  /** Requests sent and not yet answered (on streams of their own or on the pipe). */
  private outstanding = 0;
  /** The stream requests made while others wait go on, while it takes more. */
  private pipe: RequestPipe | null = null;
  /** Outbound: the trust level the peer gave us, once its VerifyAck has come. */
  remoteTrust: TrustLevel | null = null;
  /** Outbound, until VerifyAck: settles with it (HandshakeResult.verifyAck). */
  private accepted: Promise<TrustLevel> | null;
  private earlyLeft = EARLY_REQUESTS;
  /** Consecutive keepalive Pings without a Pong. */
  missedPongs = 0;
  /** Why this session ended, once it has: a Disconnect reason, or a local label. */
  closeReason: string | null = null;
  readonly done: Promise<string>;

  private pings = new Map<
    number,
    {
      sentAt: number;
      ts: number;
      resolve: (r: PingResult) => void;
      reject: (e: Error) => void;
      timer: ReturnType<typeof setTimeout>;
    }
  >();
  private nextPingId = 1;
  private resolveDone!: (reason: string) => void;
  private log: Logger;
  /** A peer can send Error frames without limit: they are logged within a budget (durations.ts). */
  private peerErrorLog = new LogBudget(PEER_ERROR_LOG_BURST, PEER_ERROR_LOG_WINDOW_MS);

  constructor(
    o: {
      conn: QuicConnection;
      control: FramedStream;
      peer: PeerCard;
      trust: TrustLevel;
      direction: Direction;
      path: PathKind;
      relay?: string;
      remoteAddress: string;
      log: Logger;
      /** Outbound: VerifyAck, still on its way when the session opens. */
      verifyAck?: Promise<TrustLevel>;
      pipelined?: boolean;
    },
  ) {
    this.conn = o.conn;
    this.control = o.control;
    this.peer = o.peer;
    this.trust = o.trust;
    this.direction = o.direction;
    this.path = o.path;
    this.relay = o.relay;
    this.remoteAddress = o.remoteAddress;
    this.log = o.log;
    this.accepted = o.verifyAck ?? null;
    this.pipelined = o.pipelined ?? false;
    this.accepted?.then((t) => {
      this.remoteTrust = t;
      this.accepted = null;
    }, () => {});
    this.done = new Promise((r) => (this.resolveDone = r));
    void this.conn.closed.then((info) => {
      const reason = this.closeReason ??
        (info.timedOut ? "timeout" : info.local ? info.reason || "closed" : info.reason || "peer_closed");
      this.finish(reason);
    });
  }

  get nodeId(): string {
    return this.peer.nodeId;
  }

  get isOpen(): boolean {
    return this.closeReason === null && this.conn.isConnected;
  }

  /** How outputs name the path: `direct`, `direct (hole-punched)` or `relay (atlas_…@addr)`. */
  get pathLabel(): string {
    if (this.path === "relay") return `relay (${this.relay ?? "?"})`;
    return this.punched ? "direct (hole-punched)" : "direct";
  }

  /** Read the control stream for the life of the session. */
  async runControl(): Promise<void> {
    if (this.accepted) {
      try {
        await this.accepted; // its reader has the control stream until then
      } catch {
        return; // refused or timed out: the connection is closed with the reason
      }
    }
    for (;;) {
      let m: WireMessage | null;
      try {
        m = await this.control.read();
      } catch (e) {
        if (this.isOpen) await this.protocolError(e as Error);
        return;
      }
      if (m === null) {
        // Error then FIN is how a peer refuses our control frame (see protocolError).
        if (this.isOpen) this.close(this.peerRefused ? DISCONNECT_PROTOCOL_ERROR : "peer_closed");
        return;
      }
      this.lastHeardAt = Date.now();
      this.onControl(m);
    }
  }

  /**
   * The control stream broke (docs/protocol.md#messages): a frame we cannot decode — FramedStream has already
   * handed quiche the Error frame (1001 version, 2002 oversize, 2003 otherwise) with FIN — or a
   * reset stream, which gets a Disconnect instead. The control stream is finished either way, so
   * the Disconnect reason rides in the CONNECTION_CLOSE (code: the Error's, like a refused
   * handshake). That close waits PROTOCOL_ERROR_LINGER_MS (less if the peer closes first):
   * quiche drops stream data it has not sent yet once close() is called.
   */
  private async protocolError(e: Error): Promise<void> {
    this.closeReason = DISCONNECT_PROTOCOL_ERROR;
    const answered = e instanceof WireError;
    this.log.info("control stream failed: disconnecting", {
      peer: this.nodeId.slice(0, 18) + "…",
      error: e.message,
      code: answered ? e.wireCode : undefined,
    });
    if (!answered) {
      const bye = { type: "Disconnect" as const, reason: DISCONNECT_PROTOCOL_ERROR, message: e.message.slice(0, 200) };
      await within(this.control.end(bye).catch(() => {}), PROTOCOL_ERROR_LINGER_MS);
    }
    await within(this.conn.closed, PROTOCOL_ERROR_LINGER_MS);
    this.conn.close(answered ? e.wireCode : 0, DISCONNECT_PROTOCOL_ERROR);
  }

  private onControl(m: WireMessage): void {
    this.peerRefused = m.type === "Error";
    switch (m.type) {
      case "Ping":
        this.control.write({ type: "Pong", ts: unixNow(), echo: m.ts, id: m.id }).catch(() => {});
        return;
      case "Pong": {
        const p = this.pings.get(m.id);
        if (!p) return;
        this.pings.delete(m.id);
        clearTimeout(p.timer);
        this.lastRttMs = performance.now() - p.sentAt;
        this.missedPongs = 0;
        p.resolve({ rttMs: this.lastRttMs, pingTs: p.ts, pongTs: m.ts });
        return;
      }
      case "Disconnect":
        this.log.info("peer disconnected", {
          peer: this.nodeId.slice(0, 18) + "…",
          reason: m.reason,
          message: m.message,
        });
        // Both ends retire a relayed session that a direct one replaced: whichever Disconnect
        // arrives first, the row says what happened.
        this.closeReason = this.replacedByDirect && m.reason === DISCONNECT_REPLACED ? UPGRADED_TO_DIRECT : m.reason;
        this.remoteDisconnect = true;
        this.conn.close(0, m.reason);
        return;
      case "Error": {
        const logged = this.peerErrorLog.take();
        if (!logged) return;
        this.log.warn("peer reported an error", {
          peer: this.nodeId.slice(0, 18) + "…",
          code: m.code,
          message: m.message,
          suppressed: logged.suppressed || undefined,
        });
        return;
      }
      default:
        this.control.write({
          type: "Error",
          code: ProtocolCode.ERR_MESSAGE_REJECTED,
          message: `${m.type} is not valid on the control stream`,
        })
          .catch(() => {});
    }
  }

  /** Send Ping on the control stream and wait for the matching Pong. */
  ping(timeoutMs: number): Promise<PingResult> {
    if (!this.isOpen) return Promise.reject(new AtlasError("ERR_CLOSED", "session is closed"));
    const id = this.nextPingId++ >>> 0;
    const ts = unixNow();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pings.delete(id);
        reject(new AtlasError("ERR_TIMEOUT", `no Pong within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.pings.set(id, { sentAt: performance.now(), ts, resolve, reject, timer });
      this.control.write({ type: "Ping", ts, id }).catch((e) => {
        clearTimeout(timer);
        this.pings.delete(id);
        reject(e);
      });
    });
  }

  /**
   * One request/response exchange: on a stream of its own, or — when the peer pipelines and
   * another request waits for its answer (or the session's pipe is still open) — on the pipe.
   */
  async request(req: WireMessage, timeoutMs: number): Promise<WireMessage> {
    if (!this.isOpen) throw new AtlasError("ERR_CLOSED", "session is closed");
    if (this.accepted && this.earlyLeft-- <= 0) await this.untilAccepted(timeoutMs);
    this.lastActivity = Date.now();
    const piped = this.pipelined && (this.outstanding > 0 || this.pipe !== null) &&
      !STREAM_OWNING_REQUESTS.has(req.type);
    this.outstanding++;
    let res: WireMessage;
    try {
      res = piped
        ? await this.pipeFor(timeoutMs).request(req, timeoutMs)
        : await this.requestOnOwnStream(req, timeoutMs);
    } finally {
      this.outstanding--;
    }
    if (res.type === "Error") {
      throw new AtlasError(
        remoteCodeName(res.code, res.message),
        `peer answered with error ${res.code}: ${res.message}`,
      );
    }
    return res;
  }

  private async requestOnOwnStream(req: WireMessage, timeoutMs: number): Promise<WireMessage> {
    // Beyond the peer's stream credit, wait for it (in order) rather than fail.
    const fs = new FramedStream(await this.conn.openStreamWhenAllowed(timeoutMs));
    await fs.end(req).catch((e) => {
      // A peer that refuses a frame at its header (too large, over a limit) answers with an
      // Error frame and stops reading: the answer explains the stopped write better.
      if (!isAtlasError(e, "ERR_RESET")) throw e;
    });
    this.waitFor(fs.stream);
    let res: WireMessage | null;
    try {
      res = await fs.read(timeoutMs);
    } catch (e) {
      // No answer in time: the peer may be gone without a word (killed, its NAT mapping lost),
      // and QUIC would only notice at its idle timeout. Drop the session so the next attempt
      // dials afresh instead of waiting on a dead path again.
      if (e instanceof AtlasError && e.code === "ERR_TIMEOUT") this.close("timeout", "request timeout");
      throw e;
    } finally {
      this.waiting.delete(fs.stream);
    }
    this.lastHeardAt = Date.now();
    if (!res) throw new AtlasError("ERR_RESET", "peer closed the request stream without answering");
    return res;
  }

  /** The open pipe, or a new one (its stream waits for credit in order, like any request's). */
  private pipeFor(timeoutMs: number): RequestPipe {
    if (this.pipe?.open) return this.pipe;
    return (this.pipe = new RequestPipe(this.pipeHost, this.conn.openStreamWhenAllowed(timeoutMs)));
  }

  private readonly pipeHost: PipeHost = {
    watch: (stream) => this.waitFor(stream),
    unwatch: (stream) => void this.waiting.delete(stream),
    heard: () => void (this.lastHeardAt = Date.now()),
    timedOut: () => this.close("timeout", "request timeout"),
    retired: (pipe) => void (this.pipe === pipe && (this.pipe = null)),
  };

  /** Past EARLY_REQUESTS, a request waits for VerifyAck: a responder resets early streams beyond its hold. */
  private async untilAccepted(timeoutMs: number): Promise<void> {
    const accepted = this.accepted;
    if (!accepted) return;
    await within(accepted, timeoutMs, () => new AtlasError("ERR_TIMEOUT", `no VerifyAck within ${timeoutMs / 1000} s`));
  }

  /**
   * While requests wait for answers: once the peer has been quiet for LIVENESS_QUIET_MS, Ping it;
   * a Pong means alive (watch on), none in time means the session is dead (closed by `probe`) and
   * every waiting request fails with ERR_RESET, so its caller dials afresh instead of waiting out
   * its timeout. One timer per session, not one per request: it stays armed across requests and
   * lapses at its next firing once none waits.
   */
  private waitFor(stream: QuicStream): void {
    this.waiting.add(stream);
    if (!this.watching) {
      this.watching = true;
      this.checkLiveness();
    }
  }

  private readonly waiting = new Set<QuicStream>();
  /** A liveness timer or probe is under way for `waiting`. */
  private watching = false;
  private watchTimer: ReturnType<typeof setTimeout> | null = null;

  private checkLiveness = (): void => {
    this.watchTimer = null;
    if (this.waiting.size === 0 || !this.isOpen) return void (this.watching = false);
    const quiet = Date.now() - this.lastHeardAt;
    if (quiet < LIVENESS_QUIET_MS) {
      this.watchTimer = setTimeout(this.checkLiveness, LIVENESS_QUIET_MS - quiet);
      this.watchTimer.unref(); // the request's own read deadline keeps the program alive
      return;
    }
    void this.probe().then((alive) => {
      if (alive) return this.checkLiveness();
      this.watching = false;
      const why = new AtlasError("ERR_RESET", `${this.nodeId.slice(0, 18)}… stopped answering (no Pong)`);
      for (const s of this.waiting) s.fail(why);
      this.waiting.clear();
    });
  };

  private probing: Promise<boolean> | null = null;

  /**
   * One liveness Ping at a time for every waiting request. False when no Pong (nor anything
   * else) came in time: the session is then closed as dead.
   */
  private probe(): Promise<boolean> {
    if (this.probing) return this.probing;
    const sent = Date.now();
    const ms = Math.max(LIVENESS_PROBE_MS, 4 * (this.lastRttMs ?? 0));
    this.probing = this.ping(ms).then(() => true, () => this.lastHeardAt >= sent).then((alive) => {
      this.probing = null;
      if (!alive && this.isOpen) {
        this.log.info("peer stopped answering: session closed", { peer: this.nodeId.slice(0, 18) + "…" });
        this.close("timeout", "no Pong to a liveness probe");
      }
      return alive;
    });
    return this.probing;
  }

  /** Send Disconnect and close the connection (docs/protocol.md#messages Disconnect). */
  async disconnect(
    reason = DISCONNECT_SHUTDOWN,
    message = "operator requested disconnect",
    localReason = reason,
  ): Promise<void> {
    if (!this.isOpen) return;
    // A session opened at Verify: let the responder finish its side first (it settles within the
    // handshake's deadline), so it records the session it is told to close — a one-shot command
    // can be done before VerifyAck is back.
    if (this.accepted) await this.accepted.catch(() => {});
    if (!this.isOpen) return;
    this.closeReason = localReason;
    try {
      await within(this.control.end({ type: "Disconnect", reason, message }), DISCONNECT_WRITE_MS);
    } catch {
      // peer already gone
    }
    await sleep(DISCONNECT_FLUSH_MS); // let the frame leave before CONNECTION_CLOSE
    this.conn.close(0, reason);
    await within(this.conn.closed, DISCONNECT_WRITE_MS);
  }

  /** Drop a session whose path is dead: no Disconnect, no closing period to wait out. */
  abandon(reason: string): void {
    if (this.closeReason === null) this.closeReason = reason;
    this.conn.abandon(reason);
  }

  /** Close without telling the peer why (beyond the QUIC close reason). */
  close(reason: string, quicReason = reason): void {
    if (this.closeReason === null) this.closeReason = reason;
    this.conn.close(0, quicReason);
  }

  private finish(reason: string): void {
    if (this.closeReason === null) this.closeReason = reason;
    if (this.watchTimer) clearTimeout(this.watchTimer);
    this.watchTimer = null;
    this.watching = false;
    for (const p of this.pings.values()) {
      clearTimeout(p.timer);
      p.reject(new AtlasError("ERR_RESET", "session closed before the Pong arrived"));
    }
    this.pings.clear();
    this.resolveDone(this.closeReason);
  }
}

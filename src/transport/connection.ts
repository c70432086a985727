import { setImmediate } from "node:timers";
import { AtlasError } from "../errors.ts";
import { BURST_SLICE_MS, REPLY_TIME_WEIGHT, WALK_BACKSTOP_MS } from "../config/durations.ts";
import type { SockAddr } from "./addr.ts";
import { type HostPort, quiche, type QuicheConnection } from "./native.ts";
import { ConnBudget } from "./read-budget.ts";
import { onBeforeBlocking } from "../util/blocking.ts";
import { QuicStream } from "./stream.ts";

/**
 * Where a connection's packets go: the UDP socket, or (later) a relay pipe — a virtual path.
 * `packet` is a view of the connection's scratch buffer, valid only during the call: copy it.
 */
export interface PacketSink {
  /** Send (or queue) one packet; `packet` is only valid during the call. */
  sendPacket(packet: Uint8Array, to: HostPort): void;
  /** Send what `sendPacket` queued, now: called after each burst of a connection's packets. */
  flush?(): void;
  /**
   * Packets just left on a connection whose peer has been answering within `replyMs` (average):
   * the sink may stay awake for the answer (busy polling, docs/transport.md).
   */
  expectReply?(replyMs: number): void;
}

export interface CloseInfo {
  /** true when we closed it, false when the peer did or it timed out. */
  local: boolean;
  app: boolean;
  code: number;
  reason: string;
  timedOut: boolean;
}

/** Packets drained per connection per turn: caps quiche 0.18's send() loop bug (docs/transport.md, "Traps"). */
const MAX_PACKETS_PER_TURN = 256;
const dec = new TextDecoder();
/** Where received DATAGRAMs land, one at a time (see `onDatagram`). */
const dgramScratch = new Uint8Array(65536);
/**
 * Where every connection's outgoing packets are built, one at a time: a PacketSink copies the
 * packet during `sendPacket`, so one buffer serves all (not 1.5 KiB more per idle connection).
 */
const sendScratch = new Uint8Array(65536);
const enc = new TextEncoder();

/**
 * The driver: connections with work to do are processed together once the current batch of
 * incoming datagrams has been handed to quiche (setImmediate runs after the poll phase), so
 * acks and flow-control updates for a burst of packets go out in one flush.
 */
const dirty = new Set<QuicConnection>();
let scheduled = false;
function schedule(c: QuicConnection): void {
  dirty.add(c);
  if (!scheduled) {
    scheduled = true;
    setImmediate(runDirty);
  }
}
/**
 * When the current burst of work began (a run of the driver, or the last early send): a burst
 * that keeps the CPU longer than `BURST_SLICE_MS` (eight answers to eight requests that came in
 * one batch, say) sends what it has written so far at once instead of all of it at the end of
 * the turn, so the peer starts on the first answers while the rest are made and the two
 * processes overlap instead of taking turns (bench/RESULTS.md, "Issue 17 levers", item 8).
 */
let burstStart = 0;
function runDirty(): void {
  scheduled = false;
  burstStart = performance.now();
  const batch = [...dirty];
  dirty.clear();
  for (const c of batch) c.process();
}

/**
 * The loop is about to block (a store statement: util/blocking.ts): send what this turn has
 * written so far instead of after the statement, as the burst slice would once it has passed.
 */
onBeforeBlocking(() => {
  for (const c of dirty) c.flushWritten();
});

/**
 * One QUIC connection over some PacketSink. States: handshaking → established → (closing) →
 * closed. `established` resolves when TLS completes; `closed` resolves once, with why.
 * The transport knows nothing of Atlas frames; `verified` is set by the handshake layer so the
 * endpoint can count connections that are still unproven (docs/protocol.md#handshake handshake limit).
 */
export class QuicConnection {
  readonly native: QuicheConnection;
  readonly isClient: boolean;
  readonly remote: SockAddr;
  readonly scid: Uint8Array;
  readonly established: Promise<void>;
  readonly closed: Promise<CloseInfo>;
  verified = false;
  /** Bytes this connection's frames in progress may hold (read-budget.ts). */
  readonly budget: ConnBudget;
  /** Called for each stream the peer opens. Set before the first packet is processed. */
  onStream: ((s: QuicStream) => void) | null = null;
  /**
   * Called for each received DATAGRAM. `d` is a view of a shared scratch buffer, valid only during
   * the call (a relay forwards thousands per second: no allocation per packet): copy to keep it.
   */
  onDatagram: ((d: Uint8Array) => void) | null = null;
  /** Called once when the connection is gone (after `closed` settles). */
  onGone: ((c: QuicConnection) => void) | null = null;

  private sink: PacketSink;
  private streams = new Map<number, QuicStream>();
  private writers = new Set<QuicStream>();
  /** Streams keeping their last written byte until the end of the turn (QuicStream.holdTail). */
  private heldTails = new Set<QuicStream>();
  private nextStreamId: number;
  private timer: ReturnType<typeof setTimeout> | null = null;
  private timerAt = 0;
  private gotPackets = false;
  private flushDeferred = false;
  private sawShortHeader = false;
  private isEstablished = false;
  private closeInfo: CloseInfo | null = null;
  private localClose = false;
  private resolveEstablished!: () => void;
  private rejectEstablished!: (e: Error) => void;
  private resolveClosed!: (c: CloseInfo) => void;
  private sendBuf: Uint8Array;
  private gone = false;
  /** Datagrams dropped by quiche because its send queue was full (docs/protocol.md#relay). */
  dgramDrops = 0;
  /**
   * How soon the peer answers: the average time from a send of our streams' data (the first
   * since the last packet came in) to the next packet in, ms; Infinity until measured. Gates
   * busy polling (docs/transport.md).
   */
  replyMs = Infinity;
  private sentAt = 0;
  /** A stream wrote since the last flush: the next packets say something the peer will answer. */
  private wrote = false;

  constructor(
    native: QuicheConnection,
    opts: {
      isClient: boolean;
      remote: SockAddr;
      scid: Uint8Array;
      sink: PacketSink;
      maxPacket: number;
      budget?: ConnBudget;
    },
  ) {
    this.native = native;
    this.isClient = opts.isClient;
    this.remote = opts.remote;
    this.scid = opts.scid;
    this.sink = opts.sink;
    this.budget = opts.budget ?? ConnBudget.unlimited();
    this.nextStreamId = opts.isClient ? 0 : 1;
    this.nextPeerStream = opts.isClient ? 1 : 0;
    this.sendBuf = sendScratch.subarray(0, Math.min(Math.max(opts.maxPacket, 1500), sendScratch.length));
    this.established = new Promise((res, rej) => {
      this.resolveEstablished = res;
      this.rejectEstablished = rej;
    });
    this.established.catch(() => {});
    this.closed = new Promise((res) => (this.resolveClosed = res));
  }

  /** How it ended, once it has (set just before `onGone`). */
  get closedWith(): CloseInfo | null {
    return this.closeInfo;
  }

  /** Ended by `abandon`: no CONNECTION_CLOSE left, the peer may not know. */
  abandoned = false;

  get isOpen(): boolean {
    return this.closeInfo === null;
  }

  get isConnected(): boolean {
    return this.isEstablished && this.closeInfo === null;
  }

  /** Closing or closed, by either side (draining included): nothing more will leave on it. */
  get isClosing(): boolean {
    return this.gone || this.localClose || this.native.isDraining() || this.native.isClosed();
  }

  private lastFrom: HostPort | null = null;
  /** The recv info object quiche wants, reused while the path is the same (no allocation per packet). */
  private recvInfo: { from: HostPort; to: HostPort } | null = null;
  /** The peer's address as an object quiche accepts, reused while it does not change. */
  peerHostPort(host: string, port: number): HostPort {
    const f = this.lastFrom;
    if (f && f.port === port && f.host === host) return f;
    return (this.lastFrom = { host, port });
  }

  /** Feed one received packet. */
  receive(datagram: Uint8Array, from: HostPort, to: HostPort): void {
    if (this.gone) return;
    if (this.sentAt) this.sampleReply();
    let info = this.recvInfo;
    if (!info || info.from !== from || info.to !== to) info = this.recvInfo = { from, to };
    if ((datagram[0]! & 0xc0) === 0x40) {
      // short header: one packet, the common case once established
      try {
        this.native.recv(datagram, info);
      } catch {
        // undecryptable or duplicate: not an error of ours
      }
      this.sawShortHeader = true;
      this.gotPackets = true;
      schedule(this);
      return;
    }
    // quiche 0.18 drops the rest of a datagram after a coalesced packet it cannot decrypt
    // (RFC 9000 §12.2 says to go on): feed it one QUIC packet at a time.
    for (const packet of splitCoalesced(datagram)) {
      try {
        this.native.recv(packet, info);
      } catch {
        // a packet quiche refuses (undecryptable, duplicate) is not an error of ours
      }
      if ((packet[0]! & 0xc0) === 0x40) this.sawShortHeader = true;
    }
    this.gotPackets = true;
    schedule(this);
  }

  /** @internal a stream handed quiche data to send: at the end of the turn, or now in a long burst. */
  markWritten(sliceMs = BURST_SLICE_MS): void {
    if (this.gone) return;
    this.wrote = true;
    schedule(this);
    if (!this.isEstablished) return;
    const now = performance.now();
    if (now - burstStart > sliceMs) {
      burstStart = now;
      this.flushPackets();
    }
  }

  /** @internal send what was written and not yet sent (before the loop blocks). */
  flushWritten(): void {
    if (this.wrote && !this.gone && this.isEstablished) this.flushPackets();
  }

  markDirty(): void {
    if (!this.gone) schedule(this);
  }

  /** Open a new bidirectional stream. Throws ERR_CLOSED / ERR_IO when none may be opened. */
  openStream(): QuicStream {
    if (!this.isConnected) throw new AtlasError("ERR_CLOSED", "connection is closed");
    if (this.native.peerStreamsLeftBidi() <= 0) throw new AtlasError("ERR_IO", "peer's stream limit reached");
    const id = this.nextStreamId;
    this.nextStreamId += 4;
    // Creates the stream inside quiche now, so reads and capacity checks work before any write.
    // Not incremental: quiche sends streams of one urgency in stream-ID order instead of
    // round-robin, so requests sent in order also complete in order at the peer (the outbox's
    // per-target order; docs/transport.md, "Stream order").
    this.native.streamPriority(id, 127, false);
    const s = new QuicStream(this, id);
    this.streams.set(id, s);
    return s;
  }

  /**
   * Open a new bidirectional stream, waiting (first come, first served) while the peer's
   * MAX_STREAMS credit is used up instead of failing: a caller with many requests in flight gets
   * its streams in the order it asked. Rejects when the connection closes first, or with
   * ERR_TIMEOUT after `timeoutMs` without credit.
   */
  openStreamWhenAllowed(timeoutMs: number): Promise<QuicStream> {
    if (this.streamWaiters.length === 0 || !this.isConnected) {
      if (!this.isConnected || this.native.peerStreamsLeftBidi() > 0) {
        try {
          return Promise.resolve(this.openStream());
        } catch (e) {
          return Promise.reject(e);
        }
      }
    }
    return new Promise((resolve, reject) => {
      const w = {
        resolve: (s: QuicStream) => (clearTimeout(timer), resolve(s)),
        reject: (e: Error) => (clearTimeout(timer), reject(e)),
      };
      const timer = setTimeout(() => {
        const i = this.streamWaiters.indexOf(w);
        if (i >= 0) this.streamWaiters.splice(i, 1);
        reject(new AtlasError("ERR_TIMEOUT", `no stream credit from the peer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.streamWaiters.push(w);
    });
  }

  private streamWaiters: { resolve: (s: QuicStream) => void; reject: (e: Error) => void }[] = [];

  /** Hand newly granted stream credit to the callers waiting for it, in order. */
  private grantStreams(): void {
    while (this.streamWaiters.length > 0 && this.isConnected && this.native.peerStreamsLeftBidi() > 0) {
      this.streamWaiters.shift()!.resolve(this.openStream());
    }
  }

  /** Number of streams currently tracked (open in at least one direction). */
  get streamCount(): number {
    return this.streams.size;
  }

  /** Send one QUIC DATAGRAM; false when quiche dropped it (queue full or too big). */
  sendDatagram(d: Uint8Array): boolean {
    if (!this.isConnected) return false;
    try {
      if (this.native.dgramSend(d) === null) {
        this.dgramDrops++;
        return false;
      }
    } catch {
      this.dgramDrops++;
      return false;
    }
    schedule(this);
    return true;
  }

  maxDatagramLen(): number {
    try {
      return this.native.dgramMaxWritableLen() ?? 0;
    } catch {
      return 0;
    }
  }

  /** DER of the peer's leaf certificate (docs/transport.md: there is no peerCert(); index 0 is the leaf). */
  peerCertificate(): Uint8Array | null {
    const chain = this.native.peerCertChain();
    return chain && chain.length > 0 ? chain[0]! : null;
  }

  /** Ask for an ack-eliciting packet now (keeps NAT mappings alive, docs/protocol.md#transport). */
  ping(): void {
    if (!this.isConnected) return;
    try {
      this.native.sendAckEliciting();
    } catch {
      // not yet possible (handshake) — the next interval will try again
    }
    schedule(this);
  }

  /**
   * Close with an application error code and reason. Before the first 1-RTT packet we must use
   * a transport-level close: quiche 0.18's send() can loop forever otherwise (docs/transport.md, "Traps").
   */
  close(code = 0, reason = ""): void {
    if (this.gone || this.localClose) return;
    this.localClose = true;
    const app = this.isEstablished && this.sawShortHeader;
    try {
      this.native.close(app, app ? code : 0x0c, enc.encode(reason.slice(0, 256)));
    } catch {
      // already closing
    }
    schedule(this);
  }

  /**
   * Close and be done at once, without the closing period: for a connection whose path is gone
   * (a relay pipe that ended), where no packet could reach the peer anyway.
   */
  abandon(reason: string): void {
    if (this.gone) return;
    this.abandoned = true;
    this.close(0, reason);
    this.finish();
  }

  /** @internal one turn of work: streams, datagrams, sending, timers, closure. */
  process(): void {
    if (this.gone) return;
    const n = this.native;
    if (!this.isEstablished && n.isEstablished()) {
      this.isEstablished = true;
      this.resolveEstablished();
    }
    let handedOff = false;
    if (this.gotPackets) {
      this.gotPackets = false;
      if (this.isEstablished) {
        handedOff = this.dispatchReadable();
        this.dispatchDatagrams();
        if (this.streamWaiters.length > 0) this.grantStreams();
      }
      for (const s of this.writers) if (!s.flushWrites()) this.writers.delete(s);
    }
    // Data just went to a reader that will likely answer within this turn's microtasks: send
    // one turn later, so the ACK rides in the answer's packet instead of a datagram of its own.
    if (handedOff && !this.flushDeferred) {
      this.flushDeferred = true;
      schedule(this);
      this.armTimer();
      return;
    }
    this.flushDeferred = false;
    this.flushPackets();
    if (n.isClosed() || n.isDraining()) this.finish();
    else this.armTimer();
  }

  /**
   * Send what quiche has queued now instead of at the end of this turn: for a caller about to
   * spend a while on the CPU (the handshake's signature check) after a write the peer waits for.
   */
  flush(): void {
    if (!this.gone) this.process();
  }

  /** @internal send what quiche has queued, now (a bare FIN: stream.ts flushWrites). */
  sendNow(): void {
    if (!this.gone && this.isEstablished) this.flushPackets();
  }

  /**
   * @internal a stream keeps its last written byte back so that an `end()` in this turn carries
   * the FIN with data; it is handed over once this turn's callbacks and their promises are done
   * (setImmediate runs after them), and sent with the next flush.
   */
  holdTail(s: QuicStream): void {
    if (this.heldTails.size === 0) setImmediate(this.releaseTails);
    this.heldTails.add(s);
  }

  private releaseTails = (): void => {
    const held = [...this.heldTails];
    this.heldTails.clear();
    if (this.gone) return;
    for (const s of held) if (s.flushWrites(true)) this.writers.add(s);
    schedule(this);
  };

  /** @internal a stream has queued writes that quiche could not take yet. */
  wantsWritable(s: QuicStream): void {
    this.writers.add(s);
  }

  /** @internal forget streams that are done both ways. */
  streamMaybeDone(s: QuicStream): void {
    if (s.hasPendingWrites) this.writers.add(s);
    if (s.finished) {
      this.streams.delete(s.id);
      this.writers.delete(s);
    }
  }

  /**
   * Hands what arrived to the streams' readers and new streams to `onStream`.
   * quiche's `readable()` iterator costs ~10 µs per call through the binding (a napi generator;
   * `isReadable()` and `streamReadable(id)` cost ~0.1 µs, bench/RESULTS.md "Issue 17 levers"), so
   * the known streams are asked one by one, then the peer's next stream IDs in order (a peer
   * opens its streams in ID order, so a new request is almost always the next one), and the full
   * list is only walked when quiche may still hold a readable stream we do not know. (For a known
   * stream `streamReadable` and the list agree, resets included: both are quiche's is_readable.)
   * @returns true when data went to a reader or a new stream's handler.
   */
  private dispatchReadable(): boolean {
    const n = this.native;
    if (!n.isReadable()) return false;
    let handedOff = false;
    const turn = ++this.readTurn;
    let unread = 0;
    for (const s of this.streams.values()) {
      if (!n.streamReadable(s.id)) continue;
      s.readTurn = turn;
      if (s.onReadable()) handedOff = true;
      else unread++;
    }
    while (n.streamReadable(this.nextPeerStream)) {
      this.acceptStream(this.nextPeerStream);
      handedOff = true; // the handler reads when it wants
      unread++; // and until it has, the stream stays readable
    }
    // Still readable: streams whose readers are busy (left unread above), or a stream we do not
    // know (opened out of order, or past an ID the peer skipped). Walk when nothing was left
    // unread; else every 16th turn, and at the latest WALK_BACKSTOP_MS later (a timer makes that
    // turn happen on a quiet connection). A stream opened out of order is usually found by the
    // probe above as soon as its predecessor's retransmission arrives.
    if (!n.isReadable()) return handedOff;
    if (unread > 0 && turn % 16 !== 0 && !this.walkDue) {
      this.walkSoon();
      return handedOff;
    }
    this.walkDue = false;
    let fresh: number[] | null = null;
    for (const id of n.readable()) {
      const s = this.streams.get(id);
      if (!s) {
        const peerInitiated = (id & 1) === (this.isClient ? 1 : 0);
        if (!peerInitiated || (id & 2) !== 0) continue; // our own, already forgotten; or uni
        (fresh ??= []).push(id);
        continue;
      }
      if (s.readTurn !== turn && s.onReadable()) handedOff = true;
    }
    if (fresh) {
      // quiche lists readable streams in no particular order: new ones go to the handler in the
      // order the peer opened them (docs/transport.md, "Stream order").
      if (fresh.length > 1) fresh.sort((a, b) => a - b);
      for (const id of fresh) this.acceptStream(id);
      handedOff = true;
    }
    return handedOff;
  }

  /** A stream the peer opened: tracked, then handed to `onStream` (refused when nobody listens). */
  private acceptStream(id: number): void {
    if (id >= this.nextPeerStream) this.nextPeerStream = id + 4;
    const s = new QuicStream(this, id);
    this.streams.set(id, s);
    if (this.onStream) this.onStream(s);
    else s.abort(0);
  }

  /** The lowest bidirectional stream ID the peer has not opened yet (client 0, 4, …; server 1, 5, …). */
  private nextPeerStream: number;

  /** Counts dispatch turns, so a stream offered its data in the fast pass is not offered twice. */
  private readTurn = 0;
  /** The backstop walk of `dispatchReadable` is owed (its timer fired). */
  private walkDue = false;
  private walkTimer: ReturnType<typeof setTimeout> | null = null;

  /** Make sure a walk of quiche's readable list happens within WALK_BACKSTOP_MS. */
  private walkSoon(): void {
    if (this.walkTimer) return;
    this.walkTimer = setTimeout(() => {
      this.walkTimer = null;
      this.walkDue = true;
      this.gotPackets = true; // a dispatch turn even if no packet arrives
      schedule(this);
    }, WALK_BACKSTOP_MS);
  }

  /**
   * Hands each received DATAGRAM to `onDatagram`, or drops it when nobody listens: left in quiche's
   * receive queue (1024 deep) a peer could park ~1.4 MB on every connection (issue 16).
   */
  private dispatchDatagrams(): void {
    for (;;) {
      const n = this.native.dgramRecv(dgramScratch);
      if (n === null) return;
      this.onDatagram?.(dgramScratch.subarray(0, n));
    }
  }

  private flushPackets(): void {
    const n = this.native;
    let sent = 0;
    for (; sent < MAX_PACKETS_PER_TURN; sent++) {
      let r: ReturnType<QuicheConnection["send"]>;
      try {
        r = n.send(this.sendBuf);
      } catch {
        break;
      }
      if (r === null) break;
      this.sink.sendPacket(this.sendBuf.subarray(0, r[0]), r[1].to);
    }
    if (sent === MAX_PACKETS_PER_TURN) schedule(this); // more to send: continue next turn without starving others
    // Only packets that carry our writes expect an answer: a bulk receiver's ACKs or a relay's
    // forwarded DATAGRAMs neither measure the peer nor keep the node awake.
    if (sent > 0 && this.wrote) {
      this.wrote = false;
      if (!this.sentAt) this.sentAt = performance.now();
      this.sink.expectReply?.(this.replyMs);
    }
    this.sink.flush?.();
  }

  /** A packet came in after a send: one more sample of how soon the peer answers. */
  private sampleReply(): void {
    const ms = performance.now() - this.sentAt;
    this.sentAt = 0;
    this.replyMs = this.replyMs === Infinity ? ms : this.replyMs + REPLY_TIME_WEIGHT * (ms - this.replyMs);
  }

  private armTimer(): void {
    const ms = this.native.timeout();
    if (ms === null) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = null;
      return;
    }
    const at = Date.now() + ms;
    if (this.timer && Math.abs(at - this.timerAt) < 1) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerAt = at;
    this.timer = setTimeout(() => {
      this.timer = null;
      // Timers run before the poll phase: act after it, once the datagrams already waiting in
      // the socket (an ACK that cancels this loss timer, say) have reached quiche. Firing first
      // caused spurious PTOs that re-sent the Handshake flight with our first frame behind it.
      setImmediate(() => {
        if (this.gone) return;
        this.native.onTimeout();
        this.process();
      });
    }, ms);
  }

  private finish(): void {
    if (this.gone) return;
    this.gone = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    if (this.walkTimer) clearTimeout(this.walkTimer);
    this.walkTimer = null;
    dirty.delete(this);
    const n = this.native;
    const err = this.localClose ? n.localError() : (n.peerError() ?? n.localError());
    const info: CloseInfo = {
      local: this.localClose,
      app: err?.isApp ?? false,
      code: err?.errorCode ?? 0,
      reason: err ? dec.decode(err.reason) : "",
      timedOut: n.isTimedOut(),
    };
    this.closeInfo = info;
    const why = info.timedOut ? new AtlasError("ERR_UNREACHABLE", "connection timed out") : new AtlasError(
      info.local ? "ERR_CLOSED" : "ERR_RESET",
      info.local ? "connection closed" : `connection closed by peer${info.reason ? `: ${info.reason}` : ""}`,
    );
    if (!this.isEstablished) this.rejectEstablished(why);
    for (const s of this.streams.values()) s.fail(why);
    for (const w of this.streamWaiters.splice(0)) w.reject(why);
    this.streams.clear();
    this.writers.clear();
    this.resolveClosed(info);
    this.onGone?.(this);
  }
}

/**
 * The QUIC packets of one datagram (RFC 9000 §12.2): long-header packets carry a Length field;
 * a short-header packet, a Retry or anything unparsable runs to the end of the datagram, and so
 * does trailing padding (it stays with the packet before it). Every byte is in exactly one part.
 */
export function splitCoalesced(d: Uint8Array): Uint8Array[] {
  if ((d[0]! & 0x80) === 0) return [d];
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < d.length) {
    const end = longPacketEnd(d, off);
    if (end === null) {
      out.push(d.subarray(off));
      break;
    }
    out.push(d.subarray(off, end));
    const start = off;
    off = end;
    if (off >= d.length) break;
    const next = d[off]!;
    if ((next & 0x40) === 0) {
      // No fixed bit: padding after the last packet (a client pads its Initial datagrams to 1200
      // bytes). It stays with that packet: quiche counts the bytes it is given towards the 3×
      // anti-amplification allowance, and a server counting 270 of a 1200-byte Initial had to stop
      // its first flight at 810 bytes and wait a round trip for the client's next datagram.
      out[out.length - 1] = d.subarray(start, d.length);
      break;
    }
    if ((next & 0x80) === 0) {
      out.push(d.subarray(off));
      break;
    }
  }
  return out;
}

/** End offset of the long-header packet at `off`, or null when it has no Length (or is garbled). */
function longPacketEnd(d: Uint8Array, off: number): number | null {
  const b0 = d[off]!;
  if ((b0 & 0x80) === 0) return null;
  let p = off + 5;
  if (p > d.length || (d[off + 1]! | d[off + 2]! | d[off + 3]! | d[off + 4]!) === 0) return null; // version negotiation
  const type = (b0 & 0x30) >> 4;
  if (type === 3) return null; // Retry
  const dcil = d[p++];
  if (dcil === undefined) return null;
  p += dcil;
  const scil = d[p++];
  if (scil === undefined) return null;
  p += scil;
  if (type === 0) {
    const t = varint(d, p);
    if (!t) return null;
    p = t.next + t.value;
  }
  const len = varint(d, p);
  if (!len) return null;
  const end = len.next + len.value;
  return end <= d.length ? end : null;
}

function varint(d: Uint8Array, p: number): { value: number; next: number } | null {
  if (p >= d.length) return null;
  const n = 1 << (d[p]! >> 6);
  if (p + n > d.length) return null;
  let v = d[p]! & 0x3f;
  for (let i = 1; i < n; i++) v = v * 256 + d[p + i]!;
  return { value: v, next: p + n };
}

export { quiche };

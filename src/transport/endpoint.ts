import { isIP } from "node:net";
import { randomBytes } from "node:crypto";
import {
  BUSY_POLL_NEAR_MS,
  ENDPOINT_CLOSE_GRACE_MS,
  HANDSHAKE_IP_WINDOW_MS,
  RETIRED_CID_MS,
} from "../config/durations.ts";
import { AtlasError } from "../errors.ts";
import { isWildcardHost, type SockAddr, unmapHost } from "./addr.ts";
import { type PacketSink, QuicConnection } from "./connection.ts";
import { type HostPort, quiche, type QuicheConfig } from "./native.ts";
import type { TransportOptions } from "./options.ts";
import { RetryTokens } from "./retry.ts";
import { BufferPool, ConnBudget } from "./read-budget.ts";
import { StatelessResets } from "./stateless-reset.ts";
import { makeQuicheConfig, type TlsIdentity } from "./tls.ts";
import { isStunPacket } from "./demux.ts";
import { MAX_TCP_FRAME } from "./tcp-frames.ts";
import { within } from "../util/time.ts";
import { bindUdp } from "./udp/bind.ts";
import type { UdpSocket } from "./udp/socket.ts";

/** Length of every connection ID we issue; short-header packets carry it without a length byte. */
export const CID_LEN = 16;
const SOCKET_BUFFER = 4 * 1024 * 1024;
/** Closed connections' IDs remembered at once (`retire`): 32 bytes each, ~40 closes a second for RETIRED_CID_MS. */
const RETIRED_CIDS_MAX = 4096;

/** Packet size inside a relay pipe: 1200 + 4-byte session prefix fits any agent–relay DATAGRAM (docs/protocol.md#relay). */
export const VIRTUAL_PACKET_SIZE = 1200;
/** Made-up path addresses of virtual connections: quiche wants some; nothing is sent to them. */
export const VIRTUAL_LOCAL: HostPort = { host: "127.0.0.1", port: 1 };
export const VIRTUAL_REMOTE: HostPort = { host: "127.0.0.1", port: 2 };

export interface EndpointOptions extends TransportOptions {
  host: string;
  port: number;
  tls: TlsIdentity;
  /**
   * When a new inbound connection must first pass a QUIC Retry (address validation,
   * docs/protocol.md#transport): `"load"` (default) only while `retryAboveHandshakes` inbound
   * handshakes are in flight; `"always"`; `false` never (tests).
   */
  retry?: "load" | "always" | false;
}

/**
 * One UDP socket per node, carrying the QUIC listener, every outgoing connection of the node and
 * STUN (docs/protocol.md#transport): so the mapping a NAT makes for our STUN query is the one our peers see.
 * Incoming datagrams are demultiplexed: STUN (first two bits 00 + magic cookie) goes to
 * `onStun`; QUIC packets are routed by destination connection ID; an unknown Initial may become a
 * new inbound connection after address validation and the admission limits.
 */
export class QuicEndpoint implements PacketSink {
  readonly local: SockAddr;
  /** How the socket moves datagrams: `batched` (the atlas_udp addon) or `dgram` (node:dgram). */
  get datagramIo(): "batched" | "dgram" {
    return this.socket.kind === "native" ? "batched" : "dgram";
  }
  /** A new inbound connection, before TLS completes: set handlers now, await `established`. */
  onConnection: ((c: QuicConnection) => void) | null = null;
  onStun: ((packet: Uint8Array, from: SockAddr) => void) | null = null;

  private socket: UdpSocket;
  private v6: boolean;
  private localHP: HostPort;
  /** Routing: connection ID → connection (a connection may have two IDs without Retry). */
  private conns = new Map<string, QuicConnection>();
  /** Connection IDs of connections closed moments ago → until when (see `retire`). */
  private retired = new Map<string, number>();
  /** Each live connection once: counting, keep-alive, shutdown. */
  private live = new Set<QuicConnection>();
  private serverConfig: QuicheConfig;
  private pipeConfig: QuicheConfig | null = null;
  private clientConfig: QuicheConfig;
  private retryTokens = new RetryTokens();
  private resets: StatelessResets;
  private perIp = new Map<string, number[]>();
  private keepAlive: ReturnType<typeof setInterval>;
  private opts: EndpointOptions;
  private closing = false;
  /** Counters for `atlas status` and tests. */
  readonly stats = { refusedLimit: 0, refusedRate: 0, retries: 0, badTokens: 0, resets: 0, acceptedWithoutRetry: 0 };
  /** Bytes of frames still arriving, over all connections (docs/protocol.md#transport global cap). */
  readonly readPool: BufferPool;

  private constructor(socket: UdpSocket, v6: boolean, opts: EndpointOptions) {
    this.socket = socket;
    this.v6 = v6;
    this.opts = opts;
    this.readPool = new BufferPool(opts.maxBufferedBytes);
    const a = socket.address;
    this.local = { host: unmapHost(a.address), port: a.port };
    this.localHP = { host: a.address, port: a.port };
    this.serverConfig = makeQuicheConfig(opts.tls, opts);
    this.clientConfig = makeQuicheConfig(opts.tls, opts);
    this.resets = new StatelessResets(opts.tls.keyPem);
    socket.onMessage = (data, host, port) => this.onPacket(data, host, port);
    this.keepAlive = setInterval(() => {
      for (const c of this.live) c.ping();
    }, opts.keepAliveIntervalMs);
    this.keepAlive.unref();
  }

  /** Bind the node's socket. `::` is dual-stack, falling back to 0.0.0.0 without IPv6. */
  static async bind(opts: EndpointOptions): Promise<QuicEndpoint> {
    const host = opts.host || "::";
    const fam = isIP(host);
    if (fam === 0) throw new AtlasError("ERR_CONFIG", `network.host must be an IP address, got '${host}'`);
    const tryBind = (type: "udp4" | "udp6", h: string) =>
      bindUdp({ type, host: h, port: opts.port, bufferBytes: SOCKET_BUFFER });
    try {
      if (fam === 4) return new QuicEndpoint(await tryBind("udp4", host), false, opts);
      try {
        return new QuicEndpoint(await tryBind("udp6", host), true, opts);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (host !== "::" || (code !== "EAFNOSUPPORT" && code !== "EADDRNOTAVAIL" && code !== "EINVAL")) throw e;
        return new QuicEndpoint(await tryBind("udp4", "0.0.0.0"), false, opts);
      }
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      const where = `${host.includes(":") ? `[${host}]` : host}:${opts.port}`;
      if (code === "EADDRINUSE") {
        throw new AtlasError(
          "ERR_ADDR_IN_USE",
          `UDP port ${opts.port} is already in use (${where}); pick another with --port`,
        );
      }
      if (code === "EACCES") throw new AtlasError("ERR_IO", `not allowed to bind ${where}`);
      throw new AtlasError("ERR_IO", `cannot bind ${where}: ${(e as Error).message}`);
    }
  }

  get connectionCount(): number {
    return this.live.size;
  }

  /** Connections that have not finished the Atlas handshake (docs/protocol.md#handshake handshake limit). */
  get pendingCount(): number {
    let n = 0;
    for (const c of this.live) if (!c.verified) n++;
    return n;
  }

  /** Inbound connections that have not finished the Atlas handshake: the load that turns Retry on. */
  get inboundPendingCount(): number {
    let n = 0;
    for (const c of this.live) if (!c.isClient && !c.verified) n++;
    return n;
  }

  connections(): IterableIterator<QuicConnection> {
    return this.live.values();
  }

  /** Start a QUIC connection to `remote`; await `established` on the result. */
  connect(remote: SockAddr): QuicConnection {
    if (this.closing) throw new AtlasError("ERR_CLOSED", "endpoint is closing");
    if (this.live.size >= this.opts.maxConnections) {
      throw new AtlasError(
        "ERR_IO",
        `connection limit reached (transport.max_connections = ${this.opts.maxConnections})`,
      );
    }
    const to = this.wireHost(remote);
    if (!to) {
      throw new AtlasError("ERR_UNREACHABLE", `cannot reach IPv6 address ${remote.host} from an IPv4-only socket`);
    }
    const scid = new Uint8Array(randomBytes(CID_LEN));
    const native = quiche.Connection.connect(null, scid, this.localHP, to, this.clientConfig);
    const c = new QuicConnection(native, {
      isClient: true,
      remote: { host: unmapHost(remote.host), port: remote.port },
      scid,
      sink: this,
      maxPacket: this.opts.maxDatagramSize,
      budget: this.newBudget(),
    });
    this.track(c);
    c.markDirty();
    return c;
  }

  /**
   * A connection on a virtual path (a relay pipe, docs/protocol.md#relay): its packets go to `sink` and come in
   * through `receive(…, VIRTUAL_REMOTE, VIRTUAL_LOCAL)` from whoever owns the pipe — never through
   * this socket's connection-ID map. 1200-byte packets, no DATAGRAMs of its own, no Retry (the
   * relay already authenticated the dialler). `label` is what the connection reports as `remote`.
   */
  openVirtual(role: "client" | "server", sink: PacketSink, label: SockAddr): QuicConnection {
    if (!this.pipeConfig) {
      this.pipeConfig = makeQuicheConfig(this.opts.tls, {
        ...this.opts,
        maxDatagramSize: VIRTUAL_PACKET_SIZE,
        datagrams: false,
      });
      // Reno, not quiche's default CUBIC: against a relay's token-bucket policer CUBIC's window
      // ran away in about a third of capped transfers (84–96 % of packets dropped, multi-second
      // stalls); Reno stayed at 0.94–0.96 of the cap in every run (bench/RESULTS.md, relay phase).
      this.pipeConfig.setCcAlgorithmName("reno");
    }
    return this.openOffSocket(role, this.pipeConfig, sink, label, VIRTUAL_PACKET_SIZE);
  }

  private tunnelConfig: QuicheConfig | null = null;

  /**
   * A connection whose packets are tunnelled as frames over TLS on TCP (the TCP leg,
   * src/transport/tcp-frames.ts): an ordinary node-to-node connection — full-size packets and
   * DATAGRAMs, so relay pipes run on it — on a virtual path that never enters the UDP
   * connection-ID map. No Retry: the TCP handshake already proved the address.
   */
  openTunnel(role: "client" | "server", sink: PacketSink, label: SockAddr): QuicConnection {
    // An inbound leg starts a QUIC handshake like an Initial over UDP: the same in-flight cap.
    if (role === "server" && this.pendingCount >= this.opts.handshakeLimit) {
      this.stats.refusedLimit++;
      throw new AtlasError("ERR_IO", `${this.opts.handshakeLimit} handshakes in flight (security.handshake_limit)`);
    }
    if (!this.tunnelConfig) {
      this.tunnelConfig = makeQuicheConfig(this.opts.tls, { ...this.opts, maxDatagramSize: this.tunnelPacket });
      // Reno, as on relay pipes: the TCP leg drops frames at a bounded send buffer, a tail-drop
      // queue much like a policer (docs/decisions.md, "The relay over TLS on TCP").
      this.tunnelConfig.setCcAlgorithmName("reno");
    }
    return this.openOffSocket(role, this.tunnelConfig, sink, label, this.tunnelPacket);
  }

  /**
   * A connection whose packets go to `sink` instead of this socket (relay pipes, TCP legs): it
   * counts against transport.max_connections and the read budget like any other, and stays out
   * of the connection-ID map. The client side sends its first flight at once.
   */
  private openOffSocket(
    role: "client" | "server",
    config: QuicheConfig,
    sink: PacketSink,
    label: SockAddr,
    maxPacket: number,
  ): QuicConnection {
    if (this.closing) throw new AtlasError("ERR_CLOSED", "endpoint is closing");
    if (this.live.size >= this.opts.maxConnections) {
      throw new AtlasError(
        "ERR_IO",
        `connection limit reached (transport.max_connections = ${this.opts.maxConnections})`,
      );
    }
    const scid = new Uint8Array(randomBytes(CID_LEN));
    const native = role === "client"
      ? quiche.Connection.connect(null, scid, VIRTUAL_LOCAL, VIRTUAL_REMOTE, config)
      : quiche.Connection.accept(scid, null, VIRTUAL_LOCAL, VIRTUAL_REMOTE, config);
    const c = new QuicConnection(native, {
      isClient: role === "client",
      remote: label,
      scid,
      sink,
      maxPacket,
      budget: this.newBudget(),
    });
    this.live.add(c);
    c.onGone = () => this.live.delete(c);
    if (role === "client") c.markDirty();
    return c;
  }

  /** Packets on a TCP leg: as over UDP, but never above the largest frame a peer accepts. */
  private get tunnelPacket(): number {
    return Math.min(this.opts.maxDatagramSize, MAX_TCP_FRAME);
  }

  private newBudget(): ConnBudget {
    return new ConnBudget(this.readPool, this.opts.maxBufferedPerConn);
  }

  /** Send a raw datagram from the node's socket (STUN). */
  sendRaw(packet: Uint8Array, to: SockAddr): void {
    if (this.closing) return;
    const hp = this.wireHost(to);
    if (hp) this.socket.send(packet, hp.host, hp.port);
  }

  /** Send one packet (copied by the socket: `packet` may be the connection's scratch). */
  sendPacket(packet: Uint8Array, to: HostPort): void {
    this.socket.send(packet, to.host, to.port);
  }

  /** The packets of this turn go out now, in as few system calls as the socket can. */
  flush(): void {
    this.socket.flush();
  }

  /** Busy polls of this process so far (docs/transport.md); null where the socket cannot busy-poll. */
  busyPolls(): { waits: number; hits: number } | null {
    return this.socket.busyPolls?.() ?? null;
  }

  /** Busy polling: stay awake for the answer of a peer that answers within BUSY_POLL_NEAR_MS. */
  expectReply(replyMs: number): void {
    if (replyMs <= BUSY_POLL_NEAR_MS && this.opts.busyPollUs > 0) this.socket.expectReply?.(this.opts.busyPollUs);
  }

  /** Close every connection (code 0 with `reason`), let the close packets out, close the socket. */
  async close(reason = "shutdown", graceMs = ENDPOINT_CLOSE_GRACE_MS): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    clearInterval(this.keepAlive);
    const all = [...this.live];
    for (const c of all) c.close(0, reason);
    await within(Promise.all(all.map((c) => c.closed)), graceMs);
    await this.socket.close();
  }

  // ---- receive path ----

  private onPacket(buf: Buffer, host: string, port: number): void {
    if (buf.length === 0) return;
    const b0 = buf[0]!;
    if (isStunPacket(buf)) {
      // Copied: the socket's buffer is only valid during this call, and STUN clients keep theirs.
      this.onStun?.(Buffer.from(buf), { host: unmapHost(host), port });
      return;
    }
    if ((b0 & 0x40) === 0) return; // QUIC fixed bit unset: not for us
    let key: string;
    if ((b0 & 0x80) === 0) {
      if (buf.length < 1 + CID_LEN) return;
      key = buf.toString("latin1", 1, 1 + CID_LEN);
    } else {
      if (buf.length < 7) return;
      const dlen = buf[5]!;
      if (buf.length < 6 + dlen) return;
      key = buf.toString("latin1", 6, 6 + dlen);
    }
    const c = this.conns.get(key);
    if (c) {
      c.receive(buf, c.peerHostPort(host, port), this.localHP);
      return;
    }
    if ((b0 & 0x80) === 0 && !this.isRetired(key)) this.onUnknownShort(buf, host, port);
    else if (((b0 & 0x30) >> 4) === 0) this.onInitial(buf, { host, port });
  }

  /**
   * A short-header packet for no connection of ours. From a peer we dialled it may be its
   * stateless reset, whose DCID is random (RFC 9000 §10.3.1): our connections to that address
   * check it. Otherwise it belongs to a connection we lost (we restarted): answer with a reset.
   * Never both, so two nodes cannot go on resetting each other's resets.
   */
  private onUnknownShort(buf: Buffer, host: string, port: number): void {
    if (this.closing) return;
    let fed = false;
    const h = unmapHost(host);
    for (const c of this.live) {
      // Only past the handshake: a reset needs the server's token, and feeding a handshaking
      // connection a short-header packet would count as its first 1-RTT one (connection.ts close()).
      if (!c.isClient || !c.verified || c.remote.port !== port || c.remote.host !== h) continue;
      c.receive(buf, c.peerHostPort(host, port), this.localHP);
      fed = true;
    }
    const reset = fed ? null : this.resets.answer(buf, buf.subarray(1, 1 + CID_LEN));
    if (!reset) return;
    this.stats.resets++;
    this.sendPacket(reset, { host, port });
  }

  /** An Initial for no known connection: version check, Retry, limits, then accept. */
  private onInitial(buf: Buffer, from: HostPort): void {
    if (this.closing || !this.onConnection || buf.length < 1200) return;
    let hdr;
    try {
      hdr = quiche.Header.fromSlice(buf, CID_LEN);
    } catch {
      return;
    }
    if (!quiche.versionIsSupported(hdr.version)) {
      const out = new Uint8Array(1200);
      try {
        const n = quiche.negotiateVersion(hdr.scid, hdr.dcid, out);
        this.sendPacket(out.subarray(0, n), from);
      } catch {
        // malformed: ignore
      }
      return;
    }
    if (this.live.size >= this.opts.maxConnections || this.pendingCount >= this.opts.handshakeLimit) {
      this.stats.refusedLimit++;
      return;
    }
    const addrKey = `${from.host}|${from.port}`;
    const ip = unmapHost(from.host);
    let odcid: Uint8Array | null = null;
    const mode = this.opts.retry ?? "load";
    if (mode !== false && hdr.token && hdr.token.length > 0) {
      // We issue no NEW_TOKEN, so a token is one of our Retry tokens: valid, or dropped.
      odcid = this.retryTokens.verify(hdr.token, addrKey);
      if (!odcid || hdr.dcid.length !== CID_LEN) {
        this.stats.badTokens++;
        return;
      }
    } else if (mode === "always" || (mode === "load" && this.inboundPendingCount >= this.opts.retryAboveHandshakes)) {
      const newScid = new Uint8Array(randomBytes(CID_LEN));
      const token = this.retryTokens.mint(hdr.dcid, addrKey);
      const out = new Uint8Array(1200);
      try {
        const n = quiche.retry(hdr.scid, hdr.dcid, newScid, token, hdr.version, out);
        this.stats.retries++;
        this.sendPacket(out.subarray(0, n), from);
      } catch {
        // malformed: ignore
      }
      return;
    }
    // The per-IP window counts every admitted connection. One admitted without a Retry has an
    // unproven source address: its count is refunded if its TLS handshake never completes, so a
    // spoofer can hold at most `retryAboveHandshakes` of a real client's allowance at a time.
    const counted = this.admitIp(ip);
    if (counted === null) {
      this.stats.refusedRate++;
      return;
    }
    const scid = odcid ? new Uint8Array(hdr.dcid) : new Uint8Array(randomBytes(CID_LEN));
    let native;
    try {
      // Each connection's own token, set just before accept() copies the config's parameters.
      this.serverConfig.setStatelessResetToken(this.resets.tokenValue(scid));
      native = quiche.Connection.accept(scid, odcid, this.localHP, from, this.serverConfig);
    } catch {
      this.refundIp(ip, counted);
      return;
    }
    const c = new QuicConnection(native, {
      isClient: false,
      remote: { host: unmapHost(from.host), port: from.port },
      scid,
      sink: this,
      maxPacket: this.opts.maxDatagramSize,
      budget: this.newBudget(),
    });
    this.track(c);
    if (!odcid) {
      // The client still addresses its Initials to the DCID it chose until it hears from us.
      this.conns.set(Buffer.from(hdr.dcid).toString("latin1"), c);
      this.stats.acceptedWithoutRetry++;
      c.established.catch(() => this.refundIp(ip, counted));
    }
    this.onConnection(c);
    c.receive(buf, from, this.localHP);
  }

  /**
   * Charge one new inbound handshake from `host` (a TCP leg's, before its TLS) to the per-IP
   * window UDP connections count against (security.handshakes_per_ip_per_minute); false: over it.
   * TCP proved the address, so there is nothing to refund.
   */
  chargeHandshake(host: string): boolean {
    if (this.admitIp(unmapHost(host)) !== null) return true;
    this.stats.refusedRate++;
    return false;
  }

  /**
   * Sliding one-minute window of accepted handshakes per source IP (docs/protocol.md#handshake):
   * null when `ip` is over it, else the time this handshake was counted at.
   */
  private admitIp(ip: string): number | null {
    const now = Date.now();
    const cutoff = now - HANDSHAKE_IP_WINDOW_MS;
    let times = this.perIp.get(ip);
    if (!times) {
      if (this.perIp.size > 10_000) {
        for (const [k, v] of this.perIp) if (v[v.length - 1]! < cutoff) this.perIp.delete(k);
      }
      times = [];
      this.perIp.set(ip, times);
    }
    while (times.length > 0 && times[0]! < cutoff) times.shift();
    if (times.length >= this.opts.handshakesPerIpPerMinute) return null;
    times.push(now);
    return now;
  }

  /** Take back a handshake counted at `at` (its address never proved itself). */
  private refundIp(ip: string, at: number): void {
    const times = this.perIp.get(ip);
    const i = times ? times.indexOf(at) : -1;
    if (i >= 0) times!.splice(i, 1);
  }

  private track(c: QuicConnection): void {
    const key = Buffer.from(c.scid).toString("latin1");
    this.conns.set(key, c);
    this.live.add(c);
    c.onGone = () => {
      this.live.delete(c);
      const retire = c.closedWith !== null && !c.closedWith.timedOut && !c.abandoned; // by CONNECTION_CLOSE
      for (const [k, v] of this.conns) {
        if (v !== c) continue;
        this.conns.delete(k);
        if (retire) this.retire(k);
      }
    };
  }

  /** Remember a closed connection's ID for RETIRED_CID_MS (config/durations.ts), at most RETIRED_CIDS_MAX. */
  private retire(key: string): void {
    this.retired.delete(key);
    this.retired.set(key, Date.now() + RETIRED_CID_MS);
    if (this.retired.size > RETIRED_CIDS_MAX) this.retired.delete(this.retired.keys().next().value!);
  }

  /** A packet for a connection closed moments ago: its peer knows, and needs no stateless reset. */
  private isRetired(key: string): boolean {
    const now = Date.now();
    for (const [k, until] of this.retired) { // oldest first: drop the expired ones
      if (until > now) break;
      this.retired.delete(k);
    }
    return this.retired.has(key);
  }

  /** The address form the socket sends to: IPv4 goes out of a dual-stack socket as ::ffff:a.b.c.d. */
  private wireHost(a: SockAddr): HostPort | null {
    const fam = isIP(a.host);
    if (this.v6) return { host: fam === 4 ? `::ffff:${a.host}` : a.host, port: a.port };
    if (fam === 6) {
      const m = unmapHost(a.host);
      return isIP(m) === 4 ? { host: m, port: a.port } : null;
    }
    return { host: a.host, port: a.port };
  }
}

export { isWildcardHost };

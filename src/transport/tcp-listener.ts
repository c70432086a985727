/**
 * The TCP leg's listener (docs/protocol.md#the-tcp-leg): TLS 1.3 on TCP with the node's own
 * certificate, for agents whose networks drop UDP. Each TLS connection carries one QUIC
 * connection to this node (tcp-leg.ts), handed to `onConnection` like one arriving over UDP.
 *
 * Limits, checked before any TLS work: connections in all and per source IP (the address as the
 * UDP endpoint counts it, unmapped), and new connections per source IP a minute, charged to the
 * same window as UDP handshakes (security.handshakes_per_ip_per_minute); then a TLS handshake
 * deadline, and security.handshake_limit when the QUIC connection inside starts; after it, frames of at most
 * the largest datagram (tcp-frames.ts) and an idle timeout — a leg with no byte in either
 * direction for that long is closed (agents send a QUIC PING every 15 s and announce every 2 s).
 */
import { createServer, type Server, type TLSSocket } from "node:tls";
import type { Socket } from "node:net";
import { AtlasError } from "../errors.ts";
import { type SockAddr, unmapHost } from "./addr.ts";
import type { QuicConnection } from "./connection.ts";
import type { QuicEndpoint } from "./endpoint.ts";
import { bindLeg, TCP_LEG_ALPN } from "./tcp-leg.ts";
import type { TlsIdentity } from "./tls.ts";

export interface TcpLegLimits {
  /** TCP connections at once, handshaking or not. */
  maxConnections: number;
  /** TCP connections at once from one IP address. */
  perIp: number;
  /** From accept to a finished TLS handshake. */
  handshakeTimeoutMs: number;
  /** No byte either way for this long closes the leg. */
  idleTimeoutMs: number;
}

export interface TcpLegStats {
  port: number;
  connections: number;
  accepted: number;
  refused_limit: number;
  refused_per_ip: number;
  refused_rate: number;
  handshake_timeouts: number;
  bad_frames: number;
  idle_closed: number;
}

export class TcpLegListener {
  /** A new QUIC connection over a leg, before its QUIC handshake: set handlers now. */
  onConnection: ((c: QuicConnection) => void) | null = null;
  private server: Server;
  private sockets = new Set<Socket>();
  private perIp = new Map<string, number>();
  private counters = {
    accepted: 0,
    refused_limit: 0,
    refused_per_ip: 0,
    refused_rate: 0,
    handshake_timeouts: 0,
    bad_frames: 0,
    idle_closed: 0,
  };
  port = 0;

  constructor(private endpoint: QuicEndpoint, tls: TlsIdentity, private limits: TcpLegLimits) {
    this.server = createServer({
      key: tls.keyPem,
      cert: tls.certPem,
      minVersion: "TLSv1.3",
      ALPNProtocols: [TCP_LEG_ALPN],
      handshakeTimeout: limits.handshakeTimeoutMs,
    });
    this.server.on("connection", (raw: Socket) => this.admit(raw));
    this.server.on("secureConnection", (s: TLSSocket) => this.open(s));
    // A failed or timed-out TLS handshake. With a listener here, tls leaves the socket open: close it.
    this.server.on("tlsClientError", (e: Error & { code?: string }, s: TLSSocket) => {
      if (e.code === "ERR_TLS_HANDSHAKE_TIMEOUT") this.counters.handshake_timeouts++;
      s.destroy();
    });
    this.server.on("error", () => {});
  }

  /** Listen on `host:port` (port 0: any free one). */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      const onError = (e: NodeJS.ErrnoException) => {
        const where = `${host.includes(":") ? `[${host}]` : host}:${port}`;
        reject(
          e.code === "EADDRINUSE"
            ? new AtlasError("ERR_ADDR_IN_USE", `TCP port ${port} is already in use (${where})`)
            : new AtlasError("ERR_IO", `cannot listen on TCP ${where}: ${e.message}`),
        );
      };
      this.server.once("error", onError);
      this.server.listen({ host, port, exclusive: true }, () => {
        this.server.off("error", onError);
        this.port = (this.server.address() as { port: number }).port;
        resolve(this.port);
      });
    });
  }

  stats(): TcpLegStats {
    return { port: this.port, connections: this.sockets.size, ...this.counters };
  }

  close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    return new Promise((r) => this.server.close(() => r()));
  }

  /** The raw TCP connection, before TLS: refuse it over a limit, else count it until it closes. */
  private admit(raw: Socket): void {
    const ip = unmapHost(raw.remoteAddress ?? "");
    if (this.sockets.size >= this.limits.maxConnections) {
      this.counters.refused_limit++;
      return void raw.destroy();
    }
    const n = this.perIp.get(ip) ?? 0;
    if (n >= this.limits.perIp) {
      this.counters.refused_per_ip++;
      return void raw.destroy();
    }
    if (!this.endpoint.chargeHandshake(ip)) {
      this.counters.refused_rate++;
      return void raw.destroy();
    }
    this.perIp.set(ip, n + 1);
    this.sockets.add(raw);
    raw.setNoDelay(true); // frames are packets: Nagle plus delayed ACKs cost 40 ms a round trip
    raw.on("error", () => {});
    raw.once("close", () => {
      this.sockets.delete(raw);
      const left = (this.perIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.perIp.delete(ip);
      else this.perIp.set(ip, left);
    });
    raw.setTimeout(this.limits.idleTimeoutMs, () => {
      this.counters.idle_closed++;
      raw.destroy();
    });
  }

  /** A finished TLS handshake: one QUIC connection on it, accepted like one over UDP. */
  private open(s: TLSSocket): void {
    if (!this.onConnection) return void s.destroy();
    const label: SockAddr = { host: unmapHost(s.remoteAddress ?? ""), port: s.remotePort ?? 0 };
    let conn: QuicConnection;
    try {
      conn = bindLeg(s, (sink) => this.endpoint.openTunnel("server", sink, label), () => this.counters.bad_frames++);
    } catch {
      this.counters.refused_limit++; // the endpoint is at max_connections or handshake_limit, or closing
      return void s.destroy();
    }
    this.counters.accepted++;
    this.onConnection(conn);
  }
}

/**
 * A small lossy UDP forwarder for transport tests (this kernel has no netem; docs/transport.md).
 *
 *   client ──▶ forwarder.port ──▶ server        (direction "up")
 *   client ◀── forwarder.port ◀── server        (direction "down")
 *
 * One socket bound on 127.0.0.1: a datagram from the server's address goes to the client (the
 * last address that sent from anywhere else), any other datagram goes to the server. Each
 * direction drops a fraction of datagrams decided by its own seeded PRNG, so the n-th datagram of
 * a direction always meets the same fate: runs are reproducible up to the peers' own timing.
 * An optional fixed delay is applied to every forwarded datagram; the number of datagrams held
 * for delay is bounded (excess is counted as `overflow` and dropped), and `close()` clears every
 * pending timer and the socket so nothing keeps the process alive.
 */
import { createSocket, type Socket } from "node:dgram";

export interface ForwarderOptions {
  /** Where the server endpoint listens. */
  server: { host: string; port: number };
  /** Fraction (0..1) of client→server datagrams to drop. */
  dropUp?: number;
  /** Fraction (0..1) of server→client datagrams to drop. */
  dropDown?: number;
  /** PRNG seed; the two directions use streams derived from it. */
  seed?: number;
  /** Fixed one-way delay in ms added to every forwarded datagram (0 = forward at once). */
  delayMs?: number;
  /** Most datagrams held for delay at once; beyond it they are dropped (`overflow`). */
  maxQueued?: number;
}

export interface DirectionStats {
  forwarded: number;
  dropped: number;
  bytes: number;
}

/** mulberry32: tiny, fast, good enough to pick which datagrams to drop. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export class UdpForwarder {
  readonly port: number;
  readonly up: DirectionStats = { forwarded: 0, dropped: 0, bytes: 0 };
  readonly down: DirectionStats = { forwarded: 0, dropped: 0, bytes: 0 };
  overflow = 0;

  private socket: Socket;
  private opts: Required<ForwarderOptions>;
  private client: { host: string; port: number } | null = null;
  private rngUp: () => number;
  private rngDown: () => number;
  private timers = new Set<ReturnType<typeof setTimeout>>();
  private closed = false;

  private constructor(socket: Socket, opts: Required<ForwarderOptions>) {
    this.socket = socket;
    this.opts = opts;
    this.port = socket.address().port;
    this.rngUp = mulberry32(opts.seed);
    this.rngDown = mulberry32(opts.seed ^ 0x5bd1e995);
    socket.on("message", (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
    socket.on("error", () => {});
  }

  static start(opts: ForwarderOptions): Promise<UdpForwarder> {
    const full: Required<ForwarderOptions> = {
      dropUp: 0,
      dropDown: 0,
      seed: 1,
      delayMs: 0,
      maxQueued: 10_000,
      ...opts,
    };
    for (const f of [full.dropUp, full.dropDown]) {
      if (!(f >= 0 && f <= 1)) throw new RangeError(`drop fraction must be in [0, 1], got ${f}`);
    }
    return new Promise((resolve, reject) => {
      const s = createSocket({ type: "udp4", recvBufferSize: 4 << 20, sendBufferSize: 4 << 20 });
      s.once("error", reject);
      s.bind(0, "127.0.0.1", () => {
        s.removeListener("error", reject);
        resolve(new UdpForwarder(s, full));
      });
    });
  }

  /** Change the drop fractions from now on (1 = a path that drops everything, 0 = a clean one). */
  setDrop(up: number, down: number): void {
    this.opts.dropUp = up;
    this.opts.dropDown = down;
  }

  /** The address a client should dial instead of the server's. */
  get address(): { host: string; port: number } {
    return { host: "127.0.0.1", port: this.port };
  }

  close(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }

  private onMessage(msg: Buffer, host: string, port: number): void {
    if (this.closed) return;
    const srv = this.opts.server;
    const fromServer = port === srv.port && host === srv.host;
    let to: { host: string; port: number };
    let stats: DirectionStats;
    let drop: boolean;
    if (fromServer) {
      if (!this.client) return; // nobody to answer yet
      to = this.client;
      stats = this.down;
      drop = this.rngDown() < this.opts.dropDown;
    } else {
      this.client = { host, port };
      to = srv;
      stats = this.up;
      drop = this.rngUp() < this.opts.dropUp;
    }
    if (drop) {
      stats.dropped++;
      return;
    }
    if (this.opts.delayMs <= 0) {
      this.forward(msg, to, stats);
      return;
    }
    if (this.timers.size >= this.opts.maxQueued) {
      this.overflow++;
      stats.dropped++;
      return;
    }
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.forward(msg, to, stats);
    }, this.opts.delayMs);
    this.timers.add(t);
  }

  private forward(msg: Buffer, to: { host: string; port: number }, stats: DirectionStats): void {
    if (this.closed) return;
    stats.forwarded++;
    stats.bytes += msg.length;
    this.socket.send(msg, to.port, to.host, () => {});
  }
}

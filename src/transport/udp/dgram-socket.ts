/**
 * UdpSocket over node:dgram: one `send` per datagram (each through a SendWrap and a callback) and
 * one 'message' event per datagram received. The default; also where ATLAS_UDP=native asks for the
 * atlas_udp addon but it is absent (non-Linux, Deno, a build without a C compiler).
 */
import { createSocket, type Socket } from "node:dgram";
import { lookup as dnsLookup, type LookupOneOptions } from "node:dns";
import { isIP } from "node:net";
import type { UdpBindOptions, UdpSocket } from "./socket.ts";

/** Outgoing packet buffers: large enough for any datagram we send, kept for reuse. */
const SEND_BUF_SIZE = 1500;
const SEND_POOL_MAX = 2048;
const noop = () => {};

/**
 * dgram resolves every destination before sending, through dns.lookup and a process.nextTick even
 * for an IP literal; every address we send to is one, so answer at once (half of dgram's per-send
 * JS cost, ~1.5–3 µs; bench/RESULTS.md "Issue 17 levers"). A name still goes to dns.lookup.
 */
function literalLookup(
  host: string,
  family: number | LookupOneOptions,
  cb: (err: NodeJS.ErrnoException | null, address: string, family: number) => void,
): void {
  const fam = isIP(host);
  if (fam !== 0) return cb(null, host, fam);
  dnsLookup(host, typeof family === "number" ? { family } : family, cb);
}

export class DgramUdpSocket implements UdpSocket {
  readonly kind = "dgram";
  onMessage: (data: Buffer, host: string, port: number) => void = noop;
  private pool: Buffer[] = [];
  private inflight: Buffer[] = [];

  private constructor(private socket: Socket) {
    socket.on("message", (msg, rinfo) => this.onMessage(msg, rinfo.address, rinfo.port));
    socket.on("error", noop); // per-send errors (unreachable hosts) are not fatal to the node
  }

  static bind(o: UdpBindOptions): Promise<DgramUdpSocket> {
    return new Promise((resolve, reject) => {
      const s = createSocket({
        type: o.type,
        ipv6Only: false,
        recvBufferSize: o.bufferBytes,
        sendBufferSize: o.bufferBytes,
        lookup: literalLookup,
      });
      s.once("error", (e) => {
        s.close();
        reject(e);
      });
      s.bind({ address: o.host, port: o.port, exclusive: true }, () => {
        s.removeAllListeners("error");
        resolve(new DgramUdpSocket(s));
      });
    });
  }

  get address(): { address: string; port: number } {
    return this.socket.address();
  }

  /**
   * The packet is copied into a pooled buffer that comes back when the send completes: dgram
   * keeps a reference until then, and libuv completes sends in order (so `inflight` is FIFO).
   */
  send(packet: Uint8Array, host: string, port: number): void {
    const buf = this.pool.pop() ?? Buffer.allocUnsafeSlow(Math.max(SEND_BUF_SIZE, packet.length));
    buf.set(packet);
    this.inflight.push(buf);
    this.socket.send(buf, 0, packet.length, port, host, this.onSent);
  }

  flush(): void {}

  private onSent = (): void => {
    const b = this.inflight.shift();
    if (b && b.length === SEND_BUF_SIZE && this.pool.length < SEND_POOL_MAX) this.pool.push(b);
  };

  close(): Promise<void> {
    return new Promise((r) => this.socket.close(() => r()));
  }
}

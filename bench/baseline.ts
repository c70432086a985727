/**
 * Client side of the TCP (node:net) and TLS 1.3 (node:tls) baselines, speaking the mode-byte
 * protocol of bench/server.ts.
 */
import { connect as tcpConnect, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { once } from "node:events";
import { deadline, HOST, MODE, N } from "./common.ts";

export type Kind = "tcp" | "tls";

export interface TlsCreds {
  keyPem: string;
  certPem: string;
}

/** Open a connection; resolves when TCP is connected / the TLS 1.3 handshake is complete. */
export function open(kind: Kind, port: number, creds: TlsCreds): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = kind === "tcp" ? tcpConnect({ host: HOST, port, noDelay: true }, () => resolve(s)) : tlsConnect(
      {
        host: HOST,
        port,
        key: creds.keyPem,
        cert: creds.certPem,
        minVersion: "TLSv1.3",
        maxVersion: "TLSv1.3",
        rejectUnauthorized: false, // self-signed, like Atlas (which checks the key itself)
      },
      () => resolve(s),
    );
    s.setNoDelay(true);
    s.once("error", reject);
  });
}

/** Connect and select a mode. */
export async function openMode(kind: Kind, port: number, creds: TlsCreds, mode: number): Promise<Socket> {
  const s = await open(kind, port, creds);
  s.write(Buffer.of(mode));
  return s;
}

/** FIFO of waiters for fixed-size replies (echoes of `size` bytes, or acks). */
export class Replies {
  private got = 0; // bytes of the current reply received so far
  private waiters: (() => void)[] = [];
  constructor(sock: Socket, private size: number) {
    sock.on("data", (d: Buffer) => {
      let n = d.length;
      while (n > 0) {
        const take = Math.min(n, this.size - this.got);
        this.got += take;
        n -= take;
        if (this.got === this.size) {
          this.got = 0;
          this.waiters.shift()?.();
        }
      }
    });
  }
  next(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
}

/** Round trip of `N.rttBytes` echoed bytes. */
export async function echoSession(kind: Kind, port: number, creds: TlsCreds) {
  const s = await openMode(kind, port, creds, MODE.echo);
  const replies = new Replies(s, N.rttBytes);
  const payload = Buffer.alloc(N.rttBytes, 0x78);
  return {
    rtt: async () => {
      const p = replies.next();
      s.write(payload);
      await p;
    },
    close: () => s.destroy(),
  };
}

/** Length-prefixed 1 KiB request, 64-byte answer. */
export async function reqSession(kind: Kind, port: number, creds: TlsCreds) {
  const s = await openMode(kind, port, creds, MODE.req);
  const replies = new Replies(s, 4 + N.reqAckBytes);
  const frame = Buffer.alloc(4 + N.reqBodyBytes, 0x79);
  frame.writeUInt32BE(N.reqBodyBytes, 0);
  return {
    request: () => {
      const p = replies.next();
      s.write(frame);
      return p;
    },
    close: () => s.destroy(),
  };
}

/** Send `total` bytes, half-close, wait for the server's count. Returns bytes the server counted. */
export async function bulk(
  kind: Kind,
  port: number,
  creds: TlsCreds,
  total: number,
  capMs: number,
): Promise<{ sent: number; counted: number; ms: number }> {
  const s = await openMode(kind, port, creds, MODE.bulk);
  const chunk = Buffer.alloc(N.bulkChunk, 0x7a);
  const reply: Buffer[] = [];
  s.on("data", (d: Buffer) => reply.push(d));
  const ended = once(s, "end");
  const t0 = performance.now();
  let sent = 0;
  while (sent < total && performance.now() - t0 < capMs) {
    const n = Math.min(chunk.length, total - sent);
    sent += n;
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) {
      await deadline(once(s, "drain"), 10_000, `${kind} bulk write`);
    }
  }
  s.end();
  await deadline(ended, capMs, `${kind} bulk answer`);
  const ms = performance.now() - t0;
  const b = Buffer.concat(reply);
  s.destroy();
  return { sent, counted: b.length >= 8 ? Number(b.readBigUInt64BE(0)) : -1, ms };
}

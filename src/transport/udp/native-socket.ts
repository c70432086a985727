/**
 * UdpSocket over the atlas_udp addon (native/udp/atlas_udp.c, Linux): what a JS task sends goes
 * out in one `sendmmsg`, runs of equal-size packets to one address as one UDP GSO message; what
 * arrives is read with `recvmmsg` (and GRO) in batches, one JS call per batch. Record layouts
 * mirror the C file's SEND_REC / RECV_REC.
 */
import { isIP } from "node:net";
import type { UdpAddon } from "./addon.ts";
import type { UdpBindOptions, UdpSocket } from "./socket.ts";

const SA_LEN = 28;
const SEND_REC = 36;
const RECV_REC = 80;
const RECV_TEXT = 32;
/** Staged datagrams per flush at most (then it flushes early), and their bytes. */
const STAGE_PACKETS = 512;
const STAGE_BYTES = STAGE_PACKETS * 1500;
/** Encoded destinations kept (a node talks to few addresses at once; cleared when full). */
const DEST_CACHE_MAX = 1024;
const RECV_SLOT = 65536;

/** One receive arena for the process: callbacks are synchronous, so every socket can share it. */
let shared: { arena: Buffer; meta: Buffer; m32: Uint32Array } | null = null;
function sharedArena(addon: UdpAddon): NonNullable<typeof shared> {
  if (shared) return shared;
  const batch = 32;
  const arena = Buffer.allocUnsafeSlow(batch * RECV_SLOT);
  const meta = Buffer.alloc(batch * RECV_REC);
  addon.init(arena, meta);
  return (shared = { arena, meta, m32: new Uint32Array(meta.buffer, meta.byteOffset, meta.length / 4) });
}

interface Dest {
  host: string;
  port: number;
  sa: Buffer;
}

export class NativeUdpSocket implements UdpSocket {
  readonly kind = "native";
  readonly address: { address: string; port: number };
  onMessage: (data: Buffer, host: string, port: number) => void = () => {};
  private data = Buffer.allocUnsafeSlow(STAGE_BYTES);
  private meta = Buffer.alloc(STAGE_PACKETS * SEND_REC);
  private staged = 0;
  private stagedBytes = 0;
  private flushQueued = false;
  private closed = false;
  private last: Dest | null = null;
  private dests = new Map<string, Dest>();
  private family: 4 | 6;
  // The last source seen: most batches come from one peer, so its host string is made once.
  private lastSrc = { a0: -1, a1: -1, a2: -1, a3: -1, host: "" };

  private constructor(private addon: UdpAddon, private handle: unknown, o: UdpBindOptions) {
    this.family = o.type === "udp4" ? 4 : 6;
    this.address = { address: o.host, port: addon.localPort(handle) };
  }

  static bind(addon: UdpAddon, o: UdpBindOptions): NativeUdpSocket {
    const { arena, meta, m32 } = sharedArena(addon);
    let sock: NativeUdpSocket | null = null;
    const handle = addon.open(
      o.type === "udp4" ? 4 : 6,
      o.host,
      o.port,
      false,
      o.bufferBytes,
      o.bufferBytes,
      (count: number) => sock?.deliver(count, arena, meta, m32),
    );
    sock = new NativeUdpSocket(addon, handle, o);
    return sock;
  }

  private deliver(count: number, arena: Buffer, meta: Buffer, m32: Uint32Array): void {
    for (let i = 0; i < count && !this.closed; i++) {
      const b = i * (RECV_REC / 4);
      const off = m32[b]!, len = m32[b + 1]!, seg = m32[b + 2]!, w = m32[b + 3]!;
      const port = w & 0xffff;
      const src = this.lastSrc;
      if (m32[b + 4] !== src.a0 || m32[b + 5] !== src.a1 || m32[b + 6] !== src.a2 || m32[b + 7] !== src.a3) {
        const t = i * RECV_REC + RECV_TEXT;
        src.host = meta.toString("latin1", t, t + (w >>> 24));
        src.a0 = m32[b + 4]!;
        src.a1 = m32[b + 5]!;
        src.a2 = m32[b + 6]!;
        src.a3 = m32[b + 7]!;
      }
      const host = src.host;
      if (seg === 0) {
        this.onMessage(arena.subarray(off, off + len), host, port);
        continue;
      }
      const end = off + len;
      for (let p = off; p < end && !this.closed; p += seg) {
        this.onMessage(arena.subarray(p, Math.min(p + seg, end)), host, port);
      }
    }
  }

  send(packet: Uint8Array, host: string, port: number): void {
    if (this.closed) return;
    const d = this.dest(host, port);
    if (!d) return; // not an address of this socket's family: nothing would reach it
    if (this.staged === STAGE_PACKETS || this.stagedBytes + packet.length > STAGE_BYTES) this.flush();
    if (packet.length > STAGE_BYTES) return;
    const r = this.staged * SEND_REC;
    const meta = this.meta;
    meta.writeUInt32LE(this.stagedBytes, r);
    meta.writeUInt16LE(packet.length, r + 4);
    meta[r + 6] = d.sa.length;
    d.sa.copy(meta, r + 8);
    this.data.set(packet, this.stagedBytes);
    this.stagedBytes += packet.length;
    this.staged++;
    if (!this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(this.flushLater);
    }
  }

  private flushLater = (): void => {
    this.flushQueued = false;
    this.flush();
  };

  flush(): void {
    if (this.staged === 0 || this.closed) return;
    const n = this.staged;
    this.staged = 0;
    this.stagedBytes = 0;
    this.addon.sendBatch(this.handle, this.data, this.meta, n);
  }

  expectReply(us: number): void {
    if (!this.closed) this.addon.expectReply(us);
  }

  busyPolls(): { waits: number; hits: number } {
    const [waits = 0, hits = 0] = this.addon.spinStats();
    return { waits, hits };
  }

  /** [sendmmsg calls, GSO runs, datagrams dropped, recvmmsg calls, datagrams received]. */
  stats(): number[] {
    return this.addon.stats(this.handle);
  }

  private dest(host: string, port: number): Dest | null {
    const last = this.last;
    if (last && last.port === port && last.host === host) return last;
    const key = `${host}|${port}`;
    let d = this.dests.get(key);
    if (!d) {
      const fam = isIP(host);
      if (fam === 0 || (fam === 6 && this.family === 4)) return null;
      // A dual-stack socket reaches IPv4 peers at their mapped address.
      const text = fam === 4 && this.family === 6 ? `::ffff:${host}` : host;
      const sa = Buffer.alloc(SA_LEN);
      const n = this.addon.encodeAddr(this.family, text, port, sa);
      if (n === 0) return null;
      if (this.dests.size >= DEST_CACHE_MAX) this.dests.clear();
      d = { host, port, sa: sa.subarray(0, n) };
      this.dests.set(key, d);
    }
    this.last = d;
    return d;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.flush();
      this.closed = true;
      this.addon.close(this.handle);
    }
    return Promise.resolve();
  }
}

/**
 * The TCP leg's framing (docs/protocol.md#the-tcp-leg): a QUIC connection's packets, each as one
 * frame `length (u16 big-endian) ‖ packet` on a TLS 1.3 stream. The stream is a virtual path for
 * the QUIC connection above it (a PacketSink), so the handshake, the streams and the DATAGRAMs of
 * relay pipes run on it unchanged.
 *
 * Sending is bounded (docs/decisions.md, "The relay over TLS on TCP"): above `TCP_SEND_BOUND`
 * bytes waiting in the socket a packet is dropped, not queued, so a slow TCP path shows up to the
 * QUIC connection above as loss, which its congestion control answers, instead of as an ever
 * longer queue that hides the loss and delays every later packet.
 */
import type { Socket } from "node:net";
import type { PacketSink } from "./connection.ts";
import type { HostPort } from "./native.ts";

/** Bytes of a frame's length prefix. */
export const TCP_FRAME_HEADER = 2;
/** Largest frame payload: the largest datagram the UDP endpoint accepts (docs/transport.md). */
export const MAX_TCP_FRAME = 1500;
/**
 * Bytes the socket may hold unsent before packets are dropped: ≈ 48 full packets, 64 ms at the
 * relay's default 1 MiB/s per pipe — enough to ride out a scheduling hiccup, small enough that
 * the QUIC above still measures the path's real delay and sees its losses.
 */
export const TCP_SEND_BOUND = 64 * 1024;

/** Counters of one TCP leg, for `atlas status`. */
export interface FrameCounters {
  framesOut: number;
  framesIn: number;
  /** Packets dropped because the socket held more than TCP_SEND_BOUND bytes. */
  dropped: number;
}

/** The PacketSink of a QUIC connection on a TCP leg: one packet out as one frame. */
export class FrameSink implements PacketSink {
  readonly counters: FrameCounters = { framesOut: 0, framesIn: 0, dropped: 0 };
  private corked = false;

  constructor(private socket: Socket, private bound = TCP_SEND_BOUND) {}

  sendPacket(packet: Uint8Array, _to: HostPort): void {
    const s = this.socket;
    if (!s.writable) return;
    if (s.writableLength > this.bound) {
      this.counters.dropped++;
      return;
    }
    const frame = Buffer.allocUnsafe(TCP_FRAME_HEADER + packet.length);
    frame.writeUInt16BE(packet.length, 0);
    frame.set(packet, TCP_FRAME_HEADER);
    // A turn's packets (up to 256 from one flush) go out as one TLS write, not a record each.
    if (!this.corked) {
      this.corked = true;
      s.cork();
      process.nextTick(() => {
        this.corked = false;
        s.uncork();
      });
    }
    s.write(frame);
    this.counters.framesOut++;
  }
}

/**
 * Splits the bytes of a TCP leg into frames. Holds at most one unfinished frame (≤ 1502 bytes),
 * so a peer cannot make it buffer more; a frame of length 0 or above MAX_TCP_FRAME is a protocol
 * error (`push` returns why, and the caller closes the leg).
 */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  /** Feed received bytes; `onFrame` gets each complete packet (a view, valid during the call). */
  push(chunk: Buffer, onFrame: (packet: Uint8Array) => void): string | null {
    let buf = this.pending.length > 0 ? Buffer.concat([this.pending, chunk]) : chunk;
    let off = 0;
    while (buf.length - off >= TCP_FRAME_HEADER) {
      const len = buf.readUInt16BE(off);
      if (len === 0 || len > MAX_TCP_FRAME) return `frame of ${len} bytes (1–${MAX_TCP_FRAME} allowed)`;
      if (buf.length - off < TCP_FRAME_HEADER + len) break;
      onFrame(buf.subarray(off + TCP_FRAME_HEADER, off + TCP_FRAME_HEADER + len));
      off += TCP_FRAME_HEADER + len;
    }
    buf = buf.subarray(off);
    // Copy the remainder: `chunk` belongs to the socket and a view would pin all of it.
    this.pending = buf.length > 0 ? Buffer.from(buf) : Buffer.alloc(0);
    return null;
  }
}

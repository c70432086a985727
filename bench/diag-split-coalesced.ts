/**
 * DIAGNOSTIC ONLY (patches QuicConnection.receive at run time). Feeds the QUIC packets coalesced in one
 * datagram to quiche one at a time: quiche 0.18's recv() discards the rest of a datagram after a packet
 * it cannot decrypt (e.g. a retransmitted Handshake packet once the server has dropped its Handshake
 * keys), which loses a 1-RTT packet coalesced behind it (RFC 9000 §12.2 says to process the rest).
 *   NODE_OPTIONS="--import tsx --import ./bench/diag-split-coalesced.ts" BENCH_NO_WRITE=1 BENCH_ONLY=connect node bench/run.ts
 */
import { QuicConnection } from "../src/transport/connection.ts";
const P = QuicConnection.prototype as any;
const orig = P.receive;
function vi(b: Uint8Array, o: number): [number, number] { const l = 1 << (b[o]! >> 6); let v = b[o]! & 0x3f; for (let i = 1; i < l; i++) v = v * 256 + b[o + i]!; return [v, o + l]; }
P.receive = function (this: any, p: Uint8Array, from: unknown, to: unknown) {
  let o = 0;
  while (o < p.length) {
    const b0 = p[o]!;
    if (o > 0 && (b0 & 0x40) === 0) return; // zero padding after the last packet (quiche pads Initial datagrams)
    if ((b0 & 0x80) === 0 || ((b0 & 0x30) >> 4) === 3) return orig.call(this, o === 0 ? p : p.subarray(o), from, to);
    let q = o + 5; if (q >= p.length) break; q += 1 + p[q]!; if (q >= p.length) break; q += 1 + p[q]!;
    if (((b0 & 0x30) >> 4) === 0) { const [tl, r] = vi(p, q); q = r + tl; }
    const [len, r] = vi(p, q); const end = r + len;
    if (end > p.length) break;
    if (o === 0 && end === p.length) return orig.call(this, p, from, to);
    orig.call(this, p.subarray(o, end), from, to);
    o = end;
  }
};

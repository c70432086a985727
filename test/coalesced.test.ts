/** splitCoalesced: one datagram → its QUIC packets (RFC 9000 §12.2), so quiche sees each one. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { splitCoalesced } from "../src/transport/connection.ts";

function longPacket(type: number, payloadLen: number, token?: Uint8Array): Uint8Array {
  const dcid = new Uint8Array(16).fill(0xaa);
  const scid = new Uint8Array(16).fill(0xbb);
  const parts: number[] = [0xc0 | (type << 4), 0, 0, 0, 1, dcid.length, ...dcid, scid.length, ...scid];
  if (type === 0) parts.push(token?.length ?? 0, ...(token ?? []));
  parts.push(0x40 | (payloadLen >> 8), payloadLen & 0xff); // 2-byte varint length
  return Uint8Array.from([...parts, ...new Uint8Array(payloadLen).fill(type + 1)]);
}

test("Initial + Handshake + short header split into three packets", () => {
  const init = longPacket(0, 100, new Uint8Array([1, 2, 3]));
  const hs = longPacket(2, 300);
  const short = Uint8Array.from([0x40, ...new Uint8Array(50).fill(9)]);
  const d = Uint8Array.from([...init, ...hs, ...short]);
  const parts = splitCoalesced(d);
  assert.deepEqual(parts.map((p) => p.length), [init.length, hs.length, short.length]);
  assert.deepEqual([...parts[1]!], [...hs]);
});

test("zero padding after an Initial stays with it, so quiche counts the whole datagram", () => {
  // quiche's 3× anti-amplification allowance counts the bytes it is given: a server fed only the
  // 270-byte Initial of a padded 1200-byte datagram could answer with 810 bytes, too few for its
  // first flight, and the handshake took one round trip more.
  const init = longPacket(0, 100);
  const d = Uint8Array.from([...init, ...new Uint8Array(1200 - init.length)]);
  assert.deepEqual(splitCoalesced(d).map((p) => p.length), [1200]);
  const hs = longPacket(2, 80);
  const two = Uint8Array.from([...init, ...hs, ...new Uint8Array(1200 - init.length - hs.length)]);
  assert.deepEqual(splitCoalesced(two).map((p) => p.length), [init.length, 1200 - init.length]);
});

test("short-header, Retry, version-negotiation and garbage datagrams are not split", () => {
  const short = Uint8Array.from([0x41, 1, 2, 3]);
  assert.equal(splitCoalesced(short).length, 1);
  const retry = longPacket(3, 20);
  assert.deepEqual(splitCoalesced(retry).map((p) => p.length), [retry.length]);
  const vn = Uint8Array.from([0x80, 0, 0, 0, 0, 0, 0]);
  assert.equal(splitCoalesced(vn).length, 1);
  const truncated = longPacket(2, 300).subarray(0, 100);
  assert.deepEqual(splitCoalesced(truncated).map((p) => p.length), [100]);
  for (let i = 0; i < 2000; i++) {
    const r = crypto.getRandomValues(new Uint8Array(1 + (i % 1400)));
    const parts = splitCoalesced(r);
    // Contiguous from the first byte to the last: every byte goes to quiche exactly once.
    let off = 0;
    for (const p of parts) {
      assert.equal(p.byteOffset - r.byteOffset, off);
      off += p.length;
    }
    assert.equal(off, r.length);
  }
});

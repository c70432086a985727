/**
 * Raw datagrams for the garbage phase: random bytes, QUIC-looking packets (short headers with
 * random connection IDs or a live connection's, Initials with no token, a forged token or cut
 * short, long headers of other types, versions that trigger Version Negotiation) and STUN-looking
 * ones (valid Binding requests with and without FINGERPRINT, and malformed: lying lengths,
 * oversized and truncated attributes, a bad FINGERPRINT, other message types).
 */
import { createMessage, encodeMessage } from "../src/stun/codec.ts";
import { BINDING_REQUEST } from "../src/stun/codec.ts";
import type { Rng } from "./fuzz-mutate.ts";

export interface Datagram {
  kind: string;
  bytes: Uint8Array;
  /** A valid STUN Binding request: its transaction ID (hex), which an answer must echo. */
  stunTx?: string;
  /** Any STUN-looking datagram's transaction ID (hex): to name what an unexpected answer answered. */
  anyTx?: string;
  /** Malformed only by a limit the server need not check: an answer is allowed, not required. */
  mayAnswer?: boolean;
}

const QUIC_V1 = 0x00000001;
const MIN_INITIAL = 1200;
const STUN_COOKIE = [0x21, 0x12, 0xa4, 0x42];

function longHeader(r: Rng, o: { type: number; version: number; dcid?: Uint8Array; size: number; token?: Uint8Array }) {
  const dcid = o.dcid ?? r.bytes(r.pick([0, 8, 16, 20]));
  const scid = r.bytes(r.pick([0, 8, 16]));
  const head = [0xc0 | (o.type << 4) | r.int(4), o.version >>> 24, (o.version >>> 16) & 0xff, (o.version >>> 8) & 0xff];
  head.push(o.version & 0xff, dcid.length, ...dcid, scid.length, ...scid);
  if (o.type === 0) head.push(o.token?.length ?? 0, ...(o.token ?? [])); // token length: one-byte varint
  const b = new Uint8Array(Math.max(o.size, head.length + 4));
  b.set(head);
  b.set(r.bytes(b.length - head.length), head.length);
  return b;
}

function stunHeader(type: number, length: number, tx: Uint8Array): number[] {
  return [type >> 8, type & 0xff, length >> 8, length & 0xff, ...STUN_COOKIE, ...tx];
}

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

/** A valid Binding request (the codec's own), with FINGERPRINT or without. */
function validBinding(r: Rng): Datagram {
  const tx = r.bytes(12);
  const m = createMessage(BINDING_REQUEST, tx);
  if (r.next() < 0.5) m.addFingerprint();
  return { kind: "STUN Binding request", bytes: encodeMessage(m), stunTx: hex(tx), anyTx: hex(tx) };
}

/** STUN-looking, malformed: the server must answer none of them. */
function badStun(r: Rng): Datagram {
  const tx = r.bytes(12);
  return { ...badStunWith(r, tx), anyTx: hex(tx) };
}

function badStunWith(r: Rng, tx: Uint8Array): Datagram {
  const pick = r.int(6);
  if (pick === 0) {
    return { kind: "STUN length lies", bytes: Uint8Array.from(stunHeader(0x0001, 4 * (1 + r.int(300)), tx)) };
  }
  if (pick === 1) {
    // one attribute declaring more bytes than follow
    const attr = [0x00, 0x06, 0xff, 0xf0, ...r.bytes(8)];
    return {
      kind: "STUN attribute overruns",
      bytes: Uint8Array.from([...stunHeader(0x0001, attr.length, tx), ...attr]),
    };
  }
  if (pick === 2) {
    // a USERNAME of ~1.4 kB (RFC 5389 allows 513 bytes), otherwise well formed: a server that
    // does not use USERNAME may answer it (with a reply far smaller than the request) or not
    const n = 1400 - 20 - 4;
    const attr = [0x00, 0x06, n >> 8, n & 0xff, ...new Uint8Array(n).fill(0x61)];
    const bytes = Uint8Array.from([...stunHeader(0x0001, attr.length, tx), ...attr]);
    return { kind: "STUN Binding request with a 1.4 kB USERNAME", bytes, mayAnswer: true };
  }
  if (pick === 3) {
    // a FINGERPRINT that does not match
    const attr = [0x80, 0x28, 0x00, 0x04, ...r.bytes(4)];
    return { kind: "STUN bad FINGERPRINT", bytes: Uint8Array.from([...stunHeader(0x0001, attr.length, tx), ...attr]) };
  }
  if (pick === 4) {
    const type = r.pick([0x0011, 0x0101, 0x0111, 0x0002, 0x3fff]); // indication, responses, unknown
    return { kind: "STUN other message type", bytes: Uint8Array.from(stunHeader(type, 0, tx)) };
  }
  const bytes = Uint8Array.from([...stunHeader(0x0001, 8, tx), ...r.bytes(8)]);
  return { kind: "STUN random attributes", bytes };
}

/**
 * One datagram. `liveDcid`: the destination connection ID of a live session with the daemon (its
 * packets spoofed from another address must be dropped without harming that session).
 */
export function garbage(r: Rng, liveDcid: Uint8Array | null): Datagram {
  switch (r.int(12)) {
    case 0:
      return { kind: "random bytes", bytes: r.bytes(1 + r.int(1500)) };
    case 1:
      return { kind: "short header, random DCID", bytes: shortHeader(r, r.bytes(16)) };
    case 2:
      return liveDcid
        ? { kind: "short header, a live session's DCID", bytes: shortHeader(r, liveDcid) }
        : { kind: "random bytes", bytes: r.bytes(64) };
    case 3:
      return {
        kind: "Initial without token",
        bytes: longHeader(r, { type: 0, version: QUIC_V1, size: MIN_INITIAL + r.int(150) }),
      };
    case 4:
      return {
        kind: "Initial with a forged token",
        bytes: longHeader(r, { type: 0, version: QUIC_V1, size: MIN_INITIAL, token: r.bytes(1 + r.int(60)) }),
      };
    case 5:
      return { kind: "Initial cut short", bytes: longHeader(r, { type: 0, version: QUIC_V1, size: 20 + r.int(1100) }) };
    case 6: {
      const version = r.pick([0x1a2a3a4a, 0xff00001d, 0x00000002, r.int(2 ** 32)]);
      return { kind: "unsupported version", bytes: longHeader(r, { type: r.int(4), version, size: MIN_INITIAL }) };
    }
    case 7:
      return {
        kind: "Handshake/0-RTT/Retry header",
        bytes: longHeader(r, { type: 1 + r.int(3), version: QUIC_V1, size: 40 + r.int(1200) }),
      };
    case 8:
      return { kind: "Version Negotiation header", bytes: longHeader(r, { type: 0, version: 0, size: 64 }) };
    case 9:
    case 10:
      return validBinding(r);
    default:
      return badStun(r);
  }
}

function shortHeader(r: Rng, dcid: Uint8Array): Uint8Array {
  const b = r.bytes(1 + dcid.length + 20 + r.int(1200));
  b[0] = 0x40 | (b[0]! & 0x3f);
  b.set(dcid, 1);
  return b;
}

/** What a datagram the daemon sent back is. */
export function answerKind(b: Uint8Array): string {
  if (b.length >= 20 && (b[0]! & 0xc0) === 0 && b[4] === 0x21 && b[5] === 0x12 && b[6] === 0xa4 && b[7] === 0x42) {
    return "STUN";
  }
  if ((b[0]! & 0x80) !== 0 && b.length >= 5) {
    const version = (b[1]! << 24) | (b[2]! << 16) | (b[3]! << 8) | b[4]!;
    if (version === 0) return "Version Negotiation";
    if (((b[0]! & 0x30) >> 4) === 3) return "Retry";
    return "other long header";
  }
  if ((b[0]! & 0x40) !== 0) return "short header (stateless reset)";
  return "other";
}

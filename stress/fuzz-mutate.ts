/**
 * Mutations of valid frames (issue 16's frame fuzzer): byte-level damage (bit flips, inserted and
 * deleted bytes, truncation), envelope damage (length field incl. huge declared lengths, type byte,
 * magic, version, frames glued together) and MessagePack structure damage (non-map payloads, wrong
 * field types, missing and extra fields, deep nesting, lying counts, invalid UTF-8, ext values,
 * non-string and duplicate keys). Deterministic for a given PRNG seed, so a failure can be replayed.
 */
import { decode, encode } from "@msgpack/msgpack";
import { HEADER_LEN, MAX_PAYLOAD, MsgType, PRE_HANDSHAKE_MAX_PAYLOAD, WIRE_VERSION } from "../src/wire/messages.ts";
import type { Seed } from "./fuzz-seeds.ts";

/** mulberry32: small, fast, good enough to pick mutations; seeded for replay. */
export class Rng {
  private s: number;
  constructor(seed: number) {
    this.s = seed >>> 0;
  }
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
  pick<T>(a: readonly T[]): T {
    return a[this.int(a.length)]!;
  }
  bytes(n: number): Uint8Array {
    const b = new Uint8Array(n);
    for (let i = 0; i < n; i++) b[i] = this.int(256);
    return b;
  }
}

export interface Mutant {
  /** Which mutation made it (outcomes are not broken down by it; examples name it). */
  op: string;
  bytes: Uint8Array;
}

type Mutator = (r: Rng, s: Seed, all: readonly Seed[]) => Uint8Array;

// ---------------------------------------------------------------------------------------------
// Building blocks

/** A frame with a correct header around `payload` (type and version as given). */
export function frameOf(type: number, payload: Uint8Array, version = WIRE_VERSION): Uint8Array {
  const f = new Uint8Array(HEADER_LEN + payload.length);
  f.set([0xac, 0x01, version, type]);
  new DataView(f.buffer).setUint32(4, payload.length);
  f.set(payload, HEADER_LEN);
  return f;
}

const payloadOf = (s: Seed): Uint8Array => s.frame.subarray(HEADER_LEN);
const fieldsOf = (s: Seed): Record<string, unknown> => decode(payloadOf(s)) as Record<string, unknown>;
const withPayload = (s: Seed, p: Uint8Array): Uint8Array => frameOf(s.frame[3]!, p);

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function mapHeader(n: number): Uint8Array {
  if (n < 16) return Uint8Array.of(0x80 | n);
  if (n < 0x10000) return Uint8Array.of(0xde, n >> 8, n & 0xff);
  return Uint8Array.of(0xdf, n >>> 24, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** A map written entry by entry, so any key or value can be raw bytes the encoder would refuse. */
function rawMap(entries: [Uint8Array, Uint8Array][]): Uint8Array {
  return concat(mapHeader(entries.length), ...entries.flatMap(([k, v]) => [k, v]));
}

/** The seed's fields as raw entries, with field `key` replaced by raw `value` bytes. */
function entriesWith(s: Seed, key: string, value: Uint8Array | null): [Uint8Array, Uint8Array][] {
  const out: [Uint8Array, Uint8Array][] = [];
  for (const [k, v] of Object.entries(fieldsOf(s))) {
    if (k !== key) out.push([encode(k), encode(v)]);
    else if (value) out.push([encode(k), value]);
  }
  return out;
}

function randomKey(r: Rng, s: Seed): string {
  const keys = Object.keys(fieldsOf(s));
  return keys.length ? r.pick(keys) : "x";
}

/** A value of some MessagePack kind, for wrong-type and non-map payloads. */
function randomValue(r: Rng, depth = 0): unknown {
  switch (r.int(depth > 2 ? 8 : 10)) {
    case 0:
      return null;
    case 1:
      return r.next() < 0.5;
    case 2:
      return r.pick([0, -1, 1, 255, 65536, 2 ** 32, -(2 ** 31), 2 ** 53 + 2, 1.5, NaN, -0]);
    case 3:
      return "x".repeat(r.pick([0, 1, 33, 65, 129, 4097]));
    case 4:
      return r.bytes(r.pick([0, 1, 31, 33, 63, 65]));
    case 5:
      return BigInt.asIntN(64, BigInt(r.int(2 ** 31)) << 32n);
    case 6:
      return "atlas_" + "g".repeat(64);
    case 7:
      return "\u{1F600}".repeat(r.int(20));
    case 8:
      return Array.from({ length: r.int(4) }, () => randomValue(r, depth + 1));
    default:
      return { k: randomValue(r, depth + 1) };
  }
}

const enc = (v: unknown): Uint8Array => encode(v, { useBigInt64: true });

// ---------------------------------------------------------------------------------------------
// Byte and envelope mutations

const bitflip: Mutator = (r, s) => {
  const b = s.frame.slice();
  for (let k = 1 + r.int(4); k > 0; k--) b[r.int(b.length)]! ^= 1 << r.int(8);
  return b;
};

const headerBitflip: Mutator = (r, s) => {
  const b = s.frame.slice();
  b[r.int(HEADER_LEN)]! ^= 1 << r.int(8);
  return b;
};

const insertBytes: Mutator = (r, s) => {
  const at = r.int(s.frame.length + 1);
  return concat(s.frame.subarray(0, at), r.bytes(1 + r.int(16)), s.frame.subarray(at));
};

const deleteBytes: Mutator = (r, s) => {
  const at = r.int(s.frame.length);
  return concat(s.frame.subarray(0, at), s.frame.subarray(Math.min(s.frame.length, at + 1 + r.int(16))));
};

const truncate: Mutator = (r, s) => s.frame.slice(0, 1 + r.int(s.frame.length - 1));

const INTERESTING = [0x00, 0x01, 0x7f, 0x80, 0xff, 0xc0, 0xc1, 0xc2, 0xd9, 0xdc, 0xdd, 0xde, 0xdf, 0xc4, 0xd4];
const setBytes: Mutator = (r, s) => {
  const b = s.frame.slice();
  for (let k = 1 + r.int(3); k > 0; k--) b[r.int(b.length)] = r.pick(INTERESTING);
  return b;
};

const setLength: Mutator = (r, s) => {
  const b = s.frame.slice();
  const len = s.frame.length - HEADER_LEN;
  const v = r.pick([
    0,
    1,
    len - 1,
    len + 1,
    len + 1 + r.int(100),
    r.int(2 ** 32),
    0xffffffff,
    0x80000000,
    MAX_PAYLOAD,
    MAX_PAYLOAD + 1,
    PRE_HANDSHAKE_MAX_PAYLOAD,
    PRE_HANDSHAKE_MAX_PAYLOAD + 1,
  ]);
  new DataView(b.buffer).setUint32(4, Math.max(0, v) >>> 0);
  return b;
};

/** A header declaring up to 4 MiB followed by the short real payload: the rest never comes. */
const hugeLength: Mutator = (r, s) => {
  const b = s.frame.slice();
  new DataView(b.buffer).setUint32(4, MAX_PAYLOAD - r.int(1024));
  return b;
};

const KNOWN_TYPES = Object.values(MsgType);
const typeByte: Mutator = (r, s) => {
  const b = s.frame.slice();
  b[3] = r.next() < 0.5 ? r.pick(KNOWN_TYPES) : r.int(256);
  return b;
};

const magic: Mutator = (r, s) => {
  const b = s.frame.slice();
  b[r.int(2)] = r.int(256);
  if (r.next() < 0.3) b.set(r.bytes(2), 0);
  return b;
};

const version: Mutator = (r, s) => {
  const b = s.frame.slice();
  b[2] = r.pick([0, 2, 3, 0x7f, 0x80, 0xff, r.int(256)]);
  return b;
};

const twoFrames: Mutator = (r, s, all) => concat(s.frame, r.pick(all).frame);
const trailingGarbage: Mutator = (r, s) => concat(s.frame, r.bytes(1 + r.int(32)));
const emptyPayload: Mutator = (_r, s) => frameOf(s.frame[3]!, new Uint8Array(0));

// ---------------------------------------------------------------------------------------------
// MessagePack structure mutations

const nonMap: Mutator = (r, s) => {
  const v = r.pick<() => unknown>([
    () => Object.values(fieldsOf(s)), // the same values as an array
    () => randomValue(r),
    () => "a string payload",
    () => 42,
    () => null,
    () => r.bytes(16),
  ])();
  return withPayload(s, enc(v));
};

const wrongFieldType: Mutator = (r, s) => withPayload(s, rawMap(entriesWith(s, randomKey(r, s), enc(randomValue(r)))));
const nilField: Mutator = (r, s) => withPayload(s, rawMap(entriesWith(s, randomKey(r, s), Uint8Array.of(0xc0))));
const dropField: Mutator = (r, s) => withPayload(s, rawMap(entriesWith(s, randomKey(r, s), null)));

/** Unknown fields are ignored (docs/protocol.md#messages): most of these stay valid and must be served normally. */
const extraField: Mutator = (r, s) => {
  const e = entriesWith(s, "", null);
  for (let k = 1 + r.int(3); k > 0; k--) e.push([enc(`x_${r.int(1000)}`), enc(randomValue(r))]);
  return withPayload(s, rawMap(e));
};

const deepNest: Mutator = (r, s) => {
  let v: unknown = fieldsOf(s)[randomKey(r, s)] ?? 1;
  for (let d = 1 + r.int(12); d > 0; d--) v = r.next() < 0.5 ? [v] : { n: v };
  return withPayload(s, rawMap(entriesWith(s, randomKey(r, s), enc(v))));
};

/** A container header claiming far more entries than the bytes that follow. */
const lyingCount: Mutator = (r, s) => {
  const liar = r.pick([
    Uint8Array.of(0xdf, 0x7f, 0xff, 0xff, 0xff),
    Uint8Array.of(0xdd, 0xff, 0xff, 0xff, 0xff),
    Uint8Array.of(0xdc, 0xff, 0xff),
    Uint8Array.of(0xdb, 0x7f, 0xff, 0xff, 0xff, 0x41),
    Uint8Array.of(0xc6, 0x00, 0x40, 0x00, 0x01),
  ]);
  if (r.next() < 0.4) return withPayload(s, concat(liar, r.bytes(r.int(8))));
  return withPayload(s, rawMap(entriesWith(s, randomKey(r, s), liar)));
};

const BAD_UTF8 = [
  Uint8Array.of(0xa2, 0xc0, 0x80), // overlong NUL
  Uint8Array.of(0xa3, 0xed, 0xa0, 0x80), // surrogate
  Uint8Array.of(0xa2, 0xff, 0xfe),
  Uint8Array.of(0xa4, 0xf4, 0x90, 0x80, 0x80), // above U+10FFFF
  Uint8Array.of(0xa1, 0x80), // lone continuation
];
const badUtf8: Mutator = (r, s) => withPayload(s, rawMap(entriesWith(s, randomKey(r, s), r.pick(BAD_UTF8))));
const badUtf8Key: Mutator = (r, s) => {
  const e = entriesWith(s, "", null);
  e.push([r.pick(BAD_UTF8), enc(1)]);
  return withPayload(s, rawMap(e));
};

const nonStringKey: Mutator = (r, s) => {
  const e = entriesWith(s, "", null);
  e.splice(r.int(e.length + 1), 0, [enc(r.pick<unknown>([7, -1, null, true, 1.5, r.bytes(3), [1]])), enc(1)]);
  return withPayload(s, rawMap(e));
};

const extValue: Mutator = (r, s) => {
  const ext = r.pick([
    Uint8Array.of(0xd4, 0x01, 0x00),
    Uint8Array.of(0xc7, 0x02, 0xff, 0, 0),
    Uint8Array.of(0xd6, 0xff, 0, 0, 0, 1),
  ]);
  return withPayload(s, rawMap(entriesWith(s, randomKey(r, s), ext)));
};

const duplicateKey: Mutator = (r, s) => {
  const e = entriesWith(s, "", null);
  if (e.length) e.push([e[r.int(e.length)]![0], enc(randomValue(r))]);
  return withPayload(s, rawMap(e));
};

const longKey: Mutator = (r, s) => {
  const e = entriesWith(s, "", null);
  e.push([enc("k".repeat(65 + r.int(300))), enc(1)]);
  return withPayload(s, rawMap(e));
};

const payloadC1: Mutator = (r, s) => {
  const b = s.frame.slice();
  if (b.length > HEADER_LEN) b[HEADER_LEN + r.int(b.length - HEADER_LEN)] = 0xc1;
  return b;
};

/** Several byte-level mutations in a row. */
const BYTE_OPS: [string, Mutator][] = [
  ["bitflip", bitflip],
  ["insert", insertBytes],
  ["delete", deleteBytes],
  ["set-bytes", setBytes],
];
const havoc: Mutator = (r, s, all) => {
  let cur: Seed = s;
  for (let k = 2 + r.int(3); k > 0; k--) cur = { ...cur, frame: r.pick(BYTE_OPS)[1](r, cur, all) };
  return cur.frame;
};

/** Every mutation with its weight: byte damage most often, each structural kind regularly. */
const MUTATORS: [string, Mutator, number][] = [
  ["bitflip", bitflip, 10],
  ["header-bitflip", headerBitflip, 3],
  ["insert", insertBytes, 5],
  ["delete", deleteBytes, 5],
  ["truncate", truncate, 4],
  ["set-bytes", setBytes, 4],
  ["length", setLength, 4],
  ["huge-length", hugeLength, 1],
  ["type", typeByte, 4],
  ["magic", magic, 2],
  ["version", version, 2],
  ["two-frames", twoFrames, 2],
  ["trailing", trailingGarbage, 2],
  ["empty-payload", emptyPayload, 1],
  ["non-map", nonMap, 3],
  ["wrong-type", wrongFieldType, 6],
  ["nil-field", nilField, 2],
  ["drop-field", dropField, 3],
  ["extra-field", extraField, 3],
  ["deep-nest", deepNest, 2],
  ["lying-count", lyingCount, 2],
  ["bad-utf8", badUtf8, 2],
  ["bad-utf8-key", badUtf8Key, 1],
  ["non-string-key", nonStringKey, 2],
  ["ext", extValue, 1],
  ["dup-key", duplicateKey, 1],
  ["long-key", longKey, 1],
  ["c1", payloadC1, 1],
  ["havoc", havoc, 5],
];
const TABLE: [string, Mutator][] = MUTATORS.flatMap(([n, m, w]) =>
  Array.from({ length: w }, (): [string, Mutator] => [n, m])
);

/** One mutant of a seed picked from `all` (`only` restricts the seed types). */
export function mutate(r: Rng, all: readonly Seed[]): Mutant {
  const s = r.pick(all);
  const [op, m] = r.pick(TABLE);
  return { op: `${op}(${s.type})`, bytes: m(r, s, all) };
}

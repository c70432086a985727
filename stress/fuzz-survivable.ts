/**
 * Mutations that keep a frame valid: the same values in other MessagePack encodings (an int as
 * uint64, a short string as str32, a fixmap as map32), keys in another order, unknown extra
 * fields, optional fields dropped or nil, values changed within their type. The decoder and the
 * validators must take every one of them as the message it still is. The control stream is where
 * they go in bulk: a valid frame there gets its answer and the session goes on, so thousands can
 * share one stream — where a malformed one ends the session (docs/protocol.md#messages) and costs a handshake.
 */
import { decode } from "@msgpack/msgpack";
import { HEADER_LEN, type WireMessage } from "../src/wire/messages.ts";
import { frameOf, type Mutant, type Rng } from "./fuzz-mutate.ts";
import { natureOf } from "./fuzz-oracle.ts";
import type { Seed } from "./fuzz-seeds.ts";

const utf8 = new TextEncoder();

/** A growable byte buffer: the encoder below runs tens of thousands of times a second. */
class Out {
  buf = new Uint8Array(4096);
  n = 0;
  push(...bytes: number[]): void {
    for (const b of bytes) this.byte(b);
  }
  byte(b: number): void {
    if (this.n === this.buf.length) {
      const g = new Uint8Array(this.buf.length * 2);
      g.set(this.buf);
      this.buf = g;
    }
    this.buf[this.n++] = b;
  }
  bytes(b: Uint8Array): void {
    while (this.n + b.length > this.buf.length) {
      const g = new Uint8Array(this.buf.length * 2);
      g.set(this.buf);
      this.buf = g;
    }
    this.buf.set(b, this.n);
    this.n += b.length;
  }
}

/** `v` in MessagePack, each value in a randomly chosen encoding among those that can hold it. */
function wide(r: Rng, v: unknown, out: Out): void {
  if (v === null || v === undefined) out.push(0xc0);
  else if (typeof v === "boolean") out.push(v ? 0xc3 : 0xc2);
  else if (typeof v === "number" && Number.isInteger(v)) wideInt(r, v, out);
  else if (typeof v === "number") pushN(out, 0xcb, 8, v);
  else if (typeof v === "bigint") pushBig(out, v);
  else if (typeof v === "string") wideLen(r, utf8.encode(v), out, [0xa0, 32], [0xd9, 0xda, 0xdb]);
  else if (v instanceof Uint8Array) wideLen(r, v, out, null, [0xc4, 0xc5, 0xc6]);
  else if (Array.isArray(v)) {
    wideHeader(r, v.length, out, 0x90, 0xdc, 0xdd);
    for (const x of v) wide(r, x, out);
  } else {
    const e = Object.entries(v as Record<string, unknown>);
    wideHeader(r, e.length, out, 0x80, 0xde, 0xdf);
    for (const [k, x] of e) {
      wide(r, k, out);
      wide(r, x, out);
    }
  }
}

const scratch = new DataView(new ArrayBuffer(8));
const scratchBytes = new Uint8Array(scratch.buffer);

function pushN(out: Out, head: number, n: number, v: number): void {
  if (head === 0xcb) scratch.setFloat64(0, v);
  else if (n <= 4) scratch.setUint32(4, v >>> 0);
  else scratch.setBigUint64(0, BigInt.asUintN(64, BigInt(v)));
  out.byte(head);
  out.bytes(scratchBytes.subarray(8 - n));
}

function pushBig(out: Out, v: bigint): void {
  scratch.setBigUint64(0, BigInt.asUintN(64, v));
  out.byte(v < 0n ? 0xd3 : 0xcf);
  out.bytes(scratchBytes);
}

function wideInt(r: Rng, v: number, out: Out): void {
  const forms: [number, number][] = []; // [head, bytes]
  if (v >= 0) {
    if (v < 128) forms.push([-1, 0]);
    if (v < 256) forms.push([0xcc, 1]);
    if (v < 65536) forms.push([0xcd, 2]);
    if (v < 2 ** 32) forms.push([0xce, 4]);
    forms.push([0xcf, 8]);
  } else {
    if (v >= -32) forms.push([-1, 0]);
    if (v >= -128) forms.push([0xd0, 1]);
    if (v >= -32768) forms.push([0xd1, 2]);
    if (v >= -(2 ** 31)) forms.push([0xd2, 4]);
    forms.push([0xd3, 8]);
  }
  const [head, n] = r.pick(forms);
  if (head === -1) out.push(v & 0xff);
  else pushN(out, head, n, v);
}

/** A string or bin body with a length header of a random fitting width. */
function wideLen(r: Rng, b: Uint8Array, out: Out, fix: [number, number] | null, heads: number[]): void {
  const forms: number[] = [];
  if (fix && b.length < fix[1]) forms.push(-1);
  if (b.length < 256) forms.push(0);
  if (b.length < 65536) forms.push(1);
  forms.push(2);
  const f = r.pick(forms);
  if (f === -1) out.push(fix![0] | b.length);
  else pushN(out, heads[f]!, [1, 2, 4][f]!, b.length);
  out.bytes(b);
}

function wideHeader(r: Rng, n: number, out: Out, fix: number, h16: number, h32: number): void {
  const forms = n < 16 ? [0, 1, 2] : n < 65536 ? [1, 2] : [2];
  const f = r.pick(forms);
  if (f === 0) out.push(fix | n);
  else pushN(out, f === 1 ? h16 : h32, f === 1 ? 2 : 4, n);
}

// ---------------------------------------------------------------------------------------------

type Fields = Record<string, unknown>;

function shuffled<T>(r: Rng, a: T[]): T[] {
  for (let i = a.length - 1; i > 0; i--) {
    const j = r.int(i + 1);
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}

/** A value of the same kind as `v`: what a real peer could have sent in that field. */
function sameKind(r: Rng, v: unknown): unknown {
  if (typeof v === "number") return r.pick([0, 1, v + 1, r.int(2 ** 32), Math.floor(Date.now() / 1000)]);
  if (typeof v === "string") return r.pick(["", "a", "é€😀", "x".repeat(r.int(64)), v]);
  if (v instanceof Uint8Array) return r.bytes(v.length);
  if (Array.isArray(v)) return r.next() < 0.5 ? [] : v;
  return v;
}

interface Edit {
  name: string;
  edit: (r: Rng, f: Fields) => Fields;
  /** The frame decodes to the seed's message as it was (no need to decode it to know). */
  same: boolean;
}

const EDITS: Edit[] = [
  { name: "reencode", same: true, edit: (_r, f) => f },
  { name: "shuffle-keys", same: true, edit: (r, f) => Object.fromEntries(shuffled(r, Object.entries(f))) },
  {
    name: "extra-field", // unknown fields are ignored (docs/protocol.md#messages)
    same: true,
    edit: (r, f) => ({ ...f, [`x_${r.int(1000)}`]: sameKind(r, r.pick([1, "s", [1], { a: 1 }])) }),
  },
  {
    name: "drop-field",
    same: false,
    edit: (r, f) => {
      const k = r.pick(Object.keys(f));
      const { [k]: _gone, ...rest } = f;
      return rest;
    },
  },
  { name: "nil-field", same: false, edit: (r, f) => ({ ...f, [r.pick(Object.keys(f))]: null }) },
  {
    name: "edit-value",
    same: false,
    edit: (r, f) => {
      const k = r.pick(Object.keys(f));
      return { ...f, [k]: sameKind(r, f[k]) };
    },
  },
];

/** Types that end the session when valid (Disconnect) are left out: they are not survivable. */
export function survivableSeeds(all: readonly Seed[]): Seed[] {
  return all.filter((s) => s.type !== "Disconnect");
}

/**
 * A valid mutant of a seed from `all` (tries a few edits; falls back to the seed re-encoded).
 * Only frames that decode, alone and whole, are returned.
 */
export function mutateKeepingValid(r: Rng, all: readonly Seed[]): Mutant & { msg: WireMessage } {
  const s = r.pick(all);
  let fields = decoded.get(s);
  if (!fields) decoded.set(s, fields = decode(s.frame.subarray(HEADER_LEN)) as Fields);
  for (let attempt = 0; attempt < 4; attempt++) {
    const e = r.pick(EDITS);
    const out = shared;
    out.n = 0;
    wide(r, e.edit(r, fields), out);
    const bytes = frameOf(s.frame[3]!, out.buf.subarray(0, out.n));
    if (e.same) return { op: `${e.name}(${s.type})`, bytes, msg: s.msg };
    const n = natureOf(bytes);
    if (n.kind === "frame" && n.rest === 0) return { op: `${e.name}(${s.type})`, bytes, msg: n.msg };
  }
  return { op: `seed(${s.type})`, bytes: s.frame, msg: s.msg };
}

/** The encoder's buffer, reused (frameOf copies out of it). */
const shared = new Out();
/** Each seed's fields, decoded once. */
const decoded = new WeakMap<Seed, Fields>();

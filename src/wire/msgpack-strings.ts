/**
 * A faster string path for @msgpack/msgpack's Encoder (3.x), installed on the frame encoder.
 *
 * Why: the library counts a string's UTF-8 bytes with a JavaScript loop before writing it, which
 * was most of the time a large Message took to encode (a 1 MiB body: 3.9 ms, of which the count
 * ~2 ms; a 4 MiB one blocked the event loop for 15–28 ms). Here the runtime counts
 * (`Buffer.byteLength`) and TextEncoder writes, as the library itself does for any string longer
 * than 50 characters; short ASCII strings (IDs, keys) are copied by a plain loop.
 *
 * The bytes are the library's own for every well-formed string (test/wire.test.ts compares them
 * over random text); the frame encoder only ever sees well-formed strings (schema.ts refuses lone
 * surrogates before encoding). If a later version of the library lacks the members this relies
 * on, the encoder is left as it is.
 */
import { Buffer } from "node:buffer";
import type { Encoder } from "@msgpack/msgpack";

/** The Encoder members the fast path uses (not in the library's public types). */
interface EncoderInternals {
  bytes: Uint8Array;
  pos: number;
  ensureBufferSizeToWrite(n: number): void;
  writeStringHeader(byteLength: number): void;
  encodeString(s: string): void;
}

/** Below this many UTF-16 units an ASCII string is counted and copied in JavaScript. */
const SHORT = 64;
const textEncoder = new TextEncoder();

/** `e`, with its strings counted and written by the runtime. */
export function withFastStrings<E extends Encoder>(e: E): E {
  const x = e as unknown as Partial<EncoderInternals>;
  if (
    typeof x.ensureBufferSizeToWrite !== "function" || typeof x.writeStringHeader !== "function" ||
    typeof x.encodeString !== "function"
  ) {
    return e;
  }
  x.encodeString = encodeString;
  return e;
}

function encodeString(this: EncoderInternals, s: string): void {
  const ascii = s.length < SHORT && isAscii(s);
  const n = ascii ? s.length : Buffer.byteLength(s, "utf8");
  this.ensureBufferSizeToWrite(5 + n); // 5: the largest header (str 32)
  this.writeStringHeader(n);
  const at = this.pos;
  if (ascii) {
    const b = this.bytes;
    for (let i = 0; i < n; i++) b[at + i] = s.charCodeAt(i);
  } else {
    textEncoder.encodeInto(s, this.bytes.subarray(at, at + n));
  }
  this.pos = at + n;
}

function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

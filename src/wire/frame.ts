/**
 * Frame envelope (docs/protocol.md#messages): magic 0xAC 0x01 · version 0x01 · type · u32 BE length · MessagePack map.
 *
 * Decoding is defensive: the header is checked before any payload byte is looked at, then the
 * payload is scanned once without allocating (structure, nesting, key types, element counts)
 * before @msgpack/msgpack builds values from it, and the result is validated field by field.
 * Every failure is a WireError; nothing else escapes.
 */
import { Decoder, Encoder } from "@msgpack/msgpack";
import * as nodeBuffer from "node:buffer";
import { HEADER_LEN, MAX_PAYLOAD, msgTypeName, WIRE_VERSION, type WireMessage } from "./messages.ts";
import { rejected, WireError } from "./errors.ts";
import { normalizeMessage, payloadOf } from "./validate.ts";
import { withFastStrings } from "./msgpack-strings.ts";

export { WireError } from "./errors.ts";
// the envelope constants and types, for callers that import everything from here
export {
  FRAME_MAGIC,
  HEADER_LEN,
  MAX_PAYLOAD,
  MsgType,
  type MsgTypeName,
  PRE_HANDSHAKE_MAX_PAYLOAD,
  WIRE_VERSION,
  type WireMessage,
} from "./messages.ts";

const MAGIC0 = 0xac;
const MAGIC1 = 0x01;

/** Deepest nesting accepted in a payload (the schema needs 4: map > peers > PeerRecord > record). */
export const MAX_DEPTH = 8;
/** Most MessagePack values accepted in one payload (a full BootstrapPeers: 1000 peers × ≤ 92). */
export const MAX_VALUES = 128 * 1024;
/** Longest map key accepted, in bytes. */
const MAX_KEY_BYTES = 64;

// One instance each, reused: both are synchronous and re-entrancy safe (they clone if re-entered).
const decoder = new Decoder({
  useBigInt64: true,
  maxStrLength: MAX_PAYLOAD,
  maxBinLength: MAX_PAYLOAD,
  maxArrayLength: MAX_VALUES,
  maxMapLength: MAX_VALUES,
  maxExtLength: 0,
});
const ENCODER_OPTIONS = { initialBufferSize: 4096 } as const;
const newEncoder = () => withFastStrings(new Encoder(ENCODER_OPTIONS));
let encoder = newEncoder();
/** After encoding a payload bigger than this, drop the encoder so its buffer does not linger. */
const ENCODER_KEEP_BYTES = 256 * 1024;

// ---------------------------------------------------------------------------------------------
// Encoding

/**
 * Validates `msg` and returns one frame. Throws WireError (2003) for an invalid message and
 * (2002) when the payload would exceed `maxPayload`.
 */
export function encodeFrame(msg: WireMessage, maxPayload: number = MAX_PAYLOAD): Uint8Array {
  const { code, payload: map } = payloadOf(msg); // validates; the type travels in the header
  const payload = encoder.encodeSharedRef(map);
  const len = payload.length;
  if (len > maxPayload) {
    if (len > ENCODER_KEEP_BYTES) encoder = newEncoder();
    throw new WireError(
      "ERR_PAYLOAD_TOO_LARGE",
      `${msg.type} payload is ${len} bytes, above the ${maxPayload}-byte limit`,
      {
        frameType: code,
      },
    );
  }
  const frame = new Uint8Array(HEADER_LEN + len);
  frame[0] = MAGIC0;
  frame[1] = MAGIC1;
  frame[2] = WIRE_VERSION;
  frame[3] = code;
  frame[4] = len >>> 24;
  frame[5] = (len >>> 16) & 0xff;
  frame[6] = (len >>> 8) & 0xff;
  frame[7] = len & 0xff;
  frame.set(payload, HEADER_LEN);
  if (len > ENCODER_KEEP_BYTES) encoder = newEncoder();
  return frame;
}

/**
 * Decoding errors are made without a stack trace: they refuse hostile input, their message says
 * what was wrong, and capturing the stack was two thirds of a refusal's cost (a bad magic: 9.4 →
 * 2.9 µs; issue 16's fuzzer has a daemon refuse thousands of frames a second).
 */
function withoutStacks<T>(decode: () => T): T {
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return decode();
  } finally {
    Error.stackTraceLimit = limit;
  }
}

// ---------------------------------------------------------------------------------------------
// Header

function readLength(b: Uint8Array, at: number): number {
  return ((b[at]! << 24) | (b[at + 1]! << 16) | (b[at + 2]! << 8) | b[at + 3]!) >>> 0;
}

/** Checks the 8-byte header at `at` (caller ensures 8 bytes); returns the payload length. */
function checkHeader(b: Uint8Array, at: number, maxPayload: number): number {
  if (b[at] !== MAGIC0 || b[at + 1] !== MAGIC1) {
    throw rejected(`bad frame magic 0x${hex2(b[at]!)}${hex2(b[at + 1]!)} (expected 0xac01)`);
  }
  const type = b[at + 3]!;
  if (b[at + 2] !== WIRE_VERSION) {
    throw new WireError(
      "ERR_PROTOCOL_VERSION",
      `unsupported frame version ${b[at + 2]} (this node speaks ${WIRE_VERSION})`,
      {
        frameType: type,
      },
    );
  }
  const name = msgTypeName(type);
  if (name === undefined) throw rejected(`unknown message type 0x${hex2(type)}`, type);
  const len = readLength(b, at + 4);
  if (len > maxPayload) {
    throw new WireError(
      "ERR_PAYLOAD_TOO_LARGE",
      `${name} payload of ${len} bytes exceeds the ${maxPayload}-byte limit`,
      {
        frameType: type,
      },
    );
  }
  return len;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}

/** Header fields of a frame, or null when fewer than 8 bytes are given. Does not validate. */
export function peekHeader(b: Uint8Array): { version: number; type: number; length: number } | null {
  if (b.length < HEADER_LEN) return null;
  return { version: b[2]!, type: b[3]!, length: readLength(b, 4) };
}

// ---------------------------------------------------------------------------------------------
// Payload

/** Native UTF-8 validation where the runtime has it (Node >= 18.14, Deno), for long strings. */
const nativeIsUtf8 = (nodeBuffer as { isUtf8?: (b: Uint8Array) => boolean }).isUtf8;

/** True when b[i, end) is well-formed UTF-8 (RFC 3629: no overlongs, surrogates or > U+10FFFF). */
function isUtf8(b: Uint8Array, i: number, end: number): boolean {
  if (end - i >= 64 && nativeIsUtf8 !== undefined) return nativeIsUtf8(b.subarray(i, end));
  while (i < end) {
    const c = b[i]!;
    if (c < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (c >= 0xc2 && c <= 0xdf) need = 1;
    else if (c >= 0xe0 && c <= 0xef) {
      need = 2;
      if (c === 0xe0) lo = 0xa0;
      else if (c === 0xed) hi = 0x9f;
    } else if (c >= 0xf0 && c <= 0xf4) {
      need = 3;
      if (c === 0xf0) lo = 0x90;
      else if (c === 0xf4) hi = 0x8f;
    } else return false;
    if (i + need >= end) return false;
    const c1 = b[i + 1]!;
    if (c1 < lo || c1 > hi) return false;
    for (let k = 2; k <= need; k++) {
      const ck = b[i + k]!;
      if (ck < 0x80 || ck > 0xbf) return false;
    }
    i += need + 1;
  }
  return true;
}

const depthLeft = new Float64Array(MAX_DEPTH + 1); // items still to read at each level
const depthIsMap = new Uint8Array(MAX_DEPTH + 1);

function truncated(what: string, type: number): WireError {
  return rejected(`${what} payload is truncated`, type);
}

/**
 * One allocation-free pass over the payload bytes [pos, end): well-formed MessagePack, a map at
 * the top, string keys only, no ext types, nesting and value count within limits, lengths within
 * the bytes present, nothing after the map. Throws WireError (2003).
 */
function scanPayload(b: Uint8Array, pos: number, end: number, what: string, type: number): void {
  if (pos >= end) throw rejected(`${what} payload is empty (expected a MessagePack map)`, type);
  const h0 = b[pos]!;
  if (!((h0 >= 0x80 && h0 <= 0x8f) || h0 === 0xde || h0 === 0xdf)) {
    throw rejected(`${what} payload is not a MessagePack map`, type);
  }
  let depth = 0;
  let values = 0;
  for (;;) {
    if (pos >= end) throw truncated(what, type);
    const h = b[pos++]!;
    if (++values > MAX_VALUES) throw rejected(`${what} payload holds too many values`, type);
    const isKey = depth > 0 && depthIsMap[depth - 1] === 1 && depthLeft[depth - 1]! % 2 === 0;
    let count = -1; // >= 0 for a container: number of items to follow
    let isMapHdr = 0;
    let skip = 0; // data bytes to skip after the header
    if (h <= 0x7f || h >= 0xe0) {
      // fixint
    } else if (h <= 0x8f) {
      count = (h & 0x0f) * 2;
      isMapHdr = 1;
    } else if (h <= 0x9f) {
      count = h & 0x0f;
    } else if (h <= 0xbf) {
      skip = h & 0x1f;
      if (isKey && skip > MAX_KEY_BYTES) {
        throw rejected(`${what} payload has a map key longer than ${MAX_KEY_BYTES} bytes`, type);
      }
    } else {
      let n = 0; // size of the length field
      switch (h) {
        case 0xc0: // nil
        case 0xc2: // false
        case 0xc3: // true
          break;
        case 0xc4: // bin 8/16/32, str 8/16/32
        case 0xd9:
          n = 1;
          break;
        case 0xc5:
        case 0xda:
          n = 2;
          break;
        case 0xc6:
        case 0xdb:
          n = 4;
          break;
        case 0xca:
          skip = 4;
          break;
        case 0xcb:
          skip = 8;
          break;
        case 0xcc:
        case 0xd0:
          skip = 1;
          break;
        case 0xcd:
        case 0xd1:
          skip = 2;
          break;
        case 0xce:
        case 0xd2:
          skip = 4;
          break;
        case 0xcf:
        case 0xd3:
          skip = 8;
          break;
        case 0xdc: // array 16/32
        case 0xde: // map 16/32
          n = 2;
          break;
        case 0xdd:
        case 0xdf:
          n = 4;
          break;
        default:
          // 0xc1 (never used) and every ext type (0xc7-0xc9, 0xd4-0xd8)
          throw rejected(
            h === 0xc1
              ? `${what} payload holds the invalid byte 0xc1`
              : `${what} payload holds a MessagePack ext value`,
            type,
          );
      }
      if (n > 0) {
        if (pos + n > end) throw truncated(what, type);
        let v = b[pos]!;
        if (n >= 2) v = v * 256 + b[pos + 1]!;
        if (n === 4) v = (v * 256 + b[pos + 2]!) * 256 + b[pos + 3]!;
        pos += n;
        if (h === 0xdc || h === 0xdd) count = v;
        else if (h === 0xde || h === 0xdf) {
          count = v * 2;
          isMapHdr = 1;
        } else {
          skip = v;
          if (isKey && (h === 0xd9 || h === 0xda || h === 0xdb) && v > MAX_KEY_BYTES) {
            throw rejected(`${what} payload has a map key longer than ${MAX_KEY_BYTES} bytes`, type);
          }
        }
      }
    }
    if (isKey && !((h >= 0xa0 && h <= 0xbf) || h === 0xd9 || h === 0xda || h === 0xdb)) {
      throw rejected(`${what} payload has a map key that is not a string`, type);
    }
    if (skip > 0) {
      if (skip > end - pos) throw truncated(what, type);
      if (((h >= 0xa0 && h <= 0xbf) || h === 0xd9 || h === 0xda || h === 0xdb) && !isUtf8(b, pos, pos + skip)) {
        throw rejected(`${what} payload holds a string that is not valid UTF-8`, type);
      }
      pos += skip;
    }
    if (depth > 0) depthLeft[depth - 1]!--;
    if (count > 0) {
      // every item takes at least one byte: a count beyond the bytes left is a lie
      if (count > end - pos) throw truncated(what, type);
      if (depth === MAX_DEPTH) throw rejected(`${what} payload is nested deeper than ${MAX_DEPTH} levels`, type);
      depthLeft[depth] = count;
      depthIsMap[depth] = isMapHdr;
      depth++;
    }
    while (depth > 0 && depthLeft[depth - 1] === 0) depth--;
    if (depth === 0) {
      if (pos !== end) throw rejected(`${what} payload has ${end - pos} extra bytes after the map`, type);
      return;
    }
  }
}

/** Decodes the payload bytes [start, end) of a frame of type `type` (already checked known). */
function decodePayload(b: Uint8Array, start: number, end: number, type: number): WireMessage {
  const name = msgTypeName(type)!;
  scanPayload(b, start, end, name, type);
  let raw: unknown;
  try {
    raw = decoder.decode(b.subarray(start, end));
  } catch (e) {
    throw rejected(`${name} payload is not valid MessagePack: ${e instanceof Error ? e.message : String(e)}`, type, e);
  }
  return normalizeMessage(name, raw, true);
}

/**
 * Decodes exactly one whole frame (no trailing bytes). Throws WireError: 1001 for a bad version,
 * 2002 for a length above `maxPayload`, 2003 for anything else.
 */
export function decodeFrame(frame: Uint8Array, maxPayload: number = MAX_PAYLOAD): WireMessage {
  return withoutStacks(() => decodeWhole(frame, maxPayload));
}

function decodeWhole(frame: Uint8Array, maxPayload: number): WireMessage {
  if (!(frame instanceof Uint8Array)) throw rejected("a frame must be a Uint8Array");
  if (frame.length < HEADER_LEN) {
    throw rejected(`frame is truncated (${frame.length} bytes, header needs ${HEADER_LEN})`);
  }
  const len = checkHeader(frame, 0, maxPayload);
  const type = frame[3]!;
  const total = HEADER_LEN + len;
  if (frame.length < total) {
    throw rejected(`${msgTypeName(type)} frame is truncated (${frame.length} of ${total} bytes)`, type);
  }
  if (frame.length > total) {
    throw rejected(`${msgTypeName(type)} frame has ${frame.length - total} trailing bytes`, type);
  }
  return decodePayload(frame, HEADER_LEN, total, type);
}

// ---------------------------------------------------------------------------------------------
// Incremental reader

const EMPTY = new Uint8Array(0);
/** Buffers above this size are released once empty. */
const KEEP_BYTES = 64 * 1024;
/** A reserved frame's whole buffer is allocated once this much of it is in (reserveForPending). */
const EAGER_BYTES = 64 * 1024;

/**
 * Incremental frame reader for a stream. `push` chunks as they arrive, then call `next` until it
 * returns null. Bytes are copied once, into a buffer sized to the frame in progress; a complete
 * frame is decoded straight from that buffer.
 *
 * Errors: a bad header (magic, version, unknown type, length above `maxPayload`) is detected as
 * soon as its 8 bytes are in — in `push` already, so the payload of an oversized frame is never
 * buffered — and is sticky: the stream is out of sync, every later `next` throws it again and
 * later pushes are dropped. A frame whose header is fine but whose payload is malformed is
 * consumed, and `next` throws once for it; the following frames can still be read.
 */
export class FrameReader {
  /** Payload limit for frames not yet started; raise it (64 KiB → 4 MiB) after the handshake. */
  maxPayload: number;
  private buf: Uint8Array = EMPTY;
  private start = 0;
  private end = 0;
  private failure: WireError | null = null;
  /** Size (header + payload) of the frame in progress once reserved (reserveForPending), else 0. */
  private reservedTotal = 0;

  constructor(maxPayload: number = MAX_PAYLOAD) {
    this.maxPayload = maxPayload;
  }

  /** Bytes held (not yet returned as frames). */
  get buffered(): number {
    return this.end - this.start;
  }

  /** True when a partial frame is pending (at FIN, after draining `next`: a truncated frame). */
  get hasPartial(): boolean {
    const held = this.end - this.start;
    if (held === 0) return false;
    if (held < HEADER_LEN) return true;
    return held < HEADER_LEN + readLength(this.buf, this.start + 4);
  }

  /**
   * Declared payload length of the frame being received — its header is complete and valid, its
   * payload is not — or -1. Lets the stream reserve buffer space before keeping payload bytes.
   */
  get pendingPayload(): number {
    const held = this.end - this.start;
    if (held < HEADER_LEN || this.failure !== null) return -1;
    const len = readLength(this.buf, this.start + 4);
    return held < HEADER_LEN + len ? len : -1;
  }

  /** The type byte of the frame being received (meaningful when `pendingPayload` ≥ 0). */
  get pendingType(): number {
    return this.buf[this.start + 3]!;
  }

  /**
   * The frame in progress may be read whole (its size has been reserved): once EAGER_BYTES of it
   * are in, its whole buffer is allocated at once — doubling all the way would leave as much
   * garbage as the frame again (issue 16: RSS under attack). Not before: a header alone (8 bytes
   * declaring 4 MiB, then FIN) made the reader allocate and zero 4 MiB, which under the stress
   * fuzzer was 11 % of a daemon's CPU and most of its garbage collection.
   */
  reserveForPending(): void {
    const len = this.pendingPayload;
    if (len < 0) return;
    this.reservedTotal = HEADER_LEN + len;
    if (this.end - this.start >= EAGER_BYTES && this.buf.length - this.start < this.reservedTotal) {
      this.growTo(this.reservedTotal);
    }
  }

  /** Bytes of buffer the reader holds, in use or not. */
  get capacity(): number {
    return this.buf.length;
  }

  /** The sticky header error, if any. */
  get error(): WireError | null {
    return this.failure;
  }

  push(chunk: Uint8Array): void {
    if (this.failure !== null) return;
    let from = 0;
    const n = chunk.length;
    // complete the front frame's header first, and check it before taking any payload byte
    if (this.end - this.start < HEADER_LEN) {
      const take = Math.min(HEADER_LEN - (this.end - this.start), n);
      this.append(chunk, 0, take, HEADER_LEN);
      from = take;
      if (this.end - this.start < HEADER_LEN) return;
    }
    let frameTotal: number;
    try {
      frameTotal = HEADER_LEN + withoutStacks(() => checkHeader(this.buf, this.start, this.maxPayload));
    } catch (e) {
      this.failure = e as WireError;
      return;
    }
    this.append(chunk, from, n, frameTotal);
  }

  next(): WireMessage | null {
    return withoutStacks(() => this.nextFrame());
  }

  private nextFrame(): WireMessage | null {
    if (this.failure !== null) throw this.failure;
    const held = this.end - this.start;
    if (held < HEADER_LEN) return null;
    const s = this.start;
    let len: number;
    try {
      len = checkHeader(this.buf, s, this.maxPayload);
    } catch (e) {
      this.failure = e as WireError;
      throw e;
    }
    const total = HEADER_LEN + len;
    if (held < total) return null;
    const type = this.buf[this.start + 3]!;
    // decode before the buffer can be reused: the result owns all of its bytes
    let msg: WireMessage;
    try {
      msg = decodePayload(this.buf, this.start + HEADER_LEN, this.start + total, type);
    } finally {
      this.start += total;
      this.reservedTotal = 0;
      if (this.start === this.end) {
        this.start = this.end = 0;
        if (this.buf.length > KEEP_BYTES) this.buf = EMPTY;
      }
    }
    return msg;
  }

  /**
   * Copies chunk[from, to) in. The buffer grows with the bytes actually received (doubling, for
   * amortized single copies), never speculatively beyond `frameTotal`, the size of the frame in
   * progress: a header alone never makes the reader allocate its declared payload.
   */
  private append(chunk: Uint8Array, from: number, to: number, frameTotal: number): void {
    const n = to - from;
    if (n <= 0) return;
    const held = this.end - this.start;
    const need = held + n;
    if (this.end + n > this.buf.length) {
      if (need <= this.buf.length) {
        this.buf.copyWithin(0, this.start, this.end);
        this.start = 0;
        this.end = held;
      } else {
        const speculative = Math.min(Math.max(this.buf.length * 2, 256), Math.max(frameTotal, need));
        const whole = this.reservedTotal > 0 && need >= EAGER_BYTES ? this.reservedTotal : 0;
        this.growTo(Math.max(need, speculative, whole));
      }
    }
    this.buf.set(from === 0 && to === chunk.length ? chunk : chunk.subarray(from, to), this.end);
    this.end += n;
  }

  /** A buffer of `size` bytes holding the bytes held so far, at its start. */
  private growTo(size: number): void {
    const held = this.end - this.start;
    const grown = new Uint8Array(size);
    grown.set(this.buf.subarray(this.start, this.end));
    this.buf = grown;
    this.start = 0;
    this.end = held;
  }
}

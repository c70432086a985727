/**
 * Field validation for every wire message (SPEC §5 "Field types and limits").
 *
 * One schema per message type drives both directions: `normalizeMessage` checks a message about
 * to be encoded, and turns a decoded MessagePack map into a typed message. It returns a fresh
 * object holding only the known fields (unknown ones are dropped), with nil/undefined optional
 * fields left out, int64 bigints turned into numbers, and (when decoding) byte fields copied out
 * of the frame buffer. Every failure is a WireError whose message names the field.
 */
import { AtlasError, ProtocolCode } from "../errors.ts";
import { Limits, MsgType, type MsgTypeName, TRUST_LEVELS, type WireMessage } from "./messages.ts";

export type WireCodeName = "ERR_PROTOCOL_VERSION" | "ERR_PAYLOAD_TOO_LARGE" | "ERR_MESSAGE_REJECTED";

/**
 * A frame that cannot be decoded, or a message that cannot be encoded.
 * `wireCode` is the protocol code to answer with in an Error frame: 1001 for a bad envelope
 * version, 2002 for a payload over the limit, 2003 for everything else.
 */
export class WireError extends AtlasError {
  readonly wireCode: number;
  /** The frame's type byte, when the header was readable. */
  readonly frameType: number | undefined;
  constructor(code: WireCodeName, message: string, opts: { cause?: unknown; frameType?: number } = {}) {
    super(code, message, opts.cause === undefined ? {} : { cause: opts.cause });
    this.name = "WireError";
    this.wireCode = ProtocolCode[code];
    this.frameType = opts.frameType;
  }
}

export function rejected(message: string, frameType?: number, cause?: unknown): WireError {
  return new WireError("ERR_MESSAGE_REJECTED", message, { frameType, cause });
}

// ---------------------------------------------------------------------------------------------
// Primitive checks, exported for other modules (target parsing, config, store).

const NODE_ID_RE = /^atlas_[0-9a-f]{64}$/;
const MSG_ID_RE = /^msg_[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** `atlas_` + 64 lowercase hex digits. */
export function isNodeId(s: unknown): s is string {
  return typeof s === "string" && s.length === 70 && NODE_ID_RE.test(s);
}

/** `msg_` + a UUID (any version) in lowercase hex with dashes. */
export function isMsgId(s: unknown): s is string {
  return typeof s === "string" && s.length === 40 && MSG_ID_RE.test(s);
}

/** UTF-8 length of a string (lone surrogates count 3 bytes, as TextEncoder writes U+FFFD). */
export function utf8Length(s: string): number {
  let n = s.length;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) continue;
    if (c < 0x800) n += 1;
    else if (c >= 0xd800 && c <= 0xdbff && i + 1 < s.length) {
      const d = s.charCodeAt(i + 1);
      if (d >= 0xdc00 && d <= 0xdfff) {
        n += 2; // 2 UTF-16 units -> 4 bytes
        i++;
      } else n += 2;
    } else n += 2;
  }
  return n;
}

/** True when the UTF-8 encoding of `s` is at most `max` bytes (fast path without counting). */
export function fitsUtf8(s: string, max: number): boolean {
  if (s.length > max) return false;
  if (s.length * 3 <= max) return true;
  return utf8Length(s) <= max;
}

export interface HostPort {
  /** host without brackets: an IPv4 dotted quad, an IPv6 address, or a DNS name */
  host: string;
  port: number;
  /** 4 = IPv4, 6 = IPv6, 0 = DNS name */
  family: 0 | 4 | 6;
}

/** Parses a dotted quad (no leading zeros); returns its 32-bit value or -1. */
function parseIPv4(s: string, from: number, to: number): number {
  let parts = 0;
  let value = 0;
  let i = from;
  while (true) {
    const start = i;
    let octet = 0;
    while (i < to) {
      const c = s.charCodeAt(i);
      if (c < 0x30 || c > 0x39) break;
      octet = octet * 10 + (c - 0x30);
      i++;
    }
    const len = i - start;
    if (len === 0 || len > 3 || octet > 255 || (len > 1 && s.charCodeAt(start) === 0x30)) return -1;
    value = value * 256 + octet;
    parts++;
    if (parts === 4) return i === to ? value : -1;
    if (i >= to || s.charCodeAt(i) !== 0x2e) return -1;
    i++;
  }
}

function hexVal(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30;
  if (c >= 0x61 && c <= 0x66) return c - 0x57;
  if (c >= 0x41 && c <= 0x46) return c - 0x37;
  return -1;
}

/**
 * Parses an IPv6 address (no zone ID) into its 8 groups, or returns null.
 * Accepts `::` compression and a trailing embedded IPv4.
 */
export function parseIPv6(s: string): number[] | null {
  const head: number[] = [];
  const tail: number[] = [];
  let cur = head;
  let compressed = false;
  let i = 0;
  const n = s.length;
  if (n < 2 || n > 45) return null;
  if (s.startsWith("::")) {
    compressed = true;
    cur = tail;
    i = 2;
    if (i === n) return [0, 0, 0, 0, 0, 0, 0, 0];
  } else if (s.charCodeAt(0) === 0x3a) return null;
  while (i < n) {
    // one group, or an embedded IPv4 at the end
    let j = i;
    let v = 0;
    while (j < n && j - i < 5) {
      const h = hexVal(s.charCodeAt(j));
      if (h < 0) break;
      v = v * 16 + h;
      j++;
    }
    if (j < n && s.charCodeAt(j) === 0x2e) {
      const v4 = parseIPv4(s, i, n);
      if (v4 < 0) return null;
      cur.push(Math.floor(v4 / 65536), v4 % 65536);
      i = n;
      break;
    }
    if (j === i || j - i > 4) return null;
    cur.push(v);
    if (j === n) {
      i = n;
      break;
    }
    if (s.charCodeAt(j) !== 0x3a) return null;
    if (j + 1 < n && s.charCodeAt(j + 1) === 0x3a) {
      if (compressed) return null;
      compressed = true;
      cur = tail;
      i = j + 2;
      if (i === n) break;
    } else {
      i = j + 1;
      if (i === n) return null; // trailing single ':'
    }
  }
  const total = head.length + tail.length;
  if (compressed ? total > 7 : total !== 8) return null;
  const out = head.slice();
  for (let k = total; k < 8; k++) out.push(0);
  for (const t of tail) out.push(t);
  return out;
}

function isWildcardV6(g: number[]): boolean {
  for (let k = 0; k < 5; k++) if (g[k] !== 0) return false;
  if (g[5] !== 0 && g[5] !== 0xffff) return false;
  return g[6] === 0 && g[7] === 0;
}

function isHostname(s: string, from: number, to: number): boolean {
  const len = to - from;
  if (len < 1 || len > 253) return false;
  let labelStart = from;
  let allNumericOrDots = true;
  for (let i = from; i <= to; i++) {
    const c = i < to ? s.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      const l = i - labelStart;
      if (l < 1 || l > 63) return false;
      if (s.charCodeAt(labelStart) === 0x2d || s.charCodeAt(i - 1) === 0x2d) return false;
      labelStart = i + 1;
      continue;
    }
    const digit = c >= 0x30 && c <= 0x39;
    if (!digit) allNumericOrDots = false;
    if (!(digit || (c >= 0x61 && c <= 0x7a) || (c >= 0x41 && c <= 0x5a) || c === 0x2d)) return false;
  }
  // something like 1.2.3 or 999.1.1.1 must be a valid IPv4 address, not a name
  return !allNumericOrDots;
}

/**
 * Parses `host:port` (IPv6 in brackets). Returns null when malformed, when the port is not in
 * 1..65535, or when the host is a wildcard (0.0.0.0, ::, ::ffff:0.0.0.0).
 */
export function parseHostPort(s: string): HostPort | null {
  const n = s.length;
  if (n < 3 || n > Limits.ADDR_CHARS) return null;
  const colon = s.lastIndexOf(":");
  if (colon <= 0 || colon === n - 1) return null;
  // port: 1..65535, decimal, no leading zero
  const plen = n - colon - 1;
  if (plen > 5 || s.charCodeAt(colon + 1) === 0x30) return null;
  let port = 0;
  for (let i = colon + 1; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return null;
    port = port * 10 + (c - 0x30);
  }
  if (port < 1 || port > 65535) return null;
  if (s.charCodeAt(0) === 0x5b) {
    if (s.charCodeAt(colon - 1) !== 0x5d) return null;
    const host = s.slice(1, colon - 1);
    const g = parseIPv6(host);
    if (g === null || isWildcardV6(g)) return null;
    return { host, port, family: 6 };
  }
  const v4 = parseIPv4(s, 0, colon);
  if (v4 === 0) return null;
  if (v4 > 0) return { host: s.slice(0, colon), port, family: 4 };
  if (!isHostname(s, 0, colon)) return null;
  return { host: s.slice(0, colon), port, family: 0 };
}

/** A wire address: `host:port`, IPv6 in brackets, port 1..65535, never a wildcard host. */
export function isAddress(s: unknown): s is string {
  return typeof s === "string" && parseHostPort(s) !== null;
}

/** A `relays` entry: an address, or `atlas_<64 hex>@host:port`. */
export function isRelayAddress(s: unknown): s is string {
  if (typeof s !== "string") return false;
  if (s.length > 71 && s.charCodeAt(70) === 0x40 && s.startsWith("atlas_")) {
    return NODE_ID_RE.test(s.slice(0, 70)) && parseHostPort(s.slice(71)) !== null;
  }
  return parseHostPort(s) !== null;
}

/** A run of string characters that need no attention (not `"`, `\\` or a control character). */
// deno-lint-ignore no-control-regex -- JSON forbids raw control characters in strings: that is what this finds
const PLAIN_RUN = /[^"\\\u0000-\u001f]*/y;

/**
 * True exactly when `JSON.parse(s)` would succeed (ECMA-404 grammar), without building any value:
 * one linear pass, memory bounded by the nesting depth.
 */
export function isJsonText(s: string): boolean {
  const n = s.length;
  let i = 0;
  let c = 0;
  let stack: Uint8Array | null = null; // 1 = array, 2 = object
  let depth = 0;
  let wantKey = false;
  while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
  for (;;) {
    // a value (or, after '{' or ',' in an object, a member key) starts at i
    if (i >= n) return false;
    c = s.charCodeAt(i);
    if (wantKey && c !== 0x22) return false;
    if (c === 0x22) {
      i++;
      for (;;) {
        // skip plain characters with the (native, non-allocating) sticky regex
        PLAIN_RUN.lastIndex = i;
        PLAIN_RUN.test(s);
        i = PLAIN_RUN.lastIndex;
        if (i >= n) return false;
        c = s.charCodeAt(i++);
        if (c === 0x22) break;
        if (c !== 0x5c) return false; // a control character
        if (i >= n) return false;
        c = s.charCodeAt(i++);
        if (c === 0x75) {
          if (i + 4 > n) return false;
          for (let h = 0; h < 4; h++) {
            const x = s.charCodeAt(i++) | 0x20;
            if (!((x >= 0x30 && x <= 0x39) || (x >= 0x61 && x <= 0x66))) return false;
          }
        } else if (
          !(c === 0x22 || c === 0x5c || c === 0x2f || c === 0x62 || c === 0x66 || c === 0x6e || c === 0x72 ||
            c === 0x74)
        ) {
          return false;
        }
      }
      if (wantKey) {
        wantKey = false;
        while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
        if (i >= n || s.charCodeAt(i) !== 0x3a) return false;
        i++;
        while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
        continue;
      }
    } else if (c === 0x7b || c === 0x5b) {
      const kind = c === 0x7b ? 2 : 1;
      i++;
      while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
      if (i < n && s.charCodeAt(i) === (kind === 2 ? 0x7d : 0x5d)) i++;
      else {
        let st: Uint8Array = stack ?? new Uint8Array(64);
        if (depth === st.length) {
          const bigger = new Uint8Array(depth * 2);
          bigger.set(st);
          st = bigger;
        }
        st[depth++] = kind;
        stack = st;
        wantKey = kind === 2;
        continue;
      }
    } else if (c === 0x2d || (c >= 0x30 && c <= 0x39)) {
      if (c === 0x2d) {
        i++;
        if (i >= n) return false;
        c = s.charCodeAt(i);
      }
      if (c === 0x30) i++;
      else if (c >= 0x31 && c <= 0x39) {
        i++;
        while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
      } else return false;
      if (i < n && s.charCodeAt(i) === 0x2e) {
        const from = ++i;
        while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
        if (i === from) return false;
      }
      if (i < n && (s.charCodeAt(i) | 0x20) === 0x65) {
        i++;
        if (i < n && ((c = s.charCodeAt(i)) === 0x2b || c === 0x2d)) i++;
        const from = i;
        while (i < n && (c = s.charCodeAt(i)) >= 0x30 && c <= 0x39) i++;
        if (i === from) return false;
      }
    } else if (c === 0x74) {
      if (!s.startsWith("true", i)) return false;
      i += 4;
    } else if (c === 0x66) {
      if (!s.startsWith("false", i)) return false;
      i += 5;
    } else if (c === 0x6e) {
      if (!s.startsWith("null", i)) return false;
      i += 4;
    } else return false;
    // after a value: close containers, or move on to the next element
    for (;;) {
      while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
      if (depth === 0) return i === n;
      if (i >= n) return false;
      c = s.charCodeAt(i++);
      const top = stack![depth - 1];
      if (c === 0x2c) {
        while (i < n && ((c = s.charCodeAt(i)) === 0x20 || c === 0x0a || c === 0x0d || c === 0x09)) i++;
        wantKey = top === 2;
        break;
      }
      if ((c === 0x5d && top === 1) || (c === 0x7d && top === 2)) {
        depth--;
        continue;
      }
      return false;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Schema

/** Checks one present (non-nil) value; returns the normalized value or throws WireError. */
type Check = (v: unknown, where: string, decoding: boolean) => unknown;

interface Field {
  key: string;
  optional: boolean;
  check: Check;
  /** precomputed "Type.key" for messages */
  where: string;
}

type FieldDef = [key: string, check: Check, optional?: "?"];

function fail(where: string, what: string): never {
  throw rejected(`${where} ${what}`);
}

function describe(v: unknown): string {
  if (v === null) return "nil";
  if (v instanceof Uint8Array) return "bytes";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "a map" : `a ${typeof v}`;
}

type WellFormed = { isWellFormed?: () => boolean };
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** No lone surrogates: the string survives UTF-8 unchanged. */
export const isWellFormed: (s: string) => boolean = typeof (String.prototype as WellFormed).isWellFormed === "function"
  ? (s) => (s as unknown as Required<WellFormed>).isWellFormed()
  : (s) => !LONE_SURROGATE.test(s);

/**
 * Free text. Decoded strings are well-formed already (the frame decoder refuses invalid UTF-8);
 * strings about to be encoded must be too, or they would not arrive unchanged.
 */
function checkText(v: unknown, where: string, decoding: boolean): string {
  if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
  if (!decoding && !isWellFormed(v)) fail(where, "must be well-formed Unicode (it holds a lone surrogate)");
  return v;
}

const str = (maxBytes: number): Check => (v, where, decoding) => {
  const s = checkText(v, where, decoding);
  if (!fitsUtf8(s, maxBytes)) fail(where, `must be at most ${maxBytes} bytes`);
  return s;
};

const username = (maxBytes: number): Check => {
  const base = str(maxBytes);
  return (v, where, decoding) => {
    const s = base(v, where, decoding) as string;
    if (s.includes("@")) fail(where, "must be a username without '@'");
    return s;
  };
};

const nodeId: Check = (v, where) => {
  if (!isNodeId(v)) {
    if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
    fail(where, "must be a node ID (atlas_ followed by 64 lowercase hex digits)");
  }
  return v;
};

const msgId: Check = (v, where) => {
  if (!isMsgId(v)) {
    if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
    fail(where, "must be a message ID (msg_ followed by a lowercase UUID)");
  }
  return v;
};

const address: Check = (v, where) => {
  if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
  if (parseHostPort(v) === null) {
    fail(where, "must be a host:port address (IPv6 in brackets, port 1-65535, not a wildcard host)");
  }
  return v;
};

const relayAddress: Check = (v, where) => {
  if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
  if (!isRelayAddress(v)) fail(where, "must be a relay address (host:port or atlas_<id>@host:port)");
  return v;
};

const jsonText: Check = (v, where, decoding) => {
  const s = checkText(v, where, decoding);
  if (!isJsonText(s)) fail(where, "must be JSON text");
  return s;
};

const bytes = (exact: number, max = exact): Check => (v, where, decoding) => {
  if (!(v instanceof Uint8Array)) fail(where, `must be bytes, not ${describe(v)}`);
  if (v.length !== exact && !(exact < max && v.length <= max)) {
    fail(where, exact === max ? `must be ${exact} bytes` : `must be at most ${max} bytes`);
  }
  // a decoded bin is a view into the frame buffer: copy it out (as a plain Uint8Array)
  return decoding ? new Uint8Array(v) : v;
};

function integer(v: unknown, where: string): number {
  if (typeof v === "number") {
    if (Number.isSafeInteger(v)) return v;
    fail(where, Number.isInteger(v) ? "must be a safe integer" : "must be an integer");
  }
  if (typeof v === "bigint") {
    if (v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER)) return Number(v);
    fail(where, "must be a safe integer");
  }
  fail(where, `must be an integer, not ${describe(v)}`);
}

const int: Check = (v, where) => integer(v, where);

const intRange = (min: number, max: number, what: string): Check => (v, where) => {
  const x = integer(v, where);
  if (x < min || x > max) fail(where, `must be ${what}`);
  return x;
};

const u32 = intRange(0, 0xffffffff, "an unsigned 32-bit integer");

const oneOf = (values: readonly string[]): Check => (v, where) => {
  if (typeof v !== "string" || !values.includes(v)) fail(where, `must be one of ${values.join(", ")}`);
  return v;
};

const list = (maxEntries: number, item: Check, copy: boolean): Check => (v, where, decoding) => {
  if (!Array.isArray(v)) fail(where, `must be an array, not ${describe(v)}`);
  if (v.length > maxEntries) fail(where, `must have at most ${maxEntries} entries`);
  if (!copy) {
    for (let i = 0; i < v.length; i++) item(v[i], `${where}[${i}]`, decoding);
    return v;
  }
  const out = new Array<unknown>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = item(v[i], `${where}[${i}]`, decoding);
  return out;
};

function compile(prefix: string, defs: FieldDef[]): Field[] {
  return defs.map(([key, check, opt]) => ({ key, check, optional: opt === "?", where: `${prefix}.${key}` }));
}

function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Normalizes `src` into `out` per `fields`; `base` is the path of a nested map (null at top level). */
function fill(
  out: Record<string, unknown>,
  src: Record<string, unknown>,
  fields: Field[],
  decoding: boolean,
  base: string | null,
): void {
  for (let k = 0; k < fields.length; k++) {
    const f = fields[k]!;
    const v = src[f.key];
    const where = base === null ? f.where : `${base}.${f.key}`;
    if (v === undefined || v === null) {
      if (!f.optional) throw rejected(`${where} is missing`);
      continue;
    }
    out[f.key] = f.check(v, where, decoding);
  }
}

const nested = (fields: Field[]): Check => (v, where, decoding) => {
  if (!isMap(v)) fail(where, `must be a map, not ${describe(v)}`);
  const out: Record<string, unknown> = {};
  fill(out, v, fields, decoding, where);
  return out;
};

const operatorInfo = nested(
  compile("OperatorInfo", [
    ["fid", intRange(0, Number.MAX_SAFE_INTEGER, "a non-negative integer")],
    ["username", username(Limits.USERNAME_BYTES)],
    ["custody_address", str(Limits.OPERATOR_FIELD_BYTES)],
    ["message", str(Limits.SIWE_MESSAGE_BYTES)],
    ["signature", str(Limits.OPERATOR_FIELD_BYTES)],
  ]),
);

const signedRecord = nested(
  compile("SignedRecord", [
    ["data", bytes(0, Limits.RECORD_BYTES)],
    ["signature", bytes(Limits.SIGNATURE_BYTES)],
  ]),
);

const skills = list(Limits.SKILLS, str(Limits.SKILL_BYTES), false);
const addrList = list(Limits.ADDRS, address, false);
const relayList = list(Limits.ADDRS, relayAddress, false);
const publicKey = bytes(Limits.PUBLIC_KEY_BYTES);
const challenge = bytes(Limits.CHALLENGE_BYTES);
const signature = bytes(Limits.SIGNATURE_BYTES);
const name = str(Limits.NAME_BYTES);
const text = str(Limits.TEXT_BYTES);

const peerRecord = nested(
  compile("PeerRecord", [
    ["node_id", nodeId],
    ["public_key", publicKey],
    ["address", address],
    ["public_address", address, "?"],
    ["relays", relayList],
    ["name", name],
    ["skills", skills],
    ["operator_username", username(Limits.USERNAME_BYTES), "?"],
    ["last_seen", int],
    ["record", signedRecord, "?"],
  ]),
);

const features = list(Limits.FEATURES, str(Limits.FEATURE_BYTES), false);
const candidates = list(Limits.PUNCH_CANDIDATES, address, false);
const nonce = bytes(Limits.NONCE_BYTES);

const schemaDefs: Record<MsgTypeName, FieldDef[]> = {
  Hello: [
    ["node_id", nodeId],
    ["name", name],
    ["skills", skills],
    ["operator", operatorInfo, "?"],
    ["wallet", str(Limits.WALLET_BYTES), "?"],
    ["public_key", publicKey],
    ["protocol_v", u32],
    ["timestamp", int],
    ["challenge", challenge],
    ["listen_addrs", addrList, "?"],
    ["relays", relayList, "?"],
    ["agent", str(Limits.AGENT_BYTES), "?"],
    ["features", features, "?"],
  ],
  HelloAck: [
    ["node_id", nodeId],
    ["name", name],
    ["skills", skills],
    ["operator", operatorInfo, "?"],
    ["wallet", str(Limits.WALLET_BYTES), "?"],
    ["public_key", publicKey],
    ["protocol_v", u32],
    ["timestamp", int],
    ["challenge", challenge],
    ["signature", signature],
    ["observed_addr", address, "?"],
    ["listen_addrs", addrList, "?"],
    ["relays", relayList, "?"],
    ["agent", str(Limits.AGENT_BYTES), "?"],
    ["features", features, "?"],
  ],
  Verify: [
    ["signature", signature],
    ["challenge", challenge],
  ],
  VerifyAck: [
    ["status", oneOf(["ok", "rejected"])],
    ["reason", text, "?"],
    ["trust_level", oneOf(TRUST_LEVELS), "?"],
  ],
  Message: [
    ["id", msgId],
    ["from", nodeId],
    ["to", nodeId],
    ["timestamp", int],
    ["reply_to", msgId, "?"],
    ["topic", str(Limits.TOPIC_BYTES), "?"],
    ["body", jsonText],
  ],
  MessageAck: [
    ["msg_id", msgId, "?"],
    ["status", oneOf(["received", "registered"])],
  ],
  BootstrapRegister: [
    ["node_id", nodeId],
    ["address", address],
    ["public_address", address, "?"],
    ["timestamp", int],
    ["record", signedRecord, "?"],
  ],
  BootstrapDiscover: [
    ["skill", str(Limits.SKILL_BYTES), "?"],
    ["operator", username(Limits.USERNAME_BYTES), "?"],
    ["limit", intRange(1, 0xffffffff, "a positive 32-bit integer"), "?"],
  ],
  BootstrapPeers: [["peers", list(Limits.PEERS, peerRecord, true)]],
  RelayAnnounce: [
    ["node_id", nodeId],
    ["timestamp", int],
  ],
  RelayConnect: [
    ["source_id", nodeId],
    ["target_id", nodeId],
    ["session", u32, "?"],
  ],
  RelayReady: [
    ["status", oneOf(["waiting", "ready"])],
    ["session", u32, "?"],
  ],
  RelayError: [
    ["code", u32],
    ["reason", text],
  ],
  Error: [
    ["code", u32],
    ["message", text],
    ["ref_msg_id", str(128), "?"],
  ],
  PunchOffer: [
    ["nonce", nonce],
    ["candidates", candidates],
    ["attempt", u32],
  ],
  PunchAnswer: [
    ["nonce", nonce],
    ["candidates", candidates],
  ],
  PunchSync: [
    ["nonce", nonce],
  ],
  Ping: [
    ["ts", int],
    ["id", u32],
  ],
  Pong: [
    ["ts", int],
    ["echo", int],
    ["id", u32],
  ],
  Disconnect: [
    ["reason", str(Limits.DISCONNECT_REASON_BYTES)],
    ["message", text],
  ],
};

const schemas = {} as Record<MsgTypeName, Field[]>;
for (const n of Object.keys(schemaDefs) as MsgTypeName[]) schemas[n] = compile(n, schemaDefs[n]);

/**
 * Validates and normalizes the payload fields of a message of type `typeName`.
 * `decoding` = true when `src` came out of the MessagePack decoder (byte fields are copied).
 * Returns `{ type: typeName, ...known fields }`, or only the payload fields when `withType` is false.
 */
export function normalizeMessage(typeName: MsgTypeName, src: unknown, decoding: boolean, withType = true): WireMessage {
  if (!isMap(src)) throw rejected(`${typeName} payload must be a map, not ${describe(src)}`, MsgType[typeName]);
  const out: Record<string, unknown> = withType ? { type: typeName } : {};
  try {
    fill(out, src, schemas[typeName], decoding, null);
  } catch (e) {
    if (e instanceof WireError && e.frameType === undefined) throw rejected(e.message, MsgType[typeName]);
    throw e;
  }
  return out as unknown as WireMessage;
}

function typeOf(msg: unknown): MsgTypeName {
  if (!isMap(msg)) throw rejected("a wire message must be an object");
  const t = (msg as { type?: unknown }).type;
  if (typeof t !== "string" || !Object.hasOwn(MsgType, t)) throw rejected(`unknown message type ${JSON.stringify(t)}`);
  return t as MsgTypeName;
}

/**
 * Checks a message before sending; returns the normalized copy (known fields only, optional
 * undefined fields dropped). Throws WireError.
 */
export function validateMessage(msg: WireMessage): WireMessage {
  return normalizeMessage(typeOf(msg), msg, false);
}

/** The MessagePack map that goes on the wire for `msg` (validated; no `type` key). */
export function payloadOf(msg: WireMessage): { code: number; payload: Record<string, unknown> } {
  const t = typeOf(msg);
  return { code: MsgType[t], payload: normalizeMessage(t, msg, false, false) as unknown as Record<string, unknown> };
}

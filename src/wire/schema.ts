/**
 * A tiny typed schema kit for wire payloads: each check is a plain function that validates one
 * present (non-nil) value and returns it normalized, and carries its TypeScript type, so a message
 * shape written once as `fields({ ... })` yields both its runtime validator and, through `Infer`,
 * its static type. The design is that of the hand-compiled validator it replaced: no library, no
 * code generation, one closure call per field and one flat field list per object (a hot loop on
 * the request path), every failure a WireError naming the field (`Hello.skills[3] must be ...`).
 */
import { isRelayAddress, parseHostPort } from "./address.ts";
import { rejected } from "./errors.ts";
import { isMsgId, isNodeId } from "./ids.ts";
import { isJsonText } from "./json-text.ts";
import { fitsUtf8, isWellFormed } from "./utf8.ts";

/**
 * Checks one present (non-nil) value; returns the normalized value or throws WireError.
 * `where` names the value in the error (`Hello.name`); `decoding` is true when `v` came out of the
 * MessagePack decoder, false when it is about to be encoded.
 */
export type Check<T> = (v: unknown, where: string, decoding: boolean) => T;

/** A field that may be absent (nil and undefined count as absent). */
export interface Optional<T> {
  readonly optional: Check<T>;
}

/** Marks a field optional: absent (or nil) is fine, present must pass `check`. */
export function optional<T>(check: Check<T>): Optional<T> {
  return { optional: check };
}

/** An object's fields, in wire order: key → check, or optional(check). */
export type Shape = Record<string, Check<unknown> | Optional<unknown>>;

/** Flattens an intersection into one object type (for readable hovers and errors). */
type Flat<T> = { [K in keyof T]: T[K] };
type RequiredPart<S extends Shape> = {
  -readonly [K in keyof S as S[K] extends Optional<unknown> ? never : K]: S[K] extends Check<infer T> ? T : never;
};
type OptionalPart<S extends Shape> = {
  -readonly [K in keyof S as S[K] extends Optional<unknown> ? K : never]?: S[K] extends Optional<infer T> ? T : never;
};

/** The object type a Shape describes: required fields for checks, `?` fields for optional(check). */
export type ObjectOf<S extends Shape> = Flat<RequiredPart<S> & OptionalPart<S>>;

/** A compiled field (one flat list per object keeps the per-frame loop monomorphic). */
export interface Field {
  key: string;
  optional: boolean;
  check: Check<unknown>;
  /** precomputed "Type.key" for top-level message fields */
  where: string;
}

/** A compiled Shape: the runtime field list, plus the shape's type for `Infer`. */
export interface Fields<S extends Shape> {
  readonly list: readonly Field[];
  /** Type only: never set at run time. */
  readonly shape?: S;
}

/** Compiles `shape` (`prefix` names top-level fields in errors: `${prefix}.${key}`). */
export function fields<S extends Shape>(prefix: string, shape: S): Fields<S> {
  const list: Field[] = [];
  // insertion order is wire order: the encoder writes the map keys in this order
  for (const key of Object.keys(shape)) {
    const d = shape[key]!;
    const opt = typeof d !== "function";
    list.push({ key, optional: opt, check: opt ? d.optional : d, where: `${prefix}.${key}` });
  }
  return { list };
}

/** A wire message schema: its type name and its payload fields. */
export interface WireSchema<N extends string, S extends Shape> {
  readonly type: N;
  readonly fields: Fields<S>;
}

/** A message of type `name` with the payload fields `shape`. */
export function message<N extends string, S extends Shape>(name: N, shape: S): WireSchema<N, S> {
  return { type: name, fields: fields(name, shape) };
}

/** The TypeScript type of a check, an object check, or a message schema (`{ type, ...fields }`). */
export type Infer<X> = X extends Check<infer T> ? T
  : X extends WireSchema<infer N, infer S> ? Flat<{ type: N } & ObjectOf<S>>
  : never;

/** Throws the 2003 WireError "<where> <what>". */
export function fail(where: string, what: string): never {
  throw rejected(`${where} ${what}`);
}

/** How a bad value is named in an error: its MessagePack kind. */
export function describe(v: unknown): string {
  if (v === null) return "nil";
  if (v instanceof Uint8Array) return "bytes";
  if (Array.isArray(v)) return "an array";
  return typeof v === "object" ? "a map" : `a ${typeof v}`;
}

export function isMap(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

/** Normalizes `src` into `out` per `fields`; `base` is the path of a nested map (null at top level). */
export function fill(
  out: Record<string, unknown>,
  src: Record<string, unknown>,
  fields: readonly Field[],
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

// ---------------------------------------------------------------------------------------------
// Checks

/**
 * Free text. Decoded strings are well-formed already (the frame decoder refuses invalid UTF-8);
 * strings about to be encoded must be too, or they would not arrive unchanged.
 */
function checkText(v: unknown, where: string, decoding: boolean): string {
  if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
  if (!decoding && !isWellFormed(v)) fail(where, "must be well-formed Unicode (it holds a lone surrogate)");
  return v;
}

/** A string of at most `maxBytes` bytes of UTF-8. */
export const str = (maxBytes: number): Check<string> => (v, where, decoding) => {
  const s = checkText(v, where, decoding);
  if (!fitsUtf8(s, maxBytes)) fail(where, `must be at most ${maxBytes} bytes`);
  return s;
};

/** A Farcaster username as it travels: a short string without the `@`. */
export const username = (maxBytes: number): Check<string> => {
  const base = str(maxBytes);
  return (v, where, decoding) => {
    const s = base(v, where, decoding);
    if (s.includes("@")) fail(where, "must be a username without '@'");
    return s;
  };
};

export const nodeId: Check<string> = (v, where) => {
  if (!isNodeId(v)) {
    if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
    fail(where, "must be a node ID (atlas_ followed by 64 lowercase hex digits)");
  }
  return v;
};

export const msgId: Check<string> = (v, where) => {
  if (!isMsgId(v)) {
    if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
    fail(where, "must be a message ID (msg_ followed by a lowercase UUID)");
  }
  return v;
};

export const address: Check<string> = (v, where) => {
  if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
  if (parseHostPort(v) === null) {
    fail(where, "must be a host:port address (IPv6 in brackets, port 1-65535, not a wildcard host)");
  }
  return v;
};

export const relayAddress: Check<string> = (v, where) => {
  if (typeof v !== "string") fail(where, `must be a string, not ${describe(v)}`);
  if (!isRelayAddress(v)) fail(where, "must be a relay address (host:port or atlas_<id>@host:port)");
  return v;
};

/** A string holding JSON text. */
export const jsonText: Check<string> = (v, where, decoding) => {
  const s = checkText(v, where, decoding);
  if (!isJsonText(s)) fail(where, "must be JSON text");
  return s;
};

/** A byte string of exactly `exact` bytes, or (when `max` > `exact`) of at most `max` bytes. */
export const bytes = (exact: number, max = exact): Check<Uint8Array> => (v, where, decoding) => {
  if (!(v instanceof Uint8Array)) fail(where, `must be bytes, not ${describe(v)}`);
  if (v.length !== exact && !(exact < max && v.length <= max)) {
    fail(where, exact === max ? `must be ${exact} bytes` : `must be at most ${max} bytes`);
  }
  // a decoded bin is a view into the frame buffer: copy it out (as a plain Uint8Array)
  return decoding ? new Uint8Array(v) : v;
};

/** A safe integer: a number, or an int64 bigint (as the decoder gives them) turned into a number. */
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

export const int: Check<number> = (v, where) => integer(v, where);

/** An integer in [min, max]; `what` completes "must be …" in the error. */
export const intRange = (min: number, max: number, what: string): Check<number> => (v, where) => {
  const x = integer(v, where);
  if (x < min || x > max) fail(where, `must be ${what}`);
  return x;
};

export const u32: Check<number> = intRange(0, 0xffffffff, "an unsigned 32-bit integer");

/** One of the given strings. */
export const oneOf = <const V extends readonly string[]>(values: V): Check<V[number]> => (v, where) => {
  if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
    fail(where, `must be one of ${values.join(", ")}`);
  }
  return v as V[number];
};

/**
 * An array of at most `maxEntries` items. With `copy`, the result is a new array of the items'
 * normalized values (needed when items are objects); without, the array itself is returned once
 * every item passed (enough for strings, and cheaper).
 */
export const list = <T>(maxEntries: number, item: Check<T>, copy: boolean): Check<T[]> => (v, where, decoding) => {
  if (!Array.isArray(v)) fail(where, `must be an array, not ${describe(v)}`);
  if (v.length > maxEntries) fail(where, `must have at most ${maxEntries} entries`);
  if (!copy) {
    for (let i = 0; i < v.length; i++) item(v[i], `${where}[${i}]`, decoding);
    return v as T[];
  }
  const out = new Array<T>(v.length);
  for (let i = 0; i < v.length; i++) out[i] = item(v[i], `${where}[${i}]`, decoding);
  return out;
};

/** A nested map with the fields `shape`; the result holds only those fields. */
export const object = <S extends Shape>(name: string, shape: S): Check<ObjectOf<S>> => {
  const { list } = fields(name, shape);
  return (v, where, decoding) => {
    if (!isMap(v)) fail(where, `must be a map, not ${describe(v)}`);
    const out: Record<string, unknown> = {};
    fill(out, v, list, decoding, where);
    return out as ObjectOf<S>;
  };
};

/**
 * The configuration schema (src/config/defaults.ts), derived from DEFAULTS so that defaults.ts stays the single
 * source of keys and types: every leaf of DEFAULTS is a key, its default's JavaScript type is the
 * key's type (number → integer, boolean, string, string[] → list of strings). The only facts that
 * cannot be read off a default value live here: the allowed values of enum keys and numeric ranges.
 *
 * A *section* is a table whose entries are all values (`[network]`, `[rate_limit.unknown]`); a
 * *group* is a table whose entries are all sections (`rate_limit`).
 */
import { parse as parseToml } from "smol-toml";
import { AtlasError } from "../errors.ts";
import { type Config, DEFAULTS, TCP_SCHEME } from "./defaults.ts";

export type KeyType = "integer" | "boolean" | "string" | "list" | "enum";

export interface KeySpec {
  /** Full dotted key, e.g. "network.port" or "rate_limit.unknown.per_second". */
  readonly key: string;
  /** Dotted section path, e.g. "network" or "rate_limit.unknown". */
  readonly section: string;
  /** Key name inside its section. */
  readonly name: string;
  readonly type: KeyType;
  /** Allowed values of an enum key. */
  readonly values?: readonly string[];
  /** Inclusive bounds of an integer key. */
  readonly min?: number;
  readonly max?: number;
  readonly default: unknown;
}

const FARCASTER_VERIFY = ["hub", "signature"] as const;
type Same<A, B> = [A] extends [B] ? ([B] extends [A] ? true : false) : false;
// Compile-time guard: the enum list must match the Config type exactly.
const _verifyMatchesConfig: Same<(typeof FARCASTER_VERIFY)[number], Config["farcaster"]["verify"]> = true;
void _verifyMatchesConfig;

const RELAY_TRANSPORT = ["auto", "udp", "tcp"] as const;
const _transportMatchesConfig: Same<(typeof RELAY_TRANSPORT)[number], Config["transport"]["relay_transport"]> = true;
void _transportMatchesConfig;

/** Allowed values of string keys that are enums. */
const ENUMS: Readonly<Record<string, readonly string[]>> = {
  "farcaster.verify": FARCASTER_VERIFY,
  "transport.relay_transport": RELAY_TRANSPORT,
};

/**
 * Integer bounds. Every integer key not listed here must be positive (≥ 1): they are intervals,
 * timeouts, sizes and limits for which 0 has no sensible meaning.
 */
const RANGES: Readonly<Record<string, { min: number; max?: number }>> = {
  "network.port": { min: 0, max: 65535 }, // 0 = any free port
  "transport.dial_stagger_ms": { min: 0 }, // 0 = dial every candidate at once
  "transport.max_datagram_size": { min: 1200, max: 65527 }, // QUIC minimum .. UDP maximum
  "farcaster.cache_ttl": { min: 0 }, // 0 = do not cache verifications
  "transport.relay_bandwidth_limit": { min: 0 }, // 0 = no limit
  "transport.relay_tcp_port": { min: 0, max: 65535 }, // 0 = the UDP port's number
  "transport.busy_poll_us": { min: 0, max: 10000 }, // 0 = off; a spin of more than 10 ms is no longer "a reply is near"
};

/**
 * `host:port` with an IP literal, `[IPv6]` or a DNS name, port 1–65535; `pinned` also allows
 * `atlas_<64 hex>@host:port` (docs/protocol.md#relay, docs/protocol.md#bootstrap-and-discovery: a bootstrap or relay node with its node ID).
 */
function isAddrItem(s: string, pinned: boolean): boolean {
  let t = s.trim();
  if (pinned && t.startsWith(TCP_SCHEME)) t = t.slice(TCP_SCHEME.length); // docs/protocol.md#the-tcp-leg
  const at = t.indexOf("@");
  if (at >= 0) {
    if (!pinned || !/^atlas_[0-9a-f]{64}$/i.test(t.slice(0, at))) return false;
    t = t.slice(at + 1);
  }
  const m = /^\[[0-9a-fA-F:.]+\]:(\d{1,5})$/.exec(t) ?? /^[A-Za-z0-9.-]+:(\d{1,5})$/.exec(t);
  const port = m ? Number(m[1]) : 0;
  return port >= 1 && port <= 65535;
}

/** What each entry of an address list must look like. */
const LIST_ITEMS: Readonly<Record<string, { ok: (s: string) => boolean; what: string }>> = {
  "network.bootstrap": {
    ok: (s) => isAddrItem(s, true),
    what: "host:port or atlas_<node ID>@host:port, optionally after tcp://",
  },
  "network.relays": {
    ok: (s) => isAddrItem(s, true),
    what: "host:port or atlas_<node ID>@host:port, optionally after tcp://",
  },
  "stun.servers": { ok: (s) => isAddrItem(s, false), what: "host:port" },
};

function isTable(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

const sections: string[] = [];
const groups: string[] = [];
const specs = new Map<string, KeySpec>();

function leafSpec(section: string, name: string, value: unknown): KeySpec {
  const key = `${section}.${name}`;
  const base = { key, section, name, default: value };
  if (typeof value === "boolean") return { ...base, type: "boolean" };
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`config schema: default of '${key}' is not an integer`);
    const r = RANGES[key] ?? { min: 1 };
    return { ...base, type: "integer", min: r.min, max: r.max ?? Number.MAX_SAFE_INTEGER };
  }
  if (typeof value === "string") {
    const values = ENUMS[key];
    if (values) {
      if (!values.includes(value)) throw new Error(`config schema: default of '${key}' is not one of its values`);
      return { ...base, type: "enum", values };
    }
    return { ...base, type: "string" };
  }
  if (Array.isArray(value)) {
    if (!value.every((x) => typeof x === "string")) throw new Error(`config schema: '${key}' must list strings`);
    return { ...base, type: "list" };
  }
  throw new Error(`config schema: unsupported default for '${key}'`);
}

for (const [top, table] of Object.entries(DEFAULTS as Record<string, unknown>)) {
  if (!isTable(table)) throw new Error(`config schema: '${top}' must be a table`);
  const entries = Object.entries(table);
  if (entries.length > 0 && entries.every(([, v]) => isTable(v))) {
    groups.push(top);
    for (const [sub, subTable] of entries) {
      const section = `${top}.${sub}`;
      sections.push(section);
      for (const [name, v] of Object.entries(subTable as Record<string, unknown>)) {
        if (isTable(v)) throw new Error(`config schema: '${section}.${name}' nests too deep`);
        specs.set(`${section}.${name}`, leafSpec(section, name, v));
      }
    }
  } else {
    sections.push(top);
    for (const [name, v] of entries) {
      if (isTable(v)) throw new Error(`config schema: '${top}' mixes values and tables`);
      specs.set(`${top}.${name}`, leafSpec(top, name, v));
    }
  }
}
for (const k of [...Object.keys(RANGES), ...Object.keys(ENUMS), ...Object.keys(LIST_ITEMS)]) {
  if (!specs.has(k)) throw new Error(`config schema: bound for unknown key '${k}'`);
}

/** Every section in DEFAULTS order: "network", …, "rate_limit.unknown", … */
export const SECTIONS: readonly string[] = sections;
/** Tables made only of sections: "rate_limit". */
export const GROUPS: readonly string[] = groups;
/** Every key, in DEFAULTS order. */
export const SCHEMA: ReadonlyMap<string, KeySpec> = specs;

export function keySpec(key: string): KeySpec | undefined {
  return specs.get(key);
}

/**
 * A TOML-ish name for the type of a value, for error messages. With `toml`, the value comes from
 * smol-toml parsed with `integersAsBigInt`, so every JavaScript number is a TOML float (even 5.0).
 */
export function typeName(v: unknown, toml = false): string {
  if (typeof v === "bigint") return "integer";
  if (typeof v === "number") return !toml && Number.isInteger(v) ? "integer" : "float";
  if (typeof v === "string") return "string";
  if (typeof v === "boolean") return "boolean";
  if (Array.isArray(v)) return "list";
  if (v instanceof Date || (typeof v === "object" && v !== null && v.constructor?.name === "TomlDate")) {
    return "datetime";
  }
  if (isTable(v)) return "table";
  return typeof v;
}

/** What a key must be, as said in error messages: "an integer", "one of hub, signature"… */
export function expected(spec: KeySpec): string {
  switch (spec.type) {
    case "integer":
      return "an integer";
    case "boolean":
      return "a boolean (true or false)";
    case "string":
      return "a string";
    case "list":
      return "a list of strings";
    case "enum":
      return `one of ${spec.values!.join(", ")}`;
  }
}

/** The range message for an out-of-bounds integer, or undefined when it is in range. */
export function rangeError(spec: KeySpec, n: number | bigint): string | undefined {
  const min = spec.min ?? Number.MIN_SAFE_INTEGER;
  const max = spec.max ?? Number.MAX_SAFE_INTEGER;
  if (n >= min && n <= max) return undefined;
  const got = String(n);
  if (max === Number.MAX_SAFE_INTEGER) {
    if (n > max) return `'${spec.key}' is too large, got ${got}`;
    if (min === 1) return `'${spec.key}' must be positive, got ${got}`;
    if (min === 0) return `'${spec.key}' must be non-negative, got ${got}`;
    return `'${spec.key}' must be at least ${min}, got ${got}`;
  }
  return `'${spec.key}' must be between ${min} and ${max}, got ${got}`;
}

export type Checked = { ok: true; value: unknown } | { ok: false; error: string };

/**
 * Check a value against its key. Returns the value in Config form (integers as number) or the
 * error message (no file prefix). With `toml`, the value was parsed by smol-toml with
 * `integersAsBigInt`: integers are bigints and any number is a float, so `port = 5.0` is refused.
 */
export function checkValue(spec: KeySpec, v: unknown, toml = false): Checked {
  const wrongType = (): Checked => ({
    ok: false,
    error: `'${spec.key}' must be ${expected(spec)}, got ${typeName(v, toml)}`,
  });
  switch (spec.type) {
    case "integer": {
      let n: number | bigint;
      if (typeof v === "bigint") n = v;
      else if (!toml && typeof v === "number" && Number.isSafeInteger(v)) n = v;
      else return wrongType();
      const err = rangeError(spec, n);
      return err ? { ok: false, error: err } : { ok: true, value: Number(n) + 0 }; // + 0 turns -0 into 0
    }
    case "boolean":
      return typeof v === "boolean" ? { ok: true, value: v } : wrongType();
    case "string":
      return typeof v === "string" ? { ok: true, value: v } : wrongType();
    case "enum":
      if (typeof v !== "string") return wrongType();
      if (!spec.values!.includes(v)) return { ok: false, error: `'${spec.key}' must be ${expected(spec)}, got '${v}'` };
      return { ok: true, value: v };
    case "list": {
      if (!Array.isArray(v)) return wrongType();
      const bad = v.find((x) => typeof x !== "string");
      if (bad !== undefined) {
        return {
          ok: false,
          error: `'${spec.key}' must be a list of strings, got a list containing ${typeName(bad, toml)}`,
        };
      }
      const items = LIST_ITEMS[spec.key];
      const wrong = items ? (v as string[]).find((x) => !items.ok(x)) : undefined;
      if (wrong !== undefined) {
        return { ok: false, error: `'${spec.key}' entries must be ${items!.what}, got '${wrong}'` };
      }
      return { ok: true, value: [...(v as string[])] };
    }
  }
}

/**
 * Parse a command-line string for a key (`config set KEY VALUE`, string flags): "true"/"false"
 * for booleans, decimal integers (TOML-style `_` separators allowed), strings as given, lists as
 * a TOML/JSON array literal (`["a:1","b:2"]`) or comma-separated (`a:1,b:2`; empty = empty list).
 * Throws AtlasError ERR_USAGE naming the key and the value.
 */
export function parseRawValue(spec: KeySpec, raw: string): unknown {
  const bad = (what = `must be ${expected(spec)}`): never => {
    throw new AtlasError("ERR_USAGE", `'${spec.key}' ${what}, got '${raw}'`);
  };
  switch (spec.type) {
    case "boolean": {
      const t = raw.trim().toLowerCase();
      if (t === "true") return true;
      if (t === "false") return false;
      return bad();
    }
    case "integer": {
      const t = raw.trim();
      if (!/^[+-]?\d+(_\d+)*$/.test(t)) return bad();
      const n = BigInt(t.replace(/_/g, ""));
      const err = rangeError(spec, n);
      if (err) throw new AtlasError("ERR_USAGE", err);
      return Number(n) + 0;
    }
    case "string":
      return raw;
    case "enum": {
      if (!spec.values!.includes(raw)) return bad();
      return raw;
    }
    case "list": {
      const list = parseRawList(raw, bad);
      const r = checkValue(spec, list);
      if (!r.ok) throw new AtlasError("ERR_USAGE", r.error);
      return list;
    }
  }
}

/** A list as typed on the command line: a TOML/JSON array literal, or comma-separated. */
function parseRawList(raw: string, bad: (what?: string) => never): string[] {
  const t = raw.trim();
  if (t === "") return [];
  if (!t.startsWith("[")) return t.split(",").map((x) => x.trim()).filter((x) => x !== "");
  let arr: unknown;
  try {
    arr = parseToml(`v = ${t}`).v;
  } catch {
    try {
      arr = JSON.parse(t);
    } catch {
      return bad("must be a list of strings (a TOML/JSON array or comma-separated)");
    }
  }
  if (!Array.isArray(arr) || !arr.every((x) => typeof x === "string")) return bad("must be a list of strings");
  return [...arr];
}

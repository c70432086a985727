/**
 * Peer addresses as they travel (docs/protocol.md#messages): `host:port` with IPv6 in brackets, a port in 1..65535
 * and never a wildcard host, plus the `atlas_<id>@host:port` form of a `relays` entry. The parsers
 * are hand-written character scans with an exact grammar (no leading zeros, no zone IDs), cheap
 * enough for every address of every Hello and BootstrapPeers frame.
 */
import { isNodeId } from "./ids.ts";
import { Limits } from "./limits.ts";

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
    return isNodeId(s.slice(0, 70)) && parseHostPort(s.slice(71)) !== null;
  }
  return parseHostPort(s) !== null;
}

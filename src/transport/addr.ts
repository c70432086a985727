import { isIP } from "node:net";
import { AtlasError } from "../errors.ts";

/** A UDP socket address. `host` is a literal IP (no brackets); IPv4-mapped IPv6 is unmapped. */
export interface SockAddr {
  host: string;
  port: number;
}

const MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/** `::ffff:1.2.3.4` → `1.2.3.4` (docs/protocol.md#transport: mapped addresses are shown and stored as plain IPv4). */
export function unmapHost(host: string): string {
  const m = MAPPED.exec(host);
  return m ? m[1]! : host;
}

/** `host:port`, IPv6 in brackets. */
export function formatAddr(a: SockAddr): string {
  const host = unmapHost(a.host);
  return host.includes(":") ? `[${host}]:${a.port}` : `${host}:${a.port}`;
}

export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || host === "::0" || /^0*:(0*:)*0*$/.test(host);
}

/**
 * Parse `host:port` / `[v6]:port` with a literal IP host. Returns null when it is not one, so
 * callers can try other target forms; hostnames are resolved by `resolveAddr`.
 */
export function parseAddr(s: string): SockAddr | null {
  let host: string;
  let portStr: string;
  if (s.startsWith("[")) {
    const end = s.indexOf("]");
    if (end < 0 || s[end + 1] !== ":") return null;
    host = s.slice(1, end);
    portStr = s.slice(end + 2);
  } else {
    const i = s.lastIndexOf(":");
    if (i <= 0 || s.indexOf(":") !== i) return null;
    host = s.slice(0, i);
    portStr = s.slice(i + 1);
  }
  if (!/^\d{1,5}$/.test(portStr)) return null;
  const port = Number(portStr);
  if (port < 1 || port > 65535) return null;
  if (isIP(host) === 0 && !/^[a-zA-Z0-9]([a-zA-Z0-9.-]*[a-zA-Z0-9])?$/.test(host)) return null;
  return { host: unmapHost(host), port };
}

/** Resolve `host:port` (IP literal or DNS name) to a SockAddr; throws ERR_USAGE when malformed. */
export async function resolveAddr(s: string): Promise<SockAddr> {
  const a = parseAddr(s);
  if (!a) throw new AtlasError("ERR_USAGE", `invalid address '${s}': expected host:port or [ipv6]:port`);
  if (isIP(a.host) !== 0) return a;
  const { lookup } = await import("node:dns/promises");
  try {
    const r = await lookup(a.host);
    return { host: r.address, port: a.port };
  } catch {
    throw new AtlasError("ERR_UNREACHABLE", `cannot resolve host '${a.host}'`);
  }
}

export function sameAddr(a: SockAddr, b: SockAddr): boolean {
  return a.port === b.port && unmapHost(a.host) === unmapHost(b.host);
}

import { isIP } from "node:net";
import { AtlasError, type ErrorCodeName } from "../errors.ts";
import { type SockAddr, unmapHost } from "./addr.ts";

/**
 * Every address of `host` (A and AAAA records, or /etc/hosts), in the order Happy Eyeballs tries
 * them (RFC 8305 §4): the resolver's first choice first, then alternating address families, so
 * a dead IPv6 path costs one dial stagger and not one timeout per address. An IP literal is
 * returned as is, without a lookup. Sessions, peer rows and wire fields only ever see these IPs.
 */
export async function resolveHost(host: string, code: ErrorCodeName = "ERR_UNREACHABLE"): Promise<string[]> {
  if (isIP(host) !== 0) return [unmapHost(host)];
  const { lookup } = await import("node:dns/promises");
  let found: { address: string; family: number }[];
  try {
    // verbatim: the resolver's own order (getaddrinfo's preference), not IPv4 first.
    found = await lookup(host, { all: true, verbatim: true });
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? (e as Error).message;
    throw new AtlasError(code, `cannot resolve host '${host}' (${why})`);
  }
  if (found.length === 0) throw new AtlasError(code, `cannot resolve host '${host}' (no addresses)`);
  return interleave([...new Set(found.map((a) => unmapHost(a.address)))]);
}

/** `host:port` with its host resolved: one SockAddr per address, in Happy Eyeballs order. */
export async function resolveSockAddrs(a: SockAddr): Promise<SockAddr[]> {
  return (await resolveHost(a.host)).map((host) => ({ host, port: a.port }));
}

/** First address first, then the other family and this one in turn (RFC 8305 §4). */
export function interleave(addrs: string[]): string[] {
  if (addrs.length === 0) return [];
  const firstFamily = isIP(addrs[0]!);
  const same = addrs.filter((a) => isIP(a) === firstFamily);
  const other = addrs.filter((a) => isIP(a) !== firstFamily);
  const out: string[] = [];
  for (let i = 0; i < Math.max(same.length, other.length); i++) {
    if (i < same.length) out.push(same[i]!);
    if (i < other.length) out.push(other[i]!);
  }
  return out;
}

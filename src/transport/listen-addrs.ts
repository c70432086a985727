import { networkInterfaces } from "node:os";
import { formatAddr, isWildcardHost, type SockAddr } from "./addr.ts";

/**
 * Addresses peers can dial us at (Hello.listen_addrs): the bound address, or for a wildcard bind
 * every non-internal interface address (IPv4 first), then loopback as a last resort.
 */
export function listenAddrs(bound: SockAddr, dualStack = true): string[] {
  if (!isWildcardHost(bound.host)) return [formatAddr(bound)];
  const v4: string[] = [];
  const v6: string[] = [];
  for (const list of Object.values(networkInterfaces())) {
    for (const i of list ?? []) {
      if (i.internal) continue;
      if (i.family === "IPv4") v4.push(formatAddr({ host: i.address, port: bound.port }));
      else if (dualStack && bound.host !== "0.0.0.0" && !i.address.startsWith("fe80")) {
        v6.push(formatAddr({ host: i.address, port: bound.port }));
      }
    }
  }
  const all = [...v4, ...v6];
  return all.length > 0 ? all.slice(0, 8) : [formatAddr({ host: "127.0.0.1", port: bound.port })];
}

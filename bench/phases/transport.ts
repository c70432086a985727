/**
 * Pieces shared by the transport phases (connect, idle, rtt, req, bulk): the TCP/TLS baselines'
 * ports, the 1 KiB Message they send, and small waiting helpers.
 */
import { readFileSync } from "node:fs";
import { uuidv7 } from "uuidv7";
import type { WireMessage } from "../../src/wire/messages.ts";
import type { Kind } from "../baseline.ts";
import { type BenchNode, deadline, N, type ServerReady } from "../common.ts";

export const KINDS: Kind[] = ["tcp", "tls"];
export const portOf = (r: ServerReady, kind: Kind) => (kind === "tcp" ? r.tcpPort : r.tlsPort);

/** JSON text of exactly N.reqBodyBytes bytes. */
const body = (() => {
  const wrap = JSON.stringify({ text: "" }).length;
  return JSON.stringify({ text: "x".repeat(N.reqBodyBytes - wrap) });
})();

export function message(self: BenchNode, to: string, topic?: string, text = body): WireMessage {
  return {
    type: "Message",
    id: `msg_${uuidv7()}`,
    from: self.node.nodeId,
    to,
    timestamp: Math.floor(Date.now() / 1000),
    ...(topic ? { topic } : {}),
    body: text,
  };
}

export async function waitFor(what: string, cond: () => Promise<boolean>, capMs: number): Promise<void> {
  const t0 = performance.now();
  while (!(await cond())) {
    if (performance.now() - t0 > capMs) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** `count` results of `make`, `conc` at a time, until `capMs` has passed. */
export async function pool<T>(count: number, conc: number, capMs: number, make: () => Promise<T>): Promise<T[]> {
  const out: T[] = [];
  const t0 = performance.now();
  let issued = 0;
  await Promise.all(
    Array.from({ length: conc }, async () => {
      while (issued < count && performance.now() - t0 < capMs) {
        issued++;
        out.push(await deadline(make(), 15_000, "opening a connection"));
      }
    }),
  );
  return out;
}

/** Linux UDP RcvbufErrors counter (datagrams the kernel dropped for a full socket buffer), -1 elsewhere. */
export function udpRcvbufErrors(): number {
  try {
    const lines = readFileSync("/proc/net/snmp", "utf8").split("\n").filter((l) => l.startsWith("Udp:"));
    const keys = lines[0]!.split(/\s+/);
    const vals = lines[1]!.split(/\s+/);
    return Number(vals[keys.indexOf("RcvbufErrors")]);
  } catch {
    return -1;
  }
}

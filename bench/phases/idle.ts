/**
 * Idle phase: memory per idle connection — 500 TLS connections, then 500 Atlas sessions (one per
 * client node: a newer session from the same node would replace the older), server RSS and JS
 * heap deltas per connection.
 */
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { openStore } from "../../src/store/index.ts";
import { openMode } from "../baseline.ts";
import { CAP, HOST, type MemReport, memUsage, MODE, N, settleGc, startNodeWith } from "../common.ts";
import type { TransportApi } from "./api.ts";
import { kb, ms } from "./format.ts";
import { pool, waitFor } from "./transport.ts";

export async function idlePhase(t: TransportApi): Promise<void> {
  const { ready, creds } = t;
  const addr = { host: HOST, port: ready.atlasPort };
  const counts = () => t.rpc<{ sessions: number; tcp: number }>("counts");
  const mem = async () => (await t.rpc<{ mem: MemReport }>("mem")).mem;

  // TLS first: its footprint is small, so the Atlas run after it can reuse little freed memory.
  await settleGc();
  const ts0 = await mem();
  const tc0 = memUsage();
  const tcpBase = (await counts()).tcp;
  const socks = await pool(
    N.idleConns,
    N.idleConcurrency,
    CAP.idle,
    () => openMode("tls", ready.tlsPort, creds, MODE.idle),
  );
  await waitFor("server TLS sockets", async () => (await counts()).tcp >= tcpBase + socks.length, 10_000);
  await new Promise((r) => setTimeout(r, 200)); // let the mode bytes land
  await settleGc();
  const ts1 = await mem();
  const tc1 = memUsage();
  const tn = socks.length;
  for (const s of socks) s.destroy();
  await waitFor("server TLS sockets to close", async () => (await counts()).tcp <= tcpBase, 10_000);

  // Atlas: one session per peer is kept (docs/protocol.md#dialing: a newer connection from the same node replaces the
  // older), so 500 sessions need 500 client identities: 500 client nodes (each with its own UDP
  // socket) sharing one store. Their nodes are created before the server-side baseline is taken.
  const idleDir = await mkdtemp(join(t.benchRoot, "idle-"));
  const idleStore = await openStore(join(idleDir, "peers.db"));
  const nodes = await pool(
    N.idleConns,
    N.idleConcurrency,
    CAP.idle,
    () => startNodeWith("bench-idle", false, idleStore),
  );
  await settleGc();
  const s0 = await mem();
  const base = (await counts()).sessions;
  const t0 = performance.now();
  let next = 0;
  const sessions = await pool(nodes.length, N.idleConcurrency, CAP.idle, () => nodes[next++]!.node.connectTo(addr));
  const openMs = performance.now() - t0;
  await waitFor("server sessions", async () => (await counts()).sessions >= base + sessions.length, 10_000);
  await new Promise((r) => setTimeout(r, 200));
  await settleGc();
  const s1 = await mem();
  const n = sessions.length;
  const replaced = sessions.filter((x) => !x.isOpen).length;
  await Promise.all(nodes.map((x) => x.node.close()));
  await idleStore.close();
  await waitFor("server sessions to close", async () => (await counts()).sessions <= base, 15_000);

  const per = (a: number, b: number, k: number) => (b - a) / k;
  const aS = per(s0.rss, s1.rss, n);
  const tS = per(ts0.rss, ts1.rss, tn);
  const tC = per(tc0.rss, tc1.rss, tn);
  const aJ = per(s0.heapUsed + s0.external, s1.heapUsed + s1.external, n);
  const tJ = per(ts0.heapUsed + ts0.external, ts1.heapUsed + ts1.external, tn);
  t.addRow(
    `idle connection: server RSS Δ / conn (${n} Atlas sessions, ${tn} TLS conns)`,
    kb(aS),
    "",
    kb(tS),
    aS / tS,
    "TLS",
  );
  t.addRow(
    `idle connection: client RSS Δ / conn (Atlas: not comparable, one client node per session)`,
    "—",
    "",
    kb(tC),
  );
  t.addRow(`idle connection: server JS heap + external Δ / conn`, kb(aJ), "", kb(tJ), aJ / tJ, "TLS");
  t.note(
    `memory: ${n} Atlas sessions from ${nodes.length} client nodes, ${N.idleConcurrency} concurrent dials, opened in ${
      ms(openMs)
    } (${(n / (openMs / 1000)).toFixed(0)} sessions/s)` +
      (replaced ? `; ${replaced} were closed before the measurement` : ""),
  );
  t.log(`idle: Atlas server ${kb(aS)}/conn; TLS server ${kb(tS)}/conn client ${kb(tC)}/conn`);
}

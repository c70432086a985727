/**
 * Child processes of the relay phase (bench/phases/relay.ts), spawned with an IPC channel:
 *
 *   relay-child.ts relay                 an AtlasNode on 127.0.0.1 with a RelayServer (docs/protocol.md#relay);
 *   relay-child.ts agent <relay address> the target agent: an AtlasNode (listening, so the direct
 *                                        baseline can reach it) announcing itself to the relay with
 *                                        RelayPresence, and the bench "Message" handler of
 *                                        bench/server.ts (topic "bench/bulk": interim MessageAck, then
 *                                        count raw bytes until FIN) with a live byte counter.
 *
 * Both use bench/common.ts benchConfig() (per-peer request limits lifted, admission limits raised);
 * relay settings are changed on node.config after start (the relay reads them live).
 */
import { rm } from "node:fs/promises";
import { RelayPresence } from "../../src/relay/presence.ts";
import { RelayServer } from "../../src/relay/server.ts";
import { createLogger } from "../../src/util/log.ts";
import type { QuicheConfig } from "../../src/transport/native.ts";
import type { TransportOptions } from "../../src/transport/options.ts";
import { makeQuicheConfig } from "../../src/transport/tls.ts";
import { type BulkCounter, serveBulk, startNode } from "../common.ts";

export interface RelayChildReady {
  type: "ready";
  port: number;
  nodeId: string;
}
export interface RelayChildCmd {
  id: number;
  cmd: "status" | "progress" | "set" | "inner" | "stop";
  /** "set": transport keys to assign on node.config.transport. */
  transport?: Record<string, number>;
}

const send = (m: unknown) => process.send!(m);
const role = process.argv[2];
if (role !== "relay" && role !== "agent") throw new Error(`usage: relay-child.ts relay | agent <relay address>`);

const log = createLogger(process.env.BENCH_RELAY_LOG === "debug" ? "debug" : "warn");
const bn = await startNode(`bench-${role}`, true);
const { node } = bn;
if (process.env.DIAG_DGRAM_Q) {
  // diagnostics only (bench/tools/relay-diag.ts): a shorter DATAGRAM send queue on this node's connections
  const ep = node.endpoint as unknown as {
    serverConfig: QuicheConfig;
    clientConfig: QuicheConfig;
    opts: TransportOptions & { tls: { keyPem: string; certPem: string } };
  };
  for (const k of ["serverConfig", "clientConfig"] as const) {
    ep[k] = makeQuicheConfig(ep.opts.tls, ep.opts);
    ep[k].enableDgram(true, 1024, Number(process.env.DIAG_DGRAM_Q));
  }
}
let relay: RelayServer | null = null;
let presence: RelayPresence | null = null;

let bulk: BulkCounter | null = null;

if (role === "relay") {
  // 32 pipes from one source in the aggregate run need relay_pipes_per_source ≥ 32; the bench uses
  // 32 distinct sources instead, so the defaults (capacity 64, 4 per source) stay as they are.
  relay = new RelayServer(node);
  relay.start();
} else {
  node.config.network.relays = [process.argv[3]!];
  presence = new RelayPresence(node, log);
  presence.start();
  bulk = serveBulk(node);
}

function relayConnDrops(): number {
  // DATAGRAMs quiche refused to queue on this node's connections (the relay's forwarding sends,
  // or the agent's pipe sends — its ACKs of the inner connection)
  let n = 0;
  for (const s of node.allSessions()) if (s.path === "direct") n += s.conn.dgramDrops;
  return n;
}

process.on("message", async (m: RelayChildCmd) => {
  switch (m.cmd) {
    case "status": {
      const cpu = process.cpuUsage();
      send({
        id: m.id,
        relay: relay?.status() ?? null,
        presence: presence?.status() ?? null,
        sessions: node.allSessions().length,
        dgramDrops: relayConnDrops(),
        cpuMs: (cpu.user + cpu.system) / 1000,
        t: performance.now(),
      });
      return;
    }
    case "progress":
      send({
        id: m.id,
        bytes: bulk?.bytes ?? 0,
        open: bulk?.open ?? 0,
        done: bulk?.done ?? 0,
        cpuMs: (() => {
          const c = process.cpuUsage();
          return (c.user + c.system) / 1000;
        })(),
      });
      return;
    case "inner":
      // quiche stats of this node's relayed sessions (diagnostics)
      send({
        id: m.id,
        inner: node.allSessions().filter((s) => s.path === "relay").map((s) => {
          const st = s.conn.native.stats();
          const ps = s.conn.native.pathStats()[0];
          return { sent: st.sent, recv: st.recv, lost: st.lost, cwnd: ps?.cwnd, rtt: ps?.rtt };
        }),
      });
      return;
    case "set":
      Object.assign(node.config.transport, m.transport ?? {});
      send({ id: m.id, ok: true });
      return;
    case "stop":
      relay?.stop();
      await presence?.stop();
      await node.close();
      await bn.store.close();
      await rm(bn.dir, { recursive: true, force: true }).catch(() => {});
      send({ id: m.id, stopped: true });
      process.disconnect();
      setTimeout(() => process.exit(0), 50); // let --cpu-prof write its profile
      return;
  }
});

const ready: RelayChildReady = { type: "ready", port: node.endpoint.local.port, nodeId: node.nodeId };
if (presence) {
  // ready once registered with the relay (bounded: the parent's start-up deadline)
  const t0 = performance.now();
  while (!presence.status()[0]?.registered && performance.now() - t0 < 20_000) {
    await new Promise((r) => setTimeout(r, 20));
  }
}
send(ready);

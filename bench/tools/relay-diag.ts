/**
 * Diagnostics for the relay phase (not part of `npm run bench`): relayed bulk runs with a trace
 * every 250 ms — `node --import tsx bench/tools/relay-diag.ts [cap B/s] [runs] [seconds]`.
 * Trace entries: t s: kB read by the agent / dialler inner packets sent / declared lost /
 * cwnd KiB / RTT ms / agent inner packets sent,recv / relay fwd pkts, rate-limit drops.
 * DIAG_CC=reno|cubic|bbr, DIAG_HYSTART=0: the dialler's inner (relayed) connections use that
 * congestion control instead of quiche's default (set on the endpoint's pipe config, src/ untouched).
 * DIAG_DGRAM_Q=n: DATAGRAM send queue of n (src: 1024) on every node's connections (dialler here,
 * relay and agent in bench/phases/relay-child.ts).
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { dialViaRelay } from "../../src/relay/dial.ts";
import type { RelayStats } from "../../src/relay/server.ts";
import { makeQuicheConfig } from "../../src/transport/tls.ts";
import type { TransportOptions } from "../../src/transport/options.ts";
import type { QuicheConfig } from "../../src/transport/native.ts";
import { HOST, startNode } from "../common.ts";
import { closeSession, sample, spawnChild, startBulk, type Status } from "../phases/relay.ts";

const cap = Number(process.argv[2] ?? 1048576);
const runs = Number(process.argv[3] ?? 3);
const secs = Number(process.argv[4] ?? 10);
const root = fileURLToPath(new URL("../..", import.meta.url));
process.env.BENCH_DIR = mkdtempSync(join(tmpdir(), "atlas-relay-diag-"));
const relay = await spawnChild(root, ["relay"]);
const pinSpec = process.env.DIAG_PIN; // "d,r,a" CPUs like BENCH_RELAY_PIN
const relayAddr = `${relay.ready.nodeId}@${HOST}:${relay.ready.port}`;
const agent = await spawnChild(root, ["agent", relayAddr]);
if (pinSpec) {
  const [dc, rc, ac] = pinSpec.split(",");
  for (const [pid, cpu] of [[process.pid, dc], [relay.proc.pid, rc], [agent.proc.pid, ac]] as const) {
    execFileSync("taskset", ["-a", "-p", "-c", String(cpu), String(pid)], { stdio: "ignore" });
  }
  console.log(`pinned dialler/relay/agent to CPUs ${pinSpec}`);
}
const d = await startNode("diag", false);
if (process.env.DIAG_CC || process.env.DIAG_HYSTART) {
  const ep = d.node.endpoint as unknown as {
    pipeConfig: QuicheConfig | null;
    opts: TransportOptions & { tls: { keyPem: string; certPem: string } };
  };
  const c = makeQuicheConfig(ep.opts.tls, { ...ep.opts, maxDatagramSize: 1200, datagrams: false });
  if (process.env.DIAG_CC) c.setCcAlgorithmName(process.env.DIAG_CC);
  if (process.env.DIAG_HYSTART === "0") c.enableHystart(false);
  ep.pipeConfig = c;
  console.log(
    `dialler inner connections: cc ${process.env.DIAG_CC ?? "default"}, hystart ${
      process.env.DIAG_HYSTART ?? "default"
    }`,
  );
}
if (process.env.DIAG_DGRAM_Q) {
  const ep = d.node.endpoint as unknown as {
    clientConfig: QuicheConfig;
    opts: TransportOptions & { tls: { keyPem: string; certPem: string } };
  };
  ep.clientConfig = makeQuicheConfig(ep.opts.tls, ep.opts);
  ep.clientConfig.enableDgram(true, 1024, Number(process.env.DIAG_DGRAM_Q));
  console.log(`DATAGRAM send queue ${process.env.DIAG_DGRAM_Q} on the dialler's, relay's and agent's connections`);
}
await d.node.connectTo({ host: HOST, port: relay.ready.port }, { expectedNodeId: relay.ready.nodeId });
await relay.rpc({ cmd: "set", transport: { relay_bandwidth_limit: cap } });
for (let r = 0; r < runs; r++) {
  const s = await dialViaRelay(d.node, relayAddr, agent.ready.nodeId);
  let closeInfo = "";
  void s.conn.closed.then((c) => (closeInfo = JSON.stringify(c)));
  const b = await startBulk(d.node, s, secs * 1000 + 5000);
  const t0 = performance.now();
  let prev = {
    ...(await sample(agent)),
    ...s.conn.native.stats(),
    rs: (await relay.rpc<Status>({ cmd: "status" })).relay! as RelayStats,
  };
  const line: string[] = [];
  const sum = { kb: 0, sent: 0, lost: 0, idle: 0, cw: [] as number[], rtt: [] as number[], from: 0, to: 0 };
  while (performance.now() - t0 < secs * 1000) {
    await new Promise((r) => setTimeout(r, 250));
    const p = await sample(agent);
    const st = s.conn.native.stats();
    const ps = s.conn.native.pathStats()[0];
    const inner = (await agent.rpc<{ inner: { sent: number; recv: number }[] }>({ cmd: "inner" })).inner[0];
    const rs = (await relay.rpc<Status>({ cmd: "status" })).relay!;
    line.push(
      `${((performance.now() - t0) / 1000).toFixed(2)}: ${Math.round((p.bytes - prev.bytes) / 1000)}/${
        st.sent - prev.sent
      }/${st.lost - prev.lost}/${ps ? Math.round(ps.cwnd / 1024) : "?"}/${ps?.rtt}` +
        ` a${inner ? `${inner.sent},${inner.recv}` : "-"} r${rs.forwarded_packets - prev.rs.forwarded_packets},${
          rs.dropped_rate_limit - prev.rs.dropped_rate_limit
        }${s.isOpen ? "" : " CLOSED"} timeout ${s.conn.native.timeout()} ms`,
    );
    if (performance.now() - t0 > 2000) {
      if (!sum.from) sum.from = prev.t;
      sum.to = p.t;
      sum.kb += (p.bytes - prev.bytes) / 1000;
      sum.sent += st.sent - prev.sent;
      sum.lost += st.lost - prev.lost;
      if (st.sent === prev.sent) sum.idle++;
      if (ps) sum.cw.push(Math.round(ps.cwnd / 1024)), sum.rtt.push(ps.rtt);
    }
    prev = { ...p, ...st, rs };
  }
  await b.stop().catch((e) => line.push(`writer: ${(e as Error).message}`));
  console.log(`run ${r}: written ${(b.written() / 1e6).toFixed(1)} MB; open ${s.isOpen} ${closeInfo}`);
  const span = (sum.to - sum.from) / 1000;
  console.log(
    `  after 2 s: goodput ${(sum.kb / 1000 / span).toFixed(2)} MB/s (${
      ((sum.kb * 1000) / span / cap).toFixed(3)
    }× cap), inner sent ${Math.round(sum.sent / span)}/s, lost ${
      ((100 * sum.lost) / Math.max(1, sum.sent)).toFixed(0)
    }%, ` +
      `${sum.idle} silent 250 ms slots, cwnd KiB ${Math.min(...sum.cw)}–${Math.max(...sum.cw)}, RTT ms ${
        Math.min(...sum.rtt)
      }–${Math.max(...sum.rtt)}`,
  );
  if (process.env.DIAG_TRACE) console.log(line.join("\n"));
  const c0 = performance.now();
  await closeSession(s).catch((e) =>
    console.log(
      `close: ${
        (e as Error).message
      }; inner timeout() ${s.conn.native.timeout()} ms, draining ${s.conn.native.isDraining()}, closed ${s.conn.native.isClosed()}`,
    )
  );
  console.log(`  closed in ${(performance.now() - c0).toFixed(0)} ms`);
}
await Promise.all([relay.rpc({ cmd: "stop" }), agent.rpc({ cmd: "stop" })]);
await d.node.close();
await d.store.close();
rmSync(process.env.BENCH_DIR, { recursive: true, force: true });
process.exit(0);

/**
 * Diagnostic (not part of `npm run bench`): Ping round trips or 1 KiB requests between two
 * processes, quicker than the bench's transport phases for an A/B of one change. The server is a
 * child pinned to CPU 1 (taskset); run the client pinned to CPU 0:
 *   taskset -c 0 node --import tsx bench/tools/probe-2proc.ts ping [pings=3000]
 *   taskset -c 0 node --import tsx bench/tools/probe-2proc.ts req [requests=4000]
 *   taskset -c 0 node --import tsx bench/tools/probe-2proc.ts connect [connects=200]
 * ROUNDS=n repeats the measured rounds (default 2); PROBE_CPU_PROF=DIR runs the server under --cpu-prof.
 * ping: median and p90 of Session.ping; req: Message → MessageAck sequential and 8 in flight,
 * two rounds, with UDP packets per request each way and packets declared lost.
 */
import { fileURLToPath } from "node:url";
import { HOST, loop, median, percentile, spawnProbeServer, startAckServer, startNode } from "../common.ts";
import { message } from "../phases/transport.ts";

const [mode = "ping", arg] = process.argv.slice(2);

if (mode === "server") {
  const srv = await startAckServer("probe-2proc-server");
  process.stdout.write(`${srv.node.endpoint.local.port}\n`);
  process.stdin.resume();
  process.stdin.on("end", () => process.exit(0));
} else {
  const prof = process.env.PROBE_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${process.env.PROBE_CPU_PROF}`] : [];
  const { child, port } = await spawnProbeServer(fileURLToPath(import.meta.url), [], prof);
  const cli = await startNode("probe-2proc-client", false);
  const s = await cli.node.connectTo({ host: HOST, port });
  if (mode === "connect") {
    // connect + handshake, then connect + handshake + the first request answered, alternately
    const n = Number(arg ?? 200);
    const conn: number[] = [];
    const first: number[] = [];
    for (let i = 0; i < n + 10; i++) {
      const t0 = performance.now();
      const c = await cli.node.connectTo({ host: HOST, port });
      const t1 = performance.now();
      if (i % 2) await c.request(message(cli, c.nodeId), 10_000);
      const t2 = performance.now();
      if (i >= 10) (i % 2 ? first : conn).push(i % 2 ? t2 - t0 : t1 - t0);
      c.close("probe");
      await c.done;
      await new Promise((r) => setTimeout(r, 5));
    }
    console.log(
      `connect: median ${median(conn).toFixed(3)} ms; connect + first answer: median ${median(first).toFixed(3)} ms`,
    );
  } else if (mode === "ping") {
    const n = Number(arg ?? 3000);
    for (let i = 0; i < 300; i++) await s.ping(5000);
    const r = await loop(n, 1, 60_000, async () => void (await s.ping(5000)));
    console.log(`ping: median ${median(r.lat).toFixed(4)} ms, p90 ${percentile(r.lat, 90).toFixed(4)} ms (${r.n})`);
  } else {
    const n = Number(arg ?? 4000);
    const one = async () => {
      const res = await s.request(message(cli, s.nodeId), 10_000);
      if (res.type !== "MessageAck") throw new Error(`unexpected ${res.type}`);
    };
    await loop(300, 1, 10_000, one);
    for (let round = 0; round < Number(process.env.ROUNDS ?? 2); round++) {
      const q0 = s.conn.native.stats();
      const a = await loop(n / 2, 1, 30_000, one);
      const q1 = s.conn.native.stats();
      const b = await loop(n, 8, 30_000, one);
      const q2 = s.conn.native.stats();
      const per = (x: number, k: number) => (x / k).toFixed(2);
      console.log(
        `req: sequential ${(a.n / (a.ms / 1000)).toFixed(0)}/s (p50 ${median(a.lat).toFixed(3)} ms, ` +
          `${per(q1.sent - q0.sent, a.n)}/${per(q1.recv - q0.recv, a.n)} packets), ` +
          `8 in flight ${(b.n / (b.ms / 1000)).toFixed(0)}/s (p50 ${median(b.lat).toFixed(3)} ms, ` +
          `${per(q2.sent - q1.sent, b.n)}/${per(q2.recv - q1.recv, b.n)} packets), lost ${q2.lost - q0.lost}`,
      );
    }
  }
  child.stdin!.end();
  process.exit(0);
}

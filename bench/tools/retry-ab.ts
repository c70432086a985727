/**
 * Diagnostic (not part of `npm run bench`): what the QUIC Retry costs a connect, measured A/B in
 * one process so machine noise hits both sides alike. Two listening nodes, one with
 * `security.retry_above_handshakes = 0` (a Retry for every connection, the behaviour before
 * 2026-12-02) and one with the default (a Retry only under load); one client alternates between
 * them every iteration: QUIC connect alone, then connect + Atlas handshake until the Session.
 *   node --import tsx bench/tools/retry-ab.ts [iterations per side, default 200]
 */
import { rm } from "node:fs/promises";
import { HOST, median, percentile, startNode } from "../common.ts";

const R = Number(process.argv[2] ?? 200);
process.env.BENCH_RETRY_ABOVE_HANDSHAKES = "0";
const always = await startNode("retry-always", true);
delete process.env.BENCH_RETRY_ABOVE_HANDSHAKES;
const load = await startNode("retry-load", true);
const cli = await startNode("retry-client", false);
const sides = [
  { name: "Retry always ", srv: always, quic: [] as number[], full: [] as number[] },
  { name: "Retry on load", srv: load, quic: [] as number[], full: [] as number[] },
];
for (let i = 0; i < R + 10; i++) {
  for (const s of i % 2 ? sides : [...sides].reverse()) {
    const addr = { host: HOST, port: s.srv.node.endpoint.local.port };
    const t0 = performance.now();
    const c = cli.node.endpoint.connect(addr);
    await c.established;
    const t1 = performance.now();
    c.close(0, "ab");
    await c.closed;
    const t2 = performance.now();
    const sess = await cli.node.connectTo(addr);
    const t3 = performance.now();
    sess.close("ab");
    await sess.done;
    if (i < 10) continue; // warm-up
    s.quic.push(t1 - t0);
    s.full.push(t3 - t2);
  }
}
const f = (xs: number[]) => `median ${median(xs).toFixed(3)} ms, p90 ${percentile(xs, 90).toFixed(3)} ms`;
for (const s of sides) {
  const st = s.srv.node.endpoint.stats;
  console.log(
    `${s.name}: QUIC connect ${f(s.quic)}; connect + handshake ${f(s.full)} ` +
      `(server: ${st.retries} Retries, ${st.acceptedWithoutRetry} without)`,
  );
}
for (const n of [always, load, cli]) {
  await n.node.close();
  await n.store.close();
  await rm(n.dir, { recursive: true, force: true });
}

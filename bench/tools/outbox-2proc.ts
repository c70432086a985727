/**
 * Diagnostic (not part of `npm run bench`): outbox drain between two processes (this one the
 * sender, a child the receiver), so each side can be profiled on its own:
 *   node --import tsx [--cpu-prof --cpu-prof-dir=DIR] bench/tools/outbox-2proc.ts [backlog=2000]
 * The child inherits execArgv, so `--cpu-prof` profiles both. Prints messages/s drained and
 * whether the receiver's inbox is in queue order.
 */
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { HOST, median as med, startNode } from "../common.ts";
import { newMessageId, serveInbox } from "../../src/net/messaging.ts";
import { OutboxWorker } from "../../src/net/outbox-worker.ts";

const BODY = JSON.stringify({ text: "x".repeat(1024 - 11) });

if (process.argv[2] === "receiver") {
  const rx = await startNode("2p-rx", true);
  serveInbox(rx.node);
  process.send!({ target: `${rx.node.nodeId}@${HOST}:${rx.node.endpoint.local.port}` });
  process.on("message", async (m: { ids?: string[] }) => {
    const rows = await rx.store.inbox.list({ limit: (m.ids?.length ?? 0) + 10 });
    const ordered = rows.length === m.ids!.length && rows.every((r, i) => r.id === m.ids![i]);
    process.send!({ ordered, rows: rows.length });
    await rx.node.close();
    await rx.store.close();
    process.exit(0);
  });
} else {
  const N = Number(process.argv[2] ?? 2000);
  const child = fork(fileURLToPath(import.meta.url), ["receiver"], { execArgv: process.execArgv });
  const target = await new Promise<string>((r) => child.once("message", (m: { target: string }) => r(m.target)));
  const tx = await startNode("2p-tx", false);
  tx.node.config.outbox.poll_interval_ms = 10;
  const ids: string[] = [];
  for (let i = 0; i < N; i++) {
    const id = newMessageId();
    ids.push(id);
    const now = Math.floor(Date.now() / 1000);
    await tx.store.outbox.enqueue({ id, target, body: BODY, created_at: now, expires_at: now + 3600 });
  }
  const w = new OutboxWorker(tx.node);
  const t0 = performance.now();
  w.start();
  const inFlight: number[] = [];
  const path: { rtt: number; cwnd: number }[] = [];
  while ((await tx.store.outbox.count()) > 0 && performance.now() - t0 < 120_000) {
    inFlight.push(w.inFlight);
    const ps = tx.node.allSessions()[0]?.conn.native.pathStats()[0];
    if (ps) path.push({ rtt: Number(ps.rtt), cwnd: Number(ps.cwnd) });
    await new Promise((r) => setTimeout(r, 5));
  }
  const avgInFlight = inFlight.reduce((a, b) => a + b, 0) / Math.max(1, inFlight.length);
  const rate = N / ((performance.now() - t0) / 1000);
  await w.stop();
  const retried = (await tx.store.deliveries.list({ limit: N + 10 })).filter((d) => d.attempts > 1).length;
  const lost = tx.node.allSessions().reduce((n, s) => n + s.conn.native.stats().lost, 0);
  child.send({ ids });
  const res = await new Promise<{ ordered: boolean; rows: number }>((r) => child.once("message", r));
  console.log(
    `drained ${N} in two processes: ${
      rate.toFixed(0)
    } msg/s; inbox ${res.rows} rows, in queue order: ${res.ordered}; ` +
      `attempts in flight, mean of 5 ms samples: ${avgInFlight.toFixed(1)}; ` +
      `messages that needed a second attempt: ${retried}; packets the sender's QUIC declared lost: ${lost}; ` +
      `sender's path, median of the samples: RTT ${med(path.map((p) => p.rtt))} ms, cwnd ${
        (med(path.map((p) => p.cwnd)) / 1024).toFixed(0)
      } KiB`,
  );
  await tx.node.close();
  await tx.store.close();
}

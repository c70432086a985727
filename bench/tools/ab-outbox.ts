/**
 * Diagnostic (not part of `npm run bench`): the outbox, sender → receiver, A/B between two
 * checkouts in one process (both builds' nodes on this one loop, so machine noise hits both
 * alike; one core does the sender's and the receiver's work, so absolute rates are below the
 * daemon phase's two processes). Per build and round:
 *   - drain: `backlog` messages (1 KiB) queued in the sender's outbox before its worker starts,
 *     time from start to the last 'delivered' outcome; the receiver's inbox order is checked
 *     against the queue order;
 *   - latency: `seq` messages one at a time, enqueue (+ kick) → stored in the receiver's inbox
 *     (serveInbox's onMessage hook, called once the insert has committed).
 * Rounds alternate the builds (order swapped each round).
 *   node --import tsx bench/tools/ab-outbox.ts <dir A> <dir B> [rounds=3] [backlog=1000] [seq=100]
 */
import { rm } from "node:fs/promises";
import { resolve } from "node:path";
import { pathToFileURL } from "node:url";

const [dirA, dirB] = [process.argv[2], process.argv[3]];
if (!dirA || !dirB) throw new Error("usage: ab-outbox.ts <dir A> <dir B> [rounds] [backlog] [seq]");
const ROUNDS = Number(process.argv[4] ?? 3);
const BACKLOG = Number(process.argv[5] ?? 1000);
const SEQ = Number(process.argv[6] ?? 100);
const BODY = JSON.stringify({ text: "x".repeat(1024 - 11) });

type Common = typeof import("../common.ts");
type Messaging = typeof import("../../src/net/messaging.ts");
type Worker = typeof import("../../src/net/outbox-worker.ts");
const imp = <T>(d: string, f: string) => import(pathToFileURL(resolve(d, f)).href) as Promise<T>;

const builds = await Promise.all([dirA, dirB].map(async (dir) => ({
  dir,
  c: await imp<Common>(dir, "bench/common.ts"),
  m: await imp<Messaging>(dir, "src/net/messaging.ts"),
  w: await imp<Worker>(dir, "src/net/outbox-worker.ts"),
  rates: [] as number[],
  lat: [] as number[],
  ordered: [] as boolean[],
})));

async function round(b: (typeof builds)[number]): Promise<void> {
  const rx = await b.c.startNode("ab-rx", true);
  const tx = await b.c.startNode("ab-tx", false);
  tx.node.config.outbox.poll_interval_ms = 10;
  const stored = new Map<string, number>();
  const waiters = new Map<string, () => void>();
  b.m.serveInbox(rx.node, {
    onMessage: (m) => {
      stored.set(m.id, performance.now());
      waiters.get(m.id)?.();
    },
  });
  const target = `${rx.node.nodeId}@${b.c.HOST}:${rx.node.endpoint.local.port}`;
  const enqueue = async (id: string) => {
    const now = Math.floor(Date.now() / 1000);
    await tx.store.outbox.enqueue({ id, target, body: BODY, created_at: now, expires_at: now + 3600 });
  };
  const ids: string[] = [];
  for (let i = 0; i < BACKLOG; i++) {
    const id = b.m.newMessageId();
    ids.push(id);
    await enqueue(id);
  }
  const worker = new b.w.OutboxWorker(tx.node);
  const t0 = performance.now();
  worker.start();
  const deadline = t0 + 120_000;
  while ((await tx.store.outbox.count()) > 0 && performance.now() < deadline) {
    await new Promise((r) => setTimeout(r, 5));
  }
  const t1 = performance.now();
  b.rates.push(BACKLOG / ((t1 - t0) / 1000));
  const inbox = await rx.store.inbox.list({ sinceRowid: 0, limit: BACKLOG + 10 });
  b.ordered.push(inbox.length === BACKLOG && inbox.every((r, i) => r.id === ids[i]));
  for (let i = 0; i < SEQ; i++) {
    const id = b.m.newMessageId();
    const got = new Promise<void>((r) => waiters.set(id, r));
    const s0 = performance.now();
    await enqueue(id);
    worker.kick();
    await got;
    b.lat.push(stored.get(id)! - s0);
  }
  await worker.stop();
  for (const n of [tx, rx]) {
    await n.node.close();
    await n.store.close();
    await rm(n.dir, { recursive: true, force: true });
  }
}

for (let r = 0; r < ROUNDS; r++) {
  for (const b of r % 2 ? [...builds].reverse() : builds) await round(b);
}
for (const b of builds) {
  console.log(
    `${b.dir}: drain ${b.rates.map((x) => x.toFixed(0)).join(", ")} msg/s (median ${
      b.c.median(b.rates).toFixed(0)
    }); enqueue → stored p50 ${b.c.median(b.lat).toFixed(2)} ms p99 ${
      b.c.percentile(b.lat, 99).toFixed(2)
    } ms; inbox in queue order: ${b.ordered.join(", ")}`,
  );
}

/**
 * Delivery under impairment (issue 16; docs/architecture.md#peer-store, README.md#commands "nothing lost"): daemon A queues messages to
 * daemon B, which it reaches only through the project's lossy UDP forwarder (5 % of datagrams
 * dropped and 50 ms added, each way: the kernel has no sch_netem), while B is SIGKILLed during
 * delivery and restarted on the same port and home. In the end every message is in B's inbox once
 * and recorded delivered once in A's deliveries; the time to drain and the stall after each kill
 * are reported.
 *
 * Config: both daemons lift `rate_limit.unknown` (A paces itself by it, and a burst of 1,000 must
 * not get A banned by B); A retries after 1–2 s instead of backing off to minutes (outbox
 * backoff), so the drain time measures recovery, not the backoff schedule.
 */
import { join } from "node:path";
import { homePaths } from "../src/config/paths.ts";
import { callDaemon } from "../src/daemon/control-client.ts";
import type { QueuedResult } from "../src/net/messaging.ts";
import { openStore } from "../src/store/index.ts";
import { freePort } from "../test/helpers/cli.ts";
import { UdpForwarder } from "../test/helpers/udp-forwarder.ts";
import { fullScale } from "./budget.ts";
import { pool } from "./crowd.ts";
import { count, expect, mib, newRow, type Phase, type PhaseContext, type PhaseRow, rss } from "./harness.ts";
import { NO_RATE_LIMITS, startVictim, statusOf, type Victim } from "./victim.ts";
import { sleep } from "./wait.ts";

const DROP = 0.05;
const DELAY_MS = 50;
const SEED = 20261202;
const SENDER_CONFIG = NO_RATE_LIMITS + "[outbox]\nbackoff_initial = 1\nbackoff_max = 2\n";
const POLL_MS = 200;

interface Scene {
  row: PhaseRow;
  ctx: PhaseContext;
  a: Victim;
  /** B as first started: its home outlives every restart. */
  b0: Victim;
  /** B now running. */
  b: Victim;
  port: number;
  fwd: UdpForwarder;
}

export const impairmentPhase: Phase = {
  name: "impairment",
  weight: 2,
  async run(ctx) {
    const full = fullScale(ctx);
    const total = Number(process.env.STRESS_MESSAGES) || (full ? 1000 : 60);
    const kills = full ? 4 : 1; // each kill stalls delivery ~12 s until the sender redials (issue 16)
    const row = newRow(
      `impairment (${total} messages, ${DROP * 100} % loss + ${DELAY_MS} ms each way, ${kills} SIGKILL${
        kills === 1 ? "" : "s"
      })`,
    );
    const port = await freePort();
    const b0 = await startVictim(NO_RATE_LIMITS, { args: ["--port", String(port)] });
    const a = await startVictim(SENDER_CONFIG);
    const fwd = await UdpForwarder.start({
      server: { host: "127.0.0.1", port },
      dropUp: DROP,
      dropDown: DROP,
      delayMs: DELAY_MS,
      seed: SEED,
    });
    const s: Scene = { row, ctx, a, b0, b: b0, port, fwd };
    try {
      row.rssBefore = rss(a.pid);
      const started = Date.now();
      const sent = await queueAll(s, total);
      ctx.log(`${sent.length} queued in ${Date.now() - started} ms`);
      const run = await deliverWithKills(s, total, kills, started + drainBudget(ctx, total, kills));
      row.rssAfter = rss(a.pid);
      row.attempts = sent.length;
      await s.b.daemon.stop();
      await a.daemon.stop();
      await verify(s, sent, run);
      return row;
    } finally {
      await fwd.close();
      await s.b.daemon.stop("SIGKILL").catch(() => {});
      await b0.stop();
      await a.stop();
    }
  },
};

/**
 * Generous but bounded. The sender holds one attempt in flight per target, so every message costs
 * a round trip of the impaired path (100 ms) plus its store writes: 0.14–0.25 s a message here,
 * on two shared cores. Each kill costs up to request_timeout (10 s) plus a backoff step.
 */
function drainBudget(ctx: PhaseContext, total: number, kills: number): number {
  return Math.max(ctx.budgetMs, total * 250 + kills * 15_000 + 30_000);
}

/** Queue every message through A's control socket (what `atlas net send` does), pinned to the forwarder. */
async function queueAll(s: Scene, total: number): Promise<string[]> {
  const target = `${s.b0.nodeId}@127.0.0.1:${s.fwd.port}`;
  const paths = homePaths(s.a.home);
  const r = await pool(
    Array.from({ length: total }, (_, i) => i),
    8,
    (i) =>
      callDaemon<QueuedResult>(paths, "net.send", {
        target,
        body: JSON.stringify({ n: i }),
        topic: null,
        reply_to: null,
      }),
  );
  const ids = r.flatMap((x) => (x?.ok ? [x.value.msg_id] : []));
  expect(s.row, ids.length === total, `all ${total} queued (${ids.length})`);
  return ids;
}

interface Run {
  drainMs: number;
  drained: boolean;
  kills: number;
  /** For each kill: ms from the kill until B stored the next message. */
  stalls: number[];
}

/**
 * Poll A's outbox; kill B each time another 1/(kills+1) of the messages is out, restart it at
 * once on the same port and home, and wait for the queue to drain or the deadline.
 */
async function deliverWithKills(s: Scene, total: number, kills: number, deadline: number): Promise<Run> {
  const started = Date.now();
  const run: Run = { drainMs: 0, drained: false, kills: 0, stalls: [] };
  let killedAt: number | null = null;
  let lastDelivered = 0;
  while (Date.now() < deadline) {
    const delivered = total - (await statusOf(s.a.home)).outbox_depth;
    if (killedAt !== null && delivered > lastDelivered) {
      run.stalls.push(Date.now() - killedAt);
      killedAt = null;
    }
    lastDelivered = delivered;
    if (delivered >= total) {
      run.drained = true;
      break;
    }
    if (run.kills < kills && killedAt === null && delivered >= (total * (run.kills + 1)) / (kills + 1)) {
      killedAt = Date.now();
      await killAndRestart(s);
      run.kills++;
      s.ctx.log(`kill ${run.kills} at ${delivered} delivered`);
    }
    await sleep(POLL_MS);
  }
  run.drainMs = Date.now() - started;
  return run;
}

async function killAndRestart(s: Scene): Promise<void> {
  await s.b.daemon.stop("SIGKILL");
  for (let attempt = 0;; attempt++) {
    try {
      s.b = await startVictim("", { home: s.b0, args: ["--port", String(s.port)] });
      return;
    } catch (e) {
      if (attempt >= 2) throw e;
      await sleep(250);
    }
  }
}

/** B's inbox and A's deliveries, read after both stopped: exactly once, nothing lost. */
async function verify(s: Scene, sent: string[], run: Run): Promise<void> {
  const inbox = await openStore(join(s.b0.home, "state", "peers.db"));
  const outbox = await openStore(join(s.a.home, "state", "peers.db"));
  try {
    const got = (await inbox.inbox.list({ from: s.a.nodeId, limit: 100_000 })).map((m) => m.id);
    const delivered = (await outbox.deliveries.list({ limit: 100_000 }))
      .filter((d) => d.status === "delivered").map((d) => d.msg_id);
    const queued = new Set((await outbox.outbox.list()).map((r) => r.id));
    const left = queued.size;
    const sessions = await inbox.sessions.list({ nodeId: s.a.nodeId });
    const want = new Set(sent);
    const unique = new Set(got);
    // Lost: neither in B's inbox nor still in A's outbox (a message still queued is only late).
    const lost = sent.filter((id) => !unique.has(id) && !queued.has(id)).length;
    count(s.row, "delivered once", [...unique].filter((id) => want.has(id)).length);
    count(s.row, "duplicated", got.length - unique.size);
    count(s.row, "lost", lost);
    if (left > 0) count(s.row, "still queued at the deadline", left);
    count(s.row, "B restarts", run.kills);
    const direct = sessions.filter((x) => x.remote_address !== `127.0.0.1:${s.fwd.port}`).length;
    expect(s.row, run.drained, `A's outbox drained before the deadline (${left} left)`);
    expect(s.row, got.length === unique.size, `no message stored twice (${got.length - unique.size})`);
    expect(s.row, lost === 0, `no message lost (${lost})`);
    expect(s.row, unique.size === sent.length, `every message stored (${unique.size} of ${sent.length})`);
    expect(s.row, new Set(delivered).size === delivered.length, "each message recorded delivered once");
    expect(s.row, delivered.length === sent.length && left === 0, `all recorded delivered (${delivered.length})`);
    expect(s.row, direct === 0, `every session reached B through the forwarder (${direct} did not)`);
    const up = s.fwd.up;
    const down = s.fwd.down;
    s.row.notes.push(
      `drained in ${(run.drainMs / 1000).toFixed(1)} s (${(sent.length / (run.drainMs / 1000)).toFixed(1)} msg/s); ` +
        `stall after each kill ${run.stalls.map((ms) => (ms / 1000).toFixed(1)).join(" / ")} s; ` +
        `${sessions.length} sessions; forwarder up ${up.forwarded} fwd/${up.dropped} dropped, ` +
        `down ${down.forwarded}/${down.dropped}; sender RSS ${mib(s.row.rssBefore)} → ${mib(s.row.rssAfter)}`,
    );
  } finally {
    await inbox.close();
    await outbox.close();
  }
}

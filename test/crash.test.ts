/**
 * Crash safety (docs/architecture.md#peer-store, README.md#commands "nothing lost"): SIGKILL the receiving daemon 50 times at random
 * moments while messages flow (and the sending daemon now and then too). Every start must
 * succeed, and in the end every message is delivered, stored once, and recorded once.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { openStore } from "../src/store/index.ts";
import { newMessageId } from "../src/net/messaging.ts";
import { cleanupHomes, freePort, initHome, killAll, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { pause, waitFor } from "./helpers/wait.ts";

after(async () => {
  killAll();
  await cleanupHomes();
});

/** Deterministic pseudo-random delays, so a failure can be replayed. */
function prng(seed: number): () => number {
  let x = seed >>> 0;
  return () => ((x = (Math.imul(x ^ (x >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}

test(
  "50 SIGKILLs of the receiver (and some of the sender) lose and duplicate nothing",
  { timeout: 240_000 },
  async (t) => {
    const a = await initHome("receiver");
    const b = await initHome("sender");
    // Fast retries, and request limits that let a burst through (the sender paces itself by them).
    const limits = "[rate_limit.unknown]\nper_second = 200\nper_minute = 12000\n";
    const fast =
      "[outbox]\npoll_interval_ms = 50\nbackoff_initial = 1\nbackoff_max = 1\n[transport]\ndial_timeout = 1\n" + limits;
    await appendFile(join(b.home, "state", "config.toml"), fast);
    await appendFile(join(a.home, "state", "config.toml"), limits);
    const port = await freePort();
    const startA = () =>
      startListener(a.home, ["--port", String(port)], { cmd: ["daemon"] }).catch(() =>
        startListener(a.home, ["--port", String(port)], { cmd: ["daemon"] })
      );
    let da: Listener = await startA();
    let db: Listener = await startListener(b.home, [], { cmd: ["daemon"] });
    assert.equal((await runAtlas(["net", "connect", `127.0.0.1:${port}`], { home: b.home })).code, 0);

    const rand = prng(20261123);
    const sent: string[] = [];
    const enqueue = async (n: number) => {
      const s = await openStore(join(b.home, "state", "peers.db"));
      try {
        const now = Math.floor(Date.now() / 1000);
        for (let i = 0; i < n; i++) {
          const id = newMessageId();
          await s.outbox.enqueue({
            id,
            target: a.nodeId,
            body: JSON.stringify({ n: sent.length }),
            created_at: now,
            expires_at: now + 3600,
          });
          sent.push(id);
        }
      } finally {
        await s.close();
      }
    };

    let starts = 2;
    const senderLogs: string[] = []; // each killed process's stderr
    const receiverLogs: string[] = [];
    const ROUNDS = Number(process.env.CRASH_ROUNDS ?? 50);
    for (let round = 0; round < ROUNDS; round++) {
      await enqueue(3);
      await pause(20 + Math.floor(rand() * 300)); // the crash comes at a random moment
      await da.stop("SIGKILL");
      receiverLogs.push(da.stderr());
      if (round % 10 === 9) {
        await db.stop("SIGKILL");
        senderLogs.push(db.stderr());
        db = await startListener(b.home, [], { cmd: ["daemon"] });
        starts++;
      }
      da = await startA();
      starts++;
    }
    t.diagnostic(`${starts} daemon starts, ${sent.length} messages`);

    // Let the outbox drain.
    const drainStart = Date.now();
    let left = -1;
    await waitFor("the outbox to drain", async () => {
      const s = await openStore(join(b.home, "state", "peers.db"));
      left = await s.outbox.count();
      await s.close();
      return left === 0;
    }, { timeoutMs: 90_000, intervalMs: 250, lastSeen: () => ({ left, log: db.stderr().split("\n").slice(-40) }) });
    t.diagnostic(`outbox drained ${Date.now() - drainStart} ms after the last restart`);
    await da.stop();
    await db.stop();

    const sa = await openStore(join(a.home, "state", "peers.db"));
    const sb = await openStore(join(b.home, "state", "peers.db"));
    try {
      const inbox = await sa.inbox.list({ from: b.nodeId, limit: 100_000 });
      const ids = inbox.map((m) => m.id);
      // On a loss, say what the sender recorded for the missing messages and what both logged.
      const missing = sent.filter((x) => !ids.includes(x));
      if (missing.length > 0) {
        const outcomes = (await sb.deliveries.list({ limit: 100_000 })).filter((d) => missing.includes(d.msg_id));
        const about = (logs: string[]) =>
          logs.join("\n").split("\n").filter((l) => missing.some((m) => l.includes(m))).join("\n");
        t.diagnostic(`missing: ${JSON.stringify(outcomes)}`);
        t.diagnostic(`sender log: ${about([...senderLogs, db.stderr()])}`);
        t.diagnostic(`receiver log: ${about([...receiverLogs, da.stderr()])}`);
      }
      assert.equal(new Set(ids).size, ids.length, "no message stored twice");
      assert.deepEqual([...ids].sort(), [...sent].sort(), "every message stored");
      const deliveries = await sb.deliveries.list({ limit: 100_000 });
      const delivered = deliveries.filter((d) => d.status === "delivered").map((d) => d.msg_id);
      assert.equal(new Set(delivered).size, delivered.length, "each message recorded delivered once");
      assert.deepEqual([...delivered].sort(), [...sent].sort(), "every message recorded delivered");
    } finally {
      await sa.close();
      await sb.close();
    }
  },
);

test(
  "a receiver killed between storing and acknowledging ends with exactly one copy",
  { timeout: 60_000 },
  async () => {
    const a = await initHome("receiver");
    const b = await initHome("sender");
    await appendFile(
      join(b.home, "state", "config.toml"),
      "[outbox]\npoll_interval_ms = 50\nbackoff_initial = 1\nbackoff_max = 1\n[transport]\ndial_timeout = 1\nrequest_timeout = 2\n",
    );
    const port = await freePort();
    // The first receiver dies right after committing the message, before its MessageAck.
    const faulty = await startListener(a.home, ["--port", String(port)], {
      cmd: ["daemon"],
      env: { ATLAS_FAULT_KILL_AFTER_STORE: "1" },
    });
    const db = await startListener(b.home, [], { cmd: ["daemon"] });
    assert.equal((await runAtlas(["net", "connect", `127.0.0.1:${port}`], { home: b.home })).code, 0);
    const sent = await runAtlas(["net", "send", a.nodeId, '{"task":"once"}', "--json"], { home: b.home });
    assert.equal(sent.code, 0, sent.stderr);
    const msgId = JSON.parse(sent.stdout).msg_id;
    assert.match(msgId, /^msg_/);
    // It may already be gone by now: read its signal, or wait for the exit if it is not.
    const signal = faulty.proc.signalCode ?? (await new Promise((r) => faulty.proc.once("exit", (_c, sig) => r(sig))));
    assert.equal(signal, "SIGKILL");
    const stored = await openStore(join(a.home, "state", "peers.db"));
    assert.equal((await stored.inbox.list({ from: b.nodeId })).length, 1, "stored before the crash");
    await stored.close();
    const da = await startListener(a.home, ["--port", String(port)], { cmd: ["daemon"] });
    const d = await waitFor("the re-delivery", async () => {
      const s = await openStore(join(b.home, "state", "peers.db"));
      const d = (await s.deliveries.list({ msgId })).find((x) => x.status === "delivered");
      await s.close();
      return d;
    }, { timeoutMs: 30_000, intervalMs: 200 });
    assert.ok(d.attempts >= 2, `attempts ${d.attempts}`);
    const sa = await openStore(join(a.home, "state", "peers.db"));
    try {
      const rows = await sa.inbox.list({ from: b.nodeId });
      assert.equal(rows.length, 1, "one copy after the re-delivery");
      assert.equal(rows[0]!.id, msgId);
    } finally {
      await sa.close();
    }
    await da.stop();
    await db.stop();
  },
);

/**
 * Pruning `unknown` peers never used for anything (issue 16): rows in a real libSQL file, the
 * config key, and a daemon that prunes at start.
 */
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openStore, type Store, type TrustLevel } from "../src/store/index.ts";
import { prunePeers } from "../src/daemon/housekeeping.ts";
import { defaultConfig } from "../src/config/defaults.ts";
import { createLogger } from "../src/util/log.ts";
import { cleanupHomes, initHome, killAll, runAtlas, startListener } from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

const DAY = 86400;
const NOW = Math.floor(Date.now() / 1000);
const OLD = NOW - 8 * DAY;
const id = (n: number) => "atlas_" + n.toString(16).padStart(64, "0");
const silent = createLogger("silent", "text");

let dir: string;
let n = 0;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "atlas-prune-"));
});
after(async () => {
  killAll();
  await cleanupHomes();
  await rm(dir, { recursive: true, force: true });
});

async function withStore(fn: (s: Store) => Promise<void>): Promise<void> {
  const s = await openStore(join(dir, `p${n++}`, "peers.db"));
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

/** A peer first and last seen at `at`. */
const peer = (s: Store, nodeId: string, at: number, trust: TrustLevel = "unknown") =>
  s.peers.upsert({ node_id: nodeId, trust_level: trust }, at);

const session = (s: Store, nodeId: string, at: number) =>
  s.sessions.open({
    node_id: nodeId,
    direction: "inbound",
    path: "direct",
    relay: null,
    remote_address: "127.0.0.1:4433",
    protocol_v: 1,
    trust_level: "unknown",
    connected_at: at,
  });

test("an old unknown peer is pruned with its sessions unless something still uses it", async () => {
  await withStore(async (s) => {
    const P = {
      old: id(1),
      oldWithClosedSession: id(2),
      expiredBan: id(3),
      banned: id(4),
      messagedUs: id(5),
      queued: id(6),
      delivered: id(7),
      connected: id(8),
      recent: id(9),
      verified: id(10),
      relay: id(11),
      bootstrap: id(12),
    };
    for (const [k, nodeId] of Object.entries(P)) {
      const trust = k === "verified" || k === "relay" || k === "bootstrap" ? k : "unknown";
      await peer(s, nodeId, k === "recent" ? NOW - 6 * DAY : OLD, trust);
    }
    await s.sessions.close(await session(s, P.oldWithClosedSession, OLD), "peer_closed", OLD + 60);
    await session(s, P.connected, OLD); // still open: a long pinned session
    await s.peers.setBan(P.expiredBan, OLD + 600);
    await s.peers.setBan(P.banned, NOW + 3600);
    await s.inbox.insert({
      id: "msg_1",
      from_id: P.messagedUs,
      to_id: id(99),
      timestamp: OLD,
      body: "{}",
      received_at: OLD,
    });
    await s.outbox.enqueue({ id: "msg_2", target: P.queued, body: "{}", created_at: OLD, expires_at: NOW + DAY });
    await s.deliveries.record({
      msg_id: "msg_3",
      target: P.delivered,
      status: "failed",
      attempts: 1,
      finished_at: OLD,
    });

    assert.equal(await s.peers.pruneUnused(NOW - 7 * DAY, NOW), 3);
    const left = new Set(await s.peers.allIds());
    const gone = Object.entries(P).filter(([, v]) => !left.has(v)).map(([k]) => k);
    assert.deepEqual(gone, ["old", "oldWithClosedSession", "expiredBan"]);
    assert.deepEqual(await s.sessions.list({ nodeId: P.oldWithClosedSession }), [], "its sessions went with it");
    assert.equal((await s.sessions.list({ nodeId: P.connected })).length, 1);
    assert.equal(await s.peers.pruneUnused(NOW - 7 * DAY, NOW), 0, "a second run finds nothing");
  });
});

test("pruning goes in batches until none is left", async () => {
  await withStore(async (s) => {
    for (let i = 0; i < 25; i++) await peer(s, id(100 + i), OLD);
    await peer(s, id(200), NOW);
    assert.equal(await s.peers.pruneUnused(NOW - 7 * DAY, NOW, 10), 25);
    assert.deepEqual(await s.peers.allIds(), [id(200)]);
  });
});

test("peers.prune_unknown_after_days sets the age (default 7)", async () => {
  await withStore(async (s) => {
    await peer(s, id(1), OLD);
    const cfg = defaultConfig();
    assert.equal(cfg.peers.prune_unknown_after_days, 7);
    cfg.peers.prune_unknown_after_days = 30;
    assert.equal(await prunePeers(s, cfg, silent, NOW), 0, "8 days old is young under a 30-day rule");
    assert.equal(await prunePeers(s, defaultConfig(), silent, NOW), 1);
  });
});

test("a daemon prunes at start", async () => {
  const { home } = await initHome("pruner");
  const s = await openStore(join(home, "state", "peers.db"));
  await peer(s, id(1), OLD);
  await peer(s, id(2), NOW - DAY);
  await s.close();
  const l = await startListener(home);
  try {
    let ids: string[] = [];
    await waitFor("the unused unknown peer pruned", async () => {
      const r = await runAtlas(["net", "peers", "--json"], { home });
      ids = (JSON.parse(r.stdout) as { node_id: string }[]).map((p) => p.node_id);
      return !ids.includes(id(1));
    }, { intervalMs: 200, lastSeen: () => ids });
    assert.deepEqual(ids, [id(2)]);
    assert.match(l.stderr(), /pruned unused unknown peers/);
  } finally {
    await l.stop();
  }
});

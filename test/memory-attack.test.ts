/**
 * Issue 16, defect 1, against a real daemon process: eight authenticated connections × 48 request
 * streams, each sending a 4 MiB Message header and all of the payload but its last byte. The
 * daemon's memory stays bounded by its read budget (transport.max_buffered_bytes, a per-connection
 * share), a second wave finds the memory the first one left, and a well-behaved peer is served
 * throughout. With the default rate limits the attackers are also refused at the header and banned.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../src/config/defaults.ts";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { buildMessage, deliverOn } from "../src/net/messaging.ts";
import { AtlasNode } from "../src/net/node.ts";
import { openStore } from "../src/store/index.ts";
import { parseAddr, type SockAddr } from "../src/transport/addr.ts";
import { cleanupHomes, initHome, killAll, type Listener, runAtlas, startListener } from "./helpers/cli.ts";
import { memoryAttack, rssOf, rssSampler } from "./helpers/memory-attack.ts";

const MiB = 1024 * 1024;
/** How long each wave holds its unfinished frames (the stress suite may ask for longer). */
const HOLD_MS = Number(process.env.ATLAS_ATTACK_HOLD_MS ?? 10_000);
const dirs: string[] = [];
after(async () => {
  killAll();
  await cleanupHomes();
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function goodPeer(): Promise<AtlasNode> {
  const dir = await mkdtemp(join(tmpdir(), "atlas-good-"));
  dirs.push(dir);
  return AtlasNode.start({
    config: defaultConfig(),
    identity: identityFromSeed(generateSeed()),
    profile: { name: "good", bio: "", skills: [] },
    store: await openStore(join(dir, "g.db")),
    listen: false,
    host: "127.0.0.1",
    port: 0,
  });
}

/** Sends a message every 200 ms until stopped; each must be acknowledged within 5 s. */
function keepSending(node: AtlasNode, target: SockAddr, to: string): { stop: () => Promise<number[]> } {
  let running = true;
  const latencies: number[] = [];
  const loop = (async () => {
    const s = await node.connectTo(target);
    while (running) {
      const t0 = performance.now();
      await deliverOn(s, buildMessage(node, to, JSON.stringify({ n: latencies.length })), 5000);
      latencies.push(performance.now() - t0);
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return { stop: async () => ((running = false), await loop, latencies) };
}

async function victim(extraConfig = ""): Promise<{ d: Listener; home: string; nodeId: string; addr: SockAddr }> {
  const a = await initHome("victim");
  if (extraConfig) await appendFile(join(a.home, "state", "config.toml"), extraConfig);
  const d = await startListener(a.home, [], { cmd: ["daemon"] });
  return { d, home: a.home, nodeId: a.nodeId, addr: parseAddr(d.address)! };
}

const NO_RATE_LIMITS =
  "[rate_limit.unknown]\nper_second = 100000\nper_minute = 1000000\nbytes_per_minute = 100000000000\n";

test("unfinished 4 MiB frames on 8 × 48 streams keep the daemon within its read budget while a good peer is served", async () => {
  // Rate limits lifted: the read budget alone must hold the attack.
  const v = await victim(NO_RATE_LIMITS);
  const pid = v.d.proc.pid!;
  const good = await goodPeer();
  try {
    const sender = keepSending(good, v.addr, v.nodeId);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = rssOf(pid);
    const peaks: number[] = [];
    for (let wave = 0; wave < 2; wave++) {
      const rss = rssSampler(pid);
      const report = await memoryAttack({ target: v.addr, conns: 8, streamsPerConn: 48, holdMs: HOLD_MS });
      peaks.push(rss.stop());
      assert.equal(report.sessions, 8);
      // 64 MiB node-wide holds at most 17 frames of 4 MiB (16 above the floors, one more within them).
      assert.ok(report.fullySent <= 17, `${report.fullySent} unfinished frames were read in full`);
      assert.ok(report.refused >= 8 * 48 - 17, `${report.refused} streams refused`);
    }
    const latencies = await sender.stop();
    const growth = (peaks[0]! - idle) / MiB;
    const second = (peaks[1]! - peaks[0]!) / MiB;
    console.log(
      `idle ${(idle / MiB).toFixed(0)} MiB, peaks ${peaks.map((p) => (p / MiB).toFixed(0)).join(" / ")} MiB, ` +
        `good peer ${latencies.length} messages, slowest ${Math.max(...latencies).toFixed(0)} ms`,
    );
    assert.ok(growth <= 160, `first wave took RSS up by ${growth.toFixed(0)} MiB (bound 160)`);
    assert.ok(second <= 10, `second wave added ${second.toFixed(0)} MiB (bound 10)`);
    assert.ok(latencies.length >= (2 * HOLD_MS) / 1000, `good peer got ${latencies.length} messages through`);
    const st = await runAtlas(["status", "--json"], { home: v.home });
    assert.equal(st.code, 0, st.stderr);
  } finally {
    await good.close();
    await good.store.close();
  }
});

test("with the default rate limits, unfinished large frames are charged at their header and the attackers are banned", async () => {
  const v = await victim();
  const pid = v.d.proc.pid!;
  const idle = rssOf(pid);
  const rss = rssSampler(pid);
  const report = await memoryAttack({ target: v.addr, conns: 8, streamsPerConn: 48, holdMs: 3000 });
  const growth = (rss.stop() - idle) / MiB;
  // unknown tier: 10 MiB a minute admits two 4 MiB frames per peer; three refusals ban it.
  assert.ok(report.fullySent <= 8 * 2, `${report.fullySent} unfinished frames were read in full`);
  assert.deepEqual(report.ended, { DISCONNECT_BANNED: 8 });
  assert.ok(growth <= 160, `RSS up by ${growth.toFixed(0)} MiB`);
});

/** One session per peer (SPEC §7): replacement and the simultaneous-dial tie-break, in process. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { defaultConfig } from "../src/config/defaults.ts";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { AtlasNode } from "../src/net/node.ts";
import { openStore } from "../src/store/index.ts";

const dirs: string[] = [];
after(async () => {
  await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
});

async function node(name: string, seed = generateSeed()): Promise<AtlasNode> {
  const dir = await mkdtemp(join(tmpdir(), "atlas-sess-"));
  dirs.push(dir);
  return AtlasNode.start({
    config: defaultConfig(),
    identity: identityFromSeed(seed),
    profile: { name, bio: "", skills: [] },
    store: await openStore(join(dir, "peers.db")),
    listen: true,
    host: "127.0.0.1",
    port: 0,
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test("a newer connection from the same peer replaces the older one (DISCONNECT_REPLACED)", async () => {
  const a = await node("alpha");
  const seed = generateSeed();
  const b1 = await node("beta", seed);
  const b2 = await node("beta-again", seed); // same identity, another process or socket
  try {
    const first = await b1.connectTo(a.endpoint.local);
    const second = await b2.connectTo(a.endpoint.local);
    assert.equal(await first.done, "DISCONNECT_REPLACED");
    assert.ok(second.isOpen);
    await sleep(100);
    const live = a.sessionsWith(b1.nodeId);
    assert.equal(live.length, 1);
    const rows = await a.store.sessions.list({ nodeId: b1.nodeId });
    assert.deepEqual(rows.map((r) => r.close_reason).sort(), ["DISCONNECT_REPLACED", null].sort());
  } finally {
    await Promise.all([a, b1, b2].map(async (n) => (await n.close(), await n.store.close())));
  }
});

test("two nodes dialling each other at once keep exactly one connection: the lower node ID's", async () => {
  for (let round = 0; round < 3; round++) {
    const a = await node("alpha");
    const b = await node("beta");
    try {
      const [sa, sb] = await Promise.all([a.connectTo(b.endpoint.local), b.connectTo(a.endpoint.local)]);
      await sleep(300);
      const la = a.sessionsWith(b.nodeId);
      const lb = b.sessionsWith(a.nodeId);
      assert.equal(la.length, 1, "a keeps one session");
      assert.equal(lb.length, 1, "b keeps one session");
      const lower = a.nodeId < b.nodeId ? a : b;
      assert.equal(la[0]!.direction, lower === a ? "outbound" : "inbound");
      assert.equal(lb[0]!.direction, lower === b ? "outbound" : "inbound");
      // Each dialer got a session; one of the two was then replaced by the surviving one.
      assert.ok([sa, sb].filter((s) => s.closeReason === "DISCONNECT_REPLACED").length <= 1);
      assert.ok((await a.liveSession(b.nodeId)!.ping(2000)).rttMs >= 0);
      assert.ok((await b.liveSession(a.nodeId)!.ping(2000)).rttMs >= 0);
    } finally {
      await Promise.all([a, b].map(async (n) => (await n.close(), await n.store.close())));
    }
  }
});

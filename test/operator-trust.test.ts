/**
 * docs/protocol.md#trust-rate-limits-and-bans, docs/protocol.md#operator-binding between real processes: a peer whose operator binding checks out (signature, and
 * custody + username at a hub) gets `verified` and the verified rate-limit tier; a forged binding
 * leaves the peer `unknown`, shown as unconfirmed with the reason; a hub that is down fails closed.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { homePaths } from "../src/config/paths.ts";
import { isAtlasError } from "../src/errors.ts";
import { loadIdentity } from "../src/identity/identity.ts";
import { loadProfile, saveProfile } from "../src/identity/profile.ts";
import { buildMessage, deliverOn } from "../src/net/messaging.ts";
import { AtlasNode } from "../src/net/node.ts";
import { openStore } from "../src/store/index.ts";
import { parseAddr } from "../src/transport/addr.ts";
import { cleanupHomes, initHome, killAll, runAtlas, startListener } from "./helpers/cli.ts";
import { createTestnet } from "./helpers/testnet.ts";
import { type FakeHub, makeBinding, startFakeHub, TEST_ADDRESS } from "./helpers/farcaster.ts";

let hub: FakeHub | undefined;
const net = createTestnet({ prefix: "atlas-optrust-" });
after(async () => {
  await net.destroy();
  killAll();
  await cleanupHomes();
  await hub?.close();
});

async function bind(home: string, nodeIdInMessage?: string): Promise<void> {
  const paths = homePaths(home);
  const id = await loadIdentity(paths);
  const p = await loadProfile(paths);
  p.operator = makeBinding({
    nodeId: nodeIdInMessage ?? id.nodeId,
    fid: 1234,
    username: "alice",
    issuedAt: new Date(Date.now() - 60_000),
  });
  await saveProfile(paths, p);
}

/** A node with this home's identity and card, in this process (to send a burst quickly). */
async function nodeOf(home: string): Promise<AtlasNode> {
  const paths = homePaths(home);
  return await net.node({
    identity: await loadIdentity(paths),
    profile: await loadProfile(paths),
    store: await openStore(join(home, "state", "peers.db")),
    listen: false,
  });
}

async function burst(n: AtlasNode, target: string, addr: string, count: number): Promise<string[]> {
  const s = await n.connectTo(parseAddr(addr)!);
  const out: string[] = [];
  for (let i = 0; i < count && s.isOpen; i++) {
    try {
      await deliverOn(s, buildMessage(n, target, JSON.stringify({ i })), 5000);
      out.push("ack");
    } catch (e) {
      out.push(isAtlasError(e) ? e.code : String(e));
    }
  }
  await s.disconnect();
  return out;
}

test(
  "valid binding → verified tier; forged → unknown + unconfirmed; hub down → fail closed",
  { timeout: 60_000 },
  async () => {
    hub = await startFakeHub({ owners: new Map([[1234, TEST_ADDRESS]]), usernames: new Map([[1234, "alice"]]) });
    const a = await initHome("alpha");
    await appendFile(join(a.home, "state", "config.toml"), `[farcaster]\nverify = "hub"\nhub_url = "${hub.url}"\n`);
    const good = await initHome("good");
    const forged = await initHome("forged");
    await bind(good.home);
    await bind(forged.home, a.nodeId); // a binding made for another node: replayed
    const d = await startListener(a.home, [], { cmd: ["daemon"] });

    const c1 = await runAtlas(["net", "connect", d.address], { home: good.home });
    assert.equal(c1.code, 0, c1.stderr);
    assert.equal(c1.stdout, `Connected to ${a.nodeId}\nalpha [unknown via direct]\n`, "alpha itself has no binding");
    const st = JSON.parse((await runAtlas(["status", "--json"], { home: a.home })).stdout);
    assert.equal(st.farcaster.hub.reachable, true);

    // The responder's view: the good peer is verified, with the hub's username, in the peer row.
    const peers = JSON.parse((await runAtlas(["net", "peers", "--json"], { home: a.home })).stdout) as {
      node_id: string;
      trust: string;
      operator: { username: string; fid: number | null; status: string } | null;
    }[];
    const g = peers.find((p) => p.node_id === good.nodeId)!;
    assert.deepEqual([g.trust, g.operator], ["verified", {
      username: "alice",
      fid: 1234,
      status: "verified",
      reason: null,
    }]);
    const table = (await runAtlas(["net", "peers", "--trust", "verified"], { home: a.home })).stdout;
    assert.match(table, /verified via direct\s+@alice \(fid 1234\)/);

    // Rate limits: verified gets 20/s, so a burst of 12 all pass; the forged peer is cut at 5.
    const gn = await nodeOf(good.home);
    const fn = await nodeOf(forged.home);
    try {
      assert.deepEqual(await burst(gn, a.nodeId, d.address, 12), Array(12).fill("ack"));
      const fr = await burst(fn, a.nodeId, d.address, 8);
      assert.deepEqual(fr.slice(0, 6), ["ack", "ack", "ack", "ack", "ack", "ERR_RATE_LIMITED"]);
    } finally {
      await gn.close();
      await fn.close();
      await gn.store.close();
      await fn.store.close();
    }
    const f = (JSON.parse((await runAtlas(["net", "peers", "--json"], { home: a.home })).stdout) as typeof peers).find((
      p,
    ) => p.node_id === forged.nodeId)!;
    assert.equal(f.trust, "unknown");
    assert.equal(f.operator, null);
    assert.match(d.stderr(), /operator binding not confirmed .*binding is for another node/);

    // The dialler's view of a verified responder, and a hub that goes down (fail closed).
    await d.stop();
    const b2 = await initHome("beta");
    await appendFile(join(b2.home, "state", "config.toml"), `[farcaster]\nverify = "hub"\nhub_url = "${hub.url}"\n`);
    const dg = await startListener(good.home, [], { cmd: ["daemon"] });
    const v = await runAtlas(["net", "connect", dg.address], { home: b2.home });
    assert.equal(v.stdout, `Connected to ${good.nodeId}\ngood [verified via direct]\nOperator : @alice (fid 1234)\n`);
    hub.down = "503";
    const b3 = await initHome("gamma");
    await appendFile(join(b3.home, "state", "config.toml"), `[farcaster]\nverify = "hub"\nhub_url = "${hub.url}"\n`);
    const down = await runAtlas(["net", "connect", dg.address], { home: b3.home });
    assert.equal(down.code, 0, down.stderr);
    assert.match(
      down.stdout,
      new RegExp(
        `^Connected to ${good.nodeId}\\ngood \\[unknown via direct\\]\\nOperator : @alice \\(unconfirmed: hub unreachable.*\\)\\n$`,
      ),
    );
    // farcaster.verify = "signature": step 1 suffices.
    const b4 = await initHome("delta");
    await appendFile(join(b4.home, "state", "config.toml"), `[farcaster]\nverify = "signature"\n`);
    const sig = await runAtlas(["net", "connect", dg.address], { home: b4.home });
    assert.equal(sig.stdout, `Connected to ${good.nodeId}\ngood [verified via direct]\nOperator : @alice (fid 1234)\n`);
    await dg.stop();
  },
);

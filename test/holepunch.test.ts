/**
 * Hole punching (docs/protocol.md#hole-punching), in process on 127.0.0.1: a relayed session between two nodes that
 * run the hole-punch service is replaced by a direct, hole-punched one; the relayed one is retired
 * after its grace period and its relay slot freed; a peer that does not advertise `punch/1` is never
 * sent a PunchOffer. On loopback every punch gets through: which NATs let it through is the
 * namespace suite's job (test/nat.test.ts).
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import type { Config } from "../src/config/defaults.ts";
import { HolePunchService, PUNCH_FEATURE, remember } from "../src/net/holepunch/service.ts";
import { RELAY_GRACE_MS } from "../src/config/durations.ts";
import { MAX_TRACKED_PEERS } from "../src/net/holepunch/constants.ts";
import { AtlasNode } from "../src/net/node.ts";
import { dialViaRelay } from "../src/relay/dial.ts";
import { relayLinks } from "../src/relay/pipe.ts";
import { silentLogger } from "../src/util/log.ts";
import { addrOf, answerMessages, createTestnet } from "./helpers/testnet.ts";
import { pause, waitFor } from "./helpers/wait.ts";

const net = createTestnet({ prefix: "atlas-punch-", configure: (c) => (c.transport.dial_timeout = 2) });
after(() => net.destroy());

const node = (name: string, configure?: (c: Config) => void) => net.node({ name, configure });

function holePunch(n: AtlasNode): HolePunchService {
  const svc = new HolePunchService(n, { publicAddress: () => addrOf(n), log: silentLogger });
  svc.start();
  net.defer(() => svc.stop());
  return svc;
}

async function relayWithTarget(punching: boolean) {
  const { node: relay, server, addr: relayAddr } = await net.relay();
  const { node: target } = await net.relayed(relayAddr, {
    // 20 requests at once from one peer: above the default 5/s of every tier.
    configure: (c) => Object.values(c.rate_limit).forEach((tier) => (tier.per_second = tier.per_minute = 1000)),
  });
  const targetPunch = punching ? holePunch(target) : null;
  answerMessages(target);
  return { relay, server, relayAddr, target, targetPunch };
}

describe("hole punching", { timeout: 60_000 }, () => {
  test("a relayed session between two punching daemons becomes a direct, hole-punched one", async () => {
    const { server, relayAddr, target, targetPunch } = await relayWithTarget(true);
    const dialler = await node("dialler");
    const diallerPunch = holePunch(dialler);
    const relayed = await dialViaRelay(dialler, relayAddr, target.nodeId);
    assert.equal(relayed.path, "relay");
    assert.ok(relayed.peer.features.includes(PUNCH_FEATURE), "the target advertises punch/1 in its HelloAck");
    // Requests in flight on the relayed session while it is being upgraded are all answered.
    const inFlight = Array.from({ length: 20 }, (_, i) =>
      relayed.request({
        type: "Message",
        id: `msg_0193b3c4-0000-7000-8000-${String(i).padStart(12, "0")}`,
        from: dialler.nodeId,
        to: target.nodeId,
        timestamp: Math.floor(Date.now() / 1000),
        body: "{}",
      }, 10_000));

    await waitFor("a direct session on the dialler", () => dialler.liveSession(target.nodeId)?.path === "direct");
    const direct = dialler.liveSession(target.nodeId)!;
    assert.equal(direct.punched, true);
    assert.equal(direct.pathLabel, "direct (hole-punched)");
    assert.equal(direct.direction, "outbound");
    assert.equal(direct.trust, "unknown", "a direct session gets a direct connection's trust, not `relay`");
    await waitFor("the target's direct session", () => target.liveSession(dialler.nodeId)?.path === "direct");
    assert.equal(target.liveSession(dialler.nodeId)!.punched, true);
    assert.equal(diallerPunch.status()[0]?.state, "direct");
    assert.equal(targetPunch!.status()[0]?.state, "direct");
    const acks = await Promise.all(inFlight);
    assert.deepEqual(acks.map((a) => a.type === "MessageAck" && a.status), Array(20).fill("received"));

    // New traffic takes the direct path while the relayed session lives out its grace period.
    assert.ok(relayed.isOpen, "the relayed session is kept for its grace period");
    assert.ok((await direct.ping(5000)).rttMs > 0);
    const t0 = Date.now();
    await waitFor("the relayed session's retirement", () => !relayed.isOpen, { timeoutMs: RELAY_GRACE_MS + 5000 });
    assert.ok(Date.now() - t0 >= RELAY_GRACE_MS - 2000, "not before the grace period");
    await waitFor("the relay slot freed", () => server.status().pipes === 0 && relayLinks(dialler).size === 0);

    // The session rows record the change of path on both sides.
    await waitFor("rows", async () => (await dialler.store.sessions.list({ nodeId: target.nodeId })).length === 2);
    await waitFor(
      "the relayed row closed",
      async () => (await dialler.store.sessions.list({ nodeId: target.nodeId }))[1]?.closed_at !== null,
    );
    const [newest, oldest] = await dialler.store.sessions.list({ nodeId: target.nodeId });
    assert.equal(newest!.path, "direct");
    assert.equal(newest!.punched, true);
    assert.equal(newest!.closed_at, null);
    assert.equal(oldest!.path, "relay");
    assert.equal(oldest!.close_reason, "upgraded to a direct path");
    const paths = await target.store.sessions.latestPaths();
    assert.deepEqual(paths.get(dialler.nodeId), { path: "direct", relay: null, punched: true });
  });

  test("a peer that does not advertise punch/1 is never sent a PunchOffer and stays relayed", async () => {
    const { relayAddr, target } = await relayWithTarget(false);
    let offers = 0;
    target.handle("PunchOffer", () => {
      offers++;
      return Promise.resolve({ type: "Error", code: 2003, message: "unsupported request PunchOffer" });
    });
    const dialler = await node("dialler");
    const diallerPunch = holePunch(dialler);
    const relayed = await dialViaRelay(dialler, relayAddr, target.nodeId);
    assert.ok(!relayed.peer.features.includes(PUNCH_FEATURE), "the target does not advertise punch/1");
    await pause(1500); // time for an offer that must not come
    assert.equal(offers, 0);
    assert.equal(dialler.liveSession(target.nodeId), relayed);
    assert.deepEqual(diallerPunch.status(), []);
  });

  test("per-peer punching state is bounded and keeps the newest peers, whatever throwaway identities do", () => {
    const m = new Map<string, number>();
    for (let i = 0; i < 3 * MAX_TRACKED_PEERS; i++) remember(m, `peer-${i}`, i);
    assert.equal(m.size, MAX_TRACKED_PEERS);
    assert.equal(m.get(`peer-${3 * MAX_TRACKED_PEERS - 1}`), 3 * MAX_TRACKED_PEERS - 1);
    assert.equal(m.has("peer-0"), false);
    remember(m, `peer-${2 * MAX_TRACKED_PEERS}`, -1); // touched again: now the newest
    remember(m, "another", 0);
    assert.equal(m.get(`peer-${2 * MAX_TRACKED_PEERS}`), -1);
    assert.equal(m.has(`peer-${2 * MAX_TRACKED_PEERS + 1}`), false);
  });
});

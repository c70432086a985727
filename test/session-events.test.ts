/**
 * Session events of `subscribe` (src/daemon/session-events.ts, docs/protocol.md#subscribe-streaming),
 * in process with real nodes, a relay and hole punching on 127.0.0.1: one peer is one peer — its
 * relayed session upgraded to a hole-punched one is a `path_changed`, not a second `session_up`,
 * and the relayed one retiring afterwards says nothing.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { HolePunchService } from "../src/net/holepunch/service.ts";
import { RELAY_GRACE_MS } from "../src/config/durations.ts";
import type { AtlasNode } from "../src/net/node.ts";
import { dialViaRelay } from "../src/relay/dial.ts";
import { silentLogger } from "../src/util/log.ts";
import { watchSessions } from "../src/daemon/session-events.ts";
import type { SessionEventView } from "../src/daemon/shapes.ts";
import { addrOf, createTestnet } from "./helpers/testnet.ts";
import { waitFor } from "./helpers/wait.ts";

const net = createTestnet({ prefix: "atlas-events-", configure: (c) => (c.transport.dial_timeout = 2) });
after(() => net.destroy());

function holePunch(n: AtlasNode): HolePunchService {
  const svc = new HolePunchService(n, { publicAddress: () => addrOf(n), log: silentLogger });
  svc.start();
  net.defer(() => svc.stop());
  return svc;
}

test("a relayed session upgraded to a hole-punched one is path_changed; the last close is session_down", {
  timeout: 60_000,
}, async () => {
  const { addr: relayAddr } = await net.relay();
  const { node: target } = await net.relayed(relayAddr);
  const punching = [holePunch(target)];
  const dialler = await net.node({ name: "dialler" });
  punching.push(holePunch(dialler));
  const events: SessionEventView[] = [];
  watchSessions(dialler, (e) => e.node_id === target.nodeId && events.push(e));

  const relayed = await dialViaRelay(dialler, relayAddr, target.nodeId);
  await waitFor("the direct session", () => dialler.liveSession(target.nodeId)?.path === "direct");
  await waitFor("the relayed session's retirement", () => !relayed.isOpen, { timeoutMs: RELAY_GRACE_MS + 5000 });
  assert.deepEqual(events.map((e) => [e.event, e.session?.path ?? null, e.session?.punched ?? null]), [
    ["session_up", "relay", false],
    ["path_changed", "direct", true],
  ]);

  // Hole punching would dial again once the punched path is gone (its job, not this test's).
  for (const svc of punching) svc.stop();
  dialler.liveSession(target.nodeId)!.close("test done");
  await waitFor("session_down", () => events.at(-1)?.event === "session_down");
  assert.deepEqual(events.at(-1)!.session, null);
  assert.equal(events.length, 3, JSON.stringify(events.map((e) => [e.event, e.session?.path ?? null])));
});

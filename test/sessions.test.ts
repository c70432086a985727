/** One session per peer (docs/protocol.md#dialing): replacement and the simultaneous-dial tie-break, in process. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { generateSeed } from "../src/identity/keys.ts";
import { createTestnet } from "./helpers/testnet.ts";
import { waitFor } from "./helpers/wait.ts";

const net = createTestnet({ prefix: "atlas-sess-" });
after(() => net.destroy());

const node = (name: string, seed?: Uint8Array) => net.node({ name, seed });

test("a newer connection from the same peer replaces the older one (DISCONNECT_REPLACED)", async () => {
  const a = await node("alpha");
  const seed = generateSeed();
  const b1 = await node("beta", seed);
  const b2 = await node("beta-again", seed); // same identity, another process or socket
  const first = await b1.connectTo(a.endpoint.local);
  const second = await b2.connectTo(a.endpoint.local);
  assert.equal(await first.done, "DISCONNECT_REPLACED");
  assert.ok(second.isOpen);
  await waitFor("the older session gone on the listener", () => a.sessionsWith(b1.nodeId).length === 1);
  const closeReasons = async () =>
    (await a.store.sessions.list({ nodeId: b1.nodeId })).map((r) => r.close_reason).sort().join();
  await waitFor(
    "both rows, the older closed as replaced",
    async () => (await closeReasons()) === ["DISCONNECT_REPLACED", null].sort().join(),
  );
});

test("two nodes dialling each other at once keep exactly one connection: the lower node ID's", async () => {
  for (let round = 0; round < 3; round++) {
    const a = await node("alpha");
    const b = await node("beta");
    const [sa, sb] = await Promise.all([a.connectTo(b.endpoint.local), b.connectTo(a.endpoint.local)]);
    const lower = a.nodeId < b.nodeId ? a : b;
    const settled = () => {
      const [la, lb] = [a.sessionsWith(b.nodeId), b.sessionsWith(a.nodeId)];
      return la.length === 1 && lb.length === 1 &&
        la[0]!.direction === (lower === a ? "outbound" : "inbound") &&
        lb[0]!.direction === (lower === b ? "outbound" : "inbound");
    };
    await waitFor("one session on each side, the one the lower node ID dialled", settled);
    // Each dialer got a session; one of the two was then replaced by the surviving one.
    assert.ok([sa, sb].filter((s) => s.closeReason === "DISCONNECT_REPLACED").length <= 1);
    assert.ok((await a.liveSession(b.nodeId)!.ping(2000)).rttMs >= 0);
    assert.ok((await b.liveSession(a.nodeId)!.ping(2000)).rttMs >= 0);
  }
});

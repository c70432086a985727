/**
 * The TCP leg (docs/protocol.md#the-tcp-leg), in process: real TLS on TCP and real QUIC on
 * 127.0.0.1. A relay's and a bootstrap node's TCP listener, agents that reach them over it
 * (forced, and by the automatic fallback when UDP gets no answer), pipes between a TCP-leg agent
 * and a UDP agent, the pin on the relay's node ID, and UDP's return. The namespace lab proof (a
 * router that drops all UDP) is test/tcp-lab.test.ts; the listener's limits, test/tcp-leg-limits.test.ts.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { createSocket } from "node:dgram";
import type { Config } from "../src/config/defaults.ts";
import { isAtlasError } from "../src/errors.ts";
import { serviceLegs } from "../src/net/legs.ts";
import { startTcpLeg } from "../src/net/tcp-serve.ts";
import { dialViaRelay } from "../src/relay/dial.ts";
import { isTcpLeg } from "../src/transport/tcp-leg.ts";
import { RelayPresence } from "../src/relay/presence.ts";
import { silentLogger } from "../src/util/log.ts";
import { answerMessages, createTestnet } from "./helpers/testnet.ts";
import { UdpForwarder } from "./helpers/udp-forwarder.ts";
import { waitFor } from "./helpers/wait.ts";

const net = createTestnet({ prefix: "atlas-tcp-", configure: (c) => (c.transport.dial_timeout = 2) });
after(() => net.destroy());

/** A relay with its TCP leg; `tcp` names it by its TCP port (`tcp://atlas_…@127.0.0.1:port`). */
async function relayWithTcp(configure?: (c: Config) => void) {
  const r = await net.relay({ configure });
  const leg = await startTcpLeg(r.node);
  net.defer(() => leg.close());
  return { ...r, leg, tcp: `tcp://${r.node.nodeId}@127.0.0.1:${leg.port}` };
}

/** A target answering Messages, registered with `relay` (its presence running). */
async function target(relay: string, configure?: (c: Config) => void) {
  const t = await net.relayed(relay, { configure });
  answerMessages(t.node);
  return t;
}

describe("the relay over TLS on TCP", { timeout: 60_000 }, () => {
  test("an agent announces over the relay's TCP leg and a UDP dialler reaches it through the relay, end to end", async () => {
    const r = await relayWithTcp();
    const t = await target(r.tcp);
    const session = r.node.liveSession(t.node.nodeId)!;
    assert.ok(isTcpLeg(session.conn), "the relay's session with the agent runs over TCP");
    assert.equal(t.presence.status()[0]!.registered, true);
    const b = await net.node({ name: "dialler" });
    const s = await dialViaRelay(b, r.addr, t.node.nodeId);
    assert.equal(s.nodeId, t.node.nodeId);
    assert.ok((await s.ping(5000)).rttMs > 0);
    assert.equal(r.server.status().pipes, 1);
    assert.ok(r.leg.stats().accepted >= 1);
  });

  test("an agent on the TCP leg dials a UDP agent through the relay", async () => {
    const r = await relayWithTcp();
    const t = await target(`${r.node.nodeId}@${r.addr}`);
    const b = await net.node({ name: "tcp-dialler", configure: (c) => (c.transport.relay_transport = "tcp") });
    const s = await dialViaRelay(b, r.tcp, t.node.nodeId);
    assert.ok((await s.ping(5000)).rttMs > 0);
    assert.ok(isTcpLeg(b.liveSession(r.node.nodeId)!.conn));
  });

  test("a TCP leg whose certificate is not the pinned node ID is refused before QUIC", async () => {
    const r = await relayWithTcp();
    const other = await net.node({ name: "other" });
    const b = await net.node({ configure: (c) => (c.transport.relay_transport = "tcp") });
    const wrong = `tcp://${other.nodeId}@127.0.0.1:${r.leg.port}`;
    await assert.rejects(dialViaRelay(b, wrong, other.nodeId), (e) => isAtlasError(e, "ERR_INVALID_IDENTITY"));
    assert.equal(r.node.sessionsWith(b.nodeId).length, 0);
  });

  test('with relay_transport "auto", a relay whose UDP gets no answer within 3 s is reached over TCP', async () => {
    const r = await relayWithTcp();
    // The entry names a UDP port where nothing answers; the agent's relay_tcp_port names the TCP leg.
    const hole = createSocket("udp4");
    await new Promise<void>((res) => hole.bind(0, "127.0.0.1", res));
    net.defer(() => hole.close());
    const started = Date.now();
    const t = await target(
      `${r.node.nodeId}@127.0.0.1:${hole.address().port}`,
      (c) => (c.transport.relay_tcp_port = r.leg.port),
    );
    assert.ok(Date.now() - started >= 3000, "UDP got its 3 s first");
    assert.ok(isTcpLeg(r.node.liveSession(t.node.nodeId)!.conn));
    assert.equal(serviceLegs(t.node).status().udp, "blocked");
  });

  test("when UDP answers again, presence moves from the TCP leg back to QUIC and the relay keeps one session", async () => {
    const r = await relayWithTcp();
    const path = await UdpForwarder.start({ server: r.node.endpoint.local, dropUp: 1, dropDown: 1 });
    net.defer(() => path.close());
    const n = await net.node({
      name: "returning",
      configure: (c) => {
        c.network.relays = [`${r.node.nodeId}@127.0.0.1:${path.port}`];
        c.transport.relay_announce_interval = 1;
        c.transport.relay_tcp_port = r.leg.port;
      },
    });
    serviceLegs(n).probeIntervalMs = 500;
    const presence = new RelayPresence(n, silentLogger);
    presence.start();
    net.defer(() => presence.stop());
    await waitFor(
      "registration over TCP",
      () => presence.status()[0]?.leg === "tcp" && presence.status()[0]?.registered,
    );
    path.setDrop(0, 0);
    await waitFor(
      "presence back on QUIC",
      () => presence.status()[0]?.leg === "udp" && presence.status()[0]?.registered,
    );
    assert.equal(serviceLegs(n).status().udp, "ok");
    await waitFor("the relay's TCP session gone", () => r.node.sessionsWith(n.nodeId).length === 1);
    assert.ok(!isTcpLeg(r.node.liveSession(n.nodeId)!.conn));
    await waitFor("registered at the relay", () => r.server.isRegistered(n.nodeId));
  });
});

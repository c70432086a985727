/**
 * Relay (docs/protocol.md#relay), in process: real QUIC on 127.0.0.1 between separate nodes — a relay, a target
 * registered with it (presence) and diallers. Every RelayError code, the end-to-end inner
 * connection and its identity check, announce expiry, idle teardown, the bandwidth limit and the
 * cleanup of pipe state. Processes, output shapes and restarts: test/relay-cli.test.ts.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import type { Config } from "../src/config/defaults.ts";
import { isAtlasError } from "../src/errors.ts";
import { identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import { dialPeer } from "../src/net/dial.ts";
import { AtlasNode } from "../src/net/node.ts";
import type { Session } from "../src/net/session.ts";
import { dialViaRelay, relayErrorToAtlas } from "../src/relay/dial.ts";
import { relayLinks, RelayPipe } from "../src/relay/pipe.ts";
import { relaySession, resolveRelay } from "../src/relay/session.ts";
import { answerMessages, createTestnet } from "./helpers/testnet.ts";
import { waitFor } from "./helpers/wait.ts";
import { VIRTUAL_REMOTE } from "../src/transport/endpoint.ts";
import type { QuicStream } from "../src/transport/stream.ts";
import { FramedStream } from "../src/wire/framed-stream.ts";
import type { WireMessage } from "../src/wire/messages.ts";

const net = createTestnet({ prefix: "atlas-relay-", configure: (c) => (c.transport.dial_timeout = 2) });
after(() => net.destroy());

/** A node; another 127.0.0.0/8 address (network.host) stands for another host. */
const node = (name: string, configure?: (c: Config) => void) => net.node({ name, configure });
const relayNode = (configure?: (c: Config) => void) => net.relay({ configure });

/** A target registered with the relay (presence running), answering Messages with MessageAck. */
async function target(relayAddr: string, configure?: (c: Config) => void) {
  const t = await net.relayed(relayAddr, { configure });
  answerMessages(t.node);
  return t;
}

/** A raw RelayConnect on a session with the relay; returns the answer and the open stream. */
async function rawConnect(s: Session, req: WireMessage): Promise<WireMessage | null> {
  const fs = new FramedStream(s.conn.openStream());
  await fs.write(req);
  return fs.read(15_000);
}

/** A raw RelayConnect for `source` on its session `s` with the relay; the answer and the stream (kept open). */
async function pair(
  s: Session,
  source: string,
  targetId: string,
): Promise<{ answer: WireMessage | null; stream: QuicStream }> {
  const stream = s.conn.openStream();
  const fs = new FramedStream(stream);
  await fs.write({ type: "RelayConnect", source_id: source, target_id: targetId });
  return { answer: await fs.read(15_000), stream };
}

/** A session with the relay at `relayAddr` from `n`. */
async function sessionWithRelay(n: AtlasNode, relayAddr: string): Promise<Session> {
  return relaySession(n, await resolveRelay(relayAddr));
}

/**
 * `count` throwaway identities on 127.0.0.1, each with its own endpoint and an authenticated
 * session with the relay; one shared store (they keep nothing worth keeping apart).
 */
async function sybils(count: number, relay: AtlasNode): Promise<{ id: string; session: Session }[]> {
  const store = await net.store();
  const one = async () => {
    const n = await net.node({ name: "sybil", store });
    return { id: n.nodeId, session: await n.connectTo(relay.endpoint.local, { expectedNodeId: relay.nodeId }) };
  };
  const out: { id: string; session: Session }[] = [];
  // In batches, under the relay's 50 handshakes in flight (security.handshake_limit).
  while (out.length < count) {
    out.push(...await Promise.all(Array.from({ length: Math.min(20, count - out.length) }, one)));
  }
  return out;
}

function relayErrorCode(e: unknown): number | null {
  const m = isAtlasError(e) ? /RelayError (\d+)/.exec(e.message) : null;
  return m ? Number(m[1]) : null;
}

describe("relay pipes", { timeout: 120_000 }, () => {
  test("a dialler reaches a registered target through the relay with an end-to-end handshake, and the session names the relay", async () => {
    const r = await relayNode();
    const t = await target(r.addr);
    const b = await node("dialler");
    const s = await dialViaRelay(b, r.addr, t.node.nodeId);
    assert.equal(s.path, "relay");
    assert.equal(s.relay, `${r.node.nodeId}@${r.addr}`);
    assert.equal(s.nodeId, t.node.nodeId);
    assert.equal(s.peer.name, "target");
    const pong = await s.ping(5000);
    assert.ok(pong.rttMs > 0);
    const ack = await s.request({
      type: "Message",
      id: "msg_0193b3c4-0000-7000-8000-000000000001",
      from: b.nodeId,
      to: t.node.nodeId,
      timestamp: Math.floor(Date.now() / 1000),
      body: "{}",
    }, 5000);
    assert.deepEqual(ack, {
      type: "MessageAck",
      msg_id: "msg_0193b3c4-0000-7000-8000-000000000001",
      status: "received",
    });
    // The target sees the same session as relayed, from the dialler, through the same relay.
    await waitFor("target's session", () => t.node.liveSession(b.nodeId) !== undefined);
    const ts = t.node.liveSession(b.nodeId)!;
    assert.equal(ts.path, "relay");
    assert.equal(ts.relay, `${r.node.nodeId}@${r.addr}`);
    assert.equal(ts.direction, "inbound");
    // The session rows say so too, and a relayed session proves no address for the peer.
    await ts.recorded;
    const rows = await t.node.store.sessions.list({ nodeId: b.nodeId });
    assert.equal(rows[0]!.path, "relay");
    assert.equal(rows[0]!.relay, `${r.node.nodeId}@${r.addr}`);
    assert.equal((await t.node.store.peers.get(b.nodeId))!.public_address, null);
    assert.equal(r.server.status().pipes, 1);
    assert.ok(r.server.status().forwarded_packets > 0);
    // The relay never holds a session with the dialler's identity inside the pipe: only the outer ones.
    assert.equal(r.node.sessionsWith(b.nodeId).length, 1);
    assert.equal(r.node.sessionsWith(b.nodeId)[0]!.path, "direct");
    // Closing the inner session tears the pipe down at the relay and on both agents.
    await s.disconnect();
    await waitFor("pipe teardown at the relay", () => r.server.status().pipes === 0);
    await waitFor("pipe state freed on both agents", () => relayLinks(b).size === 0 && relayLinks(t.node).size === 0);
  });

  test("concurrent dials through one relay share one session with it: no pipe is lost to a replaced session", async () => {
    const r = await relayNode();
    const targets = [await target(r.addr), await target(r.addr), await target(r.addr)];
    const b = await node("dialler");
    // No session with the relay yet: each dial would open its own, and each newer one would
    // replace the older (docs/protocol.md#dialing, one session per peer), closing its pipe mid-pairing.
    const sessions = await Promise.all(targets.map((t) => dialViaRelay(b, r.addr, t.node.nodeId)));
    assert.deepEqual(sessions.map((s) => s.nodeId), targets.map((t) => t.node.nodeId));
    for (const s of sessions) assert.ok((await s.ping(5000)).rttMs > 0);
    assert.equal(b.sessionsWith(r.node.nodeId).length, 1);
    assert.equal(r.server.status().pipes, 3);
    // A cancelled caller does not cancel the connect another one is waiting for …
    await Promise.all(sessions.map((s) => s.disconnect()));
    await b.liveSession(r.node.nodeId)!.disconnect();
    const ref = await resolveRelay(r.addr);
    const ctrl = new AbortController();
    const cancelled = relaySession(b, ref, ctrl.signal);
    const kept = relaySession(b, ref);
    ctrl.abort();
    await assert.rejects(cancelled, (e) => isAtlasError(e, "ERR_CLOSED"));
    const s = await kept;
    assert.ok(s.isOpen);
    await s.disconnect();
    // … and one that every caller cancelled is not handed to the next caller.
    const gone = new AbortController();
    gone.abort();
    await assert.rejects(relaySession(b, ref, gone.signal), (e) => isAtlasError(e, "ERR_CLOSED"));
    const fresh = await relaySession(b, ref);
    assert.ok(fresh.isOpen);
    await fresh.disconnect();
  });

  test("dialPeer falls back to the target's home relay after the direct candidates fail (docs/protocol.md#dialing)", async () => {
    const r = await relayNode();
    const t = await target(r.addr);
    const b = await node("dialler", (c) => (c.transport.dial_timeout = 1));
    // What b knows of t: a dead address and its home relay (as a bootstrap record or Hello would say).
    await b.store.peers.upsert(
      { node_id: t.node.nodeId, address: "127.0.0.1:9", relays: t.node.card.relays },
      Math.floor(Date.now() / 1000),
    );
    assert.deepEqual(t.node.card.relays, [`${r.node.nodeId}@${r.addr}`]);
    const { session } = await dialPeer(b, t.node.nodeId);
    assert.equal(session.path, "relay");
    assert.equal(session.relay, `${r.node.nodeId}@${r.addr}`);
    await session.disconnect();
  });

  test("a relay refuses an unregistered target (1) and a source or announce for another node (3)", async () => {
    const r = await relayNode();
    const b = await node("dialler");
    const stranger = generateSeed();
    const unknown = identityFromSeed(stranger).nodeId;
    await assert.rejects(
      dialViaRelay(b, r.addr, unknown),
      (e) => relayErrorCode(e) === 1 && isAtlasError(e) && e.exit === 3,
    );
    const s = b.liveSession(r.node.nodeId)!;
    assert.deepEqual(await rawConnect(s, { type: "RelayConnect", source_id: unknown, target_id: b.nodeId }), {
      type: "RelayError",
      code: 3,
      reason: "source_id is not this connection's authenticated node ID",
    });
    assert.deepEqual(
      await s.request({ type: "RelayAnnounce", node_id: unknown, timestamp: Math.floor(Date.now() / 1000) }, 5000),
      { type: "RelayError", code: 3, reason: "node_id is not this connection's authenticated node ID" },
    );
    assert.equal(r.server.isRegistered(unknown), false);
  });

  test("a full relay refuses with 2, a source over its pipe limit with 7, and slots come back when pipes close", async () => {
    const r = await relayNode((c) => {
      c.transport.relay_capacity = 2;
      c.transport.relay_pipes_per_source = 1;
    });
    const t = await target(r.addr);
    const b1 = await node("b1");
    const b2 = await node("b2");
    const b3 = await node("b3");
    const s1 = await dialViaRelay(b1, r.addr, t.node.nodeId);
    // A second pipe from the same source: per-source limit.
    const rs1 = b1.liveSession(r.node.nodeId)!;
    const again = await rawConnect(rs1, { type: "RelayConnect", source_id: b1.nodeId, target_id: t.node.nodeId });
    assert.equal(again?.type, "RelayError");
    assert.equal((again as { code: number }).code, 7);
    const s2 = await dialViaRelay(b2, r.addr, t.node.nodeId);
    await assert.rejects(dialViaRelay(b3, r.addr, t.node.nodeId), (e) => relayErrorCode(e) === 2);
    await s2.disconnect();
    await waitFor("slot freed", () => r.server.status().pipes === 1);
    const s3 = await dialViaRelay(b3, r.addr, t.node.nodeId);
    assert.equal(s3.path, "relay");
    await Promise.all([s1.disconnect(), s3.disconnect()]);
    await waitFor("all pipes closed", () => r.server.status().pipes === 0);
  });

  test("a pairing the target never answers ends in RelayError 4", async () => {
    const r = await relayNode((c) => (c.transport.relay_pairing_timeout = 1));
    const t = await target(r.addr);
    t.node.handle("RelayConnect", () => new Promise(() => {})); // registered, but silent
    const b = await node("dialler");
    const started = Date.now();
    await assert.rejects(dialViaRelay(b, r.addr, t.node.nodeId), (e) => relayErrorCode(e) === 4);
    assert.ok(Date.now() - started >= 900, "waited for the pairing timeout");
    assert.equal(r.server.status().pipes, 0);
  });

  test("a target refuses a banned source with RelayError 5, exit 4", async () => {
    const r = await relayNode();
    const t = await target(r.addr);
    const b = await node("dialler");
    await t.node.ban(b.nodeId, Math.floor(Date.now() / 1000) + 600);
    await assert.rejects(
      dialViaRelay(b, r.addr, t.node.nodeId),
      (e) => relayErrorCode(e) === 5 && isAtlasError(e) && e.exit === 4 && /banned/.test(e.message),
    );
    assert.equal(r.server.status().pipes, 0);
    // Refused for another reason (a registration racing a relay restart): not a refusal of us.
    assert.equal(relayErrorToAtlas("r", 5, "target refused: this node is not registered with you as a relay").exit, 3);
  });

  test("a connection whose DATAGRAMs cannot carry a 1200-byte inner packet gets RelayError 6", async () => {
    // A dialler that can only send small datagrams refuses before asking the relay …
    const r = await relayNode();
    const t = await target(r.addr);
    const small = await node("small", (c) => (c.transport.max_datagram_size = 1200));
    await assert.rejects(
      dialViaRelay(small, r.addr, t.node.nodeId),
      /DATAGRAMs of at most \d+ bytes \(a pipe needs 1204\)/,
    );
    // … and a relay that can only send small datagrams to its agents refuses the pipe.
    const sr = await relayNode((c) => (c.transport.max_datagram_size = 1200));
    const st = await target(sr.addr);
    const b = await node("dialler");
    await assert.rejects(dialViaRelay(b, sr.addr, st.node.nodeId), (e) => relayErrorCode(e) === 6);
    assert.equal(sr.server.status().pipes, 0);
  });

  test("the target accepts only source_id inside the pipe", async () => {
    const r = await relayNode();
    const t = await target(r.addr);
    const b = await node("dialler");
    const impostor = await node("impostor");
    // b pairs legitimately, then the impostor's endpoint runs the inner connection over b's pipe.
    const rs = await (await import("../src/relay/session.ts")).relaySession(b, {
      addr: r.node.endpoint.local,
      text: r.addr,
    });
    const stream = rs.conn.openStream();
    const fs = new FramedStream(stream);
    await fs.write({ type: "RelayConnect", source_id: b.nodeId, target_id: t.node.nodeId });
    const ready = await fs.read(10_000);
    assert.equal(ready?.type, "RelayReady");
    const pipe = new RelayPipe(rs, (ready as { session: number }).session, "test");
    relayLinks(b).add(pipe);
    pipe.attach(impostor.endpoint.openVirtual("client", pipe, rs.conn.remote));
    pipe.bind(stream, () => relayLinks(b).remove(pipe));
    await assert.rejects(
      impostor.runOutbound(pipe.inner!, { expectedNodeId: t.node.nodeId, path: "relay", relay: "test" }),
      (e) => isAtlasError(e) && /not the expected/.test(e.message),
    );
    assert.equal(t.node.liveSession(impostor.nodeId), undefined);
    await waitFor("pipe torn down", () => r.server.status().pipes === 0);
  });

  test("registrations expire after missed announces and when the connection closes", async () => {
    const r = await relayNode((c) => {
      c.transport.relay_announce_interval = 1;
      c.transport.relay_missed_announces = 2;
    });
    const t = await target(r.addr);
    assert.equal(r.server.isRegistered(t.node.nodeId), true);
    await t.presence.stop(); // stops announcing; the connection stays up
    await waitFor("expiry after 2 missed announces", () => !r.server.isRegistered(t.node.nodeId), { timeoutMs: 5000 });
    assert.ok(t.node.liveSession(r.node.nodeId)?.isOpen, "the connection itself is still up");
    const b = await node("dialler");
    await assert.rejects(dialViaRelay(b, r.addr, t.node.nodeId), (e) => relayErrorCode(e) === 1);

    const t2 = await target(r.addr);
    assert.equal(r.server.isRegistered(t2.node.nodeId), true);
    await t2.presence.stop();
    await t2.node.liveSession(r.node.nodeId)!.disconnect();
    await waitFor("registration dropped with the connection", () => !r.server.isRegistered(t2.node.nodeId), {
      timeoutMs: 2000,
    });
  });

  test("an idle pipe is torn down after relay_idle_timeout and both agents' inner sessions end", async () => {
    const r = await relayNode((c) => (c.transport.relay_idle_timeout = 1));
    const t = await target(r.addr);
    const b = await node("dialler");
    const s = await dialViaRelay(b, r.addr, t.node.nodeId);
    await waitFor("pipe idle teardown", () => r.server.status().pipes === 0, { timeoutMs: 6000 });
    // At once, not after a closing period: the pipe is gone, so the inner connection is abandoned.
    await waitFor("inner session closed on the dialler", () => !s.isOpen, { timeoutMs: 1000 });
    assert.equal(await s.done, "relay pipe closed");
    await waitFor("pipe state freed on both agents", () => relayLinks(b).size === 0 && relayLinks(t.node).size === 0);
    // The agents' own connections to the relay stay.
    assert.ok(b.liveSession(r.node.nodeId)?.isOpen);
    assert.equal(r.server.isRegistered(t.node.nodeId), true);
  });

  test("the bandwidth limit holds a pipe to its rate (token bucket per direction, 1 s burst)", async () => {
    const limit = 128 * 1024;
    const r = await relayNode((c) => (c.transport.relay_bandwidth_limit = limit));
    const t = await target(r.addr);
    let received = 0;
    t.node.handle("Message", async (_s, req, stream) => {
      if (req.type !== "Message") return null;
      for (;;) {
        const c = await stream.read(30_000);
        if (c === null) break;
        received += c.length;
      }
      return { type: "MessageAck", msg_id: req.id, status: "received" };
    });
    const b = await node("dialler");
    const s = await dialViaRelay(b, r.addr, t.node.nodeId);
    const total = 512 * 1024;
    const stream = s.conn.openStream();
    const started = performance.now();
    const { encodeFrame } = await import("../src/wire/frame.ts");
    await stream.write(
      encodeFrame({
        type: "Message",
        id: "msg_0193b3c4-0000-7000-8000-000000000002",
        from: b.nodeId,
        to: t.node.nodeId,
        timestamp: Math.floor(Date.now() / 1000),
        body: "{}",
      }),
    );
    const chunk = new Uint8Array(16 * 1024);
    for (let sent = 0; sent < total; sent += chunk.length) await stream.write(chunk);
    await stream.end();
    const fs = new FramedStream(stream);
    const ack = await fs.read(60_000);
    const secs = (performance.now() - started) / 1000;
    assert.equal(ack?.type, "MessageAck");
    // (the handler's first frame read may have taken some raw bytes along with the Message frame)
    assert.ok(received >= total - 64 * 1024, `the bytes arrived (${received} of ${total})`);
    // Lower bound only (a slow machine may take longer): the burst covers `limit` bytes, the rest
    // can pass no faster than `limit` per second.
    const floor = (total - limit) / limit;
    assert.ok(secs >= floor * 0.9, `took ${secs.toFixed(2)} s; the limit allows no less than ${floor.toFixed(2)} s`);
    assert.ok(r.server.status().dropped_rate_limit > 0, "the relay dropped packets over the limit");
    await s.disconnect();
  });
});

describe("relay pipe limits (per target, per source address, unused pipes)", { timeout: 120_000 }, () => {
  test("100 identities on one address hold at most 8 of the 64 slots, leaving room for other addresses", async () => {
    const r = await relayNode((c) => {
      // Let all 100 handshakes in (30 a minute per address would stop most): the pipe limits are under test.
      c.security.handshakes_per_ip_per_minute = 1000;
      c.transport.relay_pairing_timeout = 30; // the sybils' silent pipes stay while the test looks
    });
    const victim = await target(r.addr);
    const others = [await target(r.addr), await target(r.addr)];
    const sy = await sybils(100, r.node);
    // Four RelayConnects each (the per-source limit), the victim twice: 400 at once.
    const aims = [victim, others[0]!, others[1]!, victim].map((t) => t.node.nodeId);
    const results = await Promise.all(
      sy.flatMap(({ id, session }) =>
        aims.map(async (aim) => ({ aim, answer: (await pair(session, id, aim)).answer }))
      ),
    );
    const ready = results.filter((x) => x.answer?.type === "RelayReady");
    const refusals = results.map((x) => x.answer).filter((a) => a?.type === "RelayError");
    const codes = new Set(refusals.map((a) => (a as { code: number }).code));
    assert.equal(ready.length, 8, "one address holds relay_pairings_per_ip pipes");
    assert.deepEqual([...codes], [7], "every other request: per-source pipe limit");
    assert.ok(ready.filter((x) => x.aim === victim.node.nodeId).length <= 4, "at most half of one target's slots");
    assert.equal(r.server.status().pipes, 8);
    assert.equal(r.server.status().refused.per_source_limit, 392);
    // A legitimate dialler from another address reaches the victim through the same relay.
    const b = await node("dialler", (c) => (c.network.host = "127.0.0.2"));
    const s = await dialViaRelay(b, r.addr, victim.node.nodeId);
    assert.equal(s.path, "relay");
    assert.ok((await s.ping(5000)).rttMs > 0);
    assert.equal(r.server.status().pipes, 9);
    assert.equal(r.server.isRegistered(victim.node.nodeId), true);
    await s.disconnect();
  });

  test("a target's ninth pipe is refused as target busy (8), one address gets half of them, and the target stays registered", async () => {
    const r = await relayNode((c) => (c.transport.relay_pairing_timeout = 30));
    const t = await target(r.addr);
    const hold = async (host: string, n: number) => {
      const d = await node(host, (c) => (c.network.host = host));
      const s = await sessionWithRelay(d, r.addr);
      const held: { answer: WireMessage | null; stream: QuicStream }[] = [];
      for (let i = 0; i < n; i++) held.push(await pair(s, d.nodeId, t.node.nodeId));
      return held;
    };
    const x = await hold("127.0.0.2", 4);
    assert.ok(x.every((h) => h.answer?.type === "RelayReady"));
    // Another identity at the same address: that address has its half of the target already.
    const [x2] = await hold("127.0.0.2", 1);
    assert.equal(x2!.answer?.type === "RelayError" && x2!.answer.code, 7);
    assert.match((x2!.answer as { reason: string }).reason, /at most 4 of a target's pipes per source address/);
    const y = await hold("127.0.0.3", 4);
    assert.ok(y.every((h) => h.answer?.type === "RelayReady"));
    const z = await node("z", (c) => (c.network.host = "127.0.0.4"));
    await assert.rejects(
      dialViaRelay(z, r.addr, t.node.nodeId),
      (e) => relayErrorCode(e) === 8 && isAtlasError(e) && e.exit === 3 && /target busy/.test(e.message),
    );
    assert.equal(r.server.isRegistered(t.node.nodeId), true);
    assert.equal(r.server.status().refused.target_busy, 1);
    // Slots come back when pipes close.
    for (const h of x) h.stream.abort(0);
    await waitFor("x's pipes closed", () => r.server.status().pipes === 4);
    const s = await dialViaRelay(z, r.addr, t.node.nodeId);
    assert.equal(s.path, "relay");
    await s.disconnect();
  });

  test("a target whose connection has no stream left for another pipe is busy (8), not unregistered (1)", async () => {
    const r = await relayNode();
    const t = await target(r.addr, (c) => (c.transport.max_streams_per_conn = 2));
    const b = await node("dialler");
    const s = await sessionWithRelay(b, r.addr);
    for (let i = 0; i < 2; i++) assert.equal((await pair(s, b.nodeId, t.node.nodeId)).answer?.type, "RelayReady");
    assert.deepEqual((await pair(s, b.nodeId, t.node.nodeId)).answer, {
      type: "RelayError",
      code: 8,
      reason: "target's connection has no stream left for another pipe",
    });
    assert.equal(r.server.isRegistered(t.node.nodeId), true);
    assert.equal(r.server.status().pipes, 2);
  });

  test("a pipe without an inner packet each way within relay_pairing_timeout is closed and its slot freed", async () => {
    const r = await relayNode((c) => (c.transport.relay_pairing_timeout = 1));
    const t = await target(r.addr);
    const b = await node("dialler");
    const live = await dialViaRelay(b, r.addr, t.node.nodeId); // both sides send at once
    const rs = b.liveSession(r.node.nodeId)!;
    const silent = await pair(rs, b.nodeId, t.node.nodeId);
    const oneSided = await pair(rs, b.nodeId, t.node.nodeId);
    assert.equal(silent.answer?.type, "RelayReady");
    assert.equal(oneSided.answer?.type, "RelayReady");
    const unknownBefore = relayLinks(b).stats().unknown_session;
    // Only the target sends (junk from the dialler would make the target's QUIC close the pipe
    // itself): a pipe used one way is not in use either.
    await waitFor("the target's ends", () => relayLinks(t.node).size === 3);
    const [targetEnd] = relayLinks(t.node).pipes().filter((p) => !p.inner);
    for (let i = 0; i < 3; i++) targetEnd!.sendPacket(new Uint8Array(randomBytes(1200)), VIRTUAL_REMOTE);
    assert.equal(r.server.status().pipes, 3);
    await waitFor("the target's packets forwarded", () => relayLinks(b).stats().unknown_session >= unknownBefore + 1);
    // Both were opened after the live pipe, so its check has passed once theirs have.
    await waitFor("unused pipes closed", () => r.server.status().pipes_closed_unused === 2, { timeoutMs: 5000 });
    assert.equal(r.server.status().pipes, 1);
    await waitFor("the target freed their state", () => relayLinks(t.node).size === 1);
    assert.ok(live.isOpen);
    assert.ok((await live.ping(5000)).rttMs > 0);
    await live.disconnect();
  });
});

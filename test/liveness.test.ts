/**
 * Noticing a dead peer fast (issue 16): stateless resets (RFC 9000 §10.3) from a node restarted
 * with the same identity on the same port, and the liveness probe of a request on a session
 * whose peer went silent. Real QUIC on 127.0.0.1, in one process; the end-to-end version with
 * SIGKILLed daemons is test/restart-redial.test.ts.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { isAtlasError } from "../src/errors.ts";
import type { Identity } from "../src/identity/identity.ts";
import { LIVENESS_PROBE_MS, LIVENESS_QUIET_MS } from "../src/config/durations.ts";
import type { QuicConnection } from "../src/transport/connection.ts";
import type { Session } from "../src/net/session.ts";
import { QuicEndpoint } from "../src/transport/endpoint.ts";
import { transportOptions } from "../src/transport/options.ts";
import {
  MIN_RESET_TRIGGER,
  RESET_TOKEN_LEN,
  RESETS_PER_SECOND,
  StatelessResets,
} from "../src/transport/stateless-reset.ts";
import { within } from "../src/util/time.ts";
import {
  bounded,
  LOCALHOST,
  messageFrame,
  seededIdentity,
  startNodeResponder,
  testConfig,
} from "./helpers/handshake-peer.ts";
import { UdpForwarder } from "./helpers/udp-forwarder.ts";
import { holdsWithin, pause, waitFor } from "./helpers/wait.ts";

const SERVER = seededIdentity(0x71);
const IMPOSTOR = seededIdentity(0x72);
const CLIENT = seededIdentity(0x73);

test("a reset token is one per connection ID, the same after a restart and unknown to another key", () => {
  const cid = new Uint8Array(16).fill(7);
  const a = new StatelessResets(SERVER.keyPem);
  assert.deepEqual(new StatelessResets(SERVER.keyPem).token(cid), a.token(cid), "same key, same token");
  assert.notDeepEqual(a.token(new Uint8Array(16).fill(8)), a.token(cid), "another CID, another token");
  assert.notDeepEqual(new StatelessResets(IMPOSTOR.keyPem).token(cid), a.token(cid), "another node, another token");
  assert.equal(a.tokenValue(cid).toString(16).padStart(32, "0"), Buffer.from(a.token(cid)).toString("hex"));
});

test("a stateless reset is smaller than the packet it answers, never sent for a packet too small to be ours, and rate limited", () => {
  const r = new StatelessResets(SERVER.keyPem);
  const cid = new Uint8Array(16).fill(1);
  const now = 1_000_000;
  assert.equal(r.answer(new Uint8Array(MIN_RESET_TRIGGER - 1), cid, now), null);
  for (const size of [MIN_RESET_TRIGGER, 44, 1350]) {
    const out = r.answer(new Uint8Array(size), cid, now)!;
    assert.ok(out.length < size && out.length >= 21, `${out.length} bytes for a ${size}-byte packet`);
    assert.equal(out[0]! & 0xc0, 0x40, "short header with the fixed bit");
    assert.deepEqual(out.subarray(out.length - RESET_TOKEN_LEN), r.token(cid));
  }
  let sent = 3;
  while (r.answer(new Uint8Array(100), cid, now)) sent++;
  assert.equal(sent, RESETS_PER_SECOND, "a burst of RESETS_PER_SECOND");
  assert.ok(r.answer(new Uint8Array(100), cid, now + 20), "refilled after a moment");
});

/** A server endpoint on `port` (0: any) presenting `id`, accepting connections and doing nothing. */
async function serverAt(id: Identity, port: number): Promise<QuicEndpoint> {
  const ep = await QuicEndpoint.bind({
    ...transportOptions(testConfig()),
    host: LOCALHOST,
    port,
    tls: { keyPem: id.keyPem, certPem: id.certPem },
  });
  ep.onConnection = () => {};
  return ep;
}

/** A client connected to a server that then "crashes": it forgets the connection without a word. */
async function crashedServer(): Promise<{ client: QuicEndpoint; conn: QuicConnection; port: number }> {
  const server = await serverAt(SERVER, 0);
  const port = server.local.port;
  const client = await QuicEndpoint.bind({
    ...transportOptions(testConfig()),
    host: LOCALHOST,
    port: 0,
    tls: { keyPem: CLIENT.keyPem, certPem: CLIENT.certPem },
  });
  const conn = client.connect({ host: LOCALHOST, port });
  await bounded(conn.established, 5000, "QUIC handshake");
  conn.verified = true; // as the Atlas handshake would: only such connections check for resets
  await pause(50); // let the handshake's last packets settle: nothing to observe, no ack is exposed
  for (const c of [...server.connections()]) c.abandon("crash"); // no CONNECTION_CLOSE leaves
  await server.close();
  return { client, conn, port };
}

test("a server restarted with the same identity resets the client's stale connection at once", async () => {
  const { client, conn, port } = await crashedServer();
  const restarted = await serverAt(SERVER, port);
  try {
    const started = Date.now();
    conn.ping(); // any packet of the old connection
    const info = await bounded(conn.closed, 2000, "the client's connection closed by the reset");
    assert.equal(info.local, false);
    assert.equal(info.timedOut, false);
    assert.ok(restarted.stats.resets >= 1, "the restarted server answered with a stateless reset");
    assert.ok(Date.now() - started < 500, `closed after ${Date.now() - started} ms`);
  } finally {
    await restarted.close();
    await client.close();
  }
});

test("a reset with another node's token is ignored (the client keeps its connection)", async () => {
  const { client, conn, port } = await crashedServer();
  const other = await serverAt(IMPOSTOR, port);
  try {
    conn.ping();
    await waitFor("the impostor's reset", () => other.stats.resets > 0, { timeoutMs: 2000, intervalMs: 5 });
    assert.equal(await within(conn.closed, 300), undefined, "still open: the token did not match");
    assert.equal(conn.isOpen, true);
  } finally {
    await other.close();
    await client.close();
  }
});

test("a connection closed by CONNECTION_CLOSE gets no stateless reset for late packets; an unknown one does", async () => {
  const server = await serverAt(SERVER, 0);
  const client = await QuicEndpoint.bind({
    ...transportOptions(testConfig()),
    host: LOCALHOST,
    port: 0,
    tls: { keyPem: CLIENT.keyPem, certPem: CLIENT.certPem },
  });
  const raw = createSocket("udp4");
  try {
    const conn = client.connect({ host: LOCALHOST, port: server.local.port });
    await bounded(conn.established, 5000, "QUIC handshake");
    const sconn = await waitFor("the server's connection", () => [...server.connections()][0]);
    await bounded(sconn.established, 5000, "the server's side");
    conn.close(0, "bye");
    await bounded(conn.closed, 5000, "the client's close");
    await bounded(sconn.closed, 5000, "the server's close");
    await new Promise<void>((r) => raw.bind(0, LOCALHOST, r));
    const replies: Buffer[] = [];
    raw.on("message", (m) => replies.push(m));
    // A short-header packet, as the closing peer's last ones were (RFC 9000 §17.3).
    const packetFor = (dcid: Uint8Array) => Buffer.concat([Buffer.from([0x40]), dcid, randomBytes(40)]);
    raw.send(packetFor(sconn.scid), server.local.port, LOCALHOST);
    assert.equal(
      await holdsWithin(() => replies.length > 0, 300),
      false,
      "a reset answered a closed connection's packet",
    );
    assert.equal(server.stats.resets, 0);
    raw.send(packetFor(randomBytes(16)), server.local.port, LOCALHOST);
    await waitFor("the reset for a connection the server never had", () => replies.length === 1, { timeoutMs: 2000 });
    assert.equal(server.stats.resets, 1);
  } finally {
    raw.close();
    await client.close();
    await server.close();
  }
});

/** A session whose path then vanishes (the forwarder between the two nodes closed), and its cleanup. */
async function sessionToSilentPeer(): Promise<{ s: Session; close: () => Promise<void> }> {
  const r = await startNodeResponder({ identity: SERVER });
  const me = await startNodeResponder({ identity: CLIENT });
  const fwd = await UdpForwarder.start({ server: r.addr });
  const close = async () => {
    await me.close();
    await r.close();
  };
  try {
    const s = await me.node.connectTo(fwd.address, { expectedNodeId: SERVER.nodeId });
    await fwd.close(); // the path is gone: nothing reaches either side, nothing says so
    return { s, close };
  } catch (e) {
    await close();
    throw e;
  }
}

test("a request on a session whose peer went silent fails within the probe time, not request_timeout", async () => {
  const { s, close } = await sessionToSilentPeer();
  try {
    const started = Date.now();
    const err = await s.request(messageFrame(CLIENT.nodeId, SERVER.nodeId), 10_000).then(
      () => assert.fail("answered over a dead path"),
      (e: unknown) => e,
    );
    const took = Date.now() - started;
    assert.ok(isAtlasError(err, "ERR_RESET"), `ERR_RESET, got ${(err as Error).message}`);
    assert.ok(took < LIVENESS_QUIET_MS + LIVENESS_PROBE_MS + 500, `failed after ${took} ms`);
    assert.equal(s.isOpen, false, "the dead session is closed, so the next attempt dials afresh");
    assert.equal(s.closeReason, "timeout");
  } finally {
    await close();
  }
});

test("every request waiting on a silent peer fails with ERR_RESET after one probe", async () => {
  const { s, close } = await sessionToSilentPeer();
  try {
    const started = Date.now();
    const errs = await Promise.all(
      [0, 1, 2].map((i) =>
        pause(i * 100).then(() => s.request(messageFrame(CLIENT.nodeId, SERVER.nodeId), 10_000)).then(
          () => assert.fail("answered over a dead path"),
          (e: unknown) => e,
        )
      ),
    );
    const took = Date.now() - started;
    for (const err of errs) assert.ok(isAtlasError(err, "ERR_RESET"), `ERR_RESET, got ${(err as Error).message}`);
    assert.ok(took < LIVENESS_QUIET_MS + LIVENESS_PROBE_MS + 500, `failed after ${took} ms`);
    assert.equal(s.isOpen, false);
  } finally {
    await close();
  }
});

test("a slow answer from a live peer is waited for: the probe's Pong keeps the session", async () => {
  const r = await startNodeResponder({ identity: SERVER });
  const me = await startNodeResponder({ identity: CLIENT });
  const slowMs = LIVENESS_QUIET_MS + 2 * LIVENESS_PROBE_MS + 500;
  r.node.handle("Message", async (_s, req) => {
    await pause(slowMs); // the subject: an answer slower than the liveness probe
    return { type: "MessageAck", msg_id: req.type === "Message" ? req.id : undefined, status: "received" };
  });
  try {
    const s = await me.node.connectTo(r.addr, { expectedNodeId: SERVER.nodeId });
    const res = await s.request(messageFrame(CLIENT.nodeId, SERVER.nodeId), 10_000);
    assert.equal(res.type, "MessageAck");
    assert.equal(s.isOpen, true);
    assert.ok(s.lastRttMs !== null, "the probe's Pong came back");
  } finally {
    await me.close();
    await r.close();
  }
});

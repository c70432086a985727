/**
 * Messaging between real in-process nodes on 127.0.0.1 with real store files (docs/protocol.md#messages Message /
 * MessageAck, §8 inbox/outbox/deliveries, §14 "nothing lost"): direct sends, de-duplication,
 * addressing checks, inbox limits, and the outbox worker's retry / refusal / expiry outcomes.
 */
import { after, describe, test } from "node:test";
import assert from "node:assert/strict";
import { freePort } from "./helpers/cli.ts";
import type { Config } from "../src/config/defaults.ts";
import { AtlasError, isAtlasError } from "../src/errors.ts";
import { type Identity, identityFromSeed } from "../src/identity/identity.ts";
import { generateSeed } from "../src/identity/keys.ts";
import {
  buildMessage,
  compactJson,
  isPermanentRefusal,
  newMessageId,
  normalizeBody,
  pruneInbox,
  sendDirect,
  serveInbox,
} from "../src/net/messaging.ts";
import { AtlasNode } from "../src/net/node.ts";
import { OutboxWorker } from "../src/net/outbox-worker.ts";
import type { Store } from "../src/store/index.ts";
import { FramedStream } from "../src/wire/framed-stream.ts";
import { addrOf, createTestnet } from "./helpers/testnet.ts";
import { holdsWithin, pause, waitFor } from "./helpers/wait.ts";
import { bounded, testConfig } from "./helpers/handshake-peer.ts";

const T = { timeout: 30_000 };
const now = () => Math.floor(Date.now() / 1000);
const net = createTestnet({ prefix: "atlas-msg-" });
const cleanups: (() => Promise<unknown>)[] = [];
after(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
  await net.destroy();
});

interface TestNode {
  node: AtlasNode;
  store: Store;
  identity: Identity;
  addr: string;
  close(): Promise<void>;
}

const newStore = () => net.store();

async function startNode(
  o: {
    identity?: Identity;
    store?: Store;
    listen?: boolean;
    port?: number;
    inbox?: boolean;
    configure?: (c: Config) => void;
  } = {},
): Promise<TestNode> {
  const node = await net.node(o);
  if (o.inbox !== false) serveInbox(node);
  return { node, store: node.store, identity: node.identity, addr: addrOf(node), close: () => node.close() };
}

const pinned = (n: { identity: Identity; addr: string }) => `${n.identity.nodeId}@${n.addr}`;

// ---------------------------------------------------------------------------------------------

describe("bodies and IDs", () => {
  test("newMessageId is msg_ + a lowercase UUIDv7, time-ordered", () => {
    const a = newMessageId();
    const b = newMessageId();
    assert.match(a, /^msg_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.ok(a < b);
  });

  test("normalizeBody keeps JSON verbatim and wraps anything else as a JSON string", () => {
    assert.equal(normalizeBody('{"n":12345678901234567890}'), '{"n":12345678901234567890}');
    assert.equal(normalizeBody(" [1, 2.50e3 ] "), " [1, 2.50e3 ] ");
    assert.equal(normalizeBody("42"), "42");
    assert.equal(normalizeBody("hello world"), '"hello world"');
    assert.equal(normalizeBody('{"a":'), '"{\\"a\\":"');
    assert.equal(normalizeBody(""), '""');
  });

  test("compactJson removes whitespace outside strings only, numbers untouched", () => {
    assert.equal(
      compactJson('{ "a b" : [ 1 ,\n 12345678901234567890 ],\t"c\\" d":"x y" }'),
      '{"a b":[1,12345678901234567890],"c\\" d":"x y"}',
    );
    assert.equal(compactJson('"\\\\" '), '"\\\\"');
  });

  test("permanent refusals vs retryable failures", () => {
    assert.equal(
      isPermanentRefusal(new AtlasError("ERR_RATE_LIMITED", "peer refused the handshake: banned until 5")),
      true,
    );
    assert.equal(
      isPermanentRefusal(new AtlasError("ERR_RATE_LIMITED", "peer answered with error 4001: rate limit exceeded")),
      false,
    );
    assert.equal(isPermanentRefusal(new AtlasError("ERR_INVALID_IDENTITY", "x")), true);
    assert.equal(isPermanentRefusal(new AtlasError("ERR_MESSAGE_REJECTED", "x")), true);
    assert.equal(isPermanentRefusal(new AtlasError("ERR_HANDSHAKE_FAILED", "peer rejected the handshake: nope")), true);
    assert.equal(isPermanentRefusal(new AtlasError("ERR_HANDSHAKE_FAILED", "clock drift of 900 s")), false);
    for (
      const c of [
        "ERR_UNREACHABLE",
        "ERR_TIMEOUT",
        "ERR_RESET",
        "ERR_INTERNAL",
        "ERR_STORE",
        "ERR_HANDSHAKE_TIMEOUT",
      ] as const
    ) {
      assert.equal(isPermanentRefusal(new AtlasError(c, "x")), false, c);
    }
  });
});

describe("direct delivery between two nodes", () => {
  test(
    "sendDirect: acked, stored once with the exact body text; a re-send is acked again and stored once",
    T,
    async () => {
      const b = await startNode();
      const a = await startNode({ listen: false, inbox: false });
      const body = '{"n":12345678901234567890, "f": 1.50, "s":"\\u00e9"}';
      const r = await bounded(sendDirect(a.node, pinned(b), body, { topic: "chat" }), 10_000, "send");
      assert.equal(r.ack.status, "received");
      assert.equal(r.ack.msg_id, r.msgId);
      assert.equal(r.session.nodeId, b.identity.nodeId);
      let rows = await b.store.inbox.list();
      assert.equal(rows.length, 1);
      assert.equal(rows[0]!.body, body, "body stored byte for byte");
      assert.deepEqual(
        {
          id: rows[0]!.id,
          from: rows[0]!.from_id,
          to: rows[0]!.to_id,
          topic: rows[0]!.topic,
          reply_to: rows[0]!.reply_to,
        },
        { id: r.msgId, from: a.identity.nodeId, to: b.identity.nodeId, topic: "chat", reply_to: null },
      );
      assert.ok(Math.abs(rows[0]!.received_at - now()) < 5);

      const again = await sendDirect(a.node, pinned(b), body, { msgId: r.msgId, topic: "chat" });
      assert.equal(again.ack.status, "received");
      assert.equal(again.reused, true, "the live session is reused");
      rows = await b.store.inbox.list();
      assert.equal(rows.length, 1, "a re-delivery is stored once");

      const reply = await sendDirect(a.node, b.identity.nodeId.slice(0, 20), normalizeBody("plain text"), {
        replyTo: r.msgId,
      });
      rows = await b.store.inbox.list();
      assert.equal(rows.length, 2);
      assert.equal(rows[1]!.id, reply.msgId);
      assert.equal(rows[1]!.body, '"plain text"', "a non-JSON body arrives as a JSON string");
      assert.equal(rows[1]!.reply_to, r.msgId);
    },
  );

  test("a Message whose from or to does not match the session is refused with 2003 and not stored", T, async () => {
    const b = await startNode();
    const a = await startNode({ listen: false, inbox: false });
    const { session } = await sendDirect(a.node, pinned(b), "1");
    const other = identityFromSeed(generateSeed()).nodeId;
    const raw = async (m: { from: string; to: string }) => {
      const fs = new FramedStream(session.conn.openStream());
      const id = newMessageId();
      await fs.end({ type: "Message", id, timestamp: now(), body: "{}", ...m });
      return { id, res: await fs.read(5000) };
    };
    const badTo = await raw({ from: a.identity.nodeId, to: other });
    assert.equal(badTo.res?.type, "Error");
    assert.ok(badTo.res?.type === "Error" && badTo.res.code === 2003 && badTo.res.ref_msg_id === badTo.id);
    assert.match(badTo.res.type === "Error" ? badTo.res.message : "", /addressed to atlas_/);
    const badFrom = await raw({ from: other, to: b.identity.nodeId });
    assert.ok(badFrom.res?.type === "Error" && badFrom.res.code === 2003 && badFrom.res.ref_msg_id === badFrom.id);
    assert.match(badFrom.res.type === "Error" ? badFrom.res.message : "", /not the sender's verified node ID/);
    assert.equal((await b.store.inbox.list()).length, 1, "only the first, valid message");
  });

  test("a store failure is answered with Error 5001 (the receiver keeps running)", T, async () => {
    const b = await startNode();
    const a = await startNode({ listen: false, inbox: false });
    const insert = b.store.inbox.insertSeq;
    b.store.inbox.insertSeq = () => Promise.reject(new AtlasError("ERR_STORE", "disk full"));
    try {
      await assert.rejects(
        sendDirect(a.node, pinned(b), "{}"),
        (e) => isAtlasError(e, "ERR_INTERNAL") && /5001/.test(e.message),
      );
    } finally {
      b.store.inbox.insertSeq = insert;
    }
    const ok = await sendDirect(a.node, pinned(b), "{}");
    assert.equal(ok.ack.status, "received");
  });

  test("a peer that does not serve messages refuses with ERR_MESSAGE_REJECTED, exit 4", T, async () => {
    const b = await startNode({ inbox: false });
    const a = await startNode({ listen: false, inbox: false });
    await assert.rejects(
      sendDirect(a.node, pinned(b), "{}"),
      (e) => isAtlasError(e, "ERR_MESSAGE_REJECTED") && e.exit === 4,
    );
  });

  test("no MessageAck within transport.request_timeout is ERR_TIMEOUT, exit 5", T, async () => {
    const b = await startNode({ inbox: false });
    b.node.handle("Message", () => new Promise(() => {})); // never answers
    const a = await startNode({ listen: false, inbox: false, configure: (c) => (c.transport.request_timeout = 0.5) });
    await assert.rejects(
      sendDirect(a.node, pinned(b), "{}"),
      (e) => isAtlasError(e, "ERR_TIMEOUT") && e.exit === 5 && /no MessageAck/.test(e.message),
    );
  });

  test("an unreachable target is ERR_UNREACHABLE, exit 3", T, async () => {
    const a = await startNode({ listen: false, inbox: false, configure: (c) => (c.transport.dial_timeout = 0.5) });
    await assert.rejects(
      sendDirect(a.node, `127.0.0.1:${await freePort()}`, "{}"),
      (e) => isAtlasError(e) && e.exit === 3,
    );
  });

  test("past inbox.max_per_peer a sender's oldest messages are pruned and other senders' kept", T, async () => {
    const b = await startNode({ configure: (c) => (c.inbox.max_per_peer = 3) });
    const a = await startNode({ listen: false, inbox: false });
    const c = await startNode({ listen: false, inbox: false });
    await sendDirect(c.node, pinned(b), '"from c"');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await sendDirect(a.node, pinned(b), String(i))).msgId);
    const fromA = await b.store.inbox.list({ from: a.identity.nodeId });
    assert.deepEqual(fromA.map((r) => r.id), ids.slice(2));
    assert.equal((await b.store.inbox.list({ from: c.identity.nodeId })).length, 1);
  });

  test("pruneInbox removes messages older than retention_days and beyond max_per_peer", T, async () => {
    const store = await newStore();
    const cfg = testConfig((c) => {
      c.inbox.retention_days = 30;
      c.inbox.max_per_peer = 2;
    });
    const t = now();
    const A = "atlas_" + "a".repeat(64);
    const B = "atlas_" + "b".repeat(64);
    const put = (from: string, received_at: number) =>
      store.inbox.insert({
        id: newMessageId(),
        from_id: from,
        to_id: B,
        timestamp: received_at,
        body: "{}",
        received_at,
      });
    await put(A, t - 31 * 86400); // too old
    await put(A, t - 29 * 86400);
    await put(A, t - 10);
    await put(A, t);
    await put(B, t - 40 * 86400); // too old
    await put(B, t);
    const r = await pruneInbox(store, cfg, t);
    assert.deepEqual(r, { expired: 2, excess: 1 });
    const left = await store.inbox.list();
    assert.deepEqual(left.map((x) => [x.from_id, x.received_at]), [[A, t - 10], [A, t], [B, t]]);
  });
});

test("a Message that arrives while a starting node has no handler yet waits for it instead of being refused", async () => {
  // A daemon listens before its parts plug in their handlers: a sender's queued Message could come
  // in between, and "unsupported request" (2003) is final for an outbox: the message was lost.
  const receiver = await net.node({ holdRequests: true });
  const sender = await net.node();
  const session = await sender.connectTo(receiver.endpoint.local);
  const msg = buildMessage(sender, receiver.nodeId, normalizeBody('{"early":true}'));
  let answer: string | null = null;
  const reply = session.request(msg, 10_000).then((r) => (answer = r.type));
  // the request reaches the receiver, which has no Message handler yet: no answer meanwhile
  assert.equal(await holdsWithin(() => answer !== null, 300), false, "no answer while requests are held");
  serveInbox(receiver);
  receiver.openRequests();
  await bounded(reply, 5000, "the MessageAck");
  assert.equal(answer, "MessageAck");
  assert.equal((await receiver.store.inbox.list()).length, 1);
});

describe("outbox worker", () => {
  const fast = (c: Config) => {
    c.transport.dial_timeout = 0.5;
    c.outbox.poll_interval_ms = 50;
    c.outbox.backoff_initial = 0.2;
    c.outbox.backoff_max = 1;
  };

  async function queue(store: Store, target: string, body: string, ttl = 60): Promise<string> {
    const id = newMessageId();
    const t = now();
    await store.outbox.enqueue({ id, target, body, created_at: t, expires_at: t + ttl, topic: "q" });
    return id;
  }

  test("a message queued while the target is down is delivered exactly once after it starts", T, async () => {
    const port = await freePort();
    const bId = identityFromSeed(generateSeed());
    const a = await startNode({ listen: false, inbox: false, configure: fast });
    const id = await queue(a.store, `${bId.nodeId}@127.0.0.1:${port}`, '{"n":12345678901234567890}');
    const w = new OutboxWorker(a.node);
    w.start();
    cleanups.push(() => w.stop());
    await waitFor("a failed attempt", async () => ((await a.store.outbox.get(id))?.attempts ?? 0) >= 1);
    const b = await startNode({ identity: bId, port });
    const d = await waitFor("delivery", async () => (await a.store.deliveries.list({ msgId: id }))[0], {
      timeoutMs: 15_000,
    });
    await w.stop();
    assert.equal(d.status, "delivered");
    assert.ok(d.attempts > 1, `attempts ${d.attempts}`);
    assert.equal(d.path, "direct");
    assert.equal(d.target, `${bId.nodeId}@127.0.0.1:${port}`);
    assert.equal(await a.store.outbox.count(), 0);
    const rows = await b.store.inbox.list();
    assert.equal(rows.length, 1);
    assert.deepEqual([rows[0]!.id, rows[0]!.body, rows[0]!.topic, rows[0]!.from_id], [
      id,
      '{"n":12345678901234567890}',
      "q",
      a.identity.nodeId,
    ]);
  });

  test("many messages to a few targets are each delivered exactly once, in order per target", T, async () => {
    const b = await startNode();
    const c = await startNode();
    const a = await startNode({ listen: false, inbox: false, configure: fast });
    // the peer records let the worker dial by node ID
    await a.store.peers.upsert({ node_id: b.identity.nodeId, address: b.addr });
    await a.store.peers.upsert({ node_id: c.identity.nodeId, address: c.addr });
    const sent: Record<string, string[]> = { b: [], c: [] };
    for (let i = 0; i < 10; i++) {
      sent.b!.push(await queue(a.store, b.identity.nodeId, String(i)));
      sent.c!.push(await queue(a.store, c.addr, String(i))); // a bare address target
    }
    const w = new OutboxWorker(a.node);
    w.start();
    cleanups.push(() => w.stop());
    await waitFor("all delivered", async () => (await a.store.outbox.count()) === 0, { timeoutMs: 15_000 });
    await w.stop();
    const ds = await a.store.deliveries.list({ limit: 100 });
    assert.equal(ds.length, 20);
    assert.ok(ds.every((d) => d.status === "delivered" && d.attempts === 1));
    assert.deepEqual((await b.store.inbox.list()).map((r) => r.id), sent.b);
    assert.deepEqual((await c.store.inbox.list()).map((r) => r.id), sent.c);
    assert.match(ds.find((d) => d.target === c.addr)!.detail ?? "", new RegExp(`to ${c.identity.nodeId}`));
  });

  test(
    "a backlog to one target goes several at a time, beyond the receiver's stream credit, and is stored in queue order",
    T,
    async () => {
      const unlimited = (c: Config) => {
        for (const tier of Object.values(c.rate_limit)) {
          tier.per_second = 1e6;
          tier.per_minute = 1e8;
          tier.bytes_per_minute = 1e12;
        }
      };
      // The receiver grants 4 streams at a time, the sender's window is 32: requests must wait
      // for credit in order rather than fail and be retried out of order.
      const b = await startNode({
        configure: (c) => {
          unlimited(c);
          c.transport.max_streams_per_conn = 4;
        },
      });
      const a = await startNode({
        listen: false,
        inbox: false,
        configure: (c) => {
          fast(c);
          unlimited(c);
        },
      });
      const N = 200;
      const sent: string[] = [];
      for (let i = 0; i < N; i++) sent.push(await queue(a.store, pinned(b), String(i)));
      const w = new OutboxWorker(a.node);
      w.start();
      cleanups.push(() => w.stop());
      let peak = 0;
      await waitFor("the backlog delivered", async () => {
        peak = Math.max(peak, w.inFlight);
        return (await a.store.outbox.count()) === 0;
      }, { timeoutMs: 20_000, intervalMs: 5 });
      await w.stop();
      assert.ok(peak > 1, `several messages in flight at once (peak ${peak})`);
      const ds = await a.store.deliveries.list({ limit: N + 10 });
      assert.equal(ds.length, N);
      assert.ok(ds.every((d) => d.status === "delivered" && d.attempts === 1), "each delivered at the first attempt");
      assert.deepEqual((await b.store.inbox.list({ limit: N + 10 })).map((r) => r.id), sent, "inbox in queue order");
    },
  );

  test("a message to a peer that bans the sender fails once and is not retried", T, async () => {
    const b = await startNode();
    const a = await startNode({ listen: false, inbox: false, configure: fast });
    await b.store.peers.setBan(a.identity.nodeId, now() + 600);
    const id = await queue(a.store, pinned(b), "{}");
    const w = new OutboxWorker(a.node);
    w.start();
    cleanups.push(() => w.stop());
    const d = await waitFor("failure", async () => (await a.store.deliveries.list({ msgId: id }))[0]);
    await pause(500); // room for a retry that must not happen
    await w.stop();
    assert.equal(d.status, "failed");
    assert.equal(d.attempts, 1);
    assert.match(d.detail ?? "", /banned/);
    assert.equal(await a.store.outbox.count(), 0);
    assert.equal((await a.store.deliveries.list({ msgId: id })).length, 1, "one outcome, not retried");
    assert.equal((await b.store.inbox.list()).length, 0);
  });

  test("a message that cannot be delivered within its ttl ends expired", T, async () => {
    const a = await startNode({ listen: false, inbox: false, configure: fast });
    const dead = `${identityFromSeed(generateSeed()).nodeId}@127.0.0.1:${await freePort()}`;
    const id = await queue(a.store, dead, "{}", 2);
    const stale = newMessageId(); // already past its expiry when the worker starts
    await a.store.outbox.enqueue({
      id: stale,
      target: dead,
      body: "{}",
      created_at: now() - 100,
      expires_at: now() - 1,
    });
    const w = new OutboxWorker(a.node);
    w.start();
    cleanups.push(() => w.stop());
    const d = await waitFor("expiry", async () => (await a.store.deliveries.list({ msgId: id }))[0], {
      timeoutMs: 15_000,
    });
    await w.stop();
    assert.equal(d.status, "expired");
    assert.ok(d.attempts >= 1);
    const s = (await a.store.deliveries.list({ msgId: stale }))[0];
    assert.equal(s?.status, "expired");
    assert.equal(s?.attempts, 0);
    assert.equal(await a.store.outbox.count(), 0);
  });

  test("a row left delivering by a crash is queued again at start and delivered", T, async () => {
    const b = await startNode();
    const a = await startNode({ listen: false, inbox: false, configure: fast });
    const id = await queue(a.store, pinned(b), "[]");
    assert.equal(await a.store.outbox.markDelivering(id), true); // as if the daemon died mid-attempt
    const w = new OutboxWorker(a.node);
    w.start();
    cleanups.push(() => w.stop());
    const d = await waitFor("delivery", async () => (await a.store.deliveries.list({ msgId: id }))[0]);
    await w.stop();
    assert.equal(d.status, "delivered");
    assert.equal((await b.store.inbox.list()).length, 1);
  });

  test("stop() ends polling promptly", T, async () => {
    const a = await startNode({ listen: false, inbox: false, configure: fast });
    const w = new OutboxWorker(a.node);
    w.start();
    w.kick();
    const t0 = Date.now();
    await w.stop();
    assert.ok(Date.now() - t0 < 1500);
    const id = await queue(a.store, "atlas_" + "c".repeat(64), "{}");
    await pause(300); // room for an attempt that must not happen
    assert.equal((await a.store.outbox.get(id))?.attempts, 0, "nothing attempted after stop");
  });
});

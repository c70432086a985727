/**
 * Pipelined requests (docs/protocol.md#pipelined-requests): requests made while another waits share
 * one stream and are answered in order; the responder reads a bounded number ahead; old peers,
 * errors, refusals, deadlines, rate limits and the inbox's order. Real nodes with real QUIC on
 * 127.0.0.1 (the in-process testnet).
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { isAtlasError, ProtocolCode } from "../src/errors.ts";
import type { Config } from "../src/config/defaults.ts";
import { serveInbox } from "../src/net/messaging.ts";
import type { AtlasNode } from "../src/net/node.ts";
import { PIPE_READ_AHEAD, PIPELINE_FEATURE } from "../src/net/pipeline/constants.ts";
import { RequestPipe } from "../src/net/pipeline/request-pipe.ts";
import type { Session } from "../src/net/session.ts";
import type { QuicStream } from "../src/transport/stream.ts";
import { encodeFrame } from "../src/wire/frame.ts";
import { FramedStream } from "../src/wire/framed-stream.ts";
import type { WireMessage } from "../src/wire/messages.ts";
import { messageFrame } from "./helpers/handshake-peer.ts";
import { createTestnet } from "./helpers/testnet.ts";
import { holdsWithin, pause, waitFor } from "./helpers/wait.ts";

const net = createTestnet({
  prefix: "atlas-pipeline-",
  configure: (c) => (c.rate_limit.unknown = { per_second: 10_000, per_minute: 100_000, bytes_per_minute: 1e9 }),
});
after(() => net.destroy());

/** One request as the server's handler saw it. */
interface Seen {
  body: string;
  stream: number;
  shared: boolean;
}

interface Pair {
  server: AtlasNode;
  client: AtlasNode;
  /** The client's session with the server. */
  s: Session;
  seen: Seen[];
  /** Handlers running now, and the most that ever ran at once. */
  running: { now: number; max: number };
}

/**
 * A server answering every Message with a MessageAck (after `hold(body)` settles, if given; Error
 * 2003 for the body "fail"), and a client with a session to it whose VerifyAck is in.
 */
async function pair(o: {
  server?: { pipeline?: boolean; configure?: (c: Config) => void };
  client?: { pipeline?: boolean };
  hold?: (body: string) => Promise<void> | undefined;
} = {}): Promise<Pair> {
  const server = await net.node({ ...o.server });
  const seen: Seen[] = [];
  const running = { now: 0, max: 0 };
  server.handle("Message", async (_s, req, stream, shared) => {
    if (req.type !== "Message") return null;
    seen.push({ body: JSON.parse(req.body), stream: stream.id, shared });
    running.max = Math.max(running.max, ++running.now);
    try {
      await o.hold?.(JSON.parse(req.body));
    } finally {
      running.now--;
    }
    if (req.body === '"fail"') return { type: "Error", code: ProtocolCode.ERR_MESSAGE_REJECTED, message: "no" };
    return { type: "MessageAck", msg_id: req.id, status: "received" };
  });
  const client = await net.node({ listen: false, ...o.client });
  const s = await client.connectTo(server.endpoint.local, { expectedNodeId: server.nodeId });
  await s.ping(5_000); // VerifyAck is in: no request waits for it
  return { server, client, s, seen, running };
}

const message = (p: Pair, body: string) => messageFrame(p.client.nodeId, p.server.nodeId, JSON.stringify(body));

/**
 * Send one Message per body at once; each result is the acknowledged msg_id or the error's code,
 * and when it came.
 */
function burst(p: Pair, bodies: string[], timeoutMs = 5_000): Promise<{ sent: string; got: string; at: number }[]> {
  return Promise.all(bodies.map(async (body) => {
    const m = message(p, body);
    try {
      const res = await p.s.request(m, timeoutMs);
      return { sent: m.id, got: res.type === "MessageAck" ? res.msg_id ?? "" : res.type, at: Date.now() };
    } catch (e) {
      return { sent: m.id, got: isAtlasError(e) ? e.code : String(e), at: Date.now() };
    }
  }));
}

const names = (n: number, tag = "m") => Array.from({ length: n }, (_, i) => `${tag}${i}`);
const streamsOf = (seen: Seen[]) => [...new Set(seen.map((x) => x.stream))];

/** Only the control stream left on both ends: every request stream finished both ways. */
async function settled(p: Pair): Promise<void> {
  const inbound = () => p.server.liveSession(p.client.nodeId);
  await waitFor(
    "both ends' request streams to finish",
    () => p.s.conn.streamCount === 1 && inbound()?.conn.streamCount === 1,
    {
      lastSeen: () => [p.s.conn.streamCount, inbound()?.conn.streamCount],
    },
  );
}

test("both ends advertise pipeline/1; a node made without it does not", async () => {
  const p = await pair();
  assert.ok(p.s.peer.features.includes(PIPELINE_FEATURE), "the responder's HelloAck");
  assert.ok(p.server.liveSession(p.client.nodeId)!.peer.features.includes(PIPELINE_FEATURE), "the initiator's Hello");
  assert.equal(p.s.pipelined, true);
  const old = await pair({ server: { pipeline: false } });
  assert.deepEqual(old.s.peer.features, []);
  assert.equal(old.s.pipelined, false);
});

test("requests made while another waits share one stream, each answered with its own answer", async () => {
  const p = await pair();
  const results = await burst(p, names(8));
  for (const r of results) assert.equal(r.got, r.sent, "each request gets the answer to its own Message");
  const [own, pipe, ...more] = streamsOf(p.seen);
  assert.equal(more.length, 0, `two streams, got ${JSON.stringify(p.seen)}`);
  assert.deepEqual(p.seen.filter((x) => x.stream === own).map((x) => [x.body, x.shared]), [["m0", false]]);
  assert.deepEqual(p.seen.filter((x) => x.stream === pipe).map((x) => x.body), names(8).slice(1), "in send order");
  assert.deepEqual(p.seen.filter((x) => x.stream === pipe).map((x) => x.shared), [false, ...Array(6).fill(true)]);
  await settled(p);
});

test("a pipe ends once nothing waits, and the next burst opens a new one", async () => {
  const p = await pair();
  await burst(p, names(4, "a"));
  await settled(p);
  await burst(p, names(4, "b"));
  const [, firstPipe, secondOwn, secondPipe] = streamsOf(p.seen);
  assert.equal(streamsOf(p.seen).length, 4);
  assert.ok(firstPipe! < secondOwn! && secondOwn! < secondPipe!, "new streams, in order");
  await settled(p);
});

test("a pipe's requests are handled at once and answered in order, behind a slow one", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  const p = await pair({ hold: (body) => body === "m2" ? gate : undefined });
  const results = burst(p, names(6));
  await waitFor("the requests behind the held one to be handled", () => p.seen.length === 6);
  assert.equal(p.running.now, 1, "while m2 is still held");
  const releasedAt = Date.now();
  release();
  const r = await results;
  for (const x of r) assert.equal(x.got, x.sent);
  assert.ok(r.slice(3).every((x) => x.at >= releasedAt), "answers behind the held one wait for it");
});

test("the responder reads at most PIPE_READ_AHEAD requests ahead of its answers", async () => {
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  // m0 goes on a stream of its own, m1 opens the pipe (a stream's first request is handled before
  // more is read: its handler may own the stream), then the pipe reads ahead.
  const p = await pair({ hold: (body) => body === "m0" || body === "m1" ? undefined : gate });
  const results = burst(p, names(2 + 3 * PIPE_READ_AHEAD));
  await waitFor("the pipe's read-ahead to fill", () => p.running.now === PIPE_READ_AHEAD);
  assert.ok(await holdsWithin(() => p.seen.length === 2 + PIPE_READ_AHEAD, 300), `${p.seen.length} handled`);
  release();
  for (const r of await results) assert.equal(r.got, r.sent);
  assert.equal(p.running.max, PIPE_READ_AHEAD);
});

test("a peer without pipeline/1 gets a stream per request, either way round", async () => {
  for (const o of [{ server: { pipeline: false } }, { client: { pipeline: false } }]) {
    const p = await pair(o);
    for (const r of await burst(p, names(6))) assert.equal(r.got, r.sent);
    assert.equal(streamsOf(p.seen).length, 6, JSON.stringify(o));
    assert.ok(p.seen.every((x) => !x.shared));
    await settled(p);
  }
});

test("an Error answers its own request on a pipe; the requests around it are answered", async () => {
  const p = await pair();
  const results = await burst(p, ["m0", "m1", "fail", "m3"]);
  assert.deepEqual(results.map((r) => r.got === r.sent ? "ack" : r.got), ["ack", "ack", "ERR_MESSAGE_REJECTED", "ack"]);
  assert.equal(streamsOf(p.seen).length, 2, "the third went on the pipe");
  await settled(p);
});

test("a request on a pipe that gets no answer in time fails with ERR_TIMEOUT and drops the session", async () => {
  const p = await pair({ hold: () => pause(3_000) });
  const first = p.s.request(message(p, "m0"), 5_000).catch((e: unknown) => e);
  const started = Date.now();
  const err = await p.s.request(message(p, "m1"), 300).then(() => assert.fail("answered"), (e: unknown) => e);
  assert.ok(isAtlasError(err, "ERR_TIMEOUT"), `ERR_TIMEOUT, got ${(err as Error).message}`);
  assert.ok(Date.now() - started < 1_500, `after ${Date.now() - started} ms`);
  assert.equal(p.s.isOpen, false);
  assert.equal(p.s.closeReason, "timeout");
  assert.ok(isAtlasError(await first, "ERR_RESET") || isAtlasError(await first, "ERR_CLOSED"));
});

test("rate limits count every request of a pipe: the excess is refused 4001, the pipe goes on", async () => {
  const p = await pair({
    server: {
      configure: (c) => {
        c.rate_limit.unknown.per_second = 4;
        c.security.ban_violations = 1_000;
      },
    },
  });
  const results = await burst(p, names(10));
  const got = results.map((r) => r.got === r.sent ? "ack" : r.got);
  assert.ok(got.every((g) => g === "ack" || g === "ERR_RATE_LIMITED"), got.join(" "));
  assert.ok(got.filter((g) => g === "ack").length <= 5, got.join(" "));
  assert.equal(got.at(-1), "ERR_RATE_LIMITED", "the last one is refused, not lost");
  assert.equal(p.s.isOpen, true);
  await settled(p);
});

/** The client writes `frames` back to back on a stream it then ends, and reads every answer. */
async function rawPipe(p: Pair, frames: (WireMessage | Uint8Array)[]): Promise<(WireMessage | null)[]> {
  const fs = new FramedStream(p.s.conn.openStream());
  for (const f of frames) await fs.stream.write(f instanceof Uint8Array ? f : encodeFrame(f)).catch(() => {});
  await fs.stream.end().catch(() => {}); // refused: the responder stopped reading
  const answers: (WireMessage | null)[] = [];
  for (let a = await fs.read(5_000); a !== null; a = await fs.read(5_000)) answers.push(a);
  return answers;
}

test("a request needing a stream of its own is refused 2003 on a pipe, and the pipe goes on", async () => {
  const p = await pair();
  let offers = 0;
  p.server.handle("PunchOffer", () => Promise.resolve((offers++, null)));
  const offer: WireMessage = { type: "PunchOffer", nonce: new Uint8Array(12), candidates: [], attempt: 1 };
  const answers = await rawPipe(p, [message(p, "m0"), offer, message(p, "m2")]);
  assert.deepEqual(answers.map((a) => a?.type), ["MessageAck", "Error", "MessageAck"]);
  const refusal = answers[1] as Extract<WireMessage, { type: "Error" }>;
  assert.equal(refusal.code, ProtocolCode.ERR_MESSAGE_REJECTED);
  assert.match(refusal.message, /PunchOffer needs a stream of its own/);
  assert.equal(offers, 0);
});

test("a malformed frame on a pipe is refused after the answers before it, and ends the pipe", async () => {
  const p = await pair({ hold: (body) => body === "m1" ? pause(200) : undefined });
  const garbage = new Uint8Array([0xac, 0x01, 0x01, 0x10, 0, 0, 0, 3, 0xff, 0xff, 0xff]); // a Message that is no map
  const answers = await rawPipe(p, [message(p, "m0"), message(p, "m1"), garbage, message(p, "m3")]);
  assert.deepEqual(answers.map((a) => a?.type), ["MessageAck", "MessageAck", "Error"]);
  assert.equal((answers[2] as Extract<WireMessage, { type: "Error" }>).code, ProtocolCode.ERR_MESSAGE_REJECTED);
  assert.deepEqual(p.seen.map((x) => x.body), ["m0", "m1"], "nothing after the malformed frame is handled");
  assert.equal(p.s.isOpen, true, "the session goes on");
});

test("Messages pipelined to an inbox are stored in the order they were sent", async () => {
  const p = await pair();
  serveInbox(p.server);
  const sent: string[] = [];
  await Promise.all(
    names(24).map((body) => {
      const m = message(p, body);
      sent.push(m.id);
      return p.s.request(m, 5_000);
    }),
  );
  const stored = await p.server.store.inbox.list({ from: p.client.nodeId });
  assert.deepEqual(stored.map((r) => r.id), sent);
});

test("a handler that fails on a pipe gets its request Error 5001; the others are answered", async () => {
  const failing = new Set(["m1", "m3"]); // m1 is the pipe's first request, m3 one read ahead
  const p = await pair({ hold: (body) => failing.has(body) ? Promise.reject(new Error("handler bug")) : undefined });
  const results = await burst(p, names(5));
  assert.deepEqual(results.map((r) => r.got === r.sent ? "ack" : r.got), [
    "ack",
    "ERR_INTERNAL",
    "ack",
    "ERR_INTERNAL",
    "ack",
  ]);
  assert.equal(streamsOf(p.seen).length, 2);
  await settled(p);
});

test("requests made while a pipe's stream is being opened are written in the order they were made", async () => {
  const p = await pair();
  let open!: (s: QuicStream) => void;
  const stream = new Promise<QuicStream>((r) => (open = r));
  const host = { watch() {}, unwatch() {}, heard() {}, timedOut() {}, retired() {} };
  const pipe = new RequestPipe(host, stream);
  const sent = ["a", "b", "c"].map((body) => message(p, body));
  const a = pipe.request(sent[0]!, 5_000);
  const b = pipe.request(sent[1]!, 5_000);
  // Made in the first moment the stream exists (the callback right after the pipe's own): it must
  // not overtake the two made before.
  const c = stream.then(() => pipe.request(sent[2]!, 5_000));
  open(p.s.conn.openStream());
  const acked = (await Promise.all([a, b, c])).map((res) => res.type === "MessageAck" ? res.msg_id : res.type);
  assert.deepEqual(acked, sent.map((m) => m.id));
  assert.deepEqual(p.seen.map((x) => x.body), ["a", "b", "c"]);
});

/**
 * The streaming local API (docs/protocol.md#control-socket): `subscribe` on a real daemon's control
 * socket pushes stored messages and session events, resumes from a seq, and holds back for a
 * client that stops reading without growing the daemon's memory; `net inbox --follow` rides it.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { connect, type Socket } from "node:net";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { spawn } from "node:child_process";
import { atlasCommand, cleanupAll, initHome, type Listener, NO_STUN, runAtlas, startListener } from "./helpers/cli.ts";
import { createTestnet, pinnedTarget } from "./helpers/testnet.ts";
import { waitFor } from "./helpers/wait.ts";
import { sendDirect, serveInbox } from "../src/net/messaging.ts";
import type { AtlasNode } from "../src/net/node.ts";
import { MAX_BODY_BYTES } from "../src/net/messaging.ts";

/** Rate limits out of the way: these tests send thousands of messages from one peer. */
const UNLIMITED = NO_STUN +
  "[rate_limit.unknown]\nper_second = 1000000\nper_minute = 10000000\nbytes_per_minute = 100000000000\n";

/** A raw control-socket client: the reply line, then every pushed line, read only while not paused. */
class RawSub {
  lines: string[] = [];
  reply: Record<string, unknown> | null = null;
  private buf = "";
  constructor(readonly s: Socket) {
    s.setEncoding("utf8");
    s.on("data", (d: string) => {
      this.buf += d;
      let nl: number;
      while ((nl = this.buf.indexOf("\n")) >= 0) {
        const line = this.buf.slice(0, nl);
        this.buf = this.buf.slice(nl + 1);
        if (this.reply === null) this.reply = JSON.parse(line);
        else this.lines.push(line);
      }
    });
  }
  static async open(sock: string, args: Record<string, unknown>): Promise<RawSub> {
    const s = connect(sock);
    const sub = new RawSub(s);
    s.write(JSON.stringify({ v: 1, op: "subscribe", args }) + "\n");
    await waitFor("the subscribe reply", () => sub.reply);
    return sub;
  }
  messages(): { seq: number; id: string; body: unknown }[] {
    return this.lines.map((l) => JSON.parse(l)).filter((p) => p.push === "message").map((p) => p.message);
  }
  events(): { event: string; node_id: string; session: unknown; reason: string | null }[] {
    return this.lines.map((l) => JSON.parse(l)).filter((p) => p.push === "event").map((p) => p.event);
  }
}

async function subscribersOf(home: string): Promise<number> {
  const r = await runAtlas(["--json", "status"], { home });
  return JSON.parse(r.stdout).subscribers ?? 0;
}

async function rssKiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, "utf8"));
  return Number(m![1]);
}

/** Send `n` messages from `node` to `target`, `inFlight` at a time; returns their IDs in order of sending. */
async function sendMany(node: AtlasNode, target: string, n: number, body: string, inFlight = 16): Promise<string[]> {
  const ids: string[] = new Array(n);
  let next = 0;
  const worker = async () => {
    while (next < n) {
      const i = next++;
      ids[i] = (await sendDirect(node, target, body)).msgId;
    }
  };
  // One session first: sixteen dials at once would race each other (one session per peer).
  if (n > 0) ids[next++] = (await sendDirect(node, target, body)).msgId;
  await Promise.all(Array.from({ length: inFlight }, worker));
  return ids;
}

describe("subscribe on a running daemon", () => {
  const net = createTestnet();
  let alpha: { home: string; nodeId: string };
  let daemon: Listener;
  let sender: AtlasNode;
  let target: string;
  let sock: string;

  before(async () => {
    alpha = await initHome("alpha");
    await writeFile(join(alpha.home, "state", "config.toml"), UNLIMITED);
    daemon = await startListener(alpha.home, [], { cmd: ["daemon"] });
    sock = join(alpha.home, "state", "daemon.sock");
    sender = await net.node({ name: "sender" });
    target = `${alpha.nodeId}@${daemon.address}`;
  });
  after(async () => {
    await net.destroy();
    await cleanupAll();
  });

  test("a subscriber gets each message the daemon stores, in seq order, body verbatim", async () => {
    const sub = await RawSub.open(sock, {});
    const { msgId } = await sendDirect(sender, target, '{"big":12345678901234567890123}');
    await waitFor("the pushed message", () => sub.messages().length === 1);
    const line = sub.lines[0]!;
    assert.ok(line.includes('"body":{"big":12345678901234567890123}'), line);
    assert.equal(sub.messages()[0]!.id, msgId);
    assert.equal(sub.messages()[0]!.seq, (sub.reply!.result as { seq: number }).seq + 1);
    sub.s.destroy();
  });

  test("a subscription from a seq replays what was stored after it, then goes on live", async () => {
    const first = await RawSub.open(sock, {});
    const ids = await sendMany(sender, target, 5, '"replay"', 1);
    await waitFor("five pushed messages", () => first.messages().length === 5);
    first.s.destroy();
    const third = first.messages()[2]!.seq;
    const resumed = await RawSub.open(sock, { after: third });
    await waitFor("the two after it", () => resumed.messages().length === 2);
    assert.deepEqual(resumed.messages().map((m) => m.id), ids.slice(3));
    const [late] = await sendMany(sender, target, 1, '"late"', 1);
    await waitFor("the live one", () => resumed.messages().length === 3);
    assert.equal(resumed.messages()[2]!.id, late);
    resumed.s.destroy();
  });

  test("a reading subscriber gets every message of a concurrent burst once, in seq order", async () => {
    const sub = await RawSub.open(sock, {});
    const ids = await sendMany(sender, target, 500, '"burst"', 16);
    await waitFor("500 pushed messages", () => sub.messages().length >= 500);
    const got = sub.messages();
    assert.deepEqual(got.map((m) => m.id).sort(), ids.slice().sort());
    assert.ok(got.every((m, i) => i === 0 || m.seq > got[i - 1]!.seq), "in seq order");
    sub.s.destroy();
  });

  test("replies: true pushes only messages that answer another", async () => {
    const sub = await RawSub.open(sock, { replies: true });
    await sendDirect(sender, target, '"not a reply"');
    const replyTo = "msg_0193a1b2-0000-7000-8000-000000000001";
    const { msgId } = await sendDirect(sender, target, '"a reply"', { replyTo });
    await waitFor("the reply pushed", () => sub.messages().length >= 1);
    assert.deepEqual(sub.messages().map((m) => m.id), [msgId]);
    sub.s.destroy();
  });

  test("session events: session_up when a peer's first session opens, session_down when its last closes", async () => {
    const sub = await RawSub.open(sock, { events: true, messages: false });
    const other = await net.node({ name: "gamma" });
    await sendDirect(other, target, '"hello"');
    await waitFor("session_up", () => sub.events().find((e) => e.node_id === other.nodeId));
    await other.close();
    await waitFor("session_down", () => sub.events().find((e) => e.event === "session_down"));
    const mine = sub.events().filter((e) => e.node_id === other.nodeId);
    assert.deepEqual(mine.map((e) => e.event), ["session_up", "session_down"]);
    assert.equal((mine[0]!.session as { name: string }).name, "gamma");
    assert.equal(mine[1]!.session, null);
    assert.equal(sub.messages().length, 0, "messages: false pushes none");
    sub.s.destroy();
  });

  test("a subscriber that stalls while 10,000 messages arrive keeps the daemon within +32 MiB, then gets every one", {
    timeout: 240_000,
  }, async () => {
    const body = JSON.stringify("x".repeat(4000)); // 10,000 × 4 KB: 40 MB, more than the budget if held
    // Warm the daemon (its heap, libSQL's cache) at the same load before the baseline.
    await sendMany(sender, target, 2000, body);
    const before = await rssKiB(daemon.proc.pid!);
    const sub = await RawSub.open(sock, {});
    sub.s.pause(); // stalls: reads nothing from here on
    const ids = await sendMany(sender, target, 10_000, body);
    const grown = (await rssKiB(daemon.proc.pid!)) - before;
    console.log(`# daemon RSS growth with a stalled subscriber and 10,000 × 4 KB messages: ${grown} KiB`);
    if (grown >= 32 * 1024) sub.s.destroy();
    assert.ok(grown < 32 * 1024, `daemon RSS grew by ${grown} KiB`);
    sub.s.resume();
    await waitFor("all 10,000 pushed messages", () => sub.lines.length >= 10_000, { timeoutMs: 60_000 });
    const got = sub.messages();
    assert.deepEqual(got.map((m) => m.id).sort(), ids.slice().sort(), "nothing missing, nothing twice");
    assert.ok(got.every((m, i) => i === 0 || m.seq > got[i - 1]!.seq), "in seq order");
    sub.s.destroy();
  });

  test("control connections beyond 64 are closed at accept, so local clients cannot pile up in the daemon", async () => {
    const open: Socket[] = [];
    try {
      // Whatever other tests left open is gone (sockets destroyed); fill the slots with idle connections.
      for (let i = 0; i < 64; i++) {
        const s = connect(sock);
        await new Promise((r) => s.once("connect", r));
        open.push(s);
      }
      const r = await runAtlas(["status"], { home: alpha.home });
      assert.equal(r.code, 1);
      // Closed at accept: seen as a close before the answer, or as EPIPE on writing the request.
      assert.match(r.stderr, /^error: (the daemon closed the control connection|cannot reach the daemon at )/);
    } finally {
      for (const s of open) s.destroy();
    }
    await waitFor("the daemon to answer again", async () => {
      const r = await runAtlas(["--json", "status"], { home: alpha.home });
      return JSON.parse(r.stdout).pid === daemon.proc.pid;
    });
  });

  test("net inbox --follow --json prints what the daemon pushes", async () => {
    const before = await subscribersOf(alpha.home);
    const [cmd, pre] = atlasCommand();
    const p = spawn(cmd, [...pre, "--home", alpha.home, "--json", "net", "inbox", "--follow", "--limit", "0"], {
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    // The stream is open once the daemon counts one more subscriber; a message sent before would be "old".
    await waitFor("the follower to subscribe", async () => (await subscribersOf(alpha.home)) > before);
    const { msgId } = await sendDirect(sender, target, '{"n": 1}');
    await waitFor("the followed message", () => out.includes("\n"));
    const m = JSON.parse(out.split("\n")[0]!);
    assert.equal(m.id, msgId);
    assert.deepEqual(m.body, { n: 1 });
    const code = new Promise((r) => p.on("close", r));
    p.kill("SIGTERM");
    assert.equal(await code, 0);
  });

  test("net inbox --follow (human form) prints a pushed message with its body verbatim", async () => {
    const before = await subscribersOf(alpha.home);
    const [cmd, pre] = atlasCommand();
    const p = spawn(cmd, [...pre, "--home", alpha.home, "net", "inbox", "--follow", "--limit", "0"], {
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    p.stdout.on("data", (d) => (out += d));
    await waitFor("the follower to subscribe", async () => (await subscribersOf(alpha.home)) > before);
    const { msgId } = await sendDirect(sender, target, '{"n": 123456789012345678901234567890}', { topic: "demo" });
    await waitFor("the followed message", () => out.split("\n").length >= 3);
    const [head, body] = out.split("\n");
    assert.match(
      head!,
      new RegExp(`^\\d{4}-\\d\\d-\\d\\dT[\\d:]+Z  from ${sender.nodeId.slice(0, 18)}…  topic demo  ${msgId}$`),
    );
    assert.equal(body, '  {"n":123456789012345678901234567890}');
    const code = new Promise((r) => p.on("close", r));
    p.kill("SIGTERM");
    assert.equal(await code, 0);
  });

  test("a control connection that sends no request within 10 s is closed", { timeout: 30_000 }, async () => {
    const s = connect(sock);
    await new Promise((r) => s.once("connect", r));
    const t0 = Date.now();
    await new Promise((r) => s.once("close", r).resume());
    const waited = Date.now() - t0;
    assert.ok(waited >= 9_000 && waited < 15_000, `closed after ${waited} ms`);
  });

  test("a body at the wire limit goes through the control socket (net send -)", { timeout: 60_000 }, async () => {
    // A JSON string of backslashes, as long as a body may be: escaped as a JSON string on the
    // control socket, it doubles.
    const big = '"' + "\\\\".repeat((MAX_BODY_BYTES - 2) / 2 - 1) + '"';
    assert.ok(Buffer.byteLength(big) <= MAX_BODY_BYTES);
    serveInbox(sender);
    const r = await runAtlas(["--json", "net", "send", pinnedTarget(sender), "-"], { home: alpha.home, input: big });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).queued, true);
    const got = await waitFor("the big message at the sender", async () => (await sender.store.inbox.list()).at(-1));
    assert.equal(got.body, big);
  });
});

test("net inbox --follow without a daemon exits 1 with a hint to start one", async () => {
  const h = await initHome("lonely");
  const r = await runAtlas(["net", "inbox", "--follow"], { home: h.home });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, "");
  assert.match(r.stderr, /no daemon is running for .*: start one with `atlas daemon`/);
  await cleanupAll();
});

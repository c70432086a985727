/**
 * `atlas net send | inbox | outbox` through the real CLI between real processes (README.md#commands):
 * direct sends without a daemon, queued sends through a daemon's outbox, output shapes, exit
 * codes, JSON lines, and `inbox --follow` seeing a message that arrives while it runs.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { appendFile } from "node:fs/promises";
import { join } from "node:path";
import { openStore } from "../src/store/index.ts";
import {
  atlasCommand,
  cleanupHomes,
  freePort,
  initHome,
  killAll,
  type Listener,
  runAtlas,
  startListener,
} from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

const dbOf = (home: string) => join(home, "state", "peers.db");
const short = (id: string) => id.slice(0, 18) + "…";
const MSG_ID = /msg_[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}/;

async function inboxOf(home: string) {
  const s = await openStore(dbOf(home));
  try {
    return await s.inbox.list();
  } finally {
    await s.close();
  }
}

describe("net send / inbox / outbox", () => {
  let a: { home: string; nodeId: string }; // receiver, daemon running
  let b: { home: string; nodeId: string }; // sender without daemon
  let da: Listener;

  before(async () => {
    a = await initHome("alpha");
    b = await initHome("beta");
    // short dial timeout so the unreachable case is quick
    await appendFile(join(b.home, "state", "config.toml"), "[transport]\ndial_timeout = 1\n");
    da = await startListener(a.home, [], { cmd: ["daemon"] });
  });
  after(async () => {
    killAll();
    await cleanupHomes();
  });

  test("send without a daemon delivers directly, prints the ack and stores the body verbatim", async () => {
    const body = '{"n":12345678901234567890}';
    const r = await runAtlas(["net", "send", da.address, body, "--topic", "task"], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stderr, "");
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 3, r.stdout);
    assert.equal(lines[0], `Sent to  : ${short(a.nodeId)} [unknown via direct]`);
    assert.match(lines[1]!, new RegExp(`^Msg ID   : ${MSG_ID.source}$`));
    assert.equal(lines[2], "Ack      : received");
    const id = lines[1]!.slice("Msg ID   : ".length);
    const rows = await inboxOf(a.home);
    const row = rows.find((x) => x.id === id);
    assert.ok(row, "stored by the receiving daemon");
    assert.equal(row.body, body);
    assert.equal(row.from_id, b.nodeId);
    assert.equal(row.topic, "task");
  });

  test("send --json to a node ID prefix wraps a body that is not JSON as a JSON string", async () => {
    const r = await runAtlas(["net", "send", a.nodeId.slice(0, 16), "hello world", "--json"], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.queued, false);
    assert.equal(j.node_id, a.nodeId);
    assert.equal(j.ack, "received");
    assert.equal(j.path, "direct");
    assert.match(j.msg_id, MSG_ID);
    const row = (await inboxOf(a.home)).find((x) => x.id === j.msg_id);
    assert.equal(row?.body, '"hello world"');
  });

  test("a bad --reply-to or an unknown prefix is a usage error, exit 2", async () => {
    const r = await runAtlas(["net", "send", da.address, "{}", "--reply-to", "nope"], { home: b.home });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: invalid message ID 'nope'/);
    const u = await runAtlas(["net", "send", "atlas_00000000", "{}"], { home: b.home });
    assert.equal(u.code, 2);
    assert.match(u.stderr, /^error: no known peer matches/);
  });

  test("send to an unreachable address exits 3 with one line, or an error object with --json", async () => {
    const port = await freePort();
    const r = await runAtlas(["net", "send", `127.0.0.1:${port}`, "{}"], { home: b.home });
    assert.equal(r.code, 3, r.stderr);
    assert.equal(r.stdout, "");
    assert.match(r.stderr, /^error: [^\n]+\n$/);
    const j = await runAtlas(["net", "send", `127.0.0.1:${port}`, "{}", "--json"], { home: b.home });
    assert.equal(j.code, 3);
    assert.equal(JSON.parse(j.stderr).error.code, "ERR_UNREACHABLE");
  });

  test("send to a peer that bans us exits 4", async () => {
    const d = await initHome("delta");
    // Through the running daemon (it keeps bans in memory).
    const ban = await runAtlas(["net", "ban", d.nodeId, "--for", "10m"], { home: a.home });
    assert.equal(ban.code, 0, ban.stderr);
    const r = await runAtlas(["net", "send", da.address, "{}"], { home: d.home });
    assert.equal(r.code, 4, r.stderr);
    assert.match(r.stderr, /^error: peer refused the handshake: banned until \d{4}-[\d-]+T[\d:]+Z \(in \d+m\)\n$/);
  });

  test("inbox --json prints one object per line with the body verbatim, big integers intact", async () => {
    const r = await runAtlas(["net", "inbox", "--json"], { home: a.home });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 2);
    assert.ok(lines[0]!.includes(`"body":{"n":12345678901234567890}`), lines[0]);
    const [m1, m2] = lines.map((l) => JSON.parse(l));
    assert.deepEqual(Object.keys(m1), [
      "seq",
      "id",
      "from",
      "to",
      "timestamp",
      "reply_to",
      "topic",
      "body",
      "received_at",
    ]);
    assert.equal(m1.from, b.nodeId);
    assert.equal(m1.to, a.nodeId);
    assert.equal(m1.topic, "task");
    assert.equal(m2.body, "hello world");
    assert.ok(m2.seq > m1.seq);
    // filters and cursor
    const f = await runAtlas(["net", "inbox", "--json", "--topic", "task"], { home: a.home });
    assert.equal(f.stdout.trimEnd().split("\n").length, 1);
    const after = await runAtlas(["net", "inbox", "--json", "--after", String(m1.seq)], { home: a.home });
    assert.equal(JSON.parse(after.stdout).id, m2.id);
    const from = await runAtlas(["net", "inbox", "--json", "--from", b.nodeId.slice(0, 14)], { home: a.home });
    assert.equal(from.stdout.trimEnd().split("\n").length, 2);
  });

  test("inbox prints time, short sender, topic and ID, then the body indented", async () => {
    const r = await runAtlas(["net", "inbox", "--limit", "1"], { home: a.home });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.match(
      lines[0]!,
      new RegExp(`^\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\dZ  from ${short(b.nodeId)}  ${MSG_ID.source}$`),
    );
    assert.equal(lines[1], '  "hello world"');
    const none = await runAtlas(["net", "inbox", "--topic", "nothing-here"], { home: a.home });
    assert.equal(none.stdout, "No messages.\n");
  });

  test("inbox --follow prints a message that arrives after it started and exits 0 on SIGTERM", async () => {
    const [cmd, pre] = atlasCommand();
    // --after the newest stored row: whatever is stored from now on is new, however soon the
    // follower's first read comes (no race with its start).
    const newest = String((await inboxOf(a.home)).at(-1)?.rowid ?? 0);
    const p = spawn(cmd, [...pre, "--home", a.home, "net", "inbox", "--follow", "--json", "--after", newest], {
      env: { ...process.env, NODE_OPTIONS: "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    p.stdout.on("data", (d) => (out += d));
    p.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((r) => p.on("close", (c) => r(c)));
    try {
      const s = await runAtlas(["net", "send", da.address, '{"late":true}', "--json"], { home: b.home });
      assert.equal(s.code, 0, s.stderr);
      const id = JSON.parse(s.stdout).msg_id;
      await waitFor("the followed message", () => out.includes("\n"));
      const m = JSON.parse(out.trimEnd());
      assert.equal(m.id, id);
      assert.deepEqual(m.body, { late: true });
      p.kill("SIGTERM");
      assert.equal(await exited, 0, err);
      assert.equal(err, "");
    } finally {
      p.kill("SIGKILL");
    }
  });

  test("outbox without a daemon lists direct sends among the recent deliveries", async () => {
    const r = await runAtlas(["net", "outbox", "--json"], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual(j.queued, []);
    assert.ok(
      j.deliveries.some((d: { status: string; target: string }) => d.status === "delivered" && d.target === a.nodeId),
    );
    assert.ok(
      j.deliveries.some((d: { status: string }) => d.status === "failed"),
      "the unreachable attempt is recorded",
    );
    const h = await runAtlas(["net", "outbox"], { home: b.home });
    assert.match(
      h.stdout,
      /^Outbox is empty\.\n\nRecent deliveries:\nMSG ID +TARGET +STATUS +ATTEMPTS +PATH +FINISHED +DETAIL\n/,
    );
  });

  test("send with a daemon queues the message and the daemon delivers it exactly once", async () => {
    const c = await initHome("gamma");
    const dc = await startListener(c.home, [], { cmd: ["daemon"] });
    try {
      const pinned = `${a.nodeId}@${da.address}`;
      const r = await runAtlas(["net", "send", pinned, '{"via":"outbox"}', "--topic", "q"], { home: c.home });
      assert.equal(r.code, 0, r.stderr);
      const lines = r.stdout.trimEnd().split("\n");
      assert.match(lines[0]!, new RegExp(`^Queued   : ${MSG_ID.source}$`));
      assert.equal(lines[1], `Target   : ${short(a.nodeId)}@${da.address}`);
      const id = lines[0]!.slice("Queued   : ".length);
      const row = await waitFor("delivery by the daemon", async () => (await inboxOf(a.home)).find((x) => x.id === id));
      assert.equal(row.body, '{"via":"outbox"}');
      assert.equal(row.from_id, c.nodeId);
      const o = await waitFor("the deliveries row", async () => {
        const j = JSON.parse((await runAtlas(["net", "outbox", "--json"], { home: c.home })).stdout);
        return j.deliveries.find((d: { msg_id: string }) => d.msg_id === id);
      });
      assert.equal(o.status, "delivered");
      assert.equal(o.attempts, 1);
      assert.equal(o.path, "direct");
      // now known by node ID: a prefix is accepted and resolved when queueing
      const j = await runAtlas(["net", "send", a.nodeId.slice(0, 16), "[1,2]", "--json"], { home: c.home });
      assert.equal(j.code, 0, j.stderr);
      assert.deepEqual(Object.keys(JSON.parse(j.stdout)), [
        "msg_id",
        "target",
        "queued",
        "node_id",
        "name",
        "trust",
        "path",
        "relay",
        "ack",
      ]);
      assert.equal(JSON.parse(j.stdout).target, a.nodeId);
      await waitFor(
        "the second delivery",
        async () => (await inboxOf(a.home)).some((x) => x.id === JSON.parse(j.stdout).msg_id),
      );
      assert.equal((await inboxOf(a.home)).filter((x) => x.from_id === c.nodeId).length, 2);
    } finally {
      assert.equal(await dc.stop(), 0);
    }
  });
});

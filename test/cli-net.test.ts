/**
 * Peer commands through the real CLI between real processes (docs/protocol.md#dialing, README.md#commands): connect, ping,
 * disconnect, peers, output shapes, exit codes, and what both databases hold afterwards.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { openStore } from "../src/store/index.ts";
import {
  cleanupAll,
  cleanupHomes,
  initHome,
  killAll,
  type Listener,
  listenerPair,
  runAtlas,
  startListener,
} from "./helpers/cli.ts";
import { waitFor } from "./helpers/wait.ts";

const dbOf = (home: string) => join(home, "state", "peers.db");

async function listSessions(db: string, nodeId: string) {
  const s = await openStore(db);
  try {
    return await s.sessions.list({ nodeId });
  } finally {
    await s.close();
  }
}

describe("net commands between two processes", () => {
  let a: { home: string; nodeId: string };
  let b: { home: string; nodeId: string };
  let listener: Listener;

  before(async () => ({ a, b, listener } = await listenerPair()));
  after(cleanupAll);

  test("connect prints the node ID, then name [trust via path]", async () => {
    const r = await runAtlas(["net", "connect", listener.address], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `Connected to ${a.nodeId}\nalpha [unknown via direct]\n`);
    assert.equal(r.stderr, "");
  });

  test("connect --json gives the same facts", async () => {
    const r = await runAtlas(["net", "connect", listener.address, "--json"], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.deepEqual({ node_id: j.node_id, name: j.name, trust: j.trust, path: j.path }, {
      node_id: a.nodeId,
      name: "alpha",
      trust: "unknown",
      path: "direct",
    });
  });

  test("ping by node ID prefix prints each round trip and a summary", async () => {
    const prefix = a.nodeId.slice(6, 16);
    const r = await runAtlas(["net", "ping", prefix, "--count", "3", "--interval", "50"], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trimEnd().split("\n");
    assert.equal(lines[0], `Peer : ${a.nodeId.slice(0, 18)}…`);
    assert.equal(lines[1], "Path : direct");
    // Human output shows times in ISO-8601 (README.md#commands); --json keeps epoch seconds.
    assert.match(lines[2]!, /^Ping : \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.match(lines[3]!, /^Pong : \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$/);
    assert.equal(lines.filter((l) => /^RTT {2}: \d+\.\d\d ms$/.test(l)).length, 3);
    assert.match(lines.at(-1)!, /^min\/median\/max [\d.]+\/[\d.]+\/[\d.]+ ms, 3 sent, 3 received$/);
    const ping = Date.parse(lines[2]!.slice(7)) / 1000;
    assert.ok(Math.abs(ping - Date.now() / 1000) < 60);
  });

  test("ping --json", async () => {
    const r = await runAtlas(["net", "ping", listener.address, "--count", "2", "--interval", "10", "--json"], {
      home: b.home,
    });
    assert.equal(r.code, 0, r.stderr);
    const j = JSON.parse(r.stdout);
    assert.equal(j.node_id, a.nodeId);
    assert.equal(j.path, "direct");
    assert.equal(j.sent, 2);
    assert.equal(j.received, 2);
    assert.equal(j.rtt_ms.length, 2);
  });

  test("disconnect without a live session says so and dials nothing", async () => {
    const before = (await listSessions(dbOf(b.home), a.nodeId)).length;
    const r = await runAtlas(["net", "disconnect", a.nodeId], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, `No session with ${a.nodeId}: nothing to disconnect\n`);
    assert.equal((await listSessions(dbOf(b.home), a.nodeId)).length, before, "no session was opened");

    const sb = await openStore(dbOf(b.home));
    try {
      const peer = await sb.peers.get(a.nodeId);
      assert.ok(peer);
      assert.equal(peer.name, "alpha");
      assert.equal(peer.address, listener.address);
      assert.equal(peer.trust_level, "unknown");
      assert.equal(peer.last_failure, null);
      const sessions = await sb.sessions.list({ nodeId: a.nodeId });
      assert.ok(sessions.length >= 4);
      assert.ok(sessions.every((s) => s.direction === "outbound" && s.path === "direct" && s.closed_at !== null));
      assert.ok(sessions.every((s) => s.close_reason === "cli_exit"));
    } finally {
      await sb.close();
    }
    // The listener's rows are written as each session ends; the listener keeps running.
    await waitFor("the listener's rows of the four sessions, closed", async () => {
      const s = await openStore(dbOf(a.home));
      try {
        const rows = await s.sessions.list({ nodeId: b.nodeId });
        return rows.length >= 4 && rows.every((r) => r.closed_at !== null);
      } finally {
        await s.close();
      }
    });
    const sa = await openStore(dbOf(a.home));
    try {
      const peer = await sa.peers.get(b.nodeId);
      assert.ok(peer);
      assert.equal(peer.name, "beta");
      const sessions = await sa.sessions.list({ nodeId: b.nodeId });
      assert.ok(sessions.length >= 4);
      assert.ok(
        sessions.every((s) =>
          s.direction === "inbound" && s.closed_at !== null && s.close_reason === "DISCONNECT_SHUTDOWN"
        ),
        JSON.stringify(sessions),
      );
      assert.match(sessions[0]!.remote_address!, /^127\.0\.0\.1:\d+$/);
    } finally {
      await sa.close();
    }
  });

  test("peers lists a known peer with its stored fields", async () => {
    const r = await runAtlas(["net", "peers"], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    const [head, row] = r.stdout.trimEnd().split("\n");
    assert.match(head!, /^NODE ID\s+NAME\s+ADDRESS\s+TRUST\s+OPERATOR\s+LAST SEEN\s+LAST FAILURE\s+BAN$/);
    assert.match(
      row!,
      new RegExp(
        `^${a.nodeId.slice(0, 18)}…\\s+alpha\\s+${
          listener.address.replace(/\./g, "\\.")
        }\\s+unknown via direct\\s+-\\s+\\d+s ago\\s+-\\s+-$`,
      ),
    );
    const j = JSON.parse((await runAtlas(["net", "peers", "--json", "--trust", "unknown"], { home: b.home })).stdout);
    assert.equal(j.length, 1);
    assert.equal(j[0].node_id, a.nodeId);
    const none = JSON.parse((await runAtlas(["net", "peers", "--json", "--trust", "relay"], { home: b.home })).stdout);
    assert.deepEqual(none, []);
  });

  test("a pinned node ID that does not match is refused (exit 4), naming the node actually there", async () => {
    const other = "atlas_" + "ab".repeat(32);
    const r = await runAtlas(["net", "ping", `${other}@${listener.address}`], { home: b.home });
    assert.equal(r.code, 4);
    assert.equal(r.stderr, `error: peer is ${a.nodeId}, not the expected ${other.slice(0, 18)}…\n`);
  });

  test("listener exits 0 on SIGTERM and closes its session rows", async () => {
    const r = await runAtlas(["net", "connect", listener.address], { home: b.home });
    assert.equal(r.code, 0);
    const code = await listener.stop("SIGTERM");
    assert.equal(code, 0);
    const sa = await openStore(dbOf(a.home));
    try {
      assert.equal((await sa.sessions.list({ open: true })).length, 0);
    } finally {
      await sa.close();
    }
  });
});

describe("net command errors", () => {
  after(async () => {
    killAll();
    await cleanupHomes();
  });

  test("an unreachable address exits 3 with one line and records last_failure for a known peer", async () => {
    const a = await initHome("alpha");
    const b = await initHome("beta");
    const l = await startListener(a.home);
    assert.equal((await runAtlas(["net", "connect", l.address], { home: b.home })).code, 0);
    await l.stop();
    assert.equal((await runAtlas(["config", "set", "transport.dial_timeout", "1"], { home: b.home })).code, 0);
    const r = await runAtlas(["net", "ping", a.nodeId.slice(0, 14)], { home: b.home });
    assert.equal(r.code, 3, r.stderr);
    assert.match(r.stderr, /^error: no answer from 127\.0\.0\.1:\d+ within 1 s\n$/);
    const j = await runAtlas(["net", "ping", a.nodeId, "--json"], { home: b.home });
    assert.equal(j.code, 3);
    assert.deepEqual(Object.keys(JSON.parse(j.stderr).error), ["code", "message"]);
    assert.equal(JSON.parse(j.stderr).error.code, "ERR_UNREACHABLE");
    const s = await openStore(dbOf(b.home));
    try {
      const p = await s.peers.get(a.nodeId);
      assert.equal(p?.last_failure, "unreachable");
      assert.ok(p?.last_failure_at);
    } finally {
      await s.close();
    }
  });

  test("an unknown or ambiguous node ID prefix exits 2", async () => {
    const b = await initHome("beta");
    const r = await runAtlas(["net", "ping", "deadbeefdeadbeef"], { home: b.home });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^error: no known peer matches deadbeefdeadbeef\n$/);
    const bad = await runAtlas(["net", "ping", "not-a-target"], { home: b.home });
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: invalid target 'not-a-target'/);
    const s = await openStore(dbOf(b.home));
    const ids = ["atlas_" + "ab".repeat(32), "atlas_" + "ab".repeat(16) + "cd".repeat(16)];
    try {
      for (const id of ids) await s.peers.upsert({ node_id: id, name: "x", address: "127.0.0.1:9" });
    } finally {
      await s.close();
    }
    const amb = await runAtlas(["net", "ping", "abababab"], { home: b.home });
    assert.equal(amb.code, 2);
    assert.match(amb.stderr, /ambiguous/);
    for (const id of ids) assert.ok(amb.stderr.includes(id.slice(0, 18)), amb.stderr);
  });

  test("a home without an identity exits 6 naming atlas id init", async () => {
    const { tmpHome } = await import("./helpers/cli.ts");
    const h = await tmpHome();
    for (const args of [["net", "ping", "127.0.0.1:9"], ["net", "listen", "--port", "0"], ["id", "show"]]) {
      const r = await runAtlas(args, { home: h });
      assert.equal(r.code, 6, `${args.join(" ")}: ${r.stderr}`);
      assert.match(r.stderr, /^error: no identity in .*: run `atlas id init` first\n$/);
    }
  });

  test("a port in use exits 1 with one line", async () => {
    const a = await initHome("alpha");
    const b = await initHome("beta");
    const l = await startListener(a.home);
    const r = await runAtlas(["net", "listen", "--host", "127.0.0.1", "--port", String(l.port)], { home: b.home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^error: UDP port ${l.port} is already in use .*\\n$`));
    await l.stop();
  });

  test("a bad config value exits 1 with one line naming the key and the file", async () => {
    const a = await initHome("alpha");
    const { writeFile } = await import("node:fs/promises");
    await writeFile(join(a.home, "state", "config.toml"), '[transport]\ndial_timeout = "soon"\n');
    const r = await runAtlas(["net", "ping", "127.0.0.1:9"], { home: a.home });
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^error: .*config\.toml: 'transport\.dial_timeout' must be an integer, got string\n$/);
    await writeFile(join(a.home, "state", "config.toml"), "[transport]\nturbo = true\n");
    const u = await runAtlas(["net", "ping", "127.0.0.1:9"], { home: a.home });
    assert.equal(u.code, 1);
    assert.match(u.stderr, /^error: .*config\.toml: unknown key 'transport\.turbo'\n$/);
  });

  test("an unknown command or a bad flag value exits 2", async () => {
    const a = await initHome("alpha");
    const u = await runAtlas(["net", "teleport"], { home: a.home });
    assert.equal(u.code, 2);
    assert.equal(u.stderr.split("\n").filter(Boolean).length, 1);
    const c = await runAtlas(["net", "ping", "127.0.0.1:9", "--count", "zero"], { home: a.home });
    assert.equal(c.code, 2);
    assert.match(c.stderr, /--count must be an integer/);
  });
});

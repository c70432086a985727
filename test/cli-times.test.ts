/**
 * Times (issue 13): human output shows ISO-8601 or relative times (`in 9m`, `3m ago`); JSON
 * keeps epoch seconds; the wire's `banned until <epoch>` reaches a human as ISO + relative.
 */
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { humanTimes, relTime } from "../src/cli/output.ts";
import { cleanupAll, type Listener, listenerPair, runAtlas } from "./helpers/cli.ts";

const ISO = String.raw`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?Z`;

test("relative times read in 9m, 9m ago and now", () => {
  assert.equal(relTime(1000 + 540, 1000), "in 9m");
  assert.equal(relTime(1000 - 180, 1000), "3m ago");
  assert.equal(relTime(1000, 1000), "now");
  assert.equal(relTime(1000 + 7200, 1000), "in 2h");
});

test("humanTimes rewrites `until <epoch>` only", () => {
  assert.equal(
    humanTimes("peer refused the handshake: banned until 1796171781", 1796171781 - 540),
    "peer refused the handshake: banned until 2026-12-02T00:36:21Z (in 9m)",
  );
  assert.equal(humanTimes("retry 1796171781 later"), "retry 1796171781 later");
});

describe("times in command output", () => {
  let a: { home: string; nodeId: string };
  let b: { home: string; nodeId: string };
  let listener: Listener;

  before(async () => ({ a, b, listener } = await listenerPair()));
  after(cleanupAll);

  test("ping shows Ping and Pong times in ISO-8601 for humans and epoch seconds in JSON", async () => {
    const r = await runAtlas(["net", "ping", listener.address], { home: b.home });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    assert.match(lines[2]!, new RegExp(`^Ping : ${ISO}$`));
    assert.match(lines[3]!, new RegExp(`^Pong : ${ISO}$`));
    const j = JSON.parse((await runAtlas(["--json", "net", "ping", listener.address], { home: b.home })).stdout);
    assert.equal(typeof j.ping_ts, "number");
    assert.ok(Math.abs(j.ping_ts - Date.now() / 1000) < 60);
  });

  test("a ban's end shows as ISO-8601 and relative time for humans and epoch seconds in JSON", async () => {
    const ban = await runAtlas(["net", "ban", b.nodeId, "--for", "10m"], { home: a.home });
    assert.equal(ban.code, 0, ban.stderr);
    assert.match(ban.stdout, new RegExp(`^Banned ${b.nodeId} until ${ISO} \\(in (9|10)m\\)\\n$`));

    const refused = await runAtlas(["net", "ping", listener.address], { home: b.home });
    assert.equal(refused.code, 4, refused.stderr);
    assert.match(
      refused.stderr,
      new RegExp(`^error: peer refused the handshake: banned until ${ISO} \\(in (9|10)m\\)\\n$`),
    );
    const j = await runAtlas(["--json", "net", "ping", listener.address], { home: b.home });
    assert.match(JSON.parse(j.stderr).error.message, /banned until \d{10}$/);

    const peers = await runAtlas(["net", "peers"], { home: a.home });
    assert.equal(peers.code, 0, peers.stderr);
    const row = peers.stdout.split("\n").find((l) => l.startsWith(b.nodeId.slice(0, 18)))!;
    assert.match(row, new RegExp(`\\d+s ago +- +until ${ISO}$`));
    const pj = JSON.parse((await runAtlas(["--json", "net", "peers"], { home: a.home })).stdout);
    assert.equal(typeof pj.find((p: { node_id: string }) => p.node_id === b.nodeId).ban_until, "number");
  });
});

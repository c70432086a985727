/** dial(target) (docs/protocol.md#dialing): candidates in order with Happy Eyeballs, last_failure kinds. */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { createSocket } from "node:dgram";
import { AtlasError } from "../src/errors.ts";
import { failureKind } from "../src/net/dial.ts";
import { openStore } from "../src/store/index.ts";
import { cleanupHomes, initHome, killAll, runAtlas, startListener } from "./helpers/cli.ts";

after(async () => {
  killAll();
  await cleanupHomes();
});

test("failureKind maps dial errors to the stored last_failure kinds", () => {
  assert.equal(failureKind(new AtlasError("ERR_UNREACHABLE", "no answer")), "unreachable");
  assert.equal(
    failureKind(new AtlasError("ERR_RATE_LIMITED", "peer refused the handshake: banned until 1")),
    "rejected",
  );
  assert.equal(failureKind(new AtlasError("ERR_INVALID_IDENTITY", "peer is x, not y")), "rejected");
  assert.equal(
    failureKind(
      new AtlasError("ERR_HANDSHAKE_FAILED", "peer refused the handshake: clock drift of 900 s exceeds 300 s"),
    ),
    "expired",
  );
  assert.equal(
    failureKind(new AtlasError("ERR_HANDSHAKE_FAILED", "responder's handshake signature is invalid")),
    "rejected",
  );
  assert.equal(failureKind(new AtlasError("ERR_RESET", "connection closed by peer")), "reset");
  assert.equal(failureKind(new AtlasError("ERR_HANDSHAKE_TIMEOUT", "handshake not finished")), "reset");
});

/** A UDP port that swallows everything: a candidate that never answers. */
async function blackHole(): Promise<{ port: number; close: () => void }> {
  const s = createSocket("udp4");
  await new Promise<void>((r) => s.bind(0, "127.0.0.1", () => r()));
  return { port: s.address().port, close: () => s.close() };
}

test("a dead address candidate falls through to public_address after the stagger, well before dial_timeout", async () => {
  const a = await initHome("alpha");
  const b = await initHome("beta");
  const l = await startListener(a.home);
  const hole = await blackHole();
  const s = await openStore(join(b.home, "state", "peers.db"));
  await s.peers.upsert({
    node_id: a.nodeId,
    name: "alpha",
    address: `127.0.0.1:${hole.port}`,
    public_address: l.address,
  });
  await s.close();
  const t0 = Date.now();
  const r = await runAtlas(["net", "connect", a.nodeId.slice(0, 20)], { home: b.home });
  const ms = Date.now() - t0;
  hole.close();
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `Connected to ${a.nodeId}\nalpha [unknown via direct]\n`);
  assert.ok(
    ms < 4000,
    `took ${ms} ms: the second candidate should start 250 ms after the first, not after its 5 s timeout`,
  );
  const s2 = await openStore(join(b.home, "state", "peers.db"));
  try {
    const p = await s2.peers.get(a.nodeId);
    assert.equal(p?.address, l.address, "address becomes the one that worked");
  } finally {
    await s2.close();
  }
  await l.stop();
});

test("a dial refused by a ban exits 4 naming the ban and records last_failure rejected", async () => {
  const a = await initHome("alpha");
  const b = await initHome("beta");
  const until = Math.floor(Date.now() / 1000) + 600;
  const sa = await openStore(join(a.home, "state", "peers.db"));
  await sa.peers.setBan(b.nodeId, until);
  await sa.close();
  const l = await startListener(a.home);
  const sb = await openStore(join(b.home, "state", "peers.db"));
  await sb.peers.upsert({ node_id: a.nodeId, name: "alpha", address: l.address });
  await sb.close();
  const r = await runAtlas(["net", "ping", a.nodeId], { home: b.home });
  assert.equal(r.code, 4, r.stderr);
  // The wire says `banned until <epoch>`; a human reads the time in ISO-8601 and how far off it is.
  const iso = new Date(until * 1000).toISOString().replace(/\.000Z$/, "Z");
  assert.match(r.stderr, new RegExp(`^error: peer refused the handshake: banned until ${iso} \\(in (9|10)m\\)\n$`));
  const j = await runAtlas(["net", "ping", a.nodeId, "--json"], { home: b.home });
  assert.equal(JSON.parse(j.stderr).error.code, "ERR_BANNED");
  const s2 = await openStore(join(b.home, "state", "peers.db"));
  try {
    assert.equal((await s2.peers.get(a.nodeId))?.last_failure, "rejected");
  } finally {
    await s2.close();
  }
  await l.stop();
});

/**
 * What the peer commands mean (issue 13), through the real CLI and real daemons on 127.0.0.1:
 * disconnect never dials, a pinned target dials exactly its address, an unreadable home is
 * explained, and a pending dial adds nothing to a stderr that is not a terminal.
 */
import { after, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createSocket } from "node:dgram";
import { chmod } from "node:fs/promises";
import { atlasCommand, cleanupAll, initHome, listenerPair, runAtlas, startListener, tmpHome } from "./helpers/cli.ts";

after(cleanupAll);

test("disconnect through a daemon closes the live session, then says there is none", async () => {
  const { a, b, listener } = await listenerPair();
  const d = await startListener(b.home, [], { cmd: ["daemon"] });
  assert.equal((await runAtlas(["net", "connect", listener.address], { home: b.home })).code, 0);
  const r = await runAtlas(["net", "disconnect", a.nodeId], { home: b.home });
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `Disconnected from ${a.nodeId} (1 session)\n`);
  const again = await runAtlas(["--json", "net", "disconnect", listener.address], { home: b.home });
  assert.equal(again.code, 0, again.stderr);
  assert.deepEqual(JSON.parse(again.stdout), { node_id: null, sessions: 0 });
  await d.stop();
});

test("disconnect from a peer that is away answers at once and dials nothing", async () => {
  const { a, b, listener } = await listenerPair();
  assert.equal((await runAtlas(["net", "connect", listener.address], { home: b.home })).code, 0);
  await listener.stop();
  const r = await runAtlas(["--json", "net", "disconnect", a.nodeId], { home: b.home });
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout), { node_id: a.nodeId, sessions: 0 });
});

test("a pinned target at a wrong address fails there even with a live session elsewhere", async () => {
  const { a, b, listener } = await listenerPair();
  const other = await initHome("gamma");
  const wrong = await startListener(other.home);
  const d = await startListener(b.home, [], { cmd: ["daemon"] });
  assert.equal((await runAtlas(["net", "connect", listener.address], { home: b.home })).code, 0);
  const r = await runAtlas(["net", "ping", `${a.nodeId}@${wrong.address}`], { home: b.home });
  assert.equal(r.code, 4, r.stdout);
  assert.equal(r.stderr, `error: peer is ${other.nodeId}, not the expected ${a.nodeId.slice(0, 18)}…\n`);
  const right = await runAtlas(["net", "ping", `${a.nodeId}@${listener.address}`], { home: b.home });
  assert.equal(right.code, 0, right.stderr);
  await d.stop();
});

test("a pinned target at a silent address is not rescued by a relay", async () => {
  const { a, b } = await listenerPair();
  const relayHome = await initHome("relay");
  const relay = await startListener(relayHome.home, [], { cmd: ["relay"] });
  await runAtlas(["config", "set", "transport.dial_timeout", "1"], { home: b.home });
  const set = await runAtlas(["config", "set", "network.relays", `["${relay.address}"]`], { home: b.home });
  assert.equal(set.code, 0, set.stderr);
  const hole = createSocket("udp4");
  await new Promise<void>((r) => hole.bind(0, "127.0.0.1", () => r()));
  const addr = `127.0.0.1:${hole.address().port}`;
  const r = await runAtlas(["net", "ping", `${a.nodeId}@${addr}`], { home: b.home });
  hole.close();
  assert.equal(r.code, 3);
  assert.equal(r.stderr, `error: no answer from ${addr} within 1 s\n`);
});

test("a home this user may not read is explained with its owner, mode and --home", {
  skip: process.getuid?.() !== 0 && "needs root to run the CLI as another user",
}, async () => {
  const home = await tmpHome();
  await chmod(home, 0o700);
  const [cmd, pre] = atlasCommand();
  const p = spawn(cmd, [...pre, "--home", home, "net", "peers"], { uid: 65534, gid: 65534, stdio: "pipe" });
  let stderr = "";
  p.stderr.on("data", (d) => (stderr += d));
  const code = await new Promise((r) => p.on("close", r));
  assert.equal(code, 1);
  assert.match(
    stderr,
    new RegExp(
      `^error: cannot use home ${home}: it belongs to root \\(uid 0\\) with mode 0700, and you, (\\S+ \\(uid 65534\\)|uid 65534), may not read it: run as its owner, or pass --home <dir> \\(or set ATLAS_HOME\\) for a home of your own\\n$`,
    ),
  );
});

test("a pending dial adds nothing to a stderr that is not a terminal", async () => {
  const b = await initHome("beta");
  await runAtlas(["config", "set", "transport.dial_timeout", "1"], { home: b.home });
  const hole = createSocket("udp4");
  await new Promise<void>((r) => hole.bind(0, "127.0.0.1", () => r()));
  const addr = `127.0.0.1:${hole.address().port}`;
  const r = await runAtlas(["net", "connect", addr], { home: b.home });
  hole.close();
  assert.equal(r.code, 3);
  assert.equal(r.stdout, "");
  assert.equal(r.stderr, `error: no answer from ${addr} within 1 s\n`);
});
